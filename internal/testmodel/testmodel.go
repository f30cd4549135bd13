// Package testmodel loads the embedded models for tests.
package testmodel

import (
	"io/fs"
	"testing"

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
