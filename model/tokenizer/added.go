package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

type addedToken struct {
	content    string
	id         int
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// addedMatcher finds added tokens in a string: leftmost-longest, non-overlapping, like the
// Aho-Corasick automaton (MatchKind::LeftmostLongest) of the HF AddedVocabulary.
type addedMatcher struct {
	byFirst map[byte][]int // first byte -> indices into pats, longest first
	pats    []string
	toks    []*addedToken
}

func newAddedMatcher(pats []string, toks []*addedToken) *addedMatcher {
	m := &addedMatcher{byFirst: map[byte][]int{}}
	for i, p := range pats {
		if p == "" {
			continue
		}
		m.pats = append(m.pats, p)
		m.toks = append(m.toks, toks[i])
	}
	for i, p := range m.pats {
		m.byFirst[p[0]] = append(m.byFirst[p[0]], i)
	}
	for _, l := range m.byFirst {
		sort.SliceStable(l, func(a, b int) bool { return len(m.pats[l[a]]) > len(m.pats[l[b]]) })
	}
	return m
}

func (m *addedMatcher) empty() bool { return m == nil || len(m.pats) == 0 }

// seg is a part of the input: an added token (id >= 0) or text to process further.
type seg struct {
	start, end int
	id         int
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isRustWord(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isRustWord(r)
}

// split implements AddedVocabulary::find_matches on s.
func (m *addedMatcher) split(s string) []seg {
	if s == "" {
		return []seg{{0, 0, -1}}
	}
	var out []seg
	startOffset := 0
	for i := 0; i < len(s); {
		cands := m.byFirst[s[i]]
		k := -1
		for _, c := range cands {
			if strings.HasPrefix(s[i:], m.pats[c]) {
				k = c
				break
			}
		}
		if k < 0 {
			i++
			continue
		}
		start, stop := i, i+len(m.pats[k])
		i = stop
		tok := m.toks[k]
		if tok.singleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.lstrip {
			ns := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			if ns < startOffset {
				ns = startOffset
			}
			start = ns
		}
		if tok.rstrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			out = append(out, seg{startOffset, start, -1})
		}
		out = append(out, seg{start, stop, tok.id})
		startOffset = stop
	}
	if startOffset != len(s) {
		out = append(out, seg{startOffset, len(s), -1})
	}
	return out
}
