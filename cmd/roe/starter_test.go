package main

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"roe/experts"
	"roe/internal/testenv"
	"sort"
	"strings"
	"testing"

	"roe/library"
	"roe/models"
	"roe/retriever"
	"roe/tasks"
)

// starterNames lists the experts of the embedded starter library by folder.
func starterNames(t *testing.T) []string {
	t.Helper()
	var names []string
	err := fs.WalkDir(models.StarterExperts(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == library.FileExpert {
			names = append(names, path.Dir(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestStarterLibrary: an empty library gets every starter expert on first
// start, and held-out validation sentences of several tasks route to their
// task's experts.
func TestStarterLibrary(t *testing.T) {
	m, _, err := loadModel("")
	if err != nil {
		t.Fatal(err)
	}
	emb, err := retriever.LoadEncoder(models.Router()) // roe serve's default embedder
	if err != nil {
		t.Fatal(err)
	}
	lib, err := openLibrary(filepath.Join(t.TempDir(), "library"), m.Fingerprint(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()

	want := starterNames(t)
	if len(want) < 20 {
		t.Fatalf("only %d starter experts embedded: %v", len(want), want)
	}
	n, err := importStarter(lib, m, emb)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("imported %d starter experts, want %d", n, len(want))
	}
	ms, err := lib.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	kinds := map[library.Kind]int{}
	for _, x := range ms {
		got = append(got, x.Name)
		kinds[x.Kind]++
		if x.NumInstances == 0 || x.BaseFingerprint != m.Fingerprint() || x.Embedder != emb.ID() {
			t.Errorf("%s: %d instances, base %.12s, embedder %s", x.Name, x.NumInstances, x.BaseFingerprint, x.Embedder)
		}
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("library has %v\nwant %v", got, want)
	}
	if kinds[library.KindDataset] < 10 || kinds[library.KindPrompt] < 10 || kinds[library.KindMerged] < 1 {
		t.Errorf("kinds %v: want dataset, prompt and merged experts", kinds)
	}
	for _, name := range []string{"sst2", "rte", "cb", "ag_news", "sst2/review", "merged/sentiment"} {
		if _, err := lib.Manifest(name); err != nil {
			t.Errorf("starter expert %s: %v", name, err)
		}
	}
	// A library with experts is left alone.
	if n, err := importStarter(lib, m, emb); n != 0 || err != nil {
		t.Fatalf("second import: %d, %v", n, err)
	}
	ix, err := experts.BuildIndex(lib, emb, experts.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	for _, x := range ms {
		owner[x.Name] = x.Dataset
	}
	// Held-out validation sentences, rendered with a template as `roe data
	// instances --templates` does; each one routed alone (Q = 1).
	for _, task := range []string{"sst2", "ag_news", "cola", "stsb"} {
		ex, err := tasks.LoadTask(filepath.Join(sharedTasks, task), "validation")
		if errors.Is(err, fs.ErrNotExist) {
			testenv.SkipOrFail(t, "%v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		ins, err := taskInstances(filepath.Join(sharedTasks, task), sharedTemplates, ex[:8], 7)
		if err != nil {
			t.Fatal(err)
		}
		right := 0
		for _, in := range ins {
			text := retriever.FormatInstance(retriever.DefaultInstanceFormat, in.Text, in.AnswerChoices)
			q, err := emb.Embed([]string{text})
			if err != nil {
				t.Fatal(err)
			}
			rt, err := ix.Route(q, ix.Options(retriever.RouteOptions{TopK: 1}, []string{text}))
			if err != nil {
				t.Fatal(err)
			}
			if len(rt.Experts) > 0 && owner[rt.Experts[0].Name] == task {
				right++
			} else if len(rt.Experts) > 0 {
				t.Logf("%s: %q → %s", task, in.Text, rt.Experts[0].Name)
			}
		}
		if right < len(ins)*3/4 {
			t.Errorf("%s: %d of %d validation sentences routed to a %s expert", task, right, len(ins), task)
		}
	}
}
