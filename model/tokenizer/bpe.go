package tokenizer

import (
	"strconv"
	"sync"
	"unicode/utf8"
)

// bpe is the HF BPE model (without dropout).
type bpe struct {
	vocab        map[string]int
	merges       map[uint64]uint64 // (a<<32 | b) -> (rank<<32 | new id)
	unkID        int               // -1: no unk token (or not in the vocabulary)
	hasUnk       bool              // unk_token configured
	byteFallback bool
	fuseUnk      bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
	spm          bool      // merge by token score instead of merges (GGUF "llama" vocabularies)
	scores       []float32 // id -> score, for spm

	mu    sync.RWMutex
	cache map[string][]int
}

const (
	bpeCacheMaxEntries = 200000
	bpeCacheMaxWordLen = 256
)

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type symbol struct {
	id, prev, next, size int
}

type mergeItem struct {
	rank uint32
	pos  int32
	id   int32
}

// mergeHeap is a binary min-heap on (rank, pos).
type mergeHeap []mergeItem

func (h mergeHeap) less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}

func (h *mergeHeap) push(x mergeItem) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
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
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

func (m *bpe) lookupMerge(a, b int) (rank uint32, id int, ok bool) {
	v, ok := m.merges[pairKey(a, b)]
	if !ok {
		return 0, 0, false
	}
	return uint32(v >> 32), int(uint32(v)), true
}

// tokenize appends the ids of word w to out.
func (m *bpe) tokenize(w string, out []int) []int {
	if w == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(out, id)
		}
	}
	cacheable := len(w) < bpeCacheMaxWordLen
	if cacheable {
		m.mu.RLock()
		ids, ok := m.cache[w]
		m.mu.RUnlock()
		if ok {
			return append(out, ids...)
		}
	}
	n := len(out)
	if m.spm {
		out = m.spmWord(w, out)
	} else {
		out = m.mergeWord(w, out)
	}
	if cacheable {
		ids := make([]int, len(out)-n)
		copy(ids, out[n:])
		m.mu.Lock()
		if len(m.cache) < bpeCacheMaxEntries {
			m.cache[w] = ids
		}
		m.mu.Unlock()
	}
	return out
}

func byteTokenName(b byte) string {
	const hex = "0123456789ABCDEF"
	return "<0x" + string([]byte{hex[b>>4], hex[b&15]}) + ">"
}

func (m *bpe) mergeWord(w string, out []int) []int {
	syms := make([]symbol, 0, utf8.RuneCountInString(w)+4)
	add := func(id, size int) {
		prev := -1
		if k := len(syms); k > 0 {
			syms[k-1].next = k
			prev = k - 1
		}
		syms = append(syms, symbol{id: id, prev: prev, next: -1, size: size})
	}
	unkPending, unkLen := false, 0
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+size]
		isFirst, isLast := i == 0, i+size == len(w)
		i += size
		if !isFirst && m.prefix != "" {
			s = m.prefix + s
		}
		if isLast && m.suffix != "" {
			s = s + m.suffix
		}
		if id, ok := m.vocab[s]; ok {
			if unkPending {
				add(m.unkID, unkLen)
				unkPending = false
			}
			add(id, size)
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				for k := 0; k < len(s); k++ {
					add(m.byteIDs[s[k]], 1)
				}
				continue
			}
		}
		if m.hasUnk {
			if m.unkID < 0 { // unk token missing from the vocabulary: the library errors; drop
				continue
			}
			if unkPending {
				if m.fuseUnk {
					unkLen += size
					continue
				}
				add(m.unkID, unkLen)
			}
			unkPending, unkLen = true, size
		}
	}
	if unkPending {
		add(m.unkID, unkLen)
	}
	if len(syms) > 1 && len(m.merges) > 0 {
		m.mergeAll(syms)
	}
	for _, s := range syms {
		if s.size != 0 {
			out = append(out, s.id)
		}
	}
	return out
}

func (m *bpe) mergeAll(syms []symbol) {
	h := make(mergeHeap, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if rank, id, ok := m.lookupMerge(syms[i].id, syms[i+1].id); ok {
			h.push(mergeItem{rank, int32(i), int32(id)})
		}
	}
	for len(h) > 0 {
		top := h.pop()
		pos := int(top.pos)
		cur := &syms[pos]
		if cur.size == 0 || cur.next == -1 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if _, id, ok := m.lookupMerge(cur.id, right.id); !ok || id != int(top.id) {
			continue
		}
		cur.id = int(top.id)
		cur.size += right.size
		cur.next = right.next
		syms[nextPos].size = 0
		if right.next > -1 && right.next < len(syms) {
			syms[right.next].prev = pos
		}
		if cur.prev >= 0 {
			if rank, id, ok := m.lookupMerge(syms[cur.prev].id, cur.id); ok {
				h.push(mergeItem{rank, int32(cur.prev), int32(id)})
			}
		}
		if cur.next >= 0 && cur.next < len(syms) {
			if rank, id, ok := m.lookupMerge(cur.id, syms[cur.next].id); ok {
				h.push(mergeItem{rank, int32(pos), int32(id)})
			}
		}
	}
}

// parseByteToken recognises "<0xNN>" like the ByteFallback decoder (u8::from_str_radix on
// the two chars, which accepts a leading '+').
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>' {
		return 0, false
	}
	h := t[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	if h == "" || h[0] == '-' || h[0] == '+' {
		return 0, false
	}
	v, err := strconv.ParseUint(h, 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}
