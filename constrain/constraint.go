package constrain

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"
	"unicode/utf8"
)

// Vocab is a vocabulary's token bytes arranged as a trie, with the tokens
// that end a generation: build it once per tokenizer and share it.
type Vocab struct {
	size   int
	bytes  [][]byte
	isStop []bool
	stops  []int // in range, at most a few
	single [256]bool
	kids   [][]edge  // trie node -> children by byte; node 0 is the root
	toks   [][]int32 // trie node -> tokens spelled by the path to it
	plain  []uint64  // tokens that are plain string content (no quote, backslash, control byte; whole UTF-8)
	rest   int32     // root of a second trie: the tokens that are not plain
}

type edge struct {
	b  byte
	to int32
}

// NewVocab builds the trie of a vocabulary of size ids (the logits' length).
// tokenBytes gives the bytes of a token in the middle of a text, ok false for
// tokens that are never generated under a constraint (special tokens); stops
// are the tokens that end a generation.
func NewVocab(size int, tokenBytes func(id int) ([]byte, bool), stops []int) *Vocab {
	v := &Vocab{size: size, bytes: make([][]byte, size), isStop: make([]bool, size),
		kids: [][]edge{nil, nil}, toks: [][]int32{nil, nil}, plain: make([]uint64, (size+63)/64), rest: 1}
	for _, id := range stops {
		if id >= 0 && id < size && !v.isStop[id] {
			v.isStop[id] = true
			v.stops = append(v.stops, id)
		}
	}
	for id := 0; id < size; id++ {
		b, ok := tokenBytes(id)
		if !ok || len(b) == 0 || v.isStop[id] {
			continue
		}
		v.bytes[id] = b
		if len(b) == 1 {
			v.single[b[0]] = true
		}
		v.insert(0, b, id)
		if isPlain(b) {
			v.plain[id/64] |= 1 << (id % 64)
		} else {
			v.insert(v.rest, b, id)
		}
	}
	for _, k := range v.kids {
		slices.SortFunc(k, func(a, b edge) int { return int(a.b) - int(b.b) })
	}
	return v
}

func (v *Vocab) insert(node int32, b []byte, id int) {
	for _, c := range b {
		next := int32(-1)
		for _, e := range v.kids[node] {
			if e.b == c {
				next = e.to
				break
			}
		}
		if next < 0 {
			next = int32(len(v.kids))
			v.kids = append(v.kids, nil)
			v.toks = append(v.toks, nil)
			v.kids[node] = append(v.kids[node], edge{c, next})
		}
		node = next
	}
	v.toks[node] = append(v.toks[node], int32(id))
}

// isPlain reports whether b leaves a string without length limits in the
// same state: whole UTF-8 characters, none of them a quote, backslash or control.
func isPlain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

// Size is the number of token ids (the logits' length).
func (v *Vocab) Size() int { return v.size }

// Constraint is one generation's automaton state; not safe for concurrent use.
type Constraint struct {
	g     *Grammar
	v     *Vocab
	cache *maskCache
	alts  []*stack
	key   string
	done  bool
	keep  []float32
}

// maxAlts bounds the alternatives a state keeps (the shortest to complete
// first, so the length budget still holds).
const maxAlts = 64

// New starts a constraint for one generation with vocabulary v.
func New(g *Grammar, v *Vocab) (*Constraint, error) {
	for c := 0; c < 256; c++ {
		if g.needs[c] && !v.single[c] {
			return nil, fmt.Errorf("%w: no single-byte token for %q", ErrVocab, rune(c))
		}
	}
	filler := false
	for c := byte(0x20); c < 0x7f; c++ {
		filler = filler || (v.single[c] && c != '"' && c != '\\')
	}
	if !filler {
		return nil, fmt.Errorf("%w: no single-byte token for a printable ASCII character", ErrVocab)
	}
	f := frame{n: g.root, ph: rVal}
	if len(g.root.pre) > 0 {
		f.ph = rPre
	}
	return &Constraint{g: g, v: v, cache: g.cache.get(v), alts: []*stack{{f: f}}}, nil
}

// MinTokens is the fewest tokens a complete output can take from here (at
// most one per byte): a generation needs at least this many.
func (c *Constraint) MinTokens() int { return minDist(c.alts) }

// Complete reports whether the text so far is a complete, valid document.
func (c *Constraint) Complete() bool { return minDist(c.alts) == 0 }

// Done reports whether a stop token was accepted.
func (c *Constraint) Done() bool { return c.done }

func minDist(alts []*stack) int {
	d := inf
	for _, s := range alts {
		d = min(d, s.dist())
	}
	return d
}

// Mask sets to -Inf the logits ([V]) of every token that cannot come next:
// those whose bytes leave no valid continuation, those after which the
// shortest completion no longer fits in the left-1 tokens that would remain,
// and the stop tokens unless the text is complete.
func (c *Constraint) Mask(logits []float32, left int) {
	e := c.entry()
	budget := left - 1
	k := sort.Search(len(e.levels), func(i int) bool { return e.levels[i] > int32(budget) }) - 1
	if k < 0 && len(e.levels) > 0 {
		k = 0 // nothing fits (the caller gave fewer than MinTokens): close as soon as possible
	}
	var allowed []uint64
	if k >= 0 {
		allowed = e.cum[k]
	}
	accept := c.Complete()
	if accept { // the stop tokens' logits, restored below
		c.keep = c.keep[:0]
		for _, id := range c.v.stops {
			c.keep = append(c.keep, logits[id])
		}
	}
	ninf := float32(math.Inf(-1))
	for wi := 0; wi*64 < len(logits); wi++ {
		var word uint64
		if wi < len(allowed) {
			word = allowed[wi]
		}
		if word == ^uint64(0) {
			continue
		}
		lo := wi * 64
		for id := lo; id < min(lo+64, len(logits)); id++ {
			if word&(1<<(id-lo)) == 0 {
				logits[id] = ninf
			}
		}
	}
	if accept {
		for i, id := range c.v.stops {
			logits[id] = c.keep[i]
		}
	}
}

// Allowed lists the tokens Mask would leave with left tokens to go.
func (c *Constraint) Allowed(left int) []int {
	logits := make([]float32, c.v.size)
	c.Mask(logits, left)
	var out []int
	for id, l := range logits {
		if l == 0 {
			out = append(out, id)
		}
	}
	return out
}

// Accept advances past token id; a token the mask did not allow is an error
// and leaves the state unchanged.
func (c *Constraint) Accept(id int) error {
	if c.done {
		return fmt.Errorf("%w: the output is already complete", ErrRejected)
	}
	if id < 0 || id >= c.v.size {
		return fmt.Errorf("%w: token %d outside the vocabulary", ErrRejected, id)
	}
	if c.v.isStop[id] {
		if !c.Complete() {
			return fmt.Errorf("%w: end of text before the output is complete", ErrRejected)
		}
		c.done = true
		return nil
	}
	b := c.v.bytes[id]
	if b == nil {
		return fmt.Errorf("%w: token %d", ErrRejected, id)
	}
	alts := c.alts
	for _, ch := range b {
		var next []*stack
		for _, s := range alts {
			next = step(s, ch, next)
		}
		if len(next) == 0 {
			return fmt.Errorf("%w: token %d (%q)", ErrRejected, id, b)
		}
		alts = trim(next)
	}
	c.alts, c.key = dedupe(alts), ""
	return nil
}

// trim keeps the maxAlts alternatives closest to completion.
func trim(alts []*stack) []*stack {
	if len(alts) <= maxAlts {
		return alts
	}
	slices.SortStableFunc(alts, func(a, b *stack) int { return a.dist() - b.dist() })
	return alts[:maxAlts]
}

func dedupe(alts []*stack) []*stack {
	if len(alts) < 2 {
		return alts
	}
	seen := map[string]bool{}
	out := alts[:0]
	for _, s := range alts {
		k := string(stackKey(nil, s))
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

func stackKey(b []byte, s *stack) []byte {
	for ; s != nil; s = s.up {
		f := &s.f
		b = binary.AppendVarint(b, int64(f.n.id))
		b = append(b, f.ph, f.ws)
		b = binary.AppendVarint(b, int64(f.i))
		b = binary.AppendVarint(b, int64(f.j))
		b = binary.AppendVarint(b, int64(f.k))
	}
	return b
}

// stateKey identifies the state for the mask cache: the sorted stack keys.
func (c *Constraint) stateKey() string {
	if c.key != "" {
		return c.key
	}
	keys := make([]string, len(c.alts))
	for i, s := range c.alts {
		keys[i] = string(stackKey(nil, s))
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	c.key = string(b)
	return c.key
}

// entry is one state's mask: levels are the distinct shortest-completion
// lengths after an allowed token, ascending; cum[k] has the tokens whose
// length is at most levels[k].
type entry struct {
	levels []int32
	cum    [][]uint64
}

func (e *entry) size() int {
	n := 64 + 4*len(e.levels)
	for _, c := range e.cum {
		n += 8 * len(c)
	}
	return n
}

// maskCacheBytes bounds one grammar's cache per vocabulary; when full it starts over.
const maskCacheBytes = 128 << 20

type maskCache struct {
	mu    sync.Mutex
	m     map[string]*entry
	bytes int
}

type cacheSet struct {
	mu sync.Mutex
	m  map[*Vocab]*maskCache
}

func (cs *cacheSet) get(v *Vocab) *maskCache {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[*Vocab]*maskCache{}
	}
	mc := cs.m[v]
	if mc == nil {
		mc = &maskCache{m: map[string]*entry{}}
		cs.m[v] = mc
	}
	return mc
}

func (c *Constraint) entry() *entry {
	key := c.stateKey()
	mc := c.cache
	mc.mu.Lock()
	e := mc.m[key]
	mc.mu.Unlock()
	if e != nil {
		return e
	}
	e = computeEntry(c.v, c.alts)
	mc.mu.Lock()
	if mc.bytes+e.size() > maskCacheBytes {
		mc.m, mc.bytes = map[string]*entry{}, 0
	}
	mc.m[key] = e
	mc.bytes += e.size()
	mc.mu.Unlock()
	return e
}

type tokDist struct{ id, d int32 }

type walker struct {
	v    *Vocab
	bufs [][]*stack
	res  []tokDist
}

// computeEntry walks the token trie from the state, pruning every subtree
// whose prefix the automaton rejects.
func computeEntry(v *Vocab, alts []*stack) *entry {
	w := &walker{v: v}
	if f := &alts[0].f; len(alts) == 1 && f.n.kind == kString && f.ph == sBody && f.n.minLen == 0 && f.n.maxLen < 0 {
		// Inside a string without limits, plain tokens change nothing: walk only the others.
		d := int32(alts[0].dist())
		for i, word := range v.plain {
			for ; word != 0; word &= word - 1 {
				w.res = append(w.res, tokDist{int32(i*64 + bits.TrailingZeros64(word)), d})
			}
		}
		w.walk(v.rest, alts, 0)
	} else {
		w.walk(0, alts, 0)
	}
	slices.SortFunc(w.res, func(a, b tokDist) int { return int(a.d - b.d) })
	e := &entry{}
	words := (v.size + 63) / 64
	var cur []uint64
	for i, t := range w.res {
		if cur == nil {
			cur = make([]uint64, words)
		}
		cur[t.id/64] |= 1 << (t.id % 64)
		if i+1 == len(w.res) || w.res[i+1].d != t.d {
			e.levels = append(e.levels, t.d)
			e.cum = append(e.cum, cur)
			if i+1 < len(w.res) {
				cur = slices.Clone(cur)
			}
		}
	}
	return e
}

func (w *walker) walk(node int32, alts []*stack, depth int) {
	if len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	for _, e := range w.v.kids[node] {
		next := w.bufs[depth][:0]
		for _, s := range alts {
			next = step(s, e.b, next)
		}
		next = trim(next)
		w.bufs[depth] = next
		if len(next) == 0 {
			continue
		}
		if toks := w.v.toks[e.to]; len(toks) > 0 {
			d := int32(min(minDist(next), math.MaxInt32))
			for _, t := range toks {
				w.res = append(w.res, tokDist{t, d})
			}
		}
		w.walk(e.to, next, depth+1)
	}
}
