package main

import (
	"path/filepath"
	"strings"
	"testing"

	"roe/model"
	"roe/model/gguf"
	"roe/models"
)

func TestModelQuantize(t *testing.T) {
	dir := t.TempDir()
	src, err := model.LoadFS(models.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	q8 := filepath.Join(dir, "s-q8.gguf")
	stdout, errs, code := roe(t, "", "model", "quantize", "--model", "stories260K", "--type", "q8_0", "--out", q8)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "Q8_0 ") || !strings.Contains(stdout, "F32 11") {
		t.Errorf("stdout %q", stdout)
	}
	m, f, err := model.LoadGGUF(q8, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m.Fingerprint() != src.Fingerprint() {
		t.Error("the Q8_0 file is not the same base as the embedded model")
	}
	if name, _ := f.OptString("general.name", ""); name != "stories260K" {
		t.Errorf("general.name %q", name)
	}

	// A GGUF source: requantized, its tokenizer keys copied.
	q4 := filepath.Join(dir, "s-q4.gguf")
	if _, errs, code := roe(t, "", "model", "quantize", "--model", q8, "--type", "Q4_K_M", "--out", q4, "--name", "tiny"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	g, err := gguf.Open(q4)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, k := range f.Keys() {
		if strings.HasPrefix(k, "tokenizer.") {
			a, _ := f.Get(k)
			b, ok := g.Get(k)
			if !ok || a.Describe() != b.Describe() {
				t.Errorf("%s: %s, source %s", k, b.Describe(), a.Describe())
			}
		}
	}
	if ft, _ := g.Uint("general.file_type"); ft != 15 {
		t.Errorf("file type %d, want 15 (Q4_K_M)", ft)
	}

	// export-gguf: the float types, the default model.
	f16 := filepath.Join(dir, "base.gguf")
	stdout, errs, code = roe(t, "", "model", "export-gguf", "--type", "f16", "--out", f16)
	if code != 0 || !strings.Contains(stdout, "F16") {
		t.Fatalf("exit %d: %s %s", code, stdout, errs)
	}
	base, err := model.LoadFS(models.Default())
	if err != nil {
		t.Fatal(err)
	}
	m2, f2, err := model.LoadGGUF(f16, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if m2.Fingerprint() != base.Fingerprint() {
		t.Error("the F16 export is not the same base as roe-base")
	}

	for _, args := range [][]string{
		{"model", "quantize", "--model", "stories260K", "--out", q4},
		{"model", "quantize", "--model", "stories260K", "--type", "q4_k_xl", "--out", q4},
		{"model", "quantize", "--model", "stories260K", "--type", "q4_0", "--out", filepath.Join(dir, "x.bin")},
		{"model", "quantize", "--type", "q4_0"},
		{"model", "export-gguf", "--type", "q4_0", "--out", q4},
		{"model", "quantize", "--model", filepath.Join(dir, "missing.gguf"), "--type", "q4_0", "--out", q4},
	} {
		if _, errs, code := roe(t, "", args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}
