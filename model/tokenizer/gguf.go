package tokenizer

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// GGUFVocab is the tokenizer part of a GGUF file's metadata (the tokenizer.ggml.* keys and
// tokenizer.chat_template).
type GGUFVocab struct {
	Model          string    // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
	Pre            string    // tokenizer.ggml.pre: pre-tokenizer name, gpt2 only ("" is "default")
	Tokens         []string  // tokenizer.ggml.tokens: id -> token
	Scores         []float32 // tokenizer.ggml.scores; may be nil
	TokenTypes     []int32   // tokenizer.ggml.token_type (GGUFToken*); may be nil
	Merges         []string  // tokenizer.ggml.merges: "a b", first merged first; gpt2 only
	BOS, EOS       int       // tokenizer.ggml.bos_token_id / eos_token_id; -1 when absent
	UNK, PAD       int       // tokenizer.ggml.unknown_token_id / padding_token_id; -1 when absent
	AddBOS, AddEOS bool      // tokenizer.ggml.add_bos_token / add_eos_token (GGUFDefaults when absent)
	AddSpacePrefix bool      // tokenizer.ggml.add_space_prefix, llama only (GGUFDefaults when absent)
	ChatTemplate   string    // tokenizer.chat_template; "" when absent
}

// Token types of tokenizer.ggml.token_type.
const (
	GGUFTokenUndefined   = 0
	GGUFTokenNormal      = 1
	GGUFTokenUnknown     = 2
	GGUFTokenControl     = 3
	GGUFTokenUserDefined = 4
	GGUFTokenUnused      = 5
	GGUFTokenByte        = 6
)

const fileGGUF = "gguf"

func ggufErr(sentinel error, format string, args ...any) error {
	return &LoadError{File: fileGGUF, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// GGUFDefaults returns the values llama.cpp assumes for tokenizer.ggml.add_bos_token,
// add_eos_token and add_space_prefix when a file leaves them out: BOS and the space prefix
// for "llama"; for "gpt2" BOS only for the pre-tokenizers that imply it (Llama 3, Tekken).
func GGUFDefaults(model, pre string) (addBOS, addEOS, addSpacePrefix bool) {
	switch model {
	case "llama":
		return true, false, true
	case "gpt2":
		return ggufPres[pre].addBOS, false, false
	}
	return false, false, false
}

// GGUFPreTokenizerKnown reports whether FromGGUF knows the pre-tokenizer name of a "gpt2"
// vocabulary.
func GGUFPreTokenizerKnown(pre string) bool {
	_, ok := ggufPres[pre]
	return ok
}

// FromGGUF builds a tokenizer from GGUF tokenizer metadata. The result behaves like the
// model family's tokenizer.json: control, unknown and user-defined tokens are added tokens
// (matched in the input before anything else; control and unknown ones are special),
// Encode with addSpecial adds BOS/EOS as AddBOS/AddEOS say, BOS/EOS/Unk/Pad are the ids
// given, and ChatTemplate returns v.ChatTemplate.
//
// "gpt2" is byte-level BPE: the text is split by the named pre-tokenizer's rules, mapped to
// the byte-level alphabet and merged by merge rank. "llama" is SentencePiece BPE: spaces
// become "▁" (one is prepended with AddSpacePrefix), adjacent pieces merge by token score,
// and characters without a token are written as <0xNN> byte tokens.
//
// The vocabulary is checked first: an unsupported model or pre-tokenizer gives an error
// wrapping ErrUnsupported; duplicate tokens, array lengths that differ, special ids out of
// range, unknown token types and merges of tokens not in the vocabulary give ErrMalformed.
func FromGGUF(v GGUFVocab) (t *Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, ggufErr(ErrMalformed, "invalid vocabulary (%v)", r)
		}
	}()
	var pre ggufPre
	switch v.Model {
	case "llama":
	case "gpt2":
		var ok bool
		if pre, ok = ggufPres[v.Pre]; !ok {
			return nil, ggufErr(ErrUnsupported, "unsupported tokenizer.ggml.pre %q", v.Pre)
		}
	default:
		return nil, ggufErr(ErrUnsupported, "unsupported tokenizer.ggml.model %q (supported: gpt2, llama)", v.Model)
	}
	n := len(v.Tokens)
	if n == 0 {
		return nil, ggufErr(ErrMalformed, "no tokens")
	}
	if n > maxID {
		return nil, ggufErr(ErrMalformed, "%d tokens is more than %d", n, maxID)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return nil, ggufErr(ErrMalformed, "%d scores for %d tokens", len(v.Scores), n)
	}
	if v.TokenTypes != nil && len(v.TokenTypes) != n {
		return nil, ggufErr(ErrMalformed, "%d token types for %d tokens", len(v.TokenTypes), n)
	}
	for i, s := range v.Scores {
		if math.IsNaN(float64(s)) {
			return nil, ggufErr(ErrMalformed, "token %d has score NaN", i)
		}
	}
	for i, ty := range v.TokenTypes {
		if ty < GGUFTokenUndefined || ty > GGUFTokenByte {
			return nil, ggufErr(ErrMalformed, "token %d has unknown type %d", i, ty)
		}
	}
	bos, eos, unk, pad := v.BOS, v.EOS, v.UNK, v.PAD
	for _, s := range []struct {
		name string
		id   int
	}{{"bos_token_id", bos}, {"eos_token_id", eos}, {"unknown_token_id", unk}, {"padding_token_id", pad}} {
		if s.id < -1 || s.id >= n {
			return nil, ggufErr(ErrMalformed, "%s %d out of range (%d tokens)", s.name, s.id, n)
		}
	}
	if v.Model == "llama" { // llama.cpp's defaults for SentencePiece vocabularies
		def := func(id *int, d int) {
			if *id < 0 && d < n {
				*id = d
			}
		}
		def(&bos, 1)
		def(&eos, 2)
		def(&unk, 0)
	}
	if v.AddBOS && bos < 0 {
		return nil, ggufErr(ErrMalformed, "add_bos_token is set but there is no bos_token_id")
	}
	if v.AddEOS && eos < 0 {
		return nil, ggufErr(ErrMalformed, "add_eos_token is set but there is no eos_token_id")
	}

	m := &bpe{vocab: make(map[string]int, n), merges: map[uint64]uint64{}, unkID: -1, cache: map[string][]int{}}
	toks := make([]string, n)
	for i, s := range v.Tokens {
		if s == "" { // as llama.cpp names them, so that ids stay unique
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := m.vocab[s]; dup {
			return nil, ggufErr(ErrMalformed, "duplicate token %q (ids %d and %d)", s, j, i)
		}
		m.vocab[s] = i
		toks[i] = s
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[byteTokenName(byte(b))]; ok {
			m.byteIDs[b] = id
		}
	}

	t = &Tokenizer{model: m, cfg: &tokenizerConfig{chatTemplate: v.ChatTemplate}}
	switch v.Model {
	case "gpt2":
		if err := ggufMerges(m, v.Merges); err != nil {
			return nil, err
		}
		m.ignoreMerges = pre.ignoreMerges
		if t.pre, err = ggufPreTokenizer(pre); err != nil {
			return nil, ggufErr(ErrMalformed, "pre-tokenizer %q: %v", v.Pre, err)
		}
		t.decoder = decByteLevel{}
	case "llama":
		m.spm = true
		m.scores = make([]float32, n)
		copy(m.scores, v.Scores)
		m.unkID = unk
		m.hasUnk = unk >= 0
		space := normReplace{literalPattern{" "}, "▁"}
		dec := decSequence{decReplace{literalPattern{"▁"}, " "}, decByteFallback{}, decFuse{}}
		if v.AddSpacePrefix {
			t.normalizer = normSequence{normPrepend{"▁"}, space}
			dec = append(dec, decStrip{' ', 1, 0})
		} else {
			t.normalizer = space
		}
		t.decoder = dec
		t.byteFallbackDecoder = true
		if spmCutsSafe(toks) {
			t.pre = preSpmWords{}
		}
	}

	// added tokens: what llama.cpp matches in the text before tokenizing it
	types := v.TokenTypes
	if types == nil { // no types: treat the special ids as control tokens
		types = make([]int32, n)
		for _, id := range []int{bos, eos, unk, pad} {
			if id >= 0 {
				types[id] = GGUFTokenControl
			}
		}
	}
	t.added = map[int]*addedToken{}
	t.addedByS = map[string]*addedToken{}
	t.special = map[string]bool{}
	var pats []string
	var added []*addedToken
	for id, ty := range types {
		if ty != GGUFTokenControl && ty != GGUFTokenUnknown && ty != GGUFTokenUserDefined {
			continue
		}
		a := &addedToken{content: toks[id], id: id, special: ty != GGUFTokenUserDefined}
		t.added[id] = a
		t.addedByS[a.content] = a
		if a.special {
			t.special[a.content] = true
		}
		// text is matched after invalid UTF-8 became U+FFFD: a token that is not valid
		// UTF-8 could only match inside a character and split it
		if utf8.ValidString(a.content) {
			pats = append(pats, a.content)
			added = append(added, a)
		}
	}
	t.addedRaw = newAddedMatcher(pats, added)
	t.addedNorm = newAddedMatcher(nil, nil)

	t.vocabR = toks
	t.hasR = make([]bool, n)
	for i := range t.hasR {
		t.hasR[i] = true
	}
	t.vocabSize = n

	var parts [][]int
	if v.AddBOS {
		parts = append(parts, []int{bos})
	}
	parts = append(parts, nil)
	if v.AddEOS {
		parts = append(parts, []int{eos})
	}
	t.post = postTemplate{parts: parts}

	field := func(id int) tokenField {
		if id < 0 {
			return tokenField{}
		}
		return tokenField{set: true, value: toks[id]}
	}
	t.cfg.BOS, t.cfg.EOS, t.cfg.Unk, t.cfg.Pad = field(bos), field(eos), field(unk), field(pad)
	return t, nil
}

// ggufMerges reads "a b" merges into m (rank = position; a pair listed twice keeps its
// first rank). Both sides and their concatenation must be tokens.
func ggufMerges(m *bpe, merges []string) error {
	if len(merges) > math.MaxInt32 {
		return ggufErr(ErrMalformed, "too many merges")
	}
	for rank, s := range merges {
		// split at the first space after the first byte, as llama.cpp does
		pos := -1
		if len(s) > 1 {
			if k := strings.IndexByte(s[1:], ' '); k >= 0 {
				pos = k + 1
			}
		}
		if pos < 0 {
			return ggufErr(ErrMalformed, "merge %d %q is not two tokens separated by a space", rank, s)
		}
		a, b := s[:pos], s[pos+1:]
		aID, ok1 := m.vocab[a]
		bID, ok2 := m.vocab[b]
		if !ok1 || !ok2 {
			return ggufErr(ErrMalformed, "merge %d (%q, %q) uses a token not in the vocabulary", rank, a, b)
		}
		nid, ok := m.vocab[a+b]
		if !ok {
			return ggufErr(ErrMalformed, "merge %d (%q, %q): merged token %q not in the vocabulary", rank, a, b, a+b)
		}
		if _, seen := m.merges[pairKey(aID, bID)]; !seen {
			m.merges[pairKey(aID, bID)] = uint64(rank)<<32 | uint64(uint32(nid))
		}
	}
	return nil
}
