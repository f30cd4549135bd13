package retriever

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"roe/kernels"
)

// Normalization says how stored rows and queries are normalised before the inner product.
type Normalization string

const (
	// CenterL2 subtracts the library mean from rows and queries, then L2-normalises them
	// (the default: a causal LM's raw states share a large common direction).
	CenterL2 Normalization = "center-l2"
	// L2 L2-normalises rows and queries (cosine similarity).
	L2 Normalization = "l2"
	// Raw uses the vectors as given (the paper's raw inner product).
	Raw Normalization = "raw"
)

// valid reports whether n is a known normalization.
func (n Normalization) valid() bool { return n == CenterL2 || n == L2 || n == Raw }

// maxRows bounds the rows of an index (row ids are int32 during the scan).
const maxRows = math.MaxInt32

// expertRows is one expert's contiguous run of rows in the matrix.
type expertRows struct {
	name     string
	start, n int      // rows [start, start+n)
	texts    []string // [n] instance texts ("" when not given)
}

// Index holds every instance embedding of the library in one contiguous
// row-major float32 matrix and answers exact MIPS queries over it.
//
// Rows are stored raw. Normalisation is folded into the scores: with the
// normalised query q̂ (centred on the mean μ and L2-normalised under
// center-l2), score(row x) = (q̂·x − q̂·μ) · inv(x) where inv(x) = 1/‖x−μ‖, which
// equals q̂·(x−μ)/‖x−μ‖ without keeping a second, normalised copy of the matrix.
// inv is rebuilt lazily (one pass over the matrix) by the first search after
// the mean changed, so a search always reflects the current mean.
type Index struct {
	mu      sync.RWMutex
	dim     int
	norm    Normalization
	data    []float32 // [N, dim] raw rows, experts adjacent
	experts []*expertRows
	byName  map[string]*expertRows
	sum     []float64 // [dim] Σ rows, for the mean
	version uint64    // bumped by every change; guarded by mu

	// Derived state, rebuilt under prepMu by the first reader that finds it stale.
	prepMu      sync.Mutex
	prepVersion atomic.Uint64 // version the derived state was built for
	mean        []float32     // [dim] sum/N
	inv         []float32     // [N] 1/‖x−μ‖ (center-l2) or 1/‖x‖ (l2); nil for raw
}

// NewIndex returns an empty index of dim-long vectors; norm "" means CenterL2.
// An invalid dim or norm makes every later call fail with ErrDim or ErrNormalization.
func NewIndex(dim int, norm Normalization) *Index {
	if norm == "" {
		norm = CenterL2
	}
	ix := &Index{dim: dim, norm: norm, byName: map[string]*expertRows{}}
	if dim > 0 {
		ix.sum = make([]float64, dim)
	}
	ix.version = 1
	return ix
}

// Dim returns the vector length the index holds.
func (ix *Index) Dim() int { return ix.dim }

// Normalization returns the index's normalisation.
func (ix *Index) Normalization() Normalization { return ix.norm }

// check reports a misconfigured index.
func (ix *Index) check() error {
	if ix.dim < 1 {
		return fmt.Errorf("%w: index dimension %d", ErrDim, ix.dim)
	}
	if !ix.norm.valid() {
		return fmt.Errorf("%w: %q (want center-l2, l2 or raw)", ErrNormalization, ix.norm)
	}
	return nil
}

// checkVectors validates a batch of vectors: each of length dim and finite.
func (ix *Index) checkVectors(what string, vs [][]float32) error {
	for i, v := range vs {
		if len(v) != ix.dim {
			return fmt.Errorf("%w: %s %d has length %d, index dimension is %d", ErrDim, what, i, len(v), ix.dim)
		}
		bad := false
		for _, x := range v {
			bad = bad || x-x != 0 // NaN and ±Inf give NaN
		}
		if bad {
			for j, x := range v {
				if x-x != 0 {
					return fmt.Errorf("%w: %s %d element %d is %v", ErrNonFinite, what, i, j, x)
				}
			}
		}
	}
	return nil
}

// Add appends an expert's instance embeddings (embs: [S][dim]) and their texts
// (nil or [S]) to the index and updates the library mean. It fails with
// ErrExists when the expert is already indexed (use Put to replace it).
func (ix *Index) Add(expert string, embs [][]float32, texts []string) error {
	return ix.add(expert, embs, texts, false)
}

// Put is Add that atomically replaces the expert's rows when it is already indexed.
func (ix *Index) Put(expert string, embs [][]float32, texts []string) error {
	return ix.add(expert, embs, texts, true)
}

func (ix *Index) add(expert string, embs [][]float32, texts []string, replace bool) error {
	if err := ix.check(); err != nil {
		return err
	}
	if expert == "" {
		return fmt.Errorf("%w: empty expert name", ErrInput)
	}
	if len(embs) == 0 {
		return fmt.Errorf("%w: expert %q has no embeddings", ErrInput, expert)
	}
	if texts != nil && len(texts) != len(embs) {
		return fmt.Errorf("%w: expert %q has %d embeddings but %d texts", ErrInput, expert, len(embs), len(texts))
	}
	if err := ix.checkVectors("embedding", embs); err != nil {
		return fmt.Errorf("expert %q: %w", expert, err)
	}
	ts := make([]string, len(embs))
	copy(ts, texts)

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.byName[expert]; ok {
		if !replace {
			return fmt.Errorf("%w: %q", ErrExists, expert)
		}
		ix.removeLocked(expert)
	}
	start := len(ix.data) / ix.dim
	if start+len(embs) > maxRows {
		return fmt.Errorf("%w: %d rows would exceed the index limit of %d", ErrInput, start+len(embs), maxRows)
	}
	ix.grow(len(embs))
	for _, v := range embs {
		ix.data = append(ix.data, v...)
		for j, x := range v {
			ix.sum[j] += float64(x)
		}
	}
	e := &expertRows{name: expert, start: start, n: len(embs), texts: ts}
	ix.experts = append(ix.experts, e)
	ix.byName[expert] = e
	ix.version++
	return nil
}

// Reserve makes room for rows more rows without reallocating the matrix
// (a bulk load that knows its size avoids the copies of growing).
func (ix *Index) Reserve(rows int) {
	if ix.dim < 1 || rows <= 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.data = slices.Grow(ix.data, rows*ix.dim)
}

// grow makes room for rows more rows, doubling the capacity when it is short
// (copies dominate bulk loads; capacity never touched stays virtual).
func (ix *Index) grow(rows int) {
	need := len(ix.data) + rows*ix.dim
	if need <= cap(ix.data) {
		return
	}
	c := max(need, 2*cap(ix.data), 1<<16)
	d := make([]float32, len(ix.data), c)
	copy(d, ix.data)
	ix.data = d
}

// Remove deletes an expert's rows, compacting the matrix (the other rows keep
// their values and order), and updates the mean. It reports whether the expert was indexed.
func (ix *Index) Remove(expert string) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.removeLocked(expert)
}

func (ix *Index) removeLocked(expert string) bool {
	e, ok := ix.byName[expert]
	if !ok {
		return false
	}
	d := ix.dim
	lo, hi := e.start*d, (e.start+e.n)*d
	for r := lo; r < hi; r += d {
		for j, x := range ix.data[r : r+d] {
			ix.sum[j] -= float64(x)
		}
	}
	n := copy(ix.data[lo:], ix.data[hi:])
	ix.data = ix.data[:lo+n]
	// Keep the per-row scales aligned with the rows (l2's do not depend on the
	// mean and are reused; inv covers a prefix of the rows).
	if len(ix.inv) >= e.start+e.n {
		m := copy(ix.inv[e.start:], ix.inv[e.start+e.n:])
		ix.inv = ix.inv[:e.start+m]
	} else if len(ix.inv) > e.start {
		ix.inv = ix.inv[:e.start]
	}
	delete(ix.byName, expert)
	i := slices.Index(ix.experts, e)
	ix.experts = slices.Delete(ix.experts, i, i+1)
	for _, o := range ix.experts[i:] {
		o.start -= e.n
	}
	if len(ix.data) == 0 {
		clear(ix.sum) // no drift on an empty index
	}
	ix.version++
	return true
}

// Experts returns the indexed expert names, sorted.
func (ix *Index) Experts() []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	names := make([]string, 0, len(ix.experts))
	for _, e := range ix.experts {
		names = append(names, e.name)
	}
	sort.Strings(names)
	return names
}

// Len returns the number of indexed rows (instances over all experts).
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.rows()
}

func (ix *Index) rows() int {
	if ix.dim < 1 {
		return 0
	}
	return len(ix.data) / ix.dim
}

// Mean returns a copy of the mean of all rows, [dim] (nil when empty): the
// centring vector under center-l2, for the caller to persist.
func (ix *Index) Mean() []float32 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.rows() == 0 {
		return nil
	}
	return ix.meanLocked()
}

func (ix *Index) meanLocked() []float32 {
	n := float64(ix.rows())
	m := make([]float32, ix.dim)
	for j, s := range ix.sum {
		m[j] = float32(s / n)
	}
	return m
}

// prepare brings the derived state (mean, per-row scales) up to date; the
// caller holds mu for reading. One reader rebuilds, the others wait for it.
func (ix *Index) prepare() {
	if ix.prepVersion.Load() == ix.version {
		return
	}
	ix.prepMu.Lock()
	defer ix.prepMu.Unlock()
	if ix.prepVersion.Load() == ix.version {
		return
	}
	N, d := ix.rows(), ix.dim
	ix.mean = nil
	if N > 0 {
		ix.mean = ix.meanLocked()
	}
	switch ix.norm {
	case Raw:
		ix.inv = nil
	case L2:
		// Scales of old rows survive Add/Remove; only new rows need computing.
		old := len(ix.inv)
		if old > N {
			old = 0
		}
		ix.inv = slices.Grow(ix.inv[:old], N-old)[:N]
		rowScales(ix.inv, ix.data, d, old, N, nil)
	case CenterL2:
		if cap(ix.inv) < N {
			ix.inv = make([]float32, N)
		}
		ix.inv = ix.inv[:N]
		rowScales(ix.inv, ix.data, d, 0, N, ix.mean)
	}
	ix.prepVersion.Store(ix.version)
}

// rowScales sets inv[r] = 1/‖x_r − mean‖ (mean nil: 1/‖x_r‖) for rows [lo, hi),
// 0 for a zero vector, in parallel.
func rowScales(inv, data []float32, d, lo, hi int, mean []float32) {
	if hi <= lo {
		return
	}
	kernels.Parallel(hi-lo, func(a, b int) {
		tmp := make([]float32, d)
		for r := lo + a; r < lo+b; r++ {
			x := data[r*d : (r+1)*d]
			if mean != nil {
				copy(tmp, x)
				kernels.Axpy(-1, mean, tmp)
				x = tmp
			}
			ss := kernels.Dot(x, x)
			inv[r] = 0
			if ss > 0 {
				inv[r] = float32(1 / math.Sqrt(float64(ss)))
			}
		}
	})
}

// Copied returns, for each expert, the share of its instance texts that are
// also an instance text of another expert (a merge stores its components'
// instances verbatim). Experts without texts are left out.
func (ix *Index) Copied() map[string]float64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	owners := map[string]int{} // text → experts holding it
	for _, e := range ix.experts {
		seen := map[string]bool{}
		for _, t := range e.texts {
			if t != "" && !seen[t] {
				seen[t] = true
				owners[t]++
			}
		}
	}
	out := map[string]float64{}
	for _, e := range ix.experts {
		n, k := 0, 0
		for _, t := range e.texts {
			if t == "" {
				continue
			}
			n++
			if owners[t] > 1 {
				k++
			}
		}
		if n > 0 {
			out[e.name] = float64(k) / float64(n)
		}
	}
	return out
}
