package tasks

import (
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"strings"
	"testing"
)

func TestNGramFilter(t *testing.T) {
	eval := "The quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat ."
	f := NewNGramFilter(5, []string{eval})
	for text, want := range map[string]bool{
		"it said: the QUICK brown, fox jumps! and left": true, // case and punctuation do not hide it
		"the quick brown fox ran":                       false,
		"cat sleeps on a warm":                          true,
		"":                                              false,
	} {
		if got := f.Hit(text); got != want {
			t.Errorf("Hit(%q) = %v, want %v", text, got, want)
		}
	}
	if f.Len() != 13 { // 17 words, 5-grams
		t.Errorf("Len = %d, want 13", f.Len())
	}
}

func TestTaskEvalTextsAndDrop(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sst2"), 0o755)
	os.WriteFile(filepath.Join(dir, "sst2", "train.jsonl"), []byte(`{"sentence":"training text is allowed in pretraining here and there and everywhere today","label":1}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sst2", "validation.jsonl"), []byte(`{"sentence":"one two three four five six seven eight nine ten eleven twelve thirteen fourteen","label":0,"choices":["a b"]}`+"\n"), 0o644)
	texts, err := TaskEvalTexts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 2 {
		t.Fatalf("texts %q: want the sentence and the nested choice", texts)
	}
	f := NewNGramFilter(DefaultNGram, texts)
	corpus := "keep this line\nsay one two three four five six seven eight nine ten eleven twelve thirteen loudly\nand this one\n"
	got, n := DropLines(corpus, f.Hit)
	if n != 1 || got != "keep this line\nand this one\n" {
		t.Errorf("DropLines = %q, %d", got, n)
	}
	if strings.Contains(got, "thirteen") {
		t.Error("contaminated line kept")
	}
	if _, err := TaskEvalTexts(t.TempDir()); err == nil {
		t.Error("no evaluation splits: want an error")
	}
}

// TestCorpusDecontaminated checks the shared corpus against every task's
// evaluation splits: how many lines --decontaminate drops.
func TestCorpusDecontaminated(t *testing.T) {
	tasks := sharedData(t, "tasks")
	corpus, _ := filepath.Glob(filepath.Join(filepath.Dir(tasks), "corpus", "*.txt"))
	if len(corpus) == 0 {
		testenv.SkipOrFail(t, "no corpus")
	}
	f, err := TaskFilter(tasks)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range corpus {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, n := DropLines(string(b), f.Hit)
		t.Logf("%s: %d lines share a %d-gram with evaluation data", filepath.Base(p), n, DefaultNGram)
		total += n
	}
	if f.Len() < 100000 {
		t.Errorf("only %d evaluation n-grams indexed", f.Len())
	}
}
