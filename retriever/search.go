package retriever

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"roe/kernels"
)

// Hit is one neighbour of a query: an indexed instance and its score.
type Hit struct {
	Expert string  // the instance's expert
	Row    int     // the instance's index within its expert's rows, [0, S)
	Text   string  // the instance text given to Add ("" when none)
	Score  float32 // normalised inner product with the query
}

// Search returns, for each query (queries: [Q][dim]), its k best rows by exact
// maximum inner product after normalising queries like the rows, best first
// (hits: [Q][min(k, N)]). Equal scores go to the row added first. The matrix is
// scanned in blocks of rows, one kernels.MatMulT per block, so memory stays
// bounded for any N.
func (ix *Index) Search(queries [][]float32, k int) ([][]Hit, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want ≥ 1", ErrInput, k)
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	res, err := ix.scan(queries, k, false)
	if err != nil {
		return nil, err
	}
	return ix.hits(res.top), nil
}

// cand is a scored row during the scan.
type cand struct {
	s float32
	r int32 // global row
}

// better is the total order of results: higher score, then lower row.
func better(a, b cand) bool { return a.s > b.s || (a.s == b.s && a.r < b.r) }

// topK keeps the k best candidates in a min-heap (worst at c[0]).
type topK struct {
	k int
	c []cand
}

// push offers one candidate.
func (t *topK) push(x cand) {
	if len(t.c) < t.k {
		t.c = append(t.c, x)
		for i := len(t.c) - 1; i > 0; {
			p := (i - 1) / 2
			if !better(t.c[p], t.c[i]) {
				break
			}
			t.c[p], t.c[i] = t.c[i], t.c[p]
			i = p
		}
		return
	}
	if !better(x, t.c[0]) {
		return
	}
	t.c[0] = x
	for i, n := 0, len(t.c); ; {
		w, l, r := i, 2*i+1, 2*i+2
		if l < n && better(t.c[w], t.c[l]) {
			w = l
		}
		if r < n && better(t.c[w], t.c[r]) {
			w = r
		}
		if w == i {
			return
		}
		t.c[i], t.c[w] = t.c[w], t.c[i]
		i = w
	}
}

// threshold is the score a candidate must reach to enter (−Inf until full).
func (t *topK) threshold() float32 {
	if len(t.c) < t.k {
		return float32(math.Inf(-1))
	}
	return t.c[0].s
}

// sorted returns the candidates best first.
func (t *topK) sorted() []cand {
	sort.Slice(t.c, func(i, j int) bool { return better(t.c[i], t.c[j]) })
	return t.c
}

// scanResult is what one pass over the matrix yields.
type scanResult struct {
	top  [][]cand  // [Q][≤k] best first
	best []float32 // [Q, E] each expert's best score per query (ix.experts order), when asked
}

// blockRows picks the rows per MatMulT block: about 1 MiB of rows or 4096,
// whichever is more, and at most 512 Ki scores per block.
func blockRows(dim, q int) int {
	if testBlockRows > 0 {
		return testBlockRows
	}
	b := max(4096, (1<<18)/dim)
	b = min(b, max(256, (1<<19)/q))
	return (b + 95) / 96 * 96
}

var scorePool sync.Pool // *[]float32 score buffers

// testBlockRows, when positive, overrides blockRows (tests force many blocks).
var testBlockRows int

// scan runs the exact search; the caller holds mu for reading. With perExpert
// it also records every expert's best score for every query.
func (ix *Index) scan(queries [][]float32, k int, perExpert bool) (scanResult, error) {
	if err := ix.check(); err != nil {
		return scanResult{}, err
	}
	if err := ix.checkVectors("query", queries); err != nil {
		return scanResult{}, err
	}
	Q, d, N, E := len(queries), ix.dim, ix.rows(), len(ix.experts)
	res := scanResult{top: make([][]cand, Q)}
	if perExpert {
		res.best = make([]float32, Q*E)
		for i := range res.best {
			res.best[i] = float32(math.Inf(-1))
		}
	}
	if Q == 0 || N == 0 {
		return res, nil
	}
	ix.prepare()
	qm, off := ix.normalizeQueries(queries)
	inv := ix.inv

	global := make([]topK, Q)
	for i := range global {
		global[i].k = min(k, N)
	}
	var mu sync.Mutex
	B := blockRows(d, Q)
	nb := (N + B - 1) / B
	kernels.Parallel(nb, func(lo, hi int) {
		bp, _ := scorePool.Get().(*[]float32)
		if bp == nil || cap(*bp) < Q*B {
			s := make([]float32, Q*B)
			bp = &s
		}
		buf := (*bp)[:Q*B]
		local := make([]topK, Q)
		for i := range local {
			local[i] = topK{k: min(k, N), c: make([]cand, 0, min(k, N))}
		}
		var lbest []float32
		if perExpert {
			lbest = make([]float32, Q*E)
			for i := range lbest {
				lbest[i] = float32(math.Inf(-1))
			}
		}
		for b := lo; b < hi; b++ {
			r0 := b * B
			n := min(B, N-r0)
			sc := buf[:Q*n]
			kernels.MatMulT(sc, qm, ix.data[r0*d:(r0+n)*d], Q, n, d)
			for qi := range Q {
				row := sc[qi*n : (qi+1)*n]
				switch {
				case ix.norm == CenterL2:
					o, iv := off[qi], inv[r0:r0+n]
					for j, s := range row {
						row[j] = (s - o) * iv[j]
					}
				case ix.norm == L2:
					iv := inv[r0 : r0+n]
					for j, s := range row {
						row[j] = s * iv[j]
					}
				}
				t := &local[qi]
				thr := t.threshold()
				for j, s := range row {
					if s >= thr {
						t.push(cand{s, int32(r0 + j)})
						thr = t.threshold()
					}
				}
				if perExpert {
					ix.expertMax(lbest[qi*E:(qi+1)*E], row, r0)
				}
			}
		}
		scorePool.Put(bp)
		mu.Lock()
		for qi := range local {
			for _, c := range local[qi].c {
				global[qi].push(c)
			}
		}
		for i, v := range lbest {
			res.best[i] = max(res.best[i], v)
		}
		mu.Unlock()
	})
	for qi := range global {
		res.top[qi] = global[qi].sorted()
	}
	return res, nil
}

// expertMax folds the scores of rows [r0, r0+len(row)) into each expert's best (best: [E]).
func (ix *Index) expertMax(best, row []float32, r0 int) {
	r1 := r0 + len(row)
	e := sort.Search(len(ix.experts), func(i int) bool {
		x := ix.experts[i]
		return x.start+x.n > r0
	})
	for ; e < len(ix.experts) && ix.experts[e].start < r1; e++ {
		x := ix.experts[e]
		a, b := max(x.start, r0)-r0, min(x.start+x.n, r1)-r0
		m := best[e]
		for _, s := range row[a:b] {
			m = max(m, s)
		}
		best[e] = m
	}
}

// normalizeQueries returns the queries normalised like the rows, [Q, dim], and
// under center-l2 each normalised query's inner product with the mean, [Q].
func (ix *Index) normalizeQueries(queries [][]float32) (qm, off []float32) {
	d := ix.dim
	qm = make([]float32, len(queries)*d)
	off = make([]float32, len(queries))
	tmp := make([]float64, d)
	for i, q := range queries {
		dst := qm[i*d : (i+1)*d]
		if ix.norm == Raw {
			copy(dst, q)
			continue
		}
		var ss float64
		for j, x := range q {
			v := float64(x)
			if ix.norm == CenterL2 {
				v -= float64(ix.mean[j])
			}
			tmp[j] = v
			ss += v * v
		}
		s := 0.0
		if ss > 0 {
			s = 1 / math.Sqrt(ss)
		}
		var o float64
		for j, v := range tmp {
			dst[j] = float32(v * s)
			if ix.norm == CenterL2 {
				o += float64(dst[j]) * float64(ix.mean[j])
			}
		}
		off[i] = float32(o)
	}
	return qm, off
}

// expertAt returns the expert holding global row r; the caller holds mu.
func (ix *Index) expertAt(r int) *expertRows { return ix.experts[ix.expertIndex(r)] }

// expertIndex returns the position in ix.experts of the expert holding global row r.
func (ix *Index) expertIndex(r int) int {
	return sort.Search(len(ix.experts), func(i int) bool {
		x := ix.experts[i]
		return x.start+x.n > r
	})
}

// hits turns scan candidates into Hits; the caller holds mu.
func (ix *Index) hits(top [][]cand) [][]Hit {
	out := make([][]Hit, len(top))
	for qi, cs := range top {
		hs := make([]Hit, len(cs))
		for i, c := range cs {
			e := ix.expertAt(int(c.r))
			row := int(c.r) - e.start
			hs[i] = Hit{Expert: e.name, Row: row, Text: e.texts[row], Score: c.s}
		}
		out[qi] = hs
	}
	return out
}

// ScoreRows scores rows that are not in the index as the index scores its
// own (its normalisation, under center-l2 its current mean): for each query
// the mean of its k best rows' scores (k ≤ 1: the best; k past the rows: all
// of them), summed best first, and the best row's index; -Inf and -1 with no
// rows. A row with a non-finite value never counts.
//
//	queries: [Q][dim], rows: [N·dim]; score, arg: [Q]
func (ix *Index) ScoreRows(queries [][]float32, rows []float32, k int) (score []float32, arg []int, err error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if err := ix.checkVectors("query", queries); err != nil {
		return nil, nil, err
	}
	d := ix.dim
	if len(rows)%d != 0 {
		return nil, nil, fmt.Errorf("%w: %d row values are not whole rows of %d", ErrDim, len(rows), d)
	}
	n := len(rows) / d
	k = max(1, min(k, n))
	score = make([]float32, len(queries))
	arg = make([]int, len(queries))
	for qi := range score {
		score[qi], arg[qi] = float32(math.Inf(-1)), -1
	}
	if n == 0 || ix.norm == CenterL2 && ix.rows() == 0 {
		return score, arg, nil // no rows, or no mean to centre on
	}
	ix.prepare()
	mean := ix.mean
	if ix.norm != CenterL2 {
		mean = nil
	}
	qm, off := ix.normalizeQueries(queries)
	inv := make([]float32, n)
	if ix.norm != Raw {
		rowScales(inv, rows, d, 0, n, mean)
	}
	top := topK{k: k, c: make([]cand, 0, k)}
	for qi := range queries {
		q := qm[qi*d : (qi+1)*d]
		top.c = top.c[:0]
		for r := range n {
			s := kernels.Dot(q, rows[r*d:(r+1)*d])
			switch {
			case ix.norm == CenterL2:
				s = (s - off[qi]) * inv[r]
			case ix.norm != Raw:
				s *= inv[r]
			}
			if s-s == 0 { // a non-finite row never counts
				top.push(cand{s, int32(r)})
			}
		}
		if best := top.sorted(); len(best) > 0 {
			var t float32
			for _, c := range best {
				t += c.s
			}
			score[qi], arg[qi] = t/float32(len(best)), int(best[0].r)
		}
	}
	return score, arg, nil
}
