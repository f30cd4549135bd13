package model

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"roe/model/gguf"
)

// TestGGUFEndOfGeneration: generation ends where llama.cpp ends it: at eos,
// at the end-of-turn and fill-in-the-middle ids the keys name, and at the
// chat formats' end-of-turn tokens found by their text (a Gemma file's
// <end_of_turn> is in no key).
func TestGGUFEndOfGeneration(t *testing.T) {
	c := ropeTestConfig(RopeScaling{})
	c.NumLayers, c.VocabSize = 1, 12
	m, err := Random(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	kvs, ts, err := m.ggufContents(GGUFWriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	toks := []string{"<unk>", "<s>", "</s>", "a", "b", "<end_of_turn>", "c", "<|im_end|>", "<|end|>", "d", "<|eot_id|>", "<EOT>x"}
	types := make([]int32, len(toks))
	scores := make([]float32, len(toks))
	for i := range types {
		types[i] = 1
	}
	kvs = append(kvs,
		gguf.KV{Key: "tokenizer.ggml.model", Value: gguf.NewString("llama")},
		gguf.KV{Key: "tokenizer.ggml.tokens", Value: gguf.NewStrings(toks)},
		gguf.KV{Key: "tokenizer.ggml.scores", Value: gguf.NewFloat32s(scores)},
		gguf.KV{Key: "tokenizer.ggml.token_type", Value: gguf.NewInt32s(types)},
		gguf.KV{Key: "tokenizer.ggml.eos_token_id", Value: gguf.NewUint32(2)},
		gguf.KV{Key: "tokenizer.ggml.eot_token_id", Value: gguf.NewUint32(9)},
		gguf.KV{Key: "tokenizer.ggml.fim_sep_token_id", Value: gguf.NewUint32(40)}, // not a token: ignored
	)
	var buf bytes.Buffer
	if err := gguf.Write(&buf, kvs, ts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, lf, err := LoadGGUF(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if want := []int{2, 9, 5, 7, 8, 10}; !slices.Equal(got.Config.EOS, want) {
		t.Errorf("EOS %v, want %v (eos first)", got.Config.EOS, want)
	}
}

// TestGenerationConfigEOS: generation_config.json's eos_token_id joins
// config.json's, as transformers' generate stops at either; a bad one is
// refused by name.
func TestGenerationConfigEOS(t *testing.T) {
	dir := t.TempDir()
	c := ropeTestConfig(RopeScaling{})
	c.EOS = []int{2}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), c.JSON("float32"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gen  string
		want []int
		bad  bool
	}{
		{`{"eos_token_id": [2, 32, 7]}`, []int{2, 32, 7}, false},
		{`{"eos_token_id": 32}`, []int{2, 32}, false},
		{`{"do_sample": true}`, []int{2}, false},
		{`{"eos_token_id": [500]}`, nil, true},
		{`{"eos_token_id": "x"}`, nil, true},
	} {
		if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(tc.gen), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := LoadConfig(dir)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%s: accepted (EOS %v)", tc.gen, got.EOS)
		case !tc.bad && (err != nil || !slices.Equal(got.EOS, tc.want)):
			t.Errorf("%s: EOS %v (%v), want %v", tc.gen, got.EOS, err, tc.want)
		}
	}
}
