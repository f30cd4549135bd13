package tokenizer

import (
	"strings"
	"unicode"
)

// piece is a part of the input during pre-tokenization. first reports whether it starts at
// the beginning of the input (for Metaspace's prepend_scheme "first").
type piece struct {
	s     string
	first bool
}

type preTokenizer interface {
	preTokenize(in []piece) []piece
}

type splitBehavior int

const (
	behRemoved splitBehavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviorNames = map[string]splitBehavior{
	"Removed":            behRemoved,
	"Isolated":           behIsolated,
	"MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext":     behMergedWithNext,
	"Contiguous":         behContiguous,
}

// splitSpans applies NormalizedString::split: the spans of s to keep, in order (possibly
// empty ones, which callers drop).
func splitSpans(s string, p pattern, b splitBehavior) []span {
	m := p.findMatches(s)
	switch b {
	case behIsolated:
		for i := range m {
			m[i].match = false
		}
		return m
	case behRemoved:
		return m
	case behContiguous:
		out := m[:0:0]
		prev := false
		for _, x := range m {
			if x.match == prev && len(out) > 0 {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, span{x.start, x.end, false})
			}
			prev = x.match
		}
		return out
	case behMergedWithPrevious:
		out := m[:0:0]
		prev := false
		for _, x := range m {
			if x.match && !prev && len(out) > 0 {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, span{x.start, x.end, false})
			}
			prev = x.match
		}
		return out
	case behMergedWithNext:
		out := m[:0:0]
		prev := false
		for i := len(m) - 1; i >= 0; i-- {
			x := m[i]
			if x.match && !prev && len(out) > 0 {
				out[len(out)-1].start = x.start
			} else {
				out = append(out, span{x.start, x.end, false})
			}
			prev = x.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	return m
}

// appendSplit splits p.s with pattern/behavior and appends the non-empty kept parts.
func appendSplit(out []piece, p piece, pat pattern, b splitBehavior) []piece {
	for _, sp := range splitSpans(p.s, pat, b) {
		if sp.match || sp.end <= sp.start {
			continue
		}
		out = append(out, piece{p.s[sp.start:sp.end], p.first && sp.start == 0})
	}
	return out
}

type preSequence []preTokenizer

func (q preSequence) preTokenize(in []piece) []piece {
	for _, p := range q {
		in = p.preTokenize(in)
	}
	return in
}

type preSplit struct {
	pat      pattern
	behavior splitBehavior
}

func (p preSplit) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, x := range in {
		out = appendSplit(out, x, p.pat, p.behavior)
	}
	return out
}

type preByteLevel struct {
	addPrefixSpace bool
	re             *regexPattern // nil when use_regex is false
}

func (p preByteLevel) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, x := range in {
		if p.addPrefixSpace && !strings.HasPrefix(x.s, " ") {
			x.s = " " + x.s
		}
		if p.re != nil {
			n := len(out)
			out = appendSplit(out, x, p.re, behIsolated)
			for i := n; i < len(out); i++ {
				out[i].s = byteLevelEncode(out[i].s)
			}
		} else if x.s != "" {
			out = append(out, piece{byteLevelEncode(x.s), x.first})
		}
	}
	return out
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

type preMetaspace struct {
	replacement rune
	rep         string
	scheme      prependScheme
	split       bool
}

func (p preMetaspace) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, x := range in {
		s := strings.ReplaceAll(x.s, " ", p.rep)
		switch p.scheme {
		case prependAlways:
			if !strings.HasPrefix(s, p.rep) {
				s = p.rep + s
			}
		case prependFirst:
			if !strings.HasPrefix(s, p.rep) && x.first {
				s = p.rep + s
			}
		}
		x.s = s
		if p.split {
			r := p.replacement
			out = appendSplit(out, x, charPattern{func(c rune) bool { return c == r }}, behMergedWithNext)
		} else if s != "" {
			out = append(out, x)
		}
	}
	return out
}

type preCharSplit struct {
	f        func(rune) bool
	behavior splitBehavior
}

func (p preCharSplit) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	pat := charPattern{p.f}
	for _, x := range in {
		out = appendSplit(out, x, pat, p.behavior)
	}
	return out
}

// preWhitespace is the Whitespace pre-tokenizer: \w+|[^\w\s]+ (whitespace removed).
type preWhitespace struct{}

func isRustWord(r rune) bool {
	if r < 128 {
		return r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || r == 0x200C || r == 0x200D
}

func (preWhitespace) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, x := range in {
		s := x.s
		start, cls := -1, 0
		for i, r := range s {
			c := 2 // other
			if unicode.IsSpace(r) {
				c = 0
			} else if isRustWord(r) {
				c = 1
			}
			if start >= 0 && c != cls {
				out = append(out, piece{s[start:i], x.first && start == 0})
				start = -1
			}
			if start < 0 && c != 0 {
				start, cls = i, c
			}
		}
		if start >= 0 {
			out = append(out, piece{s[start:], x.first && start == 0})
		}
	}
	return out
}

func isPunc(r rune) bool {
	if r < 128 {
		return (r >= '!' && r <= '/') || (r >= ':' && r <= '@') || (r >= '[' && r <= '`') || (r >= '{' && r <= '~')
	}
	return unicode.IsPunct(r)
}

func isWhiteSpace(r rune) bool { return unicode.IsSpace(r) }

func isUnicodeNumber(r rune) bool { return unicode.IsNumber(r) }
