package retriever

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"roe/kernels"
)

// LeaveOneOut returns each instance of expert's best score against every
// other instance of the index, itself left out, as a query is scored: how
// close the expert's own members sit to the library. Sorted ascending, [n].
// It is the reference a query's score is calibrated against (Calibrated).
// queries, when given ([n][dim]), stand for the instances as queries (the
// same texts written otherwise); by default the stored rows do.
func (ix *Index) LeaveOneOut(expert string, queries [][]float32) ([]float32, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	x, ok := ix.byName[expert]
	if !ok {
		return nil, fmt.Errorf("%w: no expert %q", ErrInput, expert)
	}
	if queries == nil {
		queries = make([][]float32, x.n)
		for i := range queries {
			r := x.start + i
			queries[i] = ix.data[r*ix.dim : (r+1)*ix.dim]
		}
	} else if len(queries) != x.n {
		return nil, fmt.Errorf("%w: %d queries for %d instances of %s", ErrInput, len(queries), x.n, expert)
	}
	res, err := ix.scan(queries, 2, false)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, x.n)
	for i, cs := range res.top {
		for _, c := range cs {
			if int(c.r) != x.start+i {
				out = append(out, c.s)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Calibrated is the share of ref (sorted ascending, an expert's LeaveOneOut
// scores) at or below score: 0 when the query is less like the expert's
// instances than any of them is like the library, 1 when it is as close as
// the closest. Ties count half. With no reference (an expert alone in the
// library with one instance) nothing can be told apart: it is 1.
func Calibrated(ref []float32, score float64) float64 {
	if len(ref) == 0 {
		return 1
	}
	s := float32(score)
	lo := sort.Search(len(ref), func(i int) bool { return ref[i] >= s })
	hi := sort.Search(len(ref), func(i int) bool { return ref[i] > s })
	return (float64(lo) + float64(hi-lo)/2) / float64(len(ref))
}

// LeaveOneOutExperts scores each of expert's instances as a query (queries:
// [n][dim], the instances written otherwise, in stored order) against every
// expert, the instance itself left out: best is [n, E], each expert's best
// score per query, experts in the order of names.
func (ix *Index) LeaveOneOutExperts(expert string, queries [][]float32) (best []float32, names []string, err error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	x, ok := ix.byName[expert]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no expert %q", ErrInput, expert)
	}
	if len(queries) != x.n {
		return nil, nil, fmt.Errorf("%w: %d queries for %d instances of %s", ErrInput, len(queries), x.n, expert)
	}
	res, err := ix.scan(queries, 1, true)
	if err != nil {
		return nil, nil, err
	}
	E := len(ix.experts)
	own := slices.Index(ix.experts, x)
	for i, s := range ix.ownBest(x, queries) {
		res.best[i*E+own] = s
	}
	names = make([]string, E)
	for i, e := range ix.experts {
		names[i] = e.name
	}
	return res.best, names, nil
}

// LeaveOneOutOwn scores each of expert's instances as a query (queries:
// [n][dim], the instances written otherwise, in stored order) against the
// expert's other instances: each query's best score, in query order, -Inf
// where the expert has no other instance.
func (ix *Index) LeaveOneOutOwn(expert string, queries [][]float32) ([]float32, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	x, ok := ix.byName[expert]
	if !ok {
		return nil, fmt.Errorf("%w: no expert %q", ErrInput, expert)
	}
	if len(queries) != x.n {
		return nil, fmt.Errorf("%w: %d queries for %d instances of %s", ErrInput, len(queries), x.n, expert)
	}
	if err := ix.check(); err != nil {
		return nil, err
	}
	if err := ix.checkVectors("query", queries); err != nil {
		return nil, err
	}
	ix.prepare()
	return ix.ownBest(x, queries), nil
}

// ownBest is LeaveOneOutOwn under ix.mu, the index prepared.
func (ix *Index) ownBest(x *expertRows, queries [][]float32) []float32 {
	qm, off := ix.normalizeQueries(queries)
	d := ix.dim
	out := make([]float32, len(queries))
	for i := range queries {
		q := qm[i*d : (i+1)*d]
		m := float32(math.Inf(-1))
		for r := x.start; r < x.start+x.n; r++ {
			if r == x.start+i {
				continue
			}
			s := kernels.Dot(q, ix.data[r*d:(r+1)*d])
			switch ix.norm {
			case CenterL2:
				s = (s - off[i]) * ix.inv[r]
			case L2:
				s *= ix.inv[r]
			}
			m = max(m, s)
		}
		out[i] = m
	}
	return out
}

// DefaultTypicalWeight weighs typical scores in routing
// (RouteOptions.TypicalWeight): chosen on the routing benchmark's dev split.
const DefaultTypicalWeight = 0.3

// Typical is an expert's typical score: the median of its instances' own
// scores (LeaveOneOutOwn, plus whatever routing adds, such as signatures),
// the finite ones; ok is false when there are none. Routing subtracts it
// (RouteOptions.Typical): an expert whose instances sit close together (a
// task the embedder learnt to gather) must be matched as closely as they
// match each other, one whose instances lie apart (a task it never saw) is
// not held to a closeness its own instances lack.
func Typical(own []float32) (typical float64, ok bool) {
	v := make([]float64, 0, len(own))
	for _, s := range own {
		if !math.IsInf(float64(s), 0) && !math.IsNaN(float64(s)) {
			v = append(v, float64(s))
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2], true
	}
	return (v[n/2-1] + v[n/2]) / 2, true
}

// signatureBoost is κ in SignatureBoosts, chosen on the routing benchmark's
// dev split over four encoder seeds (make router-seeds): κ = 1 / 1.5 / 2 / 3
// gave the held-out families 25.0 / 25.2 / 26.2 / 26.2 of 36 prompts (23.0
// without), out-of-domain fallback 73.5 / 73.1 / 72.5 / 72.5% (68.4), and
// in-domain fallback 6.7 / 7.9 / 8.4 / 7.7% (6.3), where every κ above 1 took
// one seed's in-domain fallback past 10%.
const signatureBoost = 1

// SignatureBoosts returns the factor on the signature weight of each expert
// whose typical score lies below the library's median: 1 + κ·(median −
// typical) (experts not in the map keep the weight as it is). An expert whose
// instances lie apart in the embedding space (a task the embedder never
// trained on) has a low typical score, and for it the dense score says less;
// its task's words then count for more. A mixture's instances lie apart too,
// because they are several tasks': an expert with at least half its
// instances copied from other experts (copied, Index.Copied; a merge stores
// its components' instances) is left out, else the words it shares with each
// component would outvote them. The factors follow the typical scores, so
// they are computed with them, once per library change.
func SignatureBoosts(typical, copied map[string]float64) map[string]float64 {
	if len(typical) == 0 {
		return nil
	}
	ts := make([]float32, 0, len(typical))
	for _, t := range typical {
		ts = append(ts, float32(t))
	}
	mid, _ := Typical(ts)
	out := map[string]float64{}
	for n, t := range typical {
		if t < mid && copied[n] < 0.5 {
			out[n] = 1 + signatureBoost*(mid-t)
		}
	}
	return out
}
