package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const fileTokenizer = "tokenizer.json"

func errUnsupported(kind, typ string) error {
	return &LoadError{File: fileTokenizer, Msg: fmt.Sprintf("unsupported %s type %q", kind, typ), Err: ErrUnsupported}
}

func errMalformed(format string, args ...any) error {
	return &LoadError{File: fileTokenizer, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

type rawTokenizer struct {
	AddedTokens   []rawAddedToken `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type rawAddedToken struct {
	ID         *int64  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(r json.RawMessage) bool {
	t := bytes.TrimSpace(r)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// component decodes the "type" of a component object and the object itself into v.
func component(kind string, r json.RawMessage, v any) (string, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(r, &head); err != nil {
		return "", errMalformed("%s: %v", kind, err)
	}
	if head.Type == nil {
		return "", errMalformed("%s without a type", kind)
	}
	if v != nil {
		if err := json.Unmarshal(r, v); err != nil {
			return "", errMalformed("%s %s: %v", kind, *head.Type, err)
		}
	}
	return *head.Type, nil
}

type rawPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func parsePattern(kind string, p *rawPattern) (pattern, error) {
	if p == nil {
		return nil, errMalformed("%s: missing pattern", kind)
	}
	switch {
	case p.String != nil:
		return literalPattern{*p.String}, nil
	case p.Regex != nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, errMalformed("%s: bad regex %q: %v", kind, *p.Regex, err)
		}
		return re, nil
	}
	return nil, errMalformed("%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", kind)
}

// singleRune parses a one-char JSON string field (Strip.content, Metaspace.replacement).
func singleRune(kind, field string, s *string, def rune) (rune, error) {
	if s == nil {
		return def, nil
	}
	r, n := utf8.DecodeRuneInString(*s)
	if n == 0 || n != len(*s) || r == utf8.RuneError {
		return 0, errMalformed("%s: %s must be a single character, got %q", kind, field, *s)
	}
	return r, nil
}

const maxDepth = 32

// ----------------------------------------------------------------------------- normalizers

func parseNormalizer(r json.RawMessage, depth int) (normalizer, error) {
	if isNull(r) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, errMalformed("normalizer nesting too deep")
	}
	var v struct {
		Normalizers  []json.RawMessage `json:"normalizers"`
		Prepend      *string           `json:"prepend"`
		Pattern      *rawPattern       `json:"pattern"`
		Content      *string           `json:"content"`
		StripLeft    *bool             `json:"strip_left"`
		StripRight   *bool             `json:"strip_right"`
		CleanText    *bool             `json:"clean_text"`
		ChineseChars *bool             `json:"handle_chinese_chars"`
		StripAccents *bool             `json:"strip_accents"`
		Lowercase    *bool             `json:"lowercase"`
	}
	typ, err := component("normalizer", r, &v)
	if err != nil {
		return nil, err
	}
	b := func(p *bool, def bool) bool {
		if p == nil {
			return def
		}
		return *p
	}
	switch typ {
	case "Sequence":
		seq := normSequence{}
		for _, x := range v.Normalizers {
			n, err := parseNormalizer(x, depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Prepend":
		if v.Prepend == nil {
			return nil, errMalformed("normalizer Prepend: missing prepend")
		}
		return normPrepend{*v.Prepend}, nil
	case "Replace":
		p, err := parsePattern("normalizer Replace", v.Pattern)
		if err != nil {
			return nil, err
		}
		if v.Content == nil {
			return nil, errMalformed("normalizer Replace: missing content")
		}
		return normReplace{p, *v.Content}, nil
	case "NFC":
		return normUnicode{norm.NFC}, nil
	case "NFD":
		return normUnicode{norm.NFD}, nil
	case "NFKC":
		return normUnicode{norm.NFKC}, nil
	case "NFKD":
		return normUnicode{norm.NFKD}, nil
	case "Lowercase":
		return normLowercase{}, nil
	case "Strip":
		return normStrip{b(v.StripLeft, true), b(v.StripRight, true)}, nil
	case "StripAccents":
		return normStripAccents{}, nil
	case "BertNormalizer":
		lc := b(v.Lowercase, true)
		return normBert{b(v.CleanText, true), b(v.ChineseChars, true), b(v.StripAccents, lc), lc}, nil
	case "ByteLevel":
		return normByteLevel{}, nil
	}
	return nil, errUnsupported("normalizer", typ)
}

type normByteLevel struct{}

func (normByteLevel) normalize(s string) string { return byteLevelEncode(s) }

// -------------------------------------------------------------------------- pre-tokenizers

func parseBehavior(kind string, s *string, def splitBehavior) (splitBehavior, error) {
	if s == nil {
		return def, nil
	}
	b, ok := behaviorNames[*s]
	if !ok {
		return 0, errMalformed("%s: unknown behavior %q", kind, *s)
	}
	return b, nil
}

func parsePreTokenizer(r json.RawMessage, depth int) (preTokenizer, error) {
	if isNull(r) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, errMalformed("pre_tokenizer nesting too deep")
	}
	var v struct {
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		Pattern        *rawPattern       `json:"pattern"`
		Behavior       *string           `json:"behavior"`
		Invert         bool              `json:"invert"`
		Replacement    *string           `json:"replacement"`
		PrependScheme  *string           `json:"prepend_scheme"`
		Split          *bool             `json:"split"`
		Individual     bool              `json:"individual_digits"`
		Delimiter      *string           `json:"delimiter"`
	}
	typ, err := component("pre_tokenizer", r, &v)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq := preSequence{}
		for _, x := range v.PreTokenizers {
			p, err := parsePreTokenizer(x, depth+1)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "ByteLevel":
		p := preByteLevel{addPrefixSpace: v.AddPrefixSpace == nil || *v.AddPrefixSpace}
		if v.UseRegex == nil || *v.UseRegex {
			re, err := compileRegex(gpt2Pattern)
			if err != nil {
				return nil, errMalformed("internal regex: %v", err)
			}
			p.re = re
		}
		return p, nil
	case "Split":
		pat, err := parsePattern("pre_tokenizer Split", v.Pattern)
		if err != nil {
			return nil, err
		}
		if v.Behavior == nil {
			return nil, errMalformed("pre_tokenizer Split: missing behavior")
		}
		beh, err := parseBehavior("pre_tokenizer Split", v.Behavior, behRemoved)
		if err != nil {
			return nil, err
		}
		if v.Invert {
			pat = invertPattern{pat}
		}
		return preSplit{pat, beh}, nil
	case "Metaspace":
		rep, err := singleRune("pre_tokenizer Metaspace", "replacement", v.Replacement, '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := parsePrependScheme("pre_tokenizer Metaspace", v.PrependScheme, v.AddPrefixSpace)
		if err != nil {
			return nil, err
		}
		return preMetaspace{replacement: rep, rep: string(rep), scheme: scheme, split: v.Split == nil || *v.Split}, nil
	case "Digits":
		beh := behContiguous
		if v.Individual {
			beh = behIsolated
		}
		return preCharSplit{isNumeric, beh}, nil
	case "Punctuation":
		beh, err := parseBehavior("pre_tokenizer Punctuation", v.Behavior, behIsolated)
		if err != nil {
			return nil, err
		}
		return preCharSplit{isPunc, beh}, nil
	case "Whitespace":
		return preWhitespace{}, nil
	case "WhitespaceSplit":
		return preCharSplit{isWhiteSpace, behRemoved}, nil
	case "BertPreTokenizer":
		return preSequence{preCharSplit{isWhiteSpace, behRemoved}, preCharSplit{isPunc, behIsolated}}, nil
	case "CharDelimiterSplit":
		d, err := singleRune("pre_tokenizer CharDelimiterSplit", "delimiter", v.Delimiter, 0)
		if err != nil {
			return nil, err
		}
		if v.Delimiter == nil {
			return nil, errMalformed("pre_tokenizer CharDelimiterSplit: missing delimiter")
		}
		return preCharSplit{func(r rune) bool { return r == d }, behRemoved}, nil
	}
	return nil, errUnsupported("pre_tokenizer", typ)
}

func parsePrependScheme(kind string, s *string, addPrefixSpace *bool) (prependScheme, error) {
	if s != nil {
		switch *s {
		case "always":
			return prependAlways, nil
		case "first":
			return prependFirst, nil
		case "never":
			return prependNever, nil
		}
		return 0, errMalformed("%s: unknown prepend_scheme %q", kind, *s)
	}
	if addPrefixSpace != nil && !*addPrefixSpace {
		return prependNever, nil
	}
	return prependAlways, nil
}

// ------------------------------------------------------------------------------- model

type rawBPE struct {
	Type                    *string           `json:"type"`
	Vocab                   map[string]int64  `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
}

// maxID bounds token ids so that a hostile file cannot make us allocate huge tables.
const maxID = 1 << 24

func parseModel(r json.RawMessage) (*bpe, error) {
	if isNull(r) {
		return nil, errMalformed("missing model")
	}
	var head struct {
		Type   *string         `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(r, &head); err != nil {
		return nil, errMalformed("model: %v", err)
	}
	if head.Type == nil && head.Merges == nil {
		return nil, errMalformed("model without a type")
	}
	if head.Type != nil && *head.Type != "BPE" {
		return nil, errUnsupported("model", *head.Type)
	}
	var v rawBPE
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, errMalformed("model: %v", err)
	}
	m := &bpe{vocab: make(map[string]int, len(v.Vocab)), merges: map[uint64]uint64{}, unkID: -1, cache: map[string][]int{}}
	// real vocabularies are dense; bound ids so that the reverse table stays small
	limit := int64(4*len(v.Vocab) + 1<<16)
	for k, id := range v.Vocab {
		if id < 0 || id >= maxID || id >= limit {
			return nil, errMalformed("model: token %q has id %d out of range", k, id)
		}
		m.vocab[k] = int(id)
	}
	if v.ContinuingSubwordPrefix != nil {
		m.prefix = *v.ContinuingSubwordPrefix
	}
	if v.EndOfWordSuffix != nil {
		m.suffix = *v.EndOfWordSuffix
	}
	m.fuseUnk, m.byteFallback, m.ignoreMerges = v.FuseUnk, v.ByteFallback, v.IgnoreMerges
	if v.UnkToken != nil {
		m.hasUnk = true
		if id, ok := m.vocab[*v.UnkToken]; ok {
			m.unkID = id
		}
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[byteTokenName(byte(b))]; ok {
			m.byteIDs[b] = id
		}
	}
	if len(v.Merges) > math.MaxInt32 {
		return nil, errMalformed("model: too many merges")
	}
	for rank, raw := range v.Merges {
		var a, b string
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, errMalformed("model: merge %d %q is not two tokens separated by a space", rank+1, s)
			}
			a, b = parts[0], parts[1]
		} else {
			var pair []string
			if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
				return nil, errMalformed("model: merge %d must be \"a b\" or [\"a\", \"b\"]", rank+1)
			}
			a, b = pair[0], pair[1]
		}
		aID, ok1 := m.vocab[a]
		bID, ok2 := m.vocab[b]
		if !ok1 || !ok2 {
			return nil, errMalformed("model: merge %d (%q, %q) uses a token not in the vocabulary", rank+1, a, b)
		}
		if len(b) < len(m.prefix) {
			return nil, errMalformed("model: merge %d (%q, %q): second token shorter than continuing_subword_prefix", rank+1, a, b)
		}
		nid, ok := m.vocab[a+b[len(m.prefix):]]
		if !ok {
			return nil, errMalformed("model: merge %d (%q, %q): merged token %q not in the vocabulary", rank+1, a, b, a+b[len(m.prefix):])
		}
		m.merges[pairKey(aID, bID)] = uint64(rank)<<32 | uint64(uint32(nid))
	}
	return m, nil
}

// ----------------------------------------------------------------------- post-processors

type rawSpecial struct {
	ID  string  `json:"id"`
	IDs []int64 `json:"ids"`
}

type rawTemplatePiece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

func parsePostProcessor(r json.RawMessage, depth int, tokenID func(string) (int, bool)) (postProcessor, error) {
	if isNull(r) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, errMalformed("post_processor nesting too deep")
	}
	var v struct {
		Single        json.RawMessage       `json:"single"`
		SpecialTokens map[string]rawSpecial `json:"special_tokens"`
		Processors    []json.RawMessage     `json:"processors"`
		Sep           []json.RawMessage     `json:"sep"`
		Cls           []json.RawMessage     `json:"cls"`
	}
	typ, err := component("post_processor", r, &v)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return postNoop{}, nil
	case "Sequence":
		seq := postSequence{}
		for _, x := range v.Processors {
			p, err := parsePostProcessor(x, depth+1, tokenID)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "TemplateProcessing":
		return parseTemplate(v.Single, v.SpecialTokens)
	case "RobertaProcessing", "BertProcessing":
		cls, err := parseTokenPair(typ, "cls", v.Cls)
		if err != nil {
			return nil, err
		}
		sep, err := parseTokenPair(typ, "sep", v.Sep)
		if err != nil {
			return nil, err
		}
		return postTemplate{parts: [][]int{{cls}, nil, {sep}}}, nil
	}
	return nil, errUnsupported("post_processor", typ)
}

func parseTokenPair(typ, field string, raw []json.RawMessage) (int, error) {
	if len(raw) != 2 {
		return 0, errMalformed("post_processor %s: %s must be [token, id]", typ, field)
	}
	var id int64
	if err := json.Unmarshal(raw[1], &id); err != nil || id < 0 || id >= maxID {
		return 0, errMalformed("post_processor %s: bad %s id", typ, field)
	}
	return int(id), nil
}

func parseTemplate(single json.RawMessage, specials map[string]rawSpecial) (postProcessor, error) {
	var pieces []rawTemplatePiece
	if isNull(single) {
		return nil, errMalformed("post_processor TemplateProcessing: missing single template")
	}
	// the template may also be given as a string like "<s> $A"
	var str string
	if err := json.Unmarshal(single, &str); err == nil {
		for _, f := range strings.Fields(str) {
			var p rawTemplatePiece
			name := f
			if i := strings.LastIndexByte(f, ':'); i > 0 {
				name = f[:i]
			}
			if strings.HasPrefix(name, "$") {
				p.Sequence = &struct {
					ID string `json:"id"`
				}{name[1:]}
			} else {
				p.SpecialToken = &struct {
					ID string `json:"id"`
				}{name}
			}
			pieces = append(pieces, p)
		}
	} else if err := json.Unmarshal(single, &pieces); err != nil {
		return nil, errMalformed("post_processor TemplateProcessing: single: %v", err)
	}
	t := postTemplate{}
	for _, p := range pieces {
		switch {
		case p.SpecialToken != nil:
			sp, ok := specials[p.SpecialToken.ID]
			if !ok {
				return nil, errMalformed("post_processor TemplateProcessing: missing special token %q", p.SpecialToken.ID)
			}
			ids := make([]int, 0, len(sp.IDs))
			for _, id := range sp.IDs {
				if id < 0 || id >= maxID {
					return nil, errMalformed("post_processor TemplateProcessing: bad id %d", id)
				}
				ids = append(ids, int(id))
			}
			t.parts = append(t.parts, ids)
		case p.Sequence != nil:
			t.parts = append(t.parts, nil)
		default:
			return nil, errMalformed("post_processor TemplateProcessing: bad template piece")
		}
	}
	return t, nil
}

// ------------------------------------------------------------------------------ decoders

func parseDecoder(r json.RawMessage, depth int) (decoder, error) {
	if isNull(r) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, errMalformed("decoder nesting too deep")
	}
	var v struct {
		Decoders       []json.RawMessage `json:"decoders"`
		Content        *string           `json:"content"`
		Start          int64             `json:"start"`
		Stop           int64             `json:"stop"`
		Pattern        *rawPattern       `json:"pattern"`
		Replacement    *string           `json:"replacement"`
		PrependScheme  *string           `json:"prepend_scheme"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		Prefix         *string           `json:"prefix"`
		Cleanup        *bool             `json:"cleanup"`
		Suffix         *string           `json:"suffix"`
	}
	typ, err := component("decoder", r, &v)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq := decSequence{}
		for _, x := range v.Decoders {
			d, err := parseDecoder(x, depth+1)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return decByteLevel{}, nil
	case "ByteFallback":
		return decByteFallback{}, nil
	case "Fuse":
		return decFuse{}, nil
	case "Strip":
		c, err := singleRune("decoder Strip", "content", v.Content, ' ')
		if err != nil {
			return nil, err
		}
		if v.Start < 0 || v.Stop < 0 || v.Start > 1<<20 || v.Stop > 1<<20 {
			return nil, errMalformed("decoder Strip: bad start/stop")
		}
		return decStrip{c, int(v.Start), int(v.Stop)}, nil
	case "Replace":
		p, err := parsePattern("decoder Replace", v.Pattern)
		if err != nil {
			return nil, err
		}
		if v.Content == nil {
			return nil, errMalformed("decoder Replace: missing content")
		}
		return decReplace{p, *v.Content}, nil
	case "Metaspace":
		rep, err := singleRune("decoder Metaspace", "replacement", v.Replacement, '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := parsePrependScheme("decoder Metaspace", v.PrependScheme, v.AddPrefixSpace)
		if err != nil {
			return nil, err
		}
		return decMetaspace{rep, scheme != prependNever}, nil
	case "WordPiece":
		d := decWordPiece{prefix: "##", cleanup: true}
		if v.Prefix != nil {
			d.prefix = *v.Prefix
		}
		if v.Cleanup != nil {
			d.cleanup = *v.Cleanup
		}
		return d, nil
	case "BPEDecoder":
		d := decBPE{suffix: "</w>"}
		if v.Suffix != nil {
			d.suffix = *v.Suffix
		}
		return d, nil
	}
	return nil, errUnsupported("decoder", typ)
}

// ------------------------------------------------------------------------- added tokens

// parseAddedTokens reads added_tokens. Like the library, the content of a token with
// normalized: true is stored normalized (so its string, e.g. for decoding, is the
// normalized form).
func parseAddedTokens(raw []rawAddedToken, m *bpe, n normalizer) ([]*addedToken, error) {
	var out []*addedToken
	seen := map[string]bool{}
	for i, r := range raw {
		if r.Content == nil || r.ID == nil {
			return nil, errMalformed("added_tokens[%d]: missing id or content", i)
		}
		if *r.ID < 0 || *r.ID >= maxID {
			return nil, errMalformed("added_tokens[%d]: id %d out of range", i, *r.ID)
		}
		t := &addedToken{content: *r.Content, id: int(*r.ID), special: r.Special,
			singleWord: r.SingleWord, lstrip: r.LStrip, rstrip: r.RStrip}
		if r.Normalized != nil {
			t.normalized = *r.Normalized
		} else {
			t.normalized = !r.Special
		}
		if t.normalized && n != nil {
			t.content = n.normalize(t.content)
		}
		if t.content == "" || seen[t.content] {
			continue
		}
		seen[t.content] = true
		if id, ok := m.vocab[t.content]; ok {
			t.id = id
		}
		out = append(out, t)
	}
	return out, nil
}

func isNumeric(r rune) bool {
	if r < 128 {
		return r >= '0' && r <= '9'
	}
	return isUnicodeNumber(r)
}
