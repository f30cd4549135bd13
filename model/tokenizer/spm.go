package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// SentencePiece-style BPE as GGUF "llama" vocabularies are run: no merge list; adjacent
// pieces merge when their concatenation is a vocabulary token, the pair making the token
// with the highest score first (leftmost among equal scores), until no pair is left.
// Characters that end up as no token are written as <0xNN> byte tokens.

// spmSym is one live piece of the word: bytes [start, start+n) of it, linked to its
// neighbours (-1 at the ends); n == 0 once merged into its left neighbour.
type spmSym struct {
	start, n   int
	prev, next int
}

// spmBigram is a candidate merge of symbols left and right (right == left's next when
// pushed) into a token of the given score; size is the byte length of the result.
type spmBigram struct {
	score       float32
	left, right int32
	size        int32
}

// spmHeap is a binary max-heap on (score, -left).
type spmHeap []spmBigram

func (h spmHeap) before(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}

func (h *spmHeap) push(x spmBigram) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.before(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *spmHeap) pop() spmBigram {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.before(r, l) {
			m = r
		}
		if !a.before(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// spmWord appends the ids of w (already with spaces replaced by "▁") to out.
func (m *bpe) spmWord(w string, out []int) []int {
	syms := make([]spmSym, 0, utf8.RuneCountInString(w))
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		k := len(syms)
		next := k + 1
		if i+size == len(w) {
			next = -1
		}
		syms = append(syms, spmSym{start: i, n: size, prev: k - 1, next: next})
		i += size
	}
	h := make(spmHeap, 0, len(syms))
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l], syms[r]
		id, ok := m.vocab[w[a.start:b.start+b.n]]
		if !ok || id >= len(m.scores) {
			return
		}
		h.push(spmBigram{score: m.scores[id], left: int32(l), right: int32(r), size: int32(a.n + b.n)})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(h) > 0 {
		bg := h.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		// stale: one side was merged away, or grew, since the pair was queued
		if l.n == 0 || r.n == 0 || l.n+r.n != int(bg.size) {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = int(bg.left)
		}
		try(l.prev, int(bg.left))
		try(int(bg.left), l.next)
	}
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		s := syms[i]
		piece := w[s.start : s.start+s.n]
		if id, ok := m.vocab[piece]; ok {
			out = append(out, id)
			continue
		}
		// only single characters get here: a merged piece is a token by construction
		for k := 0; k < len(piece); k++ {
			if id := m.byteIDs[piece[k]]; id >= 0 {
				out = append(out, id)
			} else if id, ok := m.vocab[piece[k:k+1]]; ok {
				out = append(out, id)
			} else if m.unkID >= 0 {
				out = append(out, m.unkID)
			}
		}
	}
	return out
}

// preSpmWords cuts SentencePiece input before every "▁" that follows another character.
// It is used only when no token has a "▁" after another character: then no merge can
// join pieces across a cut, so the cuts change nothing but the speed (shorter merge
// queues, and repeated words come from the word cache).
type preSpmWords struct{}

func (preSpmWords) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*8)
	for _, x := range in {
		s := x.s
		start, prevMeta := 0, true
		for i, r := range s {
			if r != '▁' {
				prevMeta = false
				continue
			}
			if !prevMeta && i > start {
				out = append(out, piece{s[start:i], x.first && start == 0})
				start = i
			}
			prevMeta = true
		}
		if start < len(s) {
			out = append(out, piece{s[start:], x.first && start == 0})
		}
	}
	return out
}

// spmCutsSafe reports whether every "▁" of every token is in its leading run of "▁".
func spmCutsSafe(tokens []string) bool {
	for _, t := range tokens {
		if strings.Contains(strings.TrimLeft(t, "▁"), "▁") {
			return false
		}
	}
	return true
}
