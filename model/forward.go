package model

import (
	"fmt"
	"math"
	"slices"

	"roe/kernels"
)

// Proj names one linear layer inside a transformer block.
type Proj int

// The seven projections of a Llama block, in PEFT's target-module names.
const (
	ProjQ Proj = iota
	ProjK
	ProjV
	ProjO
	ProjGate
	ProjUp
	ProjDown
	NumProj
)

var projNames = [...]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// String returns the Hugging Face module name, e.g. "q_proj".
func (p Proj) String() string {
	if p < 0 || p >= NumProj {
		return fmt.Sprintf("Proj(%d)", int(p))
	}
	return projNames[p]
}

// ParseProj maps a module name such as "q_proj" to its Proj.
func ParseProj(s string) (Proj, bool) {
	for i, n := range projNames {
		if n == s {
			return Proj(i), true
		}
	}
	return 0, false
}

// Adapter adds a learned delta to the linear layers of the sequences it is attached to.
// The model calls it after each base projection; package adapters implements it.
type Adapter interface {
	// AddDelta adds the adapter's contribution to one projection's output.
	//	x: [rows, in] (the projection's input), y: [rows, out]; y += Δ(x)
	AddDelta(layer int, p Proj, x, y []float32, rows int)
}

// PartedAdapter is an Adapter whose AddDelta computes a delta in parts (a
// LoRA's: slices of its rank, each summed from zero) and adds them to y in
// order. The model computes the parts of a lone decoding sequence on all
// kernel threads at once, instead of streaming the adapter's weights on
// one, and adds them in the same order: the same bits as AddDelta.
type PartedAdapter interface {
	Adapter
	// DeltaParts is how many parts AddDelta computes for projection p of
	// layer over rows rows (0: p is not adapted).
	DeltaParts(layer int, p Proj, rows int) int
	// AddDeltaPart adds part k of that delta to y (the model passes zeros).
	AddDeltaPart(layer int, p Proj, x, y []float32, rows, k int)
}

// Cache is one sequence's key/value cache. Keys are stored [pos, HeadDim] and
// values transposed, [HeadDim, pos], so that both attention products are GEMMs
// over contiguous rows. A sliding-window layer keeps only the positions its
// window can still see (about window + 64 rows, more while a long prefill
// step is in flight), so a long context costs window-sized memory there.
type Cache struct {
	layers []cacheLayer
	n      int // positions filled
	hd     int
	max    int
	// longrope (Phi-3): the factors are chosen from the sequence length, so
	// the cache remembers its choice and its tokens, to recompute the
	// sequence with the long factors when it grows past the original
	// context (as transformers does).
	longrope, long, planned bool
	tokens                  []int
	broken                  bool // truncated to before what a sliding layer still holds
	want                    int  // Reserve's positions: the first allocation's size
}

// cacheLayer is one layer's keys and values; row r holds position off + r.
type cacheLayer struct {
	k, vt  [][]float32 // [kvHead] → k: [cap, HeadDim], vt: [HeadDim, cap]
	off    int
	cap    int
	window int // 0: the layer keeps every position
}

// windowSlack is how many rows a sliding layer keeps beyond its window, so
// that it drops old rows once every windowSlack decode steps rather than at
// every step.
const windowSlack = 64

// KVBytes is the memory one sequence of n positions keeps in its KV cache
// (float32 keys and values) in steady state: all n positions on global
// layers, at most window + 63 on sliding ones (more only while a long
// prefill step is in flight). full ignores the windows: what the cache
// would take if every layer kept everything.
func (c Config) KVBytes(n int, full bool) int {
	per := 2 * 4 * c.NumKVHeads * c.HeadDim // one position of one layer
	b := 0
	for l := 0; l < c.NumLayers; l++ {
		rows := n
		if w := c.LayerWindow(l); w > 0 && !full {
			rows = min(n, w-1+windowSlack)
		}
		b += rows * per
	}
	return b
}

// NewCache returns an empty KV cache for one sequence.
func (m *Model) NewCache() *Cache {
	c := &Cache{hd: m.Config.HeadDim, max: m.Config.ContextLength(), longrope: m.Config.Rope.Type == "longrope"}
	c.layers = make([]cacheLayer, m.Config.NumLayers)
	for l := range c.layers {
		c.layers[l] = cacheLayer{
			k:      make([][]float32, m.Config.NumKVHeads),
			vt:     make([][]float32, m.Config.NumKVHeads),
			window: m.Config.LayerWindow(l),
		}
	}
	return c
}

// NewCacheFor returns an empty cache for a sequence expected to reach n
// positions. It differs from NewCache only for longrope models (Phi-3),
// which then use the long or short factors from the first token on, chosen
// from n, as llama.cpp chooses them from its context size; NewCache instead
// decides from the length seen so far and recomputes the sequence when it
// crosses the original context, as transformers does.
func (m *Model) NewCacheFor(n int) *Cache {
	c := m.NewCache()
	c.long, c.planned = m.Config.LongRope(n), true
	return c
}

// Len is the number of positions already in the cache.
func (c *Cache) Len() int { return c.n }

// Bytes is the memory the cache's keys and values take.
func (c *Cache) Bytes() int {
	n := 0
	for i := range c.layers {
		n += 2 * 4 * c.layers[i].cap * c.hd * len(c.layers[i].k)
	}
	return n
}

// CanTruncate reports whether Truncate(n) leaves a usable cache: a
// sliding-window layer may already have dropped positions that position n
// would need to see.
func (c *Cache) CanTruncate(n int) bool {
	if n < 0 || n >= c.n {
		return true
	}
	for i := range c.layers {
		if l := &c.layers[i]; l.window > 0 && max(0, n-(l.window-1)) < l.off {
			return false
		}
	}
	return true
}

// Truncate drops positions n and later, so a shared prefix can be reused.
// When !CanTruncate(n) the cache can only be discarded: Forward refuses it.
func (c *Cache) Truncate(n int) {
	if n >= 0 && n < c.n {
		c.broken = c.broken || !c.CanTruncate(n)
		c.n = n
		if c.tokens != nil {
			c.tokens = c.tokens[:n]
		}
	}
}

// reset empties the cache, keeping its buffers.
func (c *Cache) reset() {
	c.n, c.tokens = 0, c.tokens[:0]
	for i := range c.layers {
		c.layers[i].off = 0
	}
}

// Reserve plans room for n positions in all: a sequence whose length is
// known (prompt + max_tokens) then allocates its keys and values once, when
// its first step is stored, instead of doubling as it grows (each doubling
// leaves the old arrays to the collector, half as much again at the peak).
// Past n the cache grows as usual.
func (c *Cache) Reserve(n int) { c.want = min(n, c.max) }

// reserve makes room for positions [n, n+T) in every layer, dropping the rows
// a sliding layer's window no longer reaches.
func (c *Cache) reserve(T int) {
	for i := range c.layers {
		c.layers[i].reserve(c.n, T, c.hd, c.max, c.want)
	}
}

func (l *cacheLayer) reserve(n, T, hd, maxPos, want int) {
	end := n + T
	if end-l.off <= l.cap {
		return
	}
	keep := 0 // first position still needed
	nc := 0
	switch {
	case l.window > 0:
		keep = max(0, n-(l.window-1))
		// A window past the context is no window: never hold more than
		// the context (a config may say sliding_window 2³¹).
		nc = max(end-keep, min(l.window-1+windowSlack, max(maxPos, end)))
	case end <= want:
		nc = want
	default:
		nc = max(end, 2*l.cap, 16)
		nc = min(nc, max(maxPos, end))
	}
	rows := n - keep // rows kept, moved to the front
	from := keep - l.off
	for h := range l.k {
		k, vt := l.k[h], l.vt[h]
		if nc != l.cap {
			k, vt = make([]float32, nc*hd), make([]float32, hd*nc)
		}
		copy(k, l.k[h][from*hd:(from+rows)*hd])
		if l.cap > 0 {
			for d := 0; d < hd; d++ {
				copy(vt[d*nc:d*nc+rows], l.vt[h][d*l.cap+from:d*l.cap+from+rows])
			}
		}
		l.k[h], l.vt[h] = k, vt
	}
	l.cap, l.off = nc, keep
}

// Step is one sequence's share of a batched forward: new tokens appended to its cache.
type Step struct {
	Cache     *Cache
	Tokens    []int   // new token ids, at positions Cache.Len() onwards
	Adapter   Adapter // nil for the base model
	AllLogits bool    // logits for every new token; otherwise only for the last
	NoLogits  bool    // skip the LM head (embedding-only calls)
	Hidden    bool    // also return hidden states of every new token
	// HiddenLayer picks which hidden states: 0 is the final-norm output (the LM
	// head's input); k in [1, NumLayers] is the residual stream after k blocks.
	HiddenLayer int
	// LogitsFrom, with AllLogits, skips the logits of the first LogitsFrom
	// new tokens: scoring a continuation needs none over its prompt, and the
	// LM head is a fifth of a small model's work per token.
	LogitsFrom int
}

// Output is what Forward returns for one Step.
type Output struct {
	Logits []float32 // [len(Tokens) − LogitsFrom or 1, V]
	Hidden []float32 // [len(Tokens), H] when Step.Hidden
}

// Forward runs one pass over a batch: every step's tokens go through the blocks
// together (one GEMM per projection over all rows), attention runs per sequence
// against its own cache, and each sequence's adapter sees only its rows.
// The outputs are freshly allocated and belong to the caller; ForwardInto
// reuses the caller's buffers instead.
func (m *Model) Forward(steps []Step) ([]Output, error) {
	out := make([]Output, len(steps))
	if err := m.ForwardInto(steps, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ForwardInto is Forward writing into out (len(out) ≥ len(steps)): each
// out[i].Logits and out[i].Hidden is reused when its capacity suffices and
// replaced by a new slice otherwise, so a caller that keeps out between decode
// steps allocates nothing in steady state. The buffers stay the caller's: the
// model keeps no reference to them after ForwardInto returns, and its own
// scratch (a pooled workspace) is never handed out, so concurrent calls are
// safe as long as they use different out slices and different caches.
func (m *Model) ForwardInto(steps []Step, out []Output) error {
	cfg := &m.Config
	H, I, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	qd, kvd := cfg.NumHeads*hd, cfg.NumKVHeads*hd
	ctx := cfg.ContextLength()
	if len(out) < len(steps) {
		return fmt.Errorf("%w: %d outputs for %d steps", ErrInput, len(out), len(steps))
	}

	// Validate everything before touching any cache.
	R := 0
	for i, s := range steps {
		if s.Cache == nil {
			return fmt.Errorf("%w: step %d has no cache", ErrInput, i)
		}
		if s.Cache.broken {
			return fmt.Errorf("%w: step %d: the cache was truncated past what its sliding-window layers keep", ErrInput, i)
		}
		if len(s.Cache.layers) != cfg.NumLayers || s.Cache.hd != hd {
			return fmt.Errorf("%w: step %d has a cache of another model", ErrInput, i)
		}
		if len(s.Tokens) == 0 {
			return fmt.Errorf("%w: step %d has no tokens", ErrInput, i)
		}
		if s.LogitsFrom != 0 && (!s.AllLogits || s.LogitsFrom < 0 || s.LogitsFrom >= len(s.Tokens)) {
			return fmt.Errorf("%w: step %d: LogitsFrom %d needs AllLogits and must be in [0, %d)", ErrInput, i, s.LogitsFrom, len(s.Tokens))
		}
		if n := s.Cache.n + len(s.Tokens); n > ctx {
			return fmt.Errorf("%w: %d positions, the model allows %d", ErrContext, n, ctx)
		}
		if s.HiddenLayer < 0 || s.HiddenLayer > cfg.NumLayers {
			return fmt.Errorf("%w: hidden layer %d outside [0, %d]", ErrInput, s.HiddenLayer, cfg.NumLayers)
		}
		for _, t := range s.Tokens {
			if t < 0 || t >= cfg.VocabSize {
				return fmt.Errorf("%w: token id %d outside vocabulary [0, %d)", ErrInput, t, cfg.VocabSize)
			}
		}
		R += len(s.Tokens)
	}
	steps, skip := m.longropeSteps(steps)
	R = 0
	for _, s := range steps {
		s.Cache.reserve(len(s.Tokens))
		R += len(s.Tokens)
	}

	ws := m.getWorkspace(R, len(steps))
	defer m.putWorkspace(ws)
	ws.steps = steps
	rowStart := ws.rowStart[:len(steps)+1]
	R = 0
	for i, s := range steps {
		rowStart[i] = R
		R += len(s.Tokens)
		if s.Adapter != nil {
			ws.adapted = append(ws.adapted, i)
		}
		out[i].Logits, out[i].Hidden = out[i].Logits[:0], out[i].Hidden[:0]
	}
	rowStart[len(steps)] = R
	// first[i]: the first row of step i whose outputs the caller asked for
	// (rows before it recompute a longrope prefix).
	first := func(i int) int {
		if skip == nil {
			return rowStart[i]
		}
		return rowStart[i] + skip[i]
	}

	x := ws.x[:R*H] // residual stream [R, H]
	for i, s := range steps {
		for t, id := range s.Tokens {
			row := x[(rowStart[i]+t)*H : (rowStart[i]+t+1)*H]
			m.embedRow(row, id)
			if cfg.EmbedScale != 0 {
				kernels.Scale(row, cfg.EmbedScale)
			}
		}
	}
	xn := ws.xn[:R*H]
	q, k, v := ws.q[:R*qd], ws.k[:R*kvd], ws.v[:R*kvd]
	att, proj := ws.att[:R*qd], ws.proj[:R*H]
	gate, up := ws.gate[:R*I], ws.up[:R*I]
	rmsRows := func(dst, src, w []float32, d int) {
		for r := 0; r*d < len(src); r++ {
			kernels.RMSNorm(dst[r*d:(r+1)*d], src[r*d:(r+1)*d], w, cfg.RMSNormEps)
		}
	}

	for li := range m.layers {
		l := &m.layers[li]
		rmsRows(xn, x, l.attnNorm, H)
		// q, k and v in one parallel job (one synchronisation, not three).
		ws.prods[0] = l.q.product(q, xn, R, qd, H)
		ws.prods[1] = l.k.product(k, xn, R, kvd, H)
		ws.prods[2] = l.v.product(v, xn, R, kvd, H)
		ws.ops[0] = adaptOp{ProjQ, xn, q, H, qd}
		ws.ops[1] = adaptOp{ProjK, xn, k, H, kvd}
		ws.ops[2] = adaptOp{ProjV, xn, v, H, kvd}
		parted := ws.products(li, 3, ws.prods[:3])
		l.q.reorder(q, qd)
		l.k.reorder(k, kvd)
		l.v.reorder(v, kvd)
		addBias(q, l.bias[ProjQ])
		addBias(k, l.bias[ProjK])
		addBias(v, l.bias[ProjV])
		ws.adapt(li, 3, parted)
		if l.qNorm != nil {
			rmsRows(q, q, l.qNorm, hd)
			rmsRows(k, k, l.kNorm, hd)
		}
		m.rope(li, steps, rowStart, q, k)
		m.storeKV(li, steps, rowStart, k, v)
		m.attention(ws, li, q, att)
		ws.linear(li, ProjO, proj, att, l.o, l.bias[ProjO], H, qd)
		if l.postAttn != nil {
			rmsRows(proj, proj, l.postAttn, H)
		}
		kernels.Add(x, proj)

		rmsRows(xn, x, l.mlpNorm, H)
		gp, upp := l.gate.product(gate, xn, R, I, H), l.up.product(up, xn, R, I, H)
		if !cfg.GeGLU && !cfg.MLPBias && len(ws.adapted) == 0 {
			// SiLU·mul applied block by block inside the GEMM job, while
			// each block of gate and up is still in cache (neither is
			// ever stored permuted: only Llama q/k are).
			kernels.SwiGLU(gp, upp)
		} else {
			// Biases and adapters add to gate and up before the activation.
			ws.prods[0], ws.prods[1] = gp, upp
			ws.ops[0] = adaptOp{ProjGate, xn, gate, H, I}
			ws.ops[1] = adaptOp{ProjUp, xn, up, H, I}
			parted := ws.products(li, 2, ws.prods[:2])
			l.gate.reorder(gate, I)
			l.up.reorder(up, I)
			addBias(gate, l.bias[ProjGate])
			addBias(up, l.bias[ProjUp])
			ws.adapt(li, 2, parted)
			if cfg.GeGLU {
				geluTanhMul(gate, up)
			} else {
				kernels.SiLUMul(gate, up)
			}
		}
		ws.linear(li, ProjDown, proj, gate, l.down, l.bias[ProjDown], H, I)
		if l.postMLP != nil {
			rmsRows(proj, proj, l.postMLP, H)
		}
		kernels.Add(x, proj)
		for i, s := range steps {
			if s.Hidden && s.HiddenLayer == li+1 {
				out[i].Hidden = append(out[i].Hidden, x[first(i)*H:rowStart[i+1]*H]...)
			}
		}
	}
	for _, s := range steps {
		c := s.Cache
		if c.longrope {
			c.tokens = append(c.tokens, s.Tokens...)
		}
		c.n += len(s.Tokens)
	}

	// Final norm and LM head only on the rows someone asked for.
	sel := ws.sel[:0] // rows of x that get logits
	for i, s := range steps {
		r0, r1 := first(i), rowStart[i+1]
		if s.Hidden && s.HiddenLayer == 0 {
			h := grow(out[i].Hidden, (r1-r0)*H)
			for r := r0; r < r1; r++ {
				kernels.RMSNorm(h[(r-r0)*H:(r-r0+1)*H], x[r*H:(r+1)*H], m.norm, cfg.RMSNormEps)
			}
			out[i].Hidden = h
		}
		switch {
		case s.NoLogits:
		case s.AllLogits:
			for r := r0 + s.LogitsFrom; r < r1; r++ {
				sel = append(sel, r)
			}
		default:
			sel = append(sel, r1-1)
		}
	}
	ws.sel = sel
	if len(sel) > 0 {
		V := cfg.VocabSize
		hn := ws.growHN(len(sel) * H)
		for j, r := range sel {
			kernels.RMSNorm(hn[j*H:(j+1)*H], x[r*H:(r+1)*H], m.norm, cfg.RMSNormEps)
		}
		// Steps with one logits row each (decode) and a lone step can take
		// their rows straight from one GEMM into a contiguous caller buffer
		// only by luck, so the GEMM writes the workspace and rows are copied
		// out (a few hundred KB against the LM head's tens of MB).
		logits := ws.growLogits(len(sel) * V)
		m.lmHead.matmul(logits, hn, len(sel), V, H)
		if cfg.FinalSoftcap > 0 {
			softcapRows(logits, float32(cfg.FinalSoftcap))
		}
		j := 0
		for i, s := range steps {
			n := 0
			switch {
			case s.NoLogits:
			case s.AllLogits:
				n = rowStart[i+1] - first(i) - s.LogitsFrom
			default:
				n = 1
			}
			if n > 0 {
				out[i].Logits = append(out[i].Logits, logits[j*V:(j+n)*V]...)
			}
			j += n
		}
	}
	return nil
}

// longropeSteps decides, for the steps of a longrope model, which factors
// each sequence uses. A fresh cache picks them from its first step's length
// (or NewCacheFor's plan); a cache on the short factors whose sequence now
// grows past the original context is emptied and its step recomputes the
// whole sequence with the long ones, as transformers does. skip[i] is then
// how many leading rows of step i only rebuild that prefix (nil when none).
func (m *Model) longropeSteps(steps []Step) ([]Step, []int) {
	if m.Config.Rope.Type != "longrope" {
		return steps, nil
	}
	var skip []int
	for i, s := range steps {
		c := s.Cache
		end := c.n + len(s.Tokens)
		switch {
		case c.planned:
			continue
		case c.n == 0:
			c.long = m.Config.LongRope(end)
			continue
		case c.long || !m.Config.LongRope(end):
			continue
		}
		if skip == nil {
			steps = slices.Clone(steps)
			skip = make([]int, len(steps))
		}
		prefix := slices.Clone(c.tokens[:c.n])
		skip[i] = len(prefix)
		c.reset()
		c.long = true
		steps[i].Tokens = append(prefix, s.Tokens...)
	}
	return steps, skip
}

// softcapRows replaces every x by c·tanh(x/c).
func softcapRows(x []float32, c float32) {
	kernels.ParallelWork(len(x)/1024+1, len(x)*20, func(lo, hi int) {
		for i := lo * 1024; i < min(len(x), hi*1024); i++ {
			x[i] = c * float32(math.Tanh(float64(x[i]/c)))
		}
	})
}

// geluTanhMul computes gate = gelu_tanh(gate) ⊙ up, the GeGLU activation, with
// gelu_tanh(x) = x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
//
//	gate, up: [n]
func geluTanhMul(gate, up []float32) {
	kernels.ParallelWork(len(gate)/1024+1, len(gate)*20, func(lo, hi int) {
		for i := lo * 1024; i < min(len(gate), hi*1024); i++ {
			gate[i] = GELUTanh(gate[i]) * up[i]
		}
	})
}

// GELUTanh is the tanh approximation of GELU (PyTorch's approximate="tanh").
func GELUTanh(x float32) float32 {
	v := float64(x)
	return float32(0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v))))
}

// grow returns b resized to n elements, reusing its memory when it can.
func grow(b []float32, n int) []float32 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]float32, n)
}

// embedRow copies token id's embedding into dst: [H].
func (m *Model) embedRow(dst []float32, id int) { m.embed.row(dst, id) }

// workspace is one Forward call's scratch, pooled per model and grown to the
// largest batch it has seen, so that steady-state decode allocates nothing.
// The closures handed to the kernel pool are made once, here.
type workspace struct {
	m                   *Model
	rows                int // capacity in token rows
	x, xn, q, k, v, att []float32
	proj, gate, up      []float32
	hn, logits          []float32
	rowStart            []int
	adapted, sel        []int
	items               []attnItem
	steps               []Step
	attnFn, adapterFn   func(lo, hi int)
	partFn              func(lo, hi int)
	li                  int        // the adapters' layer
	ops                 [3]adaptOp // and projections
	parted              PartedAdapter
	opParts, opOff      [3]int    // each op's parts and their first offset in partBuf (adaptParted)
	partBuf             []float32 // each part's delta, op by op
	attnLi              int
	attnQ, attnOut      []float32
	prods               [3]kernels.Product // one grouped GEMM's operands
}

type attnItem struct{ seq, head, t0, t1 int }

// Pooled workspaces keep at most this many rows of activations and of
// logits; larger ones (long prefills) are left to the collector after use.
const (
	poolRowsMax   = 512
	poolLogitsMax = 64
	poolMax       = 8 // workspaces kept per model
)

func (m *Model) getWorkspace(rows, steps int) *workspace {
	var ws *workspace
	m.wsMu.Lock()
	if n := len(m.wsFree); n > 0 {
		ws = m.wsFree[n-1]
		m.wsFree = m.wsFree[:n-1]
	}
	m.wsMu.Unlock()
	if ws == nil {
		ws = &workspace{m: m}
		ws.attnFn = ws.attentionRange
		ws.adapterFn = ws.adapterRange
		ws.partFn = ws.partRange
	}
	if rows > ws.rows {
		c := &m.Config
		H, I := c.HiddenSize, c.IntermediateSize
		qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
		ws.rows = rows
		ws.x, ws.xn, ws.proj = make([]float32, rows*H), make([]float32, rows*H), make([]float32, rows*H)
		ws.q, ws.att = make([]float32, rows*qd), make([]float32, rows*qd)
		ws.k, ws.v = make([]float32, rows*kvd), make([]float32, rows*kvd)
		ws.gate, ws.up = make([]float32, rows*I), make([]float32, rows*I)
	}
	if cap(ws.rowStart) < steps+1 {
		ws.rowStart = make([]int, steps+1)
	}
	ws.rowStart = ws.rowStart[:steps+1]
	ws.adapted, ws.sel, ws.items = ws.adapted[:0], ws.sel[:0], ws.items[:0]
	return ws
}

// putWorkspace drops the references to the caller's data and pools ws.
func (m *Model) putWorkspace(ws *workspace) {
	ws.steps, ws.attnQ, ws.attnOut = nil, nil, nil
	ws.ops, ws.prods = [3]adaptOp{}, [3]kernels.Product{}
	if ws.rows > poolRowsMax {
		return
	}
	if len(ws.logits) > poolLogitsMax*m.Config.VocabSize {
		ws.logits = nil
	}
	m.wsMu.Lock()
	if len(m.wsFree) < poolMax {
		m.wsFree = append(m.wsFree, ws)
	}
	m.wsMu.Unlock()
}

func (ws *workspace) growHN(n int) []float32 {
	ws.hn = grow(ws.hn, n)
	return ws.hn
}

func (ws *workspace) growLogits(n int) []float32 {
	ws.logits = grow(ws.logits, n)
	return ws.logits
}

// linear runs y = in·Wᵀ (+b) over all rows, then each sequence's adapter on
// its rows.
func (ws *workspace) linear(li int, p Proj, y, in []float32, w matrix, b []float32, nOut, nIn int) {
	R := len(in) / nIn
	ws.ops[0] = adaptOp{p, in, y, nIn, nOut}
	parted := false
	if len(ws.adapted) > 0 {
		ws.prods[0] = w.product(y, in, R, nOut, nIn)
		parted = ws.products(li, 1, ws.prods[:1])
		w.reorder(y[:R*nOut], nOut)
	} else {
		w.matmul(y, in, R, nOut, nIn)
	}
	addBias(y, b)
	ws.adapt(li, 1, parted)
}

// addBias adds b to every row of y (nothing when b is nil).
//
//	y: [R, len(b)]
func addBias(y, b []float32) {
	if b == nil {
		return
	}
	for r := 0; r+len(b) <= len(y); r += len(b) {
		kernels.Add(y[r:r+len(b)], b)
	}
}

// adaptOp is one projection's operands for the adapters: y += Δ(in).
//
//	in: [R, nIn], y: [R, nOut]
type adaptOp struct {
	p         Proj
	in, y     []float32
	nIn, nOut int
}

// products runs prods, the base products of ws.ops[:n], and, in the same
// parallel job, the delta parts of the lone adapted sequence when it
// decodes with a PartedAdapter on several threads: each part into its own
// zeroed buffer (they read the ops' inputs, never prods' outputs). It
// reports whether it ran the parts, which adapt then adds.
func (ws *workspace) products(li, n int, prods []kernels.Product) bool {
	items := ws.prepParts(li, n)
	kernels.MatMulTGroupAnd(items, ws.partFn, prods...)
	return items > 0
}

// prepParts sets up the delta parts of ws.ops[:n] for products and returns
// how many there are: 0 (nothing set up) unless one adapted sequence of at
// most partedRows rows has a PartedAdapter with two parts or more and the
// kernels run on several threads.
func (ws *workspace) prepParts(li, n int) int {
	if len(ws.adapted) != 1 || kernels.Threads() == 1 {
		return 0
	}
	i := ws.adapted[0]
	rows := ws.rowStart[i+1] - ws.rowStart[i]
	pa, ok := ws.steps[i].Adapter.(PartedAdapter)
	if !ok || rows > partedRows {
		return 0
	}
	items, size := 0, 0
	for o := range n {
		ws.opParts[o] = pa.DeltaParts(li, ws.ops[o].p, rows)
		ws.opOff[o] = size
		items += ws.opParts[o]
		size += ws.opParts[o] * rows * ws.ops[o].nOut
	}
	if items <= 1 {
		return 0
	}
	if cap(ws.partBuf) < size {
		ws.partBuf = make([]float32, size)
	}
	ws.partBuf = ws.partBuf[:size]
	clear(ws.partBuf)
	ws.li, ws.parted = li, pa
	return items
}

// adapt adds each sequence's adapter delta to its rows of ws.ops[:n]:
// the parts products ran (parted), in order, or the deltas themselves.
// Every (projection, sequence) pair writes its own rows of its own output,
// so with several sequences all pairs run as one parallel job.
func (ws *workspace) adapt(li, n int, parted bool) {
	switch {
	case parted:
		ws.parted = nil
		i := ws.adapted[0]
		r0, rows := ws.rowStart[i], ws.rowStart[i+1]-ws.rowStart[i]
		for o := range n {
			op := &ws.ops[o]
			y := op.y[r0*op.nOut : (r0+rows)*op.nOut]
			for k := range ws.opParts[o] {
				off := ws.opOff[o] + k*len(y)
				kernels.Add(y, ws.partBuf[off:off+len(y)])
			}
		}
	case len(ws.adapted) == 0:
	case len(ws.adapted) == 1:
		// One sequence in one part (or one thread): a few small GEMVs;
		// a dispatch costs more than they do.
		ws.li = li
		ws.adapterRange(0, n)
	default:
		ws.li = li
		kernels.Parallel(n*len(ws.adapted), ws.adapterFn)
	}
}

// partedRows is the most rows of a lone adapted sequence whose deltas are
// computed in parts (decode; a prefill's are GEMMs that spread over the
// threads themselves).
const partedRows = 4

// partRange computes items [lo, hi) of the delta parts: the parts of op 0,
// then op 1's, and so on.
func (ws *workspace) partRange(lo, hi int) {
	i := ws.adapted[0]
	r0, r1 := ws.rowStart[i], ws.rowStart[i+1]
	rows := r1 - r0
	for it := lo; it < hi; it++ {
		o, k := 0, it
		for k >= ws.opParts[o] {
			k, o = k-ws.opParts[o], o+1
		}
		op := &ws.ops[o]
		off := ws.opOff[o] + k*rows*op.nOut
		ws.parted.AddDeltaPart(ws.li, op.p, op.in[r0*op.nIn:r1*op.nIn], ws.partBuf[off:off+rows*op.nOut], rows, k)
	}
}

func (ws *workspace) adapterRange(lo, hi int) {
	na := len(ws.adapted)
	for it := lo; it < hi; it++ {
		op, i := &ws.ops[it/na], ws.adapted[it%na]
		r0, r1 := ws.rowStart[i], ws.rowStart[i+1]
		ws.steps[i].Adapter.AddDelta(ws.li, op.p, op.in[r0*op.nIn:r1*op.nIn], op.y[r0*op.nOut:r1*op.nOut], r1-r0)
	}
}

// rope rotates every query and key head of layer li at its absolute
// position: the first Rotary() dims of each head, with the layer's table.
//
//	q: [R, NumHeads*HeadDim], k: [R, NumKVHeads*HeadDim]
func (m *Model) rope(li int, steps []Step, rowStart []int, q, k []float32) {
	hd, rot := m.Config.HeadDim, m.Config.Rotary()
	half := rot / 2
	nh, nkv := m.Config.NumHeads, m.Config.NumKVHeads
	for i, s := range steps {
		tab := m.ropeFor(m.Config.ropeKind(li, s.Cache.long), s.Cache.n+len(s.Tokens))
		for t := range s.Tokens {
			r, pos := rowStart[i]+t, s.Cache.n+t
			cos, sin := tab.cos[pos*half:(pos+1)*half], tab.sin[pos*half:(pos+1)*half]
			for h := 0; h < nh; h++ {
				kernels.RoPE(q[(r*nh+h)*hd:(r*nh+h)*hd+rot], cos, sin)
			}
			for h := 0; h < nkv; h++ {
				kernels.RoPE(k[(r*nkv+h)*hd:(r*nkv+h)*hd+rot], cos, sin)
			}
		}
	}
}

// storeKV appends the new keys and values to each sequence's cache.
func (m *Model) storeKV(li int, steps []Step, rowStart []int, k, v []float32) {
	hd, nkv := m.Config.HeadDim, m.Config.NumKVHeads
	ld := nkv * hd
	for i, s := range steps {
		c := &s.Cache.layers[li]
		r0, n := rowStart[i], len(s.Tokens)
		at := s.Cache.n - c.off // row of the first new position
		for h := 0; h < nkv; h++ {
			for t := 0; t < n; t++ {
				row := at + t
				copy(c.k[h][row*hd:(row+1)*hd], k[(r0+t)*ld+h*hd:(r0+t)*ld+(h+1)*hd])
			}
			// Vᵀ row by row, so the writes run along each row of the cache.
			vt := c.vt[h]
			for d := 0; d < hd; d++ {
				row := vt[d*c.cap+at : d*c.cap+at+n]
				for t := range row {
					row[t] = v[(r0+t)*ld+h*hd+d]
				}
			}
		}
	}
}

// attentionBlock is how many query rows one attention work item takes, which
// bounds its score matrix to attentionBlock × context.
const attentionBlock = 64

// attention computes causal grouped-query attention for every new token against
// its sequence's cache (which already holds the new keys and values): per
// (sequence, head, block of rows), S = (Q·scale)·Kᵀ over the keys the block
// can see (its window on a sliding layer), soft-capped where the family
// does, a masked softmax, then S·V.
//
//	q: [R, NumHeads*HeadDim], out: [R, NumHeads*HeadDim]
func (m *Model) attention(ws *workspace, li int, q, out []float32) {
	nh := m.Config.NumHeads
	items := ws.items[:0]
	work := 0 // multiply-adds: Q·Kᵀ and S·V per head
	for i, s := range ws.steps {
		w := s.Cache.layers[li].window
		for h := 0; h < nh; h++ {
			for t0 := 0; t0 < len(s.Tokens); t0 += attentionBlock {
				t1 := min(len(s.Tokens), t0+attentionBlock)
				items = append(items, attnItem{i, h, t0, t1})
				nk := s.Cache.n + t1
				if w > 0 {
					nk = min(nk, t1-t0+w-1)
				}
				work += 2 * (t1 - t0) * nk * m.Config.HeadDim
			}
		}
	}
	ws.items = items
	ws.attnLi, ws.attnQ, ws.attnOut = li, q, out
	// The scale goes into q (R·qd values) rather than into every score (R·heads·keys).
	kernels.Scale(q, float32(m.Config.AttnScale()))
	kernels.ParallelWork(len(items), work, ws.attnFn)
}

// scoreFree recycles per-thread attention score buffers (a channel, not a
// sync.Pool: pool workers on other Ps must find what the caller put back).
var scoreFree = make(chan *[]float32, 64)

func (ws *workspace) attentionRange(lo, hi int) {
	m, li, q, out := ws.m, ws.attnLi, ws.attnQ, ws.attnOut
	hd, nh := m.Config.HeadDim, m.Config.NumHeads
	group := nh / m.Config.NumKVHeads
	ld := nh * hd
	softcap := float32(m.Config.AttnSoftcap)
	var bp *[]float32
	select {
	case bp = <-scoreFree:
	default:
		bp = new([]float32)
	}
	for _, it := range ws.items[lo:hi] {
		c := ws.steps[it.seq].Cache
		cl := &c.layers[li]
		// Query position p sees keys (p − window, p]; the block's keys are
		// the union over its rows, [k0, k1).
		p0 := c.n + it.t0
		k0, k1 := 0, c.n+it.t1
		if cl.window > 0 {
			k0 = max(0, p0-cl.window+1)
		}
		K, Vt := cl.k[it.head/group][(k0-cl.off)*hd:], cl.vt[it.head/group][k0-cl.off:]
		rows, nk := it.t1-it.t0, k1-k0
		if cap(*bp) < rows*nk {
			// Grown geometrically: a decode step sees one more key than the
			// last, and an exact fit would reallocate on every step.
			*bp = make([]float32, rows*nk, max(rows*nk, 2*cap(*bp)))
		}
		S := (*bp)[:rows*nk] // [rows, nk]
		r0 := ws.rowStart[it.seq] + it.t0
		kernels.MatMulTStrided(S, nk, q[r0*ld+it.head*hd:], ld, K, hd, rows, nk, hd)
		for t := 0; t < rows; t++ {
			p := p0 + t
			a, b := 0, p+1-k0 // visible keys of this row: S columns [a, b)
			if cl.window > 0 {
				a = max(0, p-cl.window+1-k0)
			}
			row := S[t*nk : (t+1)*nk]
			if softcap > 0 {
				for j := a; j < b; j++ {
					row[j] = softcap * float32(math.Tanh(float64(row[j]/softcap)))
				}
			}
			kernels.Softmax(row[a:b])
			clear(row[:a])
			clear(row[b:])
		}
		kernels.MatMulTStrided(out[r0*ld+it.head*hd:], ld, S, nk, Vt, cl.cap, rows, hd, nk)
	}
	if cap(*bp) > 1<<20 { // a long prefill's: do not keep
		*bp = nil
	}
	select {
	case scoreFree <- bp:
	default:
	}
}
