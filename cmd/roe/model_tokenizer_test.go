package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/model/tokenizer"
)

func TestTrainTokenizer(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	text := strings.Repeat("The cat sat on the mat.\nThe dog sat on the log.\n", 50)
	if err := os.WriteFile(corpus, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tok")
	stdout, errs, code := roe(t, "", "model", "train-tokenizer", "--corpus", corpus, "--vocab-size", "270", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "trained 270 tokens") {
		t.Errorf("stdout %q", stdout)
	}
	tok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if ids := tok.Encode("The cat", true); len(ids) < 2 || ids[0] != 0 || tok.Decode(ids, true) != "The cat" {
		t.Errorf("Encode(The cat) = %v", ids)
	}

	for _, args := range [][]string{
		{"model", "train-tokenizer"},
		{"model", "train-tokenizer", "--corpus", corpus},
		{"model", "train-tokenizer", "--corpus", corpus, "--vocab-size", "100", "--out", out},
		{"model", "train-tokenizer", "--corpus", filepath.Join(dir, "missing.txt"), "--out", out},
	} {
		if _, errs, code := roe(t, "", args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}
