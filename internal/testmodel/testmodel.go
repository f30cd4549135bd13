// Package testmodel loads models for tests: the embedded ones, random ones
// and GGUF files of shared/golden.
package testmodel

import (
	"io/fs"
	"os"
	"testing"

	"roe/internal/testenv"
	"roe/model"
	"roe/model/tokenizer"
	"roe/models"
)

// Load reads a Hugging Face folder's model and tokenizer, failing t on error.
func Load(t testing.TB, fsys fs.FS) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := model.LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := fs.ReadFile(fsys, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	cj, _ := fs.ReadFile(fsys, "tokenizer_config.json") // optional
	tok, err := tokenizer.FromJSON(tj, cj)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// Stories260K is the embedded stories260K model: small and fast.
func Stories260K(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	return Load(t, models.Stories260K())
}

// Default is the embedded default model (roe-base), the starter experts' base.
func Default(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	return Load(t, models.Default())
}

// Random is a model of a config.json's shape with random weights
// (model.Random), failing t on error.
func Random(t testing.TB, configJSON string, seed uint64) *model.Model {
	t.Helper()
	c, err := model.ParseConfig([]byte(configJSON))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Random(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// GGUF loads a GGUF file as o says, closing it when t ends. A missing file
// skips t, or fails it under CI (testenv.SkipOrFail): the golden files live
// in shared/, beside the repository.
func GGUF(t testing.TB, path string, o model.LoadOptions) *model.Model {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	m, f, err := model.LoadGGUF(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return m
}
