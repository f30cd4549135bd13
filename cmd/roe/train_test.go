package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/internal/testenv"
)

const (
	sharedTemplates = "../../../shared/data/templates"
	sharedTasks     = "../../../shared/data/tasks"
)

// smallTask copies the first lines of a shared task's splits into dir/<task>.
func smallTask(t *testing.T, dir, task string, nTrain, nVal int) string {
	t.Helper()
	out := filepath.Join(dir, task)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for split, n := range map[string]int{"train": nTrain, "validation": nVal} {
		f, err := os.Open(filepath.Join(sharedTasks, task, split+".jsonl"))
		if err != nil {
			testenv.SkipOrFail(t, "%v", err)
		}
		var buf bytes.Buffer
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for i := 0; i < n && sc.Scan(); i++ {
			buf.Write(sc.Bytes())
			buf.WriteByte('\n')
		}
		f.Close()
		if err := os.WriteFile(filepath.Join(out, split+".jsonl"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lastJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return v
}

func TestTrainIntoLibraryKeepsOtherExperts(t *testing.T) {
	if _, err := os.Stat(sharedTemplates); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	tmp := t.TempDir()
	task := smallTask(t, tmp, "sst2", 24, 16)
	lib := filepath.Join(tmp, "lib")

	// Another expert, exported before the training run.
	ad := filepath.Join(tmp, "other")
	if _, errs, code := roe(t, "", "adapter", "init", "--rank", "2", "--out", ad); code != 0 {
		t.Fatal(errs)
	}
	ins := filepath.Join(tmp, "ins.jsonl")
	os.WriteFile(ins, []byte(`{"input":"Is this a cat?","answer_choices":["yes","no"]}`+"\n"+`{"input":"A dog ran."}`+"\n"), 0o644)
	if _, errs, code := roe(t, "", "experts", "add", "--library", lib, "--adapter", ad, "--instances", ins, "--name", "other"); code != 0 {
		t.Fatal(errs)
	}
	before := filepath.Join(tmp, "before")
	if _, errs, code := roe(t, "", "experts", "export", "--library", lib, "--out", before, "other"); code != 0 {
		t.Fatal(errs)
	}

	out, errs, code := roe(t, "", "train", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--rank", "4",
		"--steps", "3", "--batch", "4", "--max-len", "64", "--lr", "1e-3", "--seeds", "2", "--library", lib, "--name", "sst2/review")
	if code != 0 {
		t.Fatalf("train: %s", errs)
	}
	if !strings.Contains(out, `"event":"progress"`) || !strings.Contains(out, `"layer_grad_norms"`) {
		t.Errorf("no JSON progress lines: %s", out)
	}
	done := lastJSON(t, out)
	seeds := done["seeds"].(map[string]any)
	if done["event"] != "done" || len(seeds["runs"].([]any)) != 2 || done["steps"].(float64) != 3 {
		t.Errorf("summary %v", done)
	}

	after := filepath.Join(tmp, "after")
	if _, errs, code := roe(t, "", "experts", "export", "--library", lib, "--out", after, "other"); code != 0 {
		t.Fatal(errs)
	}
	a, b := readTree(t, before), readTree(t, after)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("export has %d files before, %d after", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Errorf("%s of the other expert changed", k)
		}
	}

	show, errs, code := roe(t, "", "experts", "show", "--library", lib, "sst2/review")
	if code != 0 {
		t.Fatal(errs)
	}
	var man struct {
		Kind         string `json:"kind"`
		Dataset      string `json:"dataset"`
		Prompt       string `json:"prompt"`
		NumInstances int    `json:"num_instances"`
		Training     struct {
			DataSize int                `json:"data_size"`
			Steps    int                `json:"steps"`
			Seeds    []int64            `json:"seeds"`
			Metrics  map[string]float64 `json:"metrics"`
		} `json:"training"`
	}
	if err := json.Unmarshal([]byte(show), &man); err != nil {
		t.Fatal(err)
	}
	if man.Kind != "prompt" || man.Dataset != "sst2" || man.Prompt != "review" || man.NumInstances != 24 ||
		man.Training.DataSize != 24 || man.Training.Steps != 3 || len(man.Training.Seeds) != 2 {
		t.Errorf("manifest %s", show)
	}
	if _, ok := man.Training.Metrics["accuracy"]; !ok {
		t.Errorf("no accuracy in %v", man.Training.Metrics)
	}

	// Evaluate the stored expert, and by routing.
	for _, e := range []string{"sst2/review", "auto"} {
		out, errs, code := roe(t, "", "eval", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--library", lib, "--expert", e, "--max-len", "64")
		if code != 0 {
			t.Fatalf("eval %s: %s", e, errs)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r["n"].(float64) != 16 || r["majority_baseline"] == nil || r["macro_f1"] == nil || r["per_class"] == nil {
			t.Errorf("eval %s: %s", e, out)
		}
		if e == "auto" && r["routed_to"] == nil {
			t.Errorf("eval auto: %s", out)
		}
	}
	// The name is taken now.
	if _, errs, code := roe(t, "", "train", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--steps", "1", "--library", lib, "--name", "sst2/review"); code == 0 || !strings.Contains(errs, "exists") {
		t.Errorf("second train under the same name: exit %d %s", code, errs)
	}
}

func TestTrainOutAndEvalAdapter(t *testing.T) {
	if _, err := os.Stat(sharedTemplates); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	tmp := t.TempDir()
	task := smallTask(t, tmp, "sst2", 24, 12)
	aux := smallTask(t, tmp, "mr", 24, 4)
	var progress bytes.Buffer
	progressOut = &progress
	base, errs, code := roe(t, "", "eval", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--max-len", "64")
	progressOut = os.Stderr
	if code != 0 {
		t.Fatal(errs)
	}
	if last := lastJSON(t, progress.String()); last["phase"] != "eval" || last["done"] != last["total"] || last["total"].(float64) < 12 {
		t.Errorf("eval progress: %s", progress.String())
	}
	var b map[string]any
	json.Unmarshal([]byte(base), &b)
	if b["n"].(float64) != 12 || b["adapter"] != nil {
		t.Errorf("base eval %s", base)
	}
	for _, c := range []struct {
		name  string
		extra []string
		files []string
	}{
		{"mtl", []string{"--strategy", "auto", "--aux", aux, "--weighting", "task"}, nil},
		{"stilts", []string{"--strategy", "stilts", "--aux", aux}, nil},
		{"cpi", []string{"--method", "cpi", "--aux", aux}, []string{"cpi/jaccard.json", "cpi/masks.json", "cpi/fused/adapter_model.safetensors", "cpi/task-mr/adapter_config.json"}},
	} {
		out := filepath.Join(tmp, c.name)
		args := append([]string{"train", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--rank", "4",
			"--steps", "2", "--batch", "4", "--max-len", "64", "--out", out, "--eval-n", "-1"}, c.extra...)
		so, errs, code := roe(t, "", args...)
		if code != 0 {
			t.Fatalf("%s: %s", c.name, errs)
		}
		d := lastJSON(t, so)
		if d["reason"] == "" {
			t.Errorf("%s: no reason: %v", c.name, d)
		}
		for _, f := range append([]string{"adapter_model.safetensors", "training.json"}, c.files...) {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		eo, errs, code := roe(t, "", "eval", "--data", task, "--templates", sharedTemplates, "--prompt", "review", "--adapter", out, "--length-norm", "--max-len", "64")
		if code != 0 {
			t.Fatalf("%s eval: %s", c.name, errs)
		}
		if !strings.Contains(eo, `"accuracy"`) || !strings.Contains(eo, `"length_norm": true`) {
			t.Errorf("%s eval: %s", c.name, eo)
		}
	}
	if _, errs, code := roe(t, "", "train", "--data", task, "--templates", sharedTemplates, "--steps", "1", "--out", filepath.Join(tmp, "x")); code != 2 || !strings.Contains(errs, "--all-prompts") {
		t.Errorf("several templates without --prompt: exit %d %s", code, errs)
	}
}
