package tokenizer

import (
	"fmt"

	"roe/model/gguf"
)

// LoadGGUF builds the tokenizer of a GGUF file from its tokenizer.ggml.*
// metadata (and tokenizer.chat_template); see FromGGUF.
func LoadGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return FromGGUF(v)
}

// VocabFromGGUF reads the tokenizer keys of a GGUF file. Absent flags take
// llama.cpp's defaults for the model and pre-tokenizer (GGUFDefaults).
func VocabFromGGUF(f *gguf.File) (GGUFVocab, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return GGUFVocab{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	pre, err := f.OptString("tokenizer.ggml.pre", "default")
	if err != nil {
		return GGUFVocab{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	v := GGUFVocab{Model: model, Pre: pre, BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	tokens, ok := f.Get("tokenizer.ggml.tokens")
	if !ok {
		return GGUFVocab{}, fmt.Errorf("%w: no tokenizer.ggml.tokens", ErrMalformed)
	}
	if v.Tokens, ok = tokens.Strings(); !ok {
		return GGUFVocab{}, fmt.Errorf("%w: tokenizer.ggml.tokens is not an array of strings", ErrMalformed)
	}
	if s, ok := f.Get("tokenizer.ggml.scores"); ok {
		if v.Scores, ok = s.Float32s(); !ok {
			return GGUFVocab{}, fmt.Errorf("%w: tokenizer.ggml.scores is not an array of numbers", ErrMalformed)
		}
	}
	if s, ok := f.Get("tokenizer.ggml.token_type"); ok {
		if v.TokenTypes, ok = s.Int32s(); !ok {
			return GGUFVocab{}, fmt.Errorf("%w: tokenizer.ggml.token_type is not an array of integers", ErrMalformed)
		}
	}
	if s, ok := f.Get("tokenizer.ggml.merges"); ok {
		if v.Merges, ok = s.Strings(); !ok {
			return GGUFVocab{}, fmt.Errorf("%w: tokenizer.ggml.merges is not an array of strings", ErrMalformed)
		}
	}
	for _, id := range []struct {
		key string
		dst *int
	}{
		{"tokenizer.ggml.bos_token_id", &v.BOS}, {"tokenizer.ggml.eos_token_id", &v.EOS},
		{"tokenizer.ggml.unknown_token_id", &v.UNK}, {"tokenizer.ggml.padding_token_id", &v.PAD},
	} {
		if x, ok := f.Get(id.key); ok {
			n, ok := x.Uint()
			if !ok || n > uint64(len(v.Tokens)) {
				return GGUFVocab{}, fmt.Errorf("%w: %s is not a token id", ErrMalformed, id.key)
			}
			*id.dst = int(n)
		}
	}
	v.AddBOS, v.AddEOS, v.AddSpacePrefix = GGUFDefaults(model, pre)
	for _, b := range []struct {
		key string
		dst *bool
	}{
		{"tokenizer.ggml.add_bos_token", &v.AddBOS}, {"tokenizer.ggml.add_eos_token", &v.AddEOS},
		{"tokenizer.ggml.add_space_prefix", &v.AddSpacePrefix},
	} {
		if *b.dst, err = f.OptBool(b.key, *b.dst); err != nil {
			return GGUFVocab{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if v.ChatTemplate, err = f.OptString("tokenizer.chat_template", ""); err != nil {
		return GGUFVocab{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, nil
}
