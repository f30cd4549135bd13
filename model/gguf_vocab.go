package model

import (
	"fmt"
	"strings"

	"roe/model/gguf"
	"roe/model/tokenizer"
)

// The tokenizer.ggml.* keys of a GGUF file, written from a tokenizer.json
// tokenizer the way llama.cpp's converter writes them.

// llama.cpp's token types (tokenizer.ggml.token_type).
const (
	tokNormal      = 1
	tokUnknown     = 2
	tokControl     = 3
	tokUserDefined = 4
	tokUnused      = 5
	tokByte        = 6
)

// GGUFVocab returns the tokenizer.ggml.* keys for tok, a tokenizer of a
// model of config c, in the converter's order. Two kinds of tokenizer.json
// are written:
//   - byte-level BPE (a ByteLevel pre-tokenizer) as model "gpt2": tokens,
//     token types and merges; tokenizer.ggml.pre names llama.cpp's
//     pre-tokenizer with the same splitting ("gpt-2", "smollm",
//     "llama-bpe", "qwen2"), and any other pre-tokenizer is refused by name;
//   - BPE with byte fallback and SentencePiece's "▁" for spaces (a Prepend
//     and Replace normalizer, or a Metaspace pre-tokenizer) as model
//     "llama" with pre "default": tokens, scores and token types. The
//     scores rank merged tokens as the merges do (−rank of the first merge
//     that makes them; other tokens 0 or, for unmerged multi-character
//     tokens, below every merge), which is what llama.cpp's tokenizer
//     compares.
//
// The token list is padded to c.VocabSize with "[PADn]" tokens, as the
// converter does; a tokenizer larger than the embeddings is refused.
func GGUFVocab(tok *tokenizer.Tokenizer, c Config) ([]gguf.KV, error) {
	v := tok.Vocab()
	n := c.VocabSize
	if len(v.Tokens) > n {
		return nil, fmt.Errorf("%w: the tokenizer has %d tokens, the model embeds %d", ErrConfig, len(v.Tokens), n)
	}
	kind, pre, spacePrefix, err := ggufTokenizerKind(tok, v)
	if err != nil {
		return nil, err
	}
	var kvs []gguf.KV
	add := func(k string, val gguf.Value) { kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml." + k, Value: val}) }
	add("model", gguf.NewString(kind))
	add("pre", gguf.NewString(pre))
	tokens := make([]string, n)
	types := make([]int32, n)
	for id := range n {
		if id >= len(v.Tokens) || v.Tokens[id] == "" {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokUserDefined
			if kind == "llama" {
				types[id] = tokUnused
			}
			continue
		}
		s := v.Tokens[id]
		tokens[id], types[id] = s, tokNormal
		switch {
		case kind == "llama" && id == v.Unk:
			types[id] = tokUnknown
		case kind == "llama" && isByteToken(s):
			types[id] = tokByte
		case v.Special[id] || v.Added[id] && looksSpecial(s):
			types[id] = tokControl
		case v.Added[id]:
			types[id] = tokUserDefined
		}
	}
	add("tokens", gguf.NewStrings(tokens))
	if kind == "llama" {
		add("scores", gguf.NewFloat32s(spmScores(tokens, types, v.Merges)))
	}
	add("token_type", gguf.NewInt32s(types))
	if kind == "gpt2" {
		merges := make([]string, len(v.Merges))
		for i, m := range v.Merges {
			if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
				return nil, fmt.Errorf("%w: tokenizer merge %d (%q, %q) has a space, which GGUF's \"a b\" merges cannot hold", ErrUnsupported, i, m[0], m[1])
			}
			merges[i] = m[0] + " " + m[1]
		}
		add("merges", gguf.NewStrings(merges))
	}
	id := func(k string, x int, ok bool, fallback []int) {
		if !ok && len(fallback) > 0 {
			x, ok = fallback[0], true
		}
		if ok && x >= 0 && x < n {
			add(k, gguf.NewUint32(uint32(x)))
		}
	}
	bos, okB := tok.BOS()
	eos, okE := tok.EOS()
	unk, okU := tok.Unk()
	pad, okP := tok.Pad()
	id("bos_token_id", bos, okB, c.BOS)
	id("eos_token_id", eos, okE, c.EOS)
	id("unknown_token_id", unk, okU, nil)
	id("padding_token_id", pad, okP, nil)
	add("add_bos_token", gguf.NewBool(tok.AddsBOS()))
	if kind == "llama" || tok.AddsEOS() {
		add("add_eos_token", gguf.NewBool(tok.AddsEOS()))
	}
	if kind == "llama" && !spacePrefix {
		add("add_space_prefix", gguf.NewBool(false))
	}
	if t := tok.ChatTemplate(); t != "" {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: gguf.NewString(t)})
	}
	return kvs, nil
}

// ggufTokenizerKind classifies tok as llama.cpp's "gpt2" (byte-level BPE,
// with the pre-tokenizer's name) or "llama" (SentencePiece-style BPE,
// with whether a "▁" is put before the text).
func ggufTokenizerKind(tok *tokenizer.Tokenizer, v tokenizer.Vocab) (kind, pre string, spacePrefix bool, err error) {
	pres, norms := tok.PreTokenizerSteps(), tok.NormalizerSteps()
	byteLevel := false
	for _, s := range pres {
		byteLevel = byteLevel || s.Type == "ByteLevel"
	}
	if byteLevel {
		if v.ByteFallback {
			return "", "", false, fmt.Errorf("%w: a byte-level tokenizer with byte fallback has no GGUF form", ErrUnsupported)
		}
		for _, s := range norms {
			if s.Type != "NFC" { // llama.cpp does not normalize; NFC (Qwen2) changes little
				return "", "", false, fmt.Errorf("%w: byte-level tokenizer with a %s normalizer (llama.cpp's gpt2 tokenizer does not normalize)", ErrUnsupported, s.Type)
			}
		}
		pre, err := ggufPreName(pres)
		return "gpt2", pre, false, err
	}
	const sp = "▁"
	isRep := func(s tokenizer.Step) bool {
		return s.Type == "Replace" && !s.Regex && s.Pattern == " " && s.Content == sp
	}
	switch {
	case len(pres) == 0 && len(norms) == 2 && norms[0].Type == "Prepend" && norms[0].Content == sp && isRep(norms[1]):
		spacePrefix = true
	case len(pres) == 0 && len(norms) == 1 && isRep(norms[0]):
	case len(norms) == 0 && len(pres) == 1 && pres[0].Type == "Metaspace" && pres[0].Content == sp && !pres[0].Split:
		spacePrefix = pres[0].PrependScheme != "never"
	default:
		return "", "", false, fmt.Errorf("%w: tokenizer with normalizer %s and pre-tokenizer %s: neither byte-level BPE nor SentencePiece-style BPE (\"▁\" for spaces) that GGUF can hold",
			ErrUnsupported, describeSteps(norms), describeSteps(pres))
	}
	if !v.ByteFallback {
		return "", "", false, fmt.Errorf("%w: a SentencePiece-style tokenizer without byte fallback (llama.cpp's llama tokenizer falls back to <0xNN> tokens)", ErrUnsupported)
	}
	return "llama", "default", spacePrefix, nil
}

// The pre-tokenizer patterns llama.cpp knows by name.
const (
	llama3PreRegex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2PreRegex  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// ggufPreName maps a byte-level pre-tokenizer to the llama.cpp
// pre-tokenizer that splits text the same way.
func ggufPreName(steps []tokenizer.Step) (string, error) {
	bl := func(s tokenizer.Step, regex bool) bool {
		return s.Type == "ByteLevel" && !s.AddPrefixSpace && s.UseRegex == regex
	}
	split := func(s tokenizer.Step, re string) bool {
		return s.Type == "Split" && s.Regex && s.Pattern == re && s.Behavior == "Isolated" && !s.Invert
	}
	switch {
	case len(steps) == 1 && bl(steps[0], true):
		return "gpt-2", nil
	case len(steps) == 2 && steps[0].Type == "Digits" && steps[0].Behavior == "Isolated" && bl(steps[1], true):
		return "smollm", nil
	case len(steps) == 2 && split(steps[0], llama3PreRegex) && bl(steps[1], false):
		return "llama-bpe", nil
	case len(steps) == 2 && split(steps[0], qwen2PreRegex) && bl(steps[1], false):
		return "qwen2", nil
	}
	return "", fmt.Errorf("%w: byte-level pre-tokenizer %s has no llama.cpp name (known: gpt-2, smollm, llama-bpe, qwen2)", ErrUnsupported, describeSteps(steps))
}

func describeSteps(steps []tokenizer.Step) string {
	if len(steps) == 0 {
		return "none"
	}
	parts := make([]string, len(steps))
	for i, s := range steps {
		switch s.Type {
		case "ByteLevel":
			parts[i] = fmt.Sprintf("ByteLevel(add_prefix_space=%v, use_regex=%v)", s.AddPrefixSpace, s.UseRegex)
		case "Split", "Replace":
			parts[i] = fmt.Sprintf("%s(%q → %q, %s)", s.Type, s.Pattern, s.Content, s.Behavior)
		case "Digits", "Punctuation":
			parts[i] = fmt.Sprintf("%s(%s)", s.Type, s.Behavior)
		case "Metaspace":
			parts[i] = fmt.Sprintf("Metaspace(%q, prepend %s, split=%v)", s.Content, s.PrependScheme, s.Split)
		case "Prepend":
			parts[i] = fmt.Sprintf("Prepend(%q)", s.Content)
		default:
			parts[i] = s.Type
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// isByteToken reports whether s is a byte-fallback token, "<0xNN>".
func isByteToken(s string) bool {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return false
	}
	for _, c := range s[3:5] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// looksSpecial is the converter's test for added tokens it marks control
// even when tokenizer.json does not call them special.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>")
}

// spmScores gives each token the score llama.cpp's SentencePiece tokenizer
// merges by: −rank of the first merge producing it; 0 for control, byte
// and single-character tokens; for other normal tokens no merge makes,
// one below every merge.
func spmScores(tokens []string, types []int32, merges [][2]string) []float32 {
	first := make(map[string]int, len(merges))
	for r, m := range merges {
		if _, ok := first[m[0]+m[1]]; !ok {
			first[m[0]+m[1]] = r
		}
	}
	scores := make([]float32, len(tokens))
	for id, s := range tokens {
		if r, ok := first[s]; ok {
			scores[id] = -float32(r)
		} else if types[id] == tokNormal && len([]rune(s)) > 1 {
			scores[id] = -float32(len(merges))
		}
	}
	return scores
}
