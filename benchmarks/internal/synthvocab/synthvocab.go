// Package synthvocab is the vocabulary the benchmarks write into GGUF files
// of random models, so that roe and llama.cpp load them alike.
package synthvocab

import (
	"fmt"

	"roe/model/gguf"
)

// GGUF is a SentencePiece-style vocabulary of n pieces (the special tokens,
// the 256 byte pieces, then filler) as tokenizer.ggml.* keys; no text is
// tokenized with it.
func GGUF(n int) []gguf.KV {
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int32{2, 3, 3}
	for b := 0; b < 256; b++ {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
	}
	for i := len(tokens); i < n; i++ {
		tokens = append(tokens, fmt.Sprintf("▁t%d", i))
		types = append(types, 1)
	}
	scores := make([]float32, len(tokens))
	for i := range scores {
		scores[i] = -float32(i)
	}
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.NewString("llama")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.NewStrings(tokens)},
		{Key: "tokenizer.ggml.scores", Value: gguf.NewFloat32s(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.NewInt32s(types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.NewUint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.NewUint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: gguf.NewUint32(0)},
	}
}
