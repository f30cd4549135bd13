package tokenizer

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// span is one piece of a string as returned by a pattern: [start,end) in bytes and whether
// it is a match of the pattern (as in the HF library's Pattern::find_matches).
type span struct {
	start, end int
	match      bool
}

// pattern splits a string into consecutive spans covering all of it.
type pattern interface {
	findMatches(s string) []span
}

// ---------------------------------------------------------------------------------------
// literal string pattern

type literalPattern struct{ lit string }

func (p literalPattern) findMatches(s string) []span {
	if p.lit == "" {
		return []span{{0, len(s), false}}
	}
	if s == "" {
		return []span{{0, 0, false}}
	}
	var out []span
	prev := 0
	for prev <= len(s) {
		k := strings.Index(s[prev:], p.lit)
		if k < 0 {
			break
		}
		st := prev + k
		if st != prev {
			out = append(out, span{prev, st, false})
		}
		out = append(out, span{st, st + len(p.lit), true})
		prev = st + len(p.lit)
	}
	if prev != len(s) {
		out = append(out, span{prev, len(s), false})
	}
	return out
}

// ---------------------------------------------------------------------------------------
// character-class pattern: every char for which f is true is a separate match.

type charPattern struct{ f func(rune) bool }

func (p charPattern) findMatches(s string) []span {
	if s == "" {
		return []span{{0, 0, false}}
	}
	var out []span
	last := 0
	for i, r := range s {
		if p.f(r) {
			n := utf8.RuneLen(r)
			if n < 0 {
				n = 1
			}
			if last < i {
				out = append(out, span{last, i, false})
			}
			out = append(out, span{i, i + n, true})
			last = i + n
		}
	}
	if len(s) > last {
		out = append(out, span{last, len(s), false})
	}
	return out
}

// ---------------------------------------------------------------------------------------
// inverted pattern

type invertPattern struct{ p pattern }

func (p invertPattern) findMatches(s string) []span {
	m := p.p.findMatches(s)
	for i := range m {
		m[i].match = !m[i].match
	}
	return m
}

// ---------------------------------------------------------------------------------------
// regular expressions (Oniguruma in the HF library; regexp2 here, with hand-written
// matchers for the common GPT-2 / Llama 3 / Qwen 2 pre-tokenizer patterns).

// matchAtFunc returns the end of the match starting exactly at i (i < len(s)). It is used
// only for patterns that match at every position, so the match found by a left-to-right
// search from i always starts at i and is never empty.
type matchAtFunc func(s string, i int) int

type regexPattern struct {
	src  string
	re   *regexp2.Regexp
	fast matchAtFunc
}

const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func compileRegex(src string) (*regexPattern, error) {
	re, err := regexp2.Compile(src, regexp2.None)
	if err != nil {
		return nil, err
	}
	// guard against catastrophic backtracking in patterns from untrusted files: a match
	// that times out ends the search (the rest of the text is treated as not matching)
	re.MatchTimeout = 2 * time.Second
	p := &regexPattern{src: src, re: re}
	switch src {
	case gpt2Pattern:
		p.fast = matchGPT2
	case llama3Pattern:
		p.fast = func(s string, i int) int { return matchLlama3(s, i, 3) }
	case qwen2Pattern:
		p.fast = func(s string, i int) int { return matchLlama3(s, i, 1) }
	}
	return p, nil
}

// findIter returns the non-overlapping matches, with Oniguruma's find_iter handling of
// empty matches.
func (p *regexPattern) findIter(s string) [][2]int {
	if p.fast != nil {
		out := make([][2]int, 0, len(s)/4+1)
		for i := 0; i < len(s); {
			e := p.fast(s, i)
			if e <= i { // cannot happen; be safe against infinite loops
				e = i + 1
			}
			out = append(out, [2]int{i, e})
			i = e
		}
		return out
	}
	return p.slowFindIter(s)
}

func (p *regexPattern) slowFindIter(s string) [][2]int {
	runes := []rune(s)
	off := make([]int, len(runes)+1)
	b := 0
	for i, r := range runes {
		off[i] = b
		n := utf8.RuneLen(r)
		if n < 0 {
			n = 3
		}
		b += n
	}
	off[len(runes)] = b
	var out [][2]int
	lastEnd, lastMatchEnd := 0, -1
	for guard := 0; lastEnd <= len(runes) && guard <= 2*len(runes)+2; guard++ {
		m, err := p.re.FindRunesMatchStartingAt(runes, lastEnd)
		if err != nil || m == nil {
			break
		}
		st, en := m.Index, m.Index+m.Length
		if st < lastEnd || en < st || en > len(runes) {
			break
		}
		if st == en && lastMatchEnd == en {
			lastEnd++
			continue
		}
		lastEnd, lastMatchEnd = en, en
		out = append(out, [2]int{off[st], off[en]})
	}
	return out
}

func (p *regexPattern) findMatches(s string) []span {
	if s == "" {
		return []span{{0, 0, false}}
	}
	ms := p.findIter(s)
	out := make([]span, 0, 2*len(ms)+1)
	prev := 0
	for _, m := range ms {
		if prev != m[0] {
			out = append(out, span{prev, m[0], false})
		}
		out = append(out, span{m[0], m[1], true})
		prev = m[1]
	}
	if prev != len(s) {
		out = append(out, span{prev, len(s), false})
	}
	return out
}

// replaceAll replaces every match of p in s with content.
func replaceAll(p pattern, s, content string) string {
	if lp, ok := p.(literalPattern); ok {
		if lp.lit == "" {
			return s
		}
		return strings.ReplaceAll(s, lp.lit, content)
	}
	var sb strings.Builder
	for _, sp := range p.findMatches(s) {
		if sp.match {
			sb.WriteString(content)
		} else {
			sb.WriteString(s[sp.start:sp.end])
		}
	}
	return sb.String()
}

// ---------------------------------------------------------------------------------------
// hand-written matchers

// character classes for ASCII
const (
	clsOther = iota
	clsLetter
	clsNumber
	clsSpace
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		r := rune(c)
		switch {
		case unicode.IsLetter(r):
			asciiClass[c] = clsLetter
		case unicode.IsNumber(r):
			asciiClass[c] = clsNumber
		case unicode.IsSpace(r):
			asciiClass[c] = clsSpace
		default:
			asciiClass[c] = clsOther
		}
	}
}

// classAt returns the class of the rune at i and its byte length.
func classAt(s string, i int) (uint8, rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], rune(c), 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	switch {
	case unicode.IsLetter(r):
		return clsLetter, r, n
	case unicode.IsNumber(r):
		return clsNumber, r, n
	case unicode.IsSpace(r):
		return clsSpace, r, n
	}
	return clsOther, r, n
}

// runOf returns the end of the run of runes of class cls starting at i.
func runOf(s string, i int, cls uint8) int {
	for i < len(s) {
		c, _, n := classAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// whitespaceTail handles `\s+(?!\S)|\s+` at i (a whitespace char): the run of whitespace,
// minus its last char when it is followed by a non-space and longer than one char.
func whitespaceTail(s string, i int) int {
	j := i
	last := i
	count := 0
	for j < len(s) {
		c, _, n := classAt(s, j)
		if c != clsSpace {
			break
		}
		last = j
		j += n
		count++
	}
	if j == len(s) || count == 1 {
		return j
	}
	return last
}

// matchGPT2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func matchGPT2(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	c, _, n := classAt(s, i)
	if c == clsSpace && s[i] == ' ' && i+1 < len(s) {
		c2, _, n2 := classAt(s, i+1)
		if c2 != clsSpace {
			return runOf(s, i+1+n2, c2)
		}
	}
	if c != clsSpace {
		return runOf(s, i+n, c)
	}
	return whitespaceTail(s, i)
}

func foldS(r rune) bool { return r == 's' || r == 'S' || r == 0x17F }

// matchLlama3 implements the Llama 3 (maxDigits 3) and Qwen 2 (maxDigits 1) pattern:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchLlama3(s string, i int, maxDigits int) int {
	if s[i] == '\'' && i+1 < len(s) {
		r1, n1 := utf8.DecodeRuneInString(s[i+1:])
		switch {
		case foldS(r1) || r1 == 't' || r1 == 'T' || r1 == 'm' || r1 == 'M' || r1 == 'd' || r1 == 'D':
			return i + 1 + n1
		case r1 == 'r' || r1 == 'R' || r1 == 'v' || r1 == 'V':
			if i+2 < len(s) && (s[i+2] == 'e' || s[i+2] == 'E') {
				return i + 3
			}
		case r1 == 'l' || r1 == 'L':
			if i+2 < len(s) && (s[i+2] == 'l' || s[i+2] == 'L') {
				return i + 3
			}
		}
	}
	c, r, n := classAt(s, i)
	switch c {
	case clsLetter:
		return runOf(s, i+n, clsLetter)
	case clsNumber:
		j := i + n
		for k := 1; k < maxDigits && j < len(s); k++ {
			c2, _, n2 := classAt(s, j)
			if c2 != clsNumber {
				break
			}
			j += n2
		}
		return j
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+ with the optional char present
	if r != '\r' && r != '\n' && i+n < len(s) {
		c2, _, n2 := classAt(s, i+n)
		if c2 == clsLetter {
			return runOf(s, i+n+n2, clsLetter)
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if c == clsOther || (r == ' ' && i+1 < len(s)) {
		j := i
		if c != clsOther {
			c2, _, _ := classAt(s, i+1)
			if c2 != clsOther {
				goto space
			}
			j = i + 1
		}
		j = runOf(s, j, clsOther)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
space:
	// whitespace: `\s*[\r\n]+` (up to the last newline of the run), then `\s+(?!\S)|\s+`
	j := i
	nl := -1
	for j < len(s) {
		c2, _, n2 := classAt(s, j)
		if c2 != clsSpace {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			nl = j
		}
		j += n2
	}
	if nl >= 0 {
		return nl + 1
	}
	return whitespaceTail(s, i)
}
