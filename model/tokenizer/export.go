package tokenizer

import (
	"fmt"
	"reflect"
	"sort"

	"golang.org/x/text/unicode/norm"
)

// What a tokenizer holds, as plain data, so that other formats (GGUF's
// tokenizer.ggml.* keys) can be written from it.

// Vocab is the model's vocabulary and merges.
type Vocab struct {
	Tokens       []string    // by id, model vocabulary and added tokens; "" where an id has no token
	Added        []bool      // by id: an added token
	Special      []bool      // by id: an added token marked special
	Merges       [][2]string // in rank order (ranks with no merge are left out)
	ByteFallback bool        // unknown bytes become <0xNN> tokens
	Unk          int         // the model's unk token, -1 when none
}

// Vocab returns the vocabulary: VocabSize entries, merges by rank.
func (t *Tokenizer) Vocab() Vocab {
	n := t.vocabSize
	v := Vocab{Tokens: make([]string, n), Added: make([]bool, n), Special: make([]bool, n),
		ByteFallback: t.model.byteFallback, Unk: -1}
	for id := range n {
		v.Tokens[id], _ = t.idToToken(id)
		if a, ok := t.added[id]; ok {
			v.Added[id], v.Special[id] = true, a.special
		}
	}
	if t.model.hasUnk && t.model.unkID >= 0 {
		v.Unk = t.model.unkID
	}
	type merge struct {
		rank int
		a, b string
	}
	ms := make([]merge, 0, len(t.model.merges))
	for k, r := range t.model.merges {
		a, b := int(uint32(k>>32)), int(uint32(k))
		if a < len(t.vocabR) && b < len(t.vocabR) {
			ms = append(ms, merge{int(r >> 32), t.vocabR[a], t.vocabR[b]})
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].rank < ms[j].rank })
	v.Merges = make([][2]string, len(ms))
	for i, m := range ms {
		v.Merges[i] = [2]string{m.a, m.b}
	}
	return v
}

// Step is one component of a normalizer or pre-tokenizer, sequences
// flattened. Type is the tokenizer.json type name; the other fields are set
// where the type has them.
type Step struct {
	Type           string // e.g. "ByteLevel", "Split", "Digits", "Metaspace", "Prepend", "Replace", "NFC"
	Pattern        string // Split, Replace: the regex or the literal string
	Regex          bool   // Pattern is a regex
	Invert         bool   // Split
	Behavior       string // Split, Digits, Punctuation: "Isolated", "Removed", ...
	AddPrefixSpace bool   // ByteLevel
	UseRegex       bool   // ByteLevel: splits with the GPT-2 pattern first
	Content        string // Prepend, Replace: the text put in; Metaspace: the replacement
	PrependScheme  string // Metaspace: "always", "first" or "never"
	Split          bool   // Metaspace
}

// PreTokenizerSteps lists the pre-tokenizer's components in order (none
// when there is no pre-tokenizer). BertPreTokenizer appears as its two
// parts, WhitespaceSplit and Punctuation.
func (t *Tokenizer) PreTokenizerSteps() []Step {
	var out []Step
	var walk func(p preTokenizer)
	walk = func(p preTokenizer) {
		switch p := p.(type) {
		case nil:
		case preSequence:
			for _, q := range p {
				walk(q)
			}
		case preByteLevel:
			out = append(out, Step{Type: "ByteLevel", AddPrefixSpace: p.addPrefixSpace, UseRegex: p.re != nil})
		case preSplit:
			s := Step{Type: "Split", Behavior: behaviorName(p.behavior)}
			describePattern(&s, p.pat)
			out = append(out, s)
		case preMetaspace:
			schemes := map[prependScheme]string{prependAlways: "always", prependFirst: "first", prependNever: "never"}
			out = append(out, Step{Type: "Metaspace", Content: p.rep, PrependScheme: schemes[p.scheme], Split: p.split})
		case preCharSplit:
			s := Step{Type: "CharSplit", Behavior: behaviorName(p.behavior)}
			switch reflect.ValueOf(p.f).Pointer() {
			case reflect.ValueOf(isNumeric).Pointer():
				s.Type = "Digits"
			case reflect.ValueOf(isPunc).Pointer():
				s.Type = "Punctuation"
			case reflect.ValueOf(isWhiteSpace).Pointer():
				s.Type = "WhitespaceSplit"
			}
			out = append(out, s)
		case preWhitespace:
			out = append(out, Step{Type: "Whitespace"})
		default:
			out = append(out, Step{Type: fmt.Sprintf("%T", p)})
		}
	}
	walk(t.pre)
	return out
}

// NormalizerSteps lists the normalizer's components in order.
func (t *Tokenizer) NormalizerSteps() []Step {
	var out []Step
	var walk func(n normalizer)
	walk = func(n normalizer) {
		switch n := n.(type) {
		case nil:
		case normSequence:
			for _, m := range n {
				walk(m)
			}
		case normPrepend:
			out = append(out, Step{Type: "Prepend", Content: n.prepend})
		case normReplace:
			s := Step{Type: "Replace", Content: n.content}
			describePattern(&s, n.pat)
			out = append(out, s)
		case normUnicode:
			names := map[norm.Form]string{norm.NFC: "NFC", norm.NFD: "NFD", norm.NFKC: "NFKC", norm.NFKD: "NFKD"}
			out = append(out, Step{Type: names[n.form]})
		case normLowercase:
			out = append(out, Step{Type: "Lowercase"})
		case normStrip:
			out = append(out, Step{Type: "Strip"})
		case normStripAccents:
			out = append(out, Step{Type: "StripAccents"})
		case normBert:
			out = append(out, Step{Type: "BertNormalizer"})
		default:
			out = append(out, Step{Type: fmt.Sprintf("%T", n)})
		}
	}
	walk(t.normalizer)
	return out
}

func behaviorName(b splitBehavior) string {
	for n, v := range behaviorNames {
		if v == b {
			return n
		}
	}
	return ""
}

func describePattern(s *Step, p pattern) {
	if inv, ok := p.(invertPattern); ok {
		s.Invert = true
		p = inv.p
	}
	switch p := p.(type) {
	case *regexPattern:
		s.Pattern, s.Regex = p.src, true
	case literalPattern:
		s.Pattern = p.lit
	}
}

// AddsEOS reports whether Encode(text, true) ends with the EOS token.
func (t *Tokenizer) AddsEOS() bool {
	eos, ok := t.EOS()
	if !ok || t.post == nil {
		return false
	}
	if tp, ok := templateOf(t.post); ok {
		s := tp.suffixIDs()
		return len(s) > 0 && s[len(s)-1] == eos
	}
	ids := t.post.process(nil)
	return len(ids) > 0 && ids[len(ids)-1] == eos
}
