package tasks

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"roe/internal/testenv"
	"strings"
	"testing"
)

// sharedData returns a path under ../../shared/data, skipping the test when it is missing
// (failing instead when CI is set).
func sharedData(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "shared", "data"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		testenv.SkipOrFail(t, "shared data missing: %v", err)
	}
	return p
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDatasetLoadJSONLTypes(t *testing.T) {
	p := writeFile(t, "a.jsonl", "\ufeff"+`{"s": "x", "label": 1, "f": 3.8, "g": 5.0, "e": 1e2, "neg": -1, "b": true, "n": null, "l": ["a", 2], "m": {"k": 7}}`+"\n\n  \n"+`{"label": 0}`+"\n")
	ex, err := LoadJSONL(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 {
		t.Fatalf("got %d examples, want 2 (blank lines skipped)", len(ex))
	}
	want := Example{"s": "x", "label": 1, "f": 3.8, "g": 5.0, "e": 100.0, "neg": -1, "b": true, "n": nil,
		"l": []any{"a", 2}, "m": map[string]any{"k": 7}}
	if !reflect.DeepEqual(ex[0], want) {
		t.Errorf("got %#v\nwant %#v", ex[0], want)
	}
	if _, ok := ex[0]["label"].(int); !ok {
		t.Errorf("label is %T, want int", ex[0]["label"])
	}
	if _, ok := ex[0]["g"].(float64); !ok {
		t.Errorf("5.0 is %T, want float64", ex[0]["g"])
	}
}

func TestDatasetMalformedNamesFileAndLine(t *testing.T) {
	cases := map[string]string{
		"syntax":   `{"a": 1}` + "\n" + `{"a": 1}` + "\n" + `{"a": }` + "\n",
		"array":    `{"a": 1}` + "\n\n" + `[1, 2]` + "\n",
		"trailing": `{"a": 1}` + "\n" + `{"a": 1}` + "\n" + `{"a": 1} {"b": 2}` + "\n",
		"garbage":  `{"a": 1}` + "\n" + `{"a": 1}` + "\n" + `{"a": 1} x` + "\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "bad.jsonl", content)
			_, err := LoadJSONL(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrMalformedData) {
				t.Errorf("error %v does not wrap ErrMalformedData", err)
			}
			if !strings.Contains(err.Error(), p+":3:") {
				t.Errorf("error %q does not name %s:3", err, p)
			}
		})
	}
	if _, err := LoadJSONL(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDatasetLoadTaskAndSplits(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []string{"train", "validation"} {
		if err := os.WriteFile(filepath.Join(dir, s+".jsonl"), []byte(`{"x": "`+s+`"}`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	splits, err := TaskSplits(dir)
	if err != nil || !reflect.DeepEqual(splits, []string{"train", "validation"}) {
		t.Fatalf("splits %v, %v", splits, err)
	}
	ex, err := LoadTask(dir, "validation")
	if err != nil || len(ex) != 1 || ex[0]["x"] != "validation" {
		t.Fatalf("LoadTask: %v %v", ex, err)
	}
	for _, bad := range []string{"", "..", "../x", "a/b"} {
		if _, err := LoadTask(dir, bad); err == nil {
			t.Errorf("split %q: no error", bad)
		}
	}
}

func TestDatasetSampleExamples(t *testing.T) {
	var ex []Example
	for i := range 100 {
		ex = append(ex, Example{"i": i})
	}
	a := SampleExamples(ex, 10, 42)
	b := SampleExamples(ex, 10, 42)
	c := SampleExamples(ex, 10, 43)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different samples")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds, same samples")
	}
	if len(a) != 10 {
		t.Fatalf("len %d", len(a))
	}
	last := -1
	for _, e := range a {
		i := e["i"].(int)
		if i <= last {
			t.Fatalf("not distinct and in original order: %v", a)
		}
		last = i
	}
	if got := SampleExamples(ex, 1000, 1); len(got) != 100 {
		t.Errorf("n > len: got %d", len(got))
	}
	if got := SampleExamples(ex, 0, 1); len(got) != 0 {
		t.Errorf("n = 0: got %d", len(got))
	}
	if got := SampleExamples(nil, 5, 1); len(got) != 0 {
		t.Errorf("empty input: got %d", len(got))
	}
}

// TestDatasetSharedTasks loads every split of every task in shared/data/tasks.
func TestDatasetSharedTasks(t *testing.T) {
	root := sharedData(t, "tasks")
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		splits, err := TaskSplits(filepath.Join(root, e.Name()))
		if err != nil || len(splits) == 0 {
			t.Errorf("%s: splits %v, %v", e.Name(), splits, err)
			continue
		}
		for _, s := range splits {
			ex, err := LoadTask(filepath.Join(root, e.Name()), s)
			if err != nil {
				t.Errorf("%s/%s: %v", e.Name(), s, err)
				continue
			}
			if len(ex) == 0 {
				t.Errorf("%s/%s: no examples", e.Name(), s)
				continue
			}
			if l, ok := ex[0]["label"]; ok {
				switch l.(type) {
				case int, float64:
				default:
					t.Errorf("%s/%s: label is %T", e.Name(), s, l)
				}
			}
		}
	}
}
