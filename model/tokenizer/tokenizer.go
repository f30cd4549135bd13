package tokenizer

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	model      *bpe
	normalizer normalizer
	pre        preTokenizer
	post       postProcessor
	decoder    decoder

	vocabR    []string // id -> token (model vocabulary; "" with hasR false for holes)
	hasR      []bool
	added     map[int]*addedToken // id -> added token
	addedByS  map[string]*addedToken
	special   map[string]bool // contents of special added tokens
	addedRaw  *addedMatcher   // added tokens with normalized == false
	addedNorm *addedMatcher   // added tokens with normalized == true (normalized patterns)
	vocabSize int

	byteFallbackDecoder bool // the decoder has ByteFallback: hold <0xNN> tokens when streaming
	lastDependent       bool // the decoder has BPEDecoder: the last token decodes differently

	cfg *tokenizerConfig
}

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json.
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	tj, err := os.ReadFile(path)
	if err != nil {
		sentinel := ErrMalformed
		if errors.Is(err, fs.ErrNotExist) {
			sentinel = ErrNotFound
		}
		return nil, &LoadError{File: path, Msg: err.Error(), Err: sentinel}
	}
	var cj []byte
	cpath := filepath.Join(dir, "tokenizer_config.json")
	if b, err := os.ReadFile(cpath); err == nil {
		cj = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, &LoadError{File: cpath, Msg: err.Error(), Err: ErrMalformed}
	}
	return FromJSON(tj, cj)
}

// FromJSON builds a tokenizer from the contents of tokenizer.json and, optionally
// (configJSON may be nil), tokenizer_config.json.
func FromJSON(tokenizerJSON, configJSON []byte) (t *Tokenizer, err error) {
	defer func() {
		// Parsing is written not to panic; this is a last line of defence for hostile input.
		if r := recover(); r != nil {
			t, err = nil, errMalformed("invalid definition (%v)", r)
		}
	}()
	var raw rawTokenizer
	if err := json.Unmarshal(tokenizerJSON, &raw); err != nil {
		return nil, errMalformed("invalid JSON: %v", err)
	}
	cfg, err := parseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	t = &Tokenizer{cfg: cfg}
	if t.model, err = parseModel(raw.Model); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(raw.Normalizer, 0); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(raw.PreTokenizer, 0); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(raw.Decoder, 0); err != nil {
		return nil, err
	}
	addedToks, err := parseAddedTokens(raw.AddedTokens, t.model, t.normalizer)
	if err != nil {
		return nil, err
	}
	t.added = map[int]*addedToken{}
	t.addedByS = map[string]*addedToken{}
	t.special = map[string]bool{}
	var rawPats, normPats []string
	var rawToks, normToks []*addedToken
	for _, a := range addedToks {
		if _, dup := t.added[a.id]; !dup {
			t.added[a.id] = a
		}
		t.addedByS[a.content] = a
		if a.special {
			t.special[a.content] = true
		}
		if a.normalized {
			normPats = append(normPats, a.content) // already normalized
			normToks = append(normToks, a)
		} else {
			rawPats = append(rawPats, a.content)
			rawToks = append(rawToks, a)
		}
	}
	t.addedRaw = newAddedMatcher(rawPats, rawToks)
	t.addedNorm = newAddedMatcher(normPats, normToks)

	// reverse vocabulary (deterministic when several tokens share an id: smallest string)
	maxID := -1
	for _, id := range t.model.vocab {
		if id > maxID {
			maxID = id
		}
	}
	t.vocabR = make([]string, maxID+1)
	t.hasR = make([]bool, maxID+1)
	for s, id := range t.model.vocab {
		if !t.hasR[id] || s < t.vocabR[id] {
			t.vocabR[id], t.hasR[id] = s, true
		}
	}
	t.vocabSize = maxID + 1
	for id := range t.added {
		if id+1 > t.vocabSize {
			t.vocabSize = id + 1
		}
	}

	if t.post, err = parsePostProcessor(raw.PostProcessor, 0, t.TokenID); err != nil {
		return nil, err
	}
	if err := t.applyConfig(); err != nil {
		return nil, err
	}
	t.byteFallbackDecoder = t.decoder != nil && containsDecoder(t.decoder, func(d decoder) bool { _, ok := d.(decByteFallback); return ok })
	t.lastDependent = t.decoder != nil && containsDecoder(t.decoder, func(d decoder) bool { _, ok := d.(decBPE); return ok })
	return t, nil
}

// Encode returns the token ids of text. With addSpecial, the post-processor's special
// tokens (e.g. BOS) are added.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	text = validString(text)
	var ids []int
	for _, sg := range t.addedRaw.splitOrWhole(text) {
		if sg.id >= 0 {
			ids = append(ids, sg.id)
			continue
		}
		s := text[sg.start:sg.end]
		if s == "" {
			continue
		}
		first := sg.start == 0
		if t.normalizer != nil {
			s = t.normalizer.normalize(s)
		}
		for _, sg2 := range t.addedNorm.splitOrWhole(s) {
			if sg2.id >= 0 {
				ids = append(ids, sg2.id)
				continue
			}
			if sg2.end <= sg2.start {
				continue
			}
			ids = t.encodePiece(piece{s[sg2.start:sg2.end], first && sg2.start == 0}, ids)
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	if ids == nil {
		ids = []int{}
	}
	return ids
}

func (m *addedMatcher) splitOrWhole(s string) []seg {
	if m.empty() {
		return []seg{{0, len(s), -1}}
	}
	return m.split(s)
}

func (t *Tokenizer) encodePiece(p piece, ids []int) []int {
	if t.pre == nil {
		return t.model.tokenize(p.s, ids)
	}
	for _, w := range t.pre.preTokenize([]piece{p}) {
		ids = t.model.tokenize(w.s, ids)
	}
	return ids
}

// idToToken returns the string of a token id (added tokens first, like the library).
func (t *Tokenizer) idToToken(id int) (string, bool) {
	if a, ok := t.added[id]; ok {
		return a.content, true
	}
	if id >= 0 && id < len(t.vocabR) && t.hasR[id] {
		return t.vocabR[id], true
	}
	return "", false
}

// tokens maps ids to token strings for decoding, dropping unknown ids and, with
// skipSpecial, special tokens.
func (t *Tokenizer) tokens(ids []int, skipSpecial bool) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := t.idToToken(id)
		if !ok || (skipSpecial && t.special[s]) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// decodeTokens runs the decoder chain. open means more tokens follow (only BPEDecoder,
// which treats the last token differently, cares).
func (t *Tokenizer) decodeTokens(toks []string, open bool) string {
	if t.decoder == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decoder.decodeChain(toks, open), "")
}

// Decode turns ids back into text. Unknown ids are ignored; with skipSpecial, special
// added tokens are left out.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	return t.decodeTokens(t.tokens(ids, skipSpecial), false)
}

// VocabSize is the largest id in the vocabulary or the added tokens, plus one.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenString returns the string of a token id as stored in the vocabulary (byte-level
// or metaspace-encoded, not decoded).
func (t *Tokenizer) TokenString(id int) (string, bool) { return t.idToToken(id) }

// TokenID returns the id of a token string (added tokens first, then the vocabulary).
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if a, ok := t.addedByS[s]; ok {
		return a.id, true
	}
	id, ok := t.model.vocab[s]
	return id, ok
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	a, ok := t.added[id]
	return ok && a.special
}

// SpecialIDs returns the ids of all special added tokens, sorted.
func (t *Tokenizer) SpecialIDs() []int {
	var out []int
	for id, a := range t.added {
		if a.special {
			out = append(out, id)
		}
	}
	sort.Ints(out)
	return out
}
