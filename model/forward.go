package model

import (
	"fmt"
	"math"

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

// Cache is one sequence's key/value cache. Keys are stored [pos, HeadDim] and
// values transposed, [HeadDim, pos], so that both attention products are GEMMs
// over contiguous rows.
type Cache struct {
	k, vt [][][]float32 // [layer][kvHead] → k: [cap, HeadDim], vt: [HeadDim, cap]
	n     int           // positions filled
	cap   int
	hd    int
	max   int
}

// NewCache returns an empty KV cache for one sequence.
func (m *Model) NewCache() *Cache {
	c := &Cache{hd: m.Config.HeadDim, max: m.Config.ContextLength()}
	c.k = make([][][]float32, m.Config.NumLayers)
	c.vt = make([][][]float32, m.Config.NumLayers)
	for l := range c.k {
		c.k[l] = make([][]float32, m.Config.NumKVHeads)
		c.vt[l] = make([][]float32, m.Config.NumKVHeads)
	}
	return c
}

// Len is the number of positions already in the cache.
func (c *Cache) Len() int { return c.n }

// Truncate drops positions n and later, so a shared prefix can be reused.
func (c *Cache) Truncate(n int) {
	if n >= 0 && n < c.n {
		c.n = n
	}
}

// reserve grows every buffer to hold at least n positions.
func (c *Cache) reserve(n int) {
	if n <= c.cap {
		return
	}
	nc := max(n, 2*c.cap, 16)
	nc = min(nc, max(c.max, n))
	for l := range c.k {
		for h := range c.k[l] {
			k := make([]float32, nc*c.hd)
			copy(k, c.k[l][h][:c.n*c.hd])
			c.k[l][h] = k
			vt := make([]float32, c.hd*nc)
			if c.cap > 0 {
				for d := 0; d < c.hd; d++ {
					copy(vt[d*nc:d*nc+c.n], c.vt[l][h][d*c.cap:d*c.cap+c.n])
				}
			}
			c.vt[l][h] = vt
		}
	}
	c.cap = nc
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
}

// Output is what Forward returns for one Step.
type Output struct {
	Logits []float32 // [len(Tokens) or 1, V]
	Hidden []float32 // [len(Tokens), H] when Step.Hidden
}

// Forward runs one pass over a batch: every step's tokens go through the blocks
// together (one GEMM per projection over all rows), attention runs per sequence
// against its own cache, and each sequence's adapter sees only its rows.
func (m *Model) Forward(steps []Step) ([]Output, error) {
	cfg := &m.Config
	H, I, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	qd, kvd := cfg.NumHeads*hd, cfg.NumKVHeads*hd
	ctx := cfg.ContextLength()

	// Validate everything before touching any cache.
	R := 0
	rowStart := make([]int, len(steps)+1)
	for i, s := range steps {
		if s.Cache == nil {
			return nil, fmt.Errorf("%w: step %d has no cache", ErrInput, i)
		}
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("%w: step %d has no tokens", ErrInput, i)
		}
		if n := s.Cache.n + len(s.Tokens); n > ctx {
			return nil, fmt.Errorf("%w: %d positions, the model allows %d", ErrContext, n, ctx)
		}
		if s.HiddenLayer < 0 || s.HiddenLayer > cfg.NumLayers {
			return nil, fmt.Errorf("%w: hidden layer %d outside [0, %d]", ErrInput, s.HiddenLayer, cfg.NumLayers)
		}
		for _, t := range s.Tokens {
			if t < 0 || t >= cfg.VocabSize {
				return nil, fmt.Errorf("%w: token id %d outside vocabulary [0, %d)", ErrInput, t, cfg.VocabSize)
			}
		}
		rowStart[i] = R
		R += len(s.Tokens)
	}
	rowStart[len(steps)] = R
	for _, s := range steps {
		s.Cache.reserve(s.Cache.n + len(s.Tokens))
	}

	out := make([]Output, len(steps))
	x := make([]float32, R*H) // residual stream [R, H]
	for i, s := range steps {
		for t, id := range s.Tokens {
			copy(x[(rowStart[i]+t)*H:], m.embed[id*H:(id+1)*H])
		}
	}
	xn := make([]float32, R*H)
	q := make([]float32, R*qd)
	k := make([]float32, R*kvd)
	v := make([]float32, R*kvd)
	att := make([]float32, R*qd)
	proj := make([]float32, R*H)
	gate := make([]float32, R*I)
	up := make([]float32, R*I)

	var adapted []int // steps that carry an adapter
	for i, s := range steps {
		if s.Adapter != nil {
			adapted = append(adapted, i)
		}
	}
	// linear runs y = x·Wᵀ (+b) over all rows, then each sequence's adapter on its rows.
	linear := func(li int, p Proj, y, in, w, b []float32, nOut, nIn int) {
		kernels.MatMulT(y, in, w, R, nOut, nIn)
		if b != nil {
			for r := 0; r < R; r++ {
				kernels.Add(y[r*nOut:(r+1)*nOut], b)
			}
		}
		// Sequences own disjoint rows of y, so their adapters run in parallel.
		kernels.Parallel(len(adapted), func(lo, hi int) {
			for _, i := range adapted[lo:hi] {
				r0, r1 := rowStart[i], rowStart[i+1]
				steps[i].Adapter.AddDelta(li, p, in[r0*nIn:r1*nIn], y[r0*nOut:r1*nOut], r1-r0)
			}
		})
	}

	for li := range m.layers {
		l := &m.layers[li]
		for r := 0; r < R; r++ {
			kernels.RMSNorm(xn[r*H:(r+1)*H], x[r*H:(r+1)*H], l.attnNorm, cfg.RMSNormEps)
		}
		linear(li, ProjQ, q, xn, l.q, l.qb, qd, H)
		linear(li, ProjK, k, xn, l.k, l.kb, kvd, H)
		linear(li, ProjV, v, xn, l.v, l.vb, kvd, H)
		m.rope(steps, rowStart, q, k)
		m.storeKV(li, steps, rowStart, k, v)
		m.attention(li, steps, rowStart, q, att)
		linear(li, ProjO, proj, att, l.o, nil, H, qd)
		kernels.Add(x, proj)

		for r := 0; r < R; r++ {
			kernels.RMSNorm(xn[r*H:(r+1)*H], x[r*H:(r+1)*H], l.mlpNorm, cfg.RMSNormEps)
		}
		linear(li, ProjGate, gate, xn, l.gate, nil, I, H)
		linear(li, ProjUp, up, xn, l.up, nil, I, H)
		kernels.SiLUMul(gate, up)
		linear(li, ProjDown, proj, gate, l.down, nil, H, I)
		kernels.Add(x, proj)
		for i, s := range steps {
			if s.Hidden && s.HiddenLayer == li+1 {
				out[i].Hidden = append([]float32(nil), x[rowStart[i]*H:rowStart[i+1]*H]...)
			}
		}
	}
	for _, s := range steps {
		s.Cache.n += len(s.Tokens)
	}

	// Final norm and LM head only on the rows someone asked for.
	var sel []int // rows of x that get logits
	for i, s := range steps {
		r0, r1 := rowStart[i], rowStart[i+1]
		if s.Hidden && s.HiddenLayer == 0 {
			h := make([]float32, (r1-r0)*H)
			for r := r0; r < r1; r++ {
				kernels.RMSNorm(h[(r-r0)*H:(r-r0+1)*H], x[r*H:(r+1)*H], m.norm, cfg.RMSNormEps)
			}
			out[i].Hidden = h
		}
		switch {
		case s.NoLogits:
		case s.AllLogits:
			for r := r0; r < r1; r++ {
				sel = append(sel, r)
			}
		default:
			sel = append(sel, r1-1)
		}
	}
	if len(sel) > 0 {
		hn := make([]float32, len(sel)*H)
		for j, r := range sel {
			kernels.RMSNorm(hn[j*H:(j+1)*H], x[r*H:(r+1)*H], m.norm, cfg.RMSNormEps)
		}
		V := cfg.VocabSize
		logits := make([]float32, len(sel)*V)
		kernels.MatMulT(logits, hn, m.lmHead, len(sel), V, H)
		j := 0
		for i, s := range steps {
			n := 0
			switch {
			case s.NoLogits:
			case s.AllLogits:
				n = len(s.Tokens)
			default:
				n = 1
			}
			out[i].Logits = logits[j*V : (j+n)*V : (j+n)*V]
			j += n
		}
	}
	return out, nil
}

// rope rotates every query and key head at its absolute position.
//
//	q: [R, NumHeads*HeadDim], k: [R, NumKVHeads*HeadDim]
func (m *Model) rope(steps []Step, rowStart []int, q, k []float32) {
	hd, half := m.Config.HeadDim, m.Config.HeadDim/2
	nh, nkv := m.Config.NumHeads, m.Config.NumKVHeads
	need := 0
	for _, s := range steps {
		need = max(need, s.Cache.n+len(s.Tokens))
	}
	tab := m.ropeFor(need)
	for i, s := range steps {
		for t := range s.Tokens {
			r, pos := rowStart[i]+t, s.Cache.n+t
			cos, sin := tab.cos[pos*half:(pos+1)*half], tab.sin[pos*half:(pos+1)*half]
			for h := 0; h < nh; h++ {
				kernels.RoPE(q[(r*nh+h)*hd:(r*nh+h+1)*hd], cos, sin)
			}
			for h := 0; h < nkv; h++ {
				kernels.RoPE(k[(r*nkv+h)*hd:(r*nkv+h+1)*hd], cos, sin)
			}
		}
	}
}

// storeKV appends the new keys and values to each sequence's cache.
func (m *Model) storeKV(li int, steps []Step, rowStart []int, k, v []float32) {
	hd, nkv := m.Config.HeadDim, m.Config.NumKVHeads
	for i, s := range steps {
		c := s.Cache
		for t := range s.Tokens {
			r, pos := rowStart[i]+t, c.n+t
			for h := 0; h < nkv; h++ {
				copy(c.k[li][h][pos*hd:(pos+1)*hd], k[(r*nkv+h)*hd:(r*nkv+h+1)*hd])
				vt := c.vt[li][h]
				for d, x := range v[(r*nkv+h)*hd : (r*nkv+h+1)*hd] {
					vt[d*c.cap+pos] = x
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
// (sequence, head, block of rows), S = Q·Kᵀ, a masked softmax, then S·V.
//
//	q: [R, NumHeads*HeadDim], out: [R, NumHeads*HeadDim]
func (m *Model) attention(li int, steps []Step, rowStart []int, q, out []float32) {
	hd, nh := m.Config.HeadDim, m.Config.NumHeads
	group := nh / m.Config.NumKVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	ld := nh * hd
	type item struct{ seq, head, t0, t1 int }
	var items []item
	for i, s := range steps {
		for h := 0; h < nh; h++ {
			for t0 := 0; t0 < len(s.Tokens); t0 += attentionBlock {
				items = append(items, item{i, h, t0, min(len(s.Tokens), t0+attentionBlock)})
			}
		}
	}
	kernels.Parallel(len(items), func(lo, hi int) {
		var buf []float32
		for _, it := range items[lo:hi] {
			c := steps[it.seq].Cache
			K, Vt := c.k[li][it.head/group], c.vt[li][it.head/group]
			rows, nk := it.t1-it.t0, c.n+it.t1 // keys visible to the block's last row
			if cap(buf) < rows*nk {
				buf = make([]float32, rows*nk)
			}
			S := buf[:rows*nk] // [rows, nk]
			r0 := rowStart[it.seq] + it.t0
			kernels.MatMulTStrided(S, nk, q[r0*ld+it.head*hd:], ld, K, hd, rows, nk, hd)
			for t := 0; t < rows; t++ {
				valid := c.n + it.t0 + t + 1
				row := S[t*nk : t*nk+valid]
				for j := range row {
					row[j] *= scale
				}
				kernels.Softmax(row)
				clear(S[t*nk+valid : (t+1)*nk])
			}
			kernels.MatMulTStrided(out[r0*ld+it.head*hd:], ld, S, nk, Vt, c.cap, rows, hd, nk)
		}
	})
}
