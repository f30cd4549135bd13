package retriever

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
)

// refIndex is the float64 brute-force reference: rows in insertion order.
type refIndex struct {
	rows   [][]float64
	expert []string
	local  []int
	norm   Normalization
	dim    int
}

func (r *refIndex) add(name string, embs [][]float32) {
	for i, v := range embs {
		f := make([]float64, len(v))
		for j, x := range v {
			f[j] = float64(x)
		}
		r.rows = append(r.rows, f)
		r.expert = append(r.expert, name)
		r.local = append(r.local, i)
	}
}

func (r *refIndex) normalize(v, mean []float64) []float64 {
	out := slices.Clone(v)
	if r.norm == Raw {
		return out
	}
	if r.norm == CenterL2 {
		for j := range out {
			out[j] -= mean[j]
		}
	}
	var ss float64
	for _, x := range out {
		ss += x * x
	}
	if ss > 0 {
		for j := range out {
			out[j] /= math.Sqrt(ss)
		}
	}
	return out
}

type refHit struct {
	row   int
	score float64
}

func (r *refIndex) search(q []float32, k int) []refHit {
	mean := make([]float64, r.dim)
	for _, v := range r.rows {
		for j, x := range v {
			mean[j] += x / float64(len(r.rows))
		}
	}
	qf := make([]float64, len(q))
	for j, x := range q {
		qf[j] = float64(x)
	}
	qn := r.normalize(qf, mean)
	hs := make([]refHit, len(r.rows))
	for i, v := range r.rows {
		vn := r.normalize(v, mean)
		var s float64
		for j := range vn {
			s += vn[j] * qn[j]
		}
		hs[i] = refHit{i, s}
	}
	sort.SliceStable(hs, func(a, b int) bool { return hs[a].score > hs[b].score })
	return hs[:min(k, len(hs))]
}

func randVecs(rng *rand.Rand, n, dim int, shift float32) [][]float32 {
	vs := make([][]float32, n)
	for i := range vs {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64()) + shift
		}
		vs[i] = v
	}
	return vs
}

// checkAgainstRef compares hits with the reference: the i-th score matches the
// reference's i-th score, every returned row belongs in the top k, and where
// the reference order is unambiguous the rows are identical.
func checkAgainstRef(t *testing.T, ref *refIndex, q []float32, got []Hit, k int, tol float64) {
	t.Helper()
	want := ref.search(q, k)
	if len(got) != len(want) {
		t.Fatalf("got %d hits, want %d", len(got), len(want))
	}
	all := ref.search(q, len(ref.rows))
	scoreOf := map[[2]any]float64{}
	for _, h := range all {
		scoreOf[[2]any{ref.expert[h.row], ref.local[h.row]}] = h.score
	}
	seen := map[[2]any]bool{}
	for i, h := range got {
		key := [2]any{h.Expert, h.Row}
		if seen[key] {
			t.Fatalf("hit %d: duplicate %v", i, key)
		}
		seen[key] = true
		if d := math.Abs(float64(h.Score) - want[i].score); d > tol {
			t.Fatalf("hit %d: score %v, reference %v (diff %g)", i, h.Score, want[i].score, d)
		}
		rs, ok := scoreOf[key]
		if !ok || math.Abs(rs-float64(h.Score)) > tol {
			t.Fatalf("hit %d %v: score %v, reference score of that row %v", i, key, h.Score, rs)
		}
		unambiguous := (i == 0 || want[i-1].score-want[i].score > 2*tol) &&
			(i+1 >= len(all) || want[i].score-all[i+1].score > 2*tol)
		if unambiguous && (ref.expert[want[i].row] != h.Expert || ref.local[want[i].row] != h.Row) {
			t.Fatalf("hit %d: got %v, reference %s/%d", i, key, ref.expert[want[i].row], ref.local[want[i].row])
		}
	}
}

func TestSearchMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, blocks := range []int{0, 96} {
		for _, norm := range []Normalization{CenterL2, L2, Raw} {
			for _, c := range []struct{ n, dim, k, q int }{
				{1, 1, 1, 1}, {5, 3, 10, 2}, {97, 16, 5, 3}, {1000, 64, 1, 17},
				{1000, 64, 50, 4}, {3000, 100, 7, 32}, {9000, 100, 5, 2}, {500, 576, 3, 5},
			} {
				name := fmt.Sprintf("blocks%d/%s/n%d_d%d_k%d_q%d", blocks, norm, c.n, c.dim, c.k, c.q)
				t.Run(name, func(t *testing.T) {
					testBlockRows = blocks
					defer func() { testBlockRows = 0 }()
					ix := NewIndex(c.dim, norm)
					ref := &refIndex{norm: norm, dim: c.dim}
					// Several experts of uneven sizes, with a common offset so centring matters.
					left, e := c.n, 0
					for left > 0 {
						s := min(left, 1+rng.IntN(700))
						embs := randVecs(rng, s, c.dim, 3)
						texts := make([]string, s)
						for i := range texts {
							texts[i] = fmt.Sprintf("e%d-%d", e, i)
						}
						if err := ix.Add(fmt.Sprintf("e%d", e), embs, texts); err != nil {
							t.Fatal(err)
						}
						ref.add(fmt.Sprintf("e%d", e), embs)
						left -= s
						e++
					}
					if ix.Len() != c.n {
						t.Fatalf("Len %d, want %d", ix.Len(), c.n)
					}
					qs := randVecs(rng, c.q, c.dim, 3)
					hits, err := ix.Search(qs, c.k)
					if err != nil {
						t.Fatal(err)
					}
					tol := 2e-5
					if norm == Raw {
						tol = 2e-6 * float64(c.dim) * 12 // raw scores grow with dim·shift²
					}
					for qi := range qs {
						checkAgainstRef(t, ref, qs[qi], hits[qi], c.k, tol)
						for _, h := range hits[qi] {
							if h.Text != fmt.Sprintf("%s-%d", h.Expert, h.Row) {
								t.Fatalf("text %q for %s/%d", h.Text, h.Expert, h.Row)
							}
						}
					}
				})
			}
		}
	}
}

// Small integer data makes float32 arithmetic exact, so ties are exact and the
// order must match the reference's (score, then row added first) exactly.
func TestSearchTiesDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, blocks := range []int{0, 96} {
		testBlockRows = blocks
		ix := NewIndex(8, Raw)
		ref := &refIndex{norm: Raw, dim: 8}
		for e := range 6 {
			embs := make([][]float32, 300)
			for i := range embs {
				v := make([]float32, 8)
				for j := range v {
					v[j] = float32(rng.IntN(3) - 1)
				}
				embs[i] = v
			}
			name := fmt.Sprintf("x%d", 5-e) // names not in row order: ties go by row, not name
			if err := ix.Add(name, embs, nil); err != nil {
				t.Fatal(err)
			}
			ref.add(name, embs)
		}
		qs := make([][]float32, 10)
		for i := range qs {
			qs[i] = make([]float32, 8)
			for j := range qs[i] {
				qs[i][j] = float32(rng.IntN(3) - 1)
			}
		}
		for range 3 { // repeated searches give identical answers
			hits, err := ix.Search(qs, 40)
			if err != nil {
				t.Fatal(err)
			}
			for qi, q := range qs {
				want := ref.search(q, 40)
				for i, h := range hits[qi] {
					w := want[i]
					if h.Expert != ref.expert[w.row] || h.Row != ref.local[w.row] || float64(h.Score) != w.score {
						t.Fatalf("blocks %d q%d hit %d: got %s/%d %v, want %s/%d %v", blocks, qi, i,
							h.Expert, h.Row, h.Score, ref.expert[w.row], ref.local[w.row], w.score)
					}
				}
			}
		}
	}
	testBlockRows = 0
}

func TestNormalizations(t *testing.T) {
	rows := [][]float32{{10, 0}, {1, 0}, {0, 3}, {-2, -1}}
	q := [][]float32{{2, 0.5}}
	shift := func(vs [][]float32, c, scale float32) [][]float32 {
		out := make([][]float32, len(vs))
		for i, v := range vs {
			out[i] = []float32{v[0]*scale + c, v[1]*scale + c}
		}
		return out
	}
	search := func(norm Normalization, rs, qs [][]float32) []Hit {
		ix := NewIndex(2, norm)
		if err := ix.Add("a", rs, nil); err != nil {
			t.Fatal(err)
		}
		h, err := ix.Search(qs, len(rs))
		if err != nil {
			t.Fatal(err)
		}
		ref := &refIndex{norm: norm, dim: 2}
		ref.add("a", rs)
		checkAgainstRef(t, ref, qs[0], h[0], len(rs), 1e-4)
		return h[0]
	}
	order := func(h []Hit) []int {
		var o []int
		for _, x := range h {
			o = append(o, x.Row)
		}
		return o
	}
	// raw: length matters (row 0 beats row 1); l2: only the angle (rows 0 and 1 tie at 0.97).
	if o := order(search(Raw, rows, q)); !slices.Equal(o, []int{0, 1, 2, 3}) || search(Raw, rows, q)[0].Score != 20 {
		t.Errorf("raw order %v", o)
	}
	l2 := search(L2, rows, q)
	if math.Abs(float64(l2[0].Score-l2[1].Score)) > 1e-6 || l2[0].Row != 0 || l2[1].Row != 1 {
		t.Errorf("l2: rows 0 and 1 should tie, row 0 first: %v", l2)
	}
	// center-l2 is invariant to a common offset (l2 is not) and to scaling everything.
	base := search(CenterL2, rows, q)
	moved := search(CenterL2, shift(rows, 100, 3), shift(q, 100, 3))
	for i := range base {
		if base[i].Row != moved[i].Row || math.Abs(float64(base[i].Score-moved[i].Score)) > 1e-4 {
			t.Fatalf("center-l2 not offset-invariant: %v vs %v", base, moved)
		}
	}
	l2moved := search(L2, shift(rows, 100, 1), shift(q, 100, 1))
	if slices.Equal(order(l2moved), order(l2)) && math.Abs(float64(l2moved[3].Score-l2[3].Score)) < 0.1 {
		t.Errorf("l2 unexpectedly offset-invariant")
	}
	ix := NewIndex(2, CenterL2)
	_ = ix.Add("a", rows, nil)
	if m := ix.Mean(); math.Abs(float64(m[0])-2.25) > 1e-6 || math.Abs(float64(m[1])-0.5) > 1e-6 {
		t.Errorf("Mean %v, want [2.25 0.5]", m)
	}
}

func TestMeanTracksAdds(t *testing.T) {
	// Search must reflect the current mean after every Add, with no explicit rebuild.
	rng := rand.New(rand.NewPCG(5, 6))
	ix := NewIndex(32, CenterL2)
	ref := &refIndex{norm: CenterL2, dim: 32}
	qs := randVecs(rng, 4, 32, 1)
	for e := range 5 {
		embs := randVecs(rng, 50, 32, float32(e))
		_ = ix.Add(fmt.Sprint(e), embs, nil)
		ref.add(fmt.Sprint(e), embs)
		h, err := ix.Search(qs, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i := range qs {
			checkAgainstRef(t, ref, qs[i], h[i], 5, 2e-5)
		}
	}
}

func TestAddRemoveKeepsOthers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, norm := range []Normalization{CenterL2, L2, Raw} {
		ix := NewIndex(16, norm)
		sets := map[string][][]float32{}
		for _, n := range []string{"a", "b", "c", "d"} {
			sets[n] = randVecs(rng, 20+rng.IntN(30), 16, 2)
			if err := ix.Add(n, sets[n], nil); err != nil {
				t.Fatal(err)
			}
		}
		qs := randVecs(rng, 6, 16, 2)
		_, _ = ix.Search(qs, 3) // build derived state before removing
		if !ix.Remove("b") || ix.Remove("b") {
			t.Fatal("Remove reported wrongly")
		}
		if err := ix.Add("a", sets["a"], nil); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate Add: %v", err)
		}
		fresh := NewIndex(16, norm)
		for _, n := range []string{"a", "c", "d"} {
			_ = fresh.Add(n, sets[n], nil)
		}
		if !slices.Equal(ix.Experts(), []string{"a", "c", "d"}) || ix.Len() != fresh.Len() {
			t.Fatalf("experts %v len %d", ix.Experts(), ix.Len())
		}
		// Every remaining row is itself intact: raw self-search finds it with its own norm².
		got, _ := ix.Search(qs, ix.Len())
		want, _ := fresh.Search(qs, fresh.Len())
		for qi := range qs {
			for i := range got[qi] {
				g, w := got[qi][i], want[qi][i]
				if g.Expert != w.Expert || g.Row != w.Row || math.Abs(float64(g.Score-w.Score)) > 1e-5 {
					t.Fatalf("%s q%d hit %d: %+v vs fresh %+v", norm, qi, i, g, w)
				}
			}
		}
		m1, m2 := ix.Mean(), fresh.Mean()
		for j := range m1 {
			if math.Abs(float64(m1[j]-m2[j])) > 1e-5 {
				t.Fatalf("%s mean[%d] %v vs %v", norm, j, m1[j], m2[j])
			}
		}
		// Put replaces atomically.
		if err := ix.Put("c", sets["b"], nil); err != nil {
			t.Fatal(err)
		}
		if ix.Len() != len(sets["a"])+len(sets["b"])+len(sets["d"]) {
			t.Fatalf("Put: len %d", ix.Len())
		}
		for _, n := range ix.Experts() {
			ix.Remove(n)
		}
		if ix.Len() != 0 || ix.Mean() != nil {
			t.Fatal("not empty")
		}
		h, err := ix.Search(qs, 3)
		if err != nil || len(h) != len(qs) || len(h[0]) != 0 {
			t.Fatalf("empty search: %v %v", h, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	ix := NewIndex(4, "")
	if ix.Normalization() != CenterL2 {
		t.Fatal("default normalization")
	}
	good := [][]float32{{1, 2, 3, 4}}
	for name, err := range map[string]error{
		"dim":     ix.Add("a", [][]float32{{1, 2, 3}}, nil),
		"nan":     ix.Add("a", [][]float32{{1, float32(math.NaN()), 3, 4}}, nil),
		"inf":     ix.Add("a", [][]float32{{1, float32(math.Inf(1)), 3, 4}}, nil),
		"empty":   ix.Add("a", nil, nil),
		"noname":  ix.Add("", good, nil),
		"texts":   ix.Add("a", good, []string{"x", "y"}),
		"badnorm": NewIndex(4, "cosine").Add("a", good, nil),
		"baddim":  NewIndex(0, Raw).Add("a", good, nil),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if ix.Len() != 0 {
		t.Fatal("bad input was stored")
	}
	_ = ix.Add("a", good, nil)
	if _, err := ix.Search([][]float32{{1, 2}}, 1); !errors.Is(err, ErrDim) {
		t.Errorf("query dim: %v", err)
	}
	if _, err := ix.Search(good, 0); !errors.Is(err, ErrInput) {
		t.Errorf("k=0: %v", err)
	}
	if _, err := ix.Route(good, RouteOptions{Aggregation: "max"}); !errors.Is(err, ErrAggregation) {
		t.Errorf("aggregation: %v", err)
	}
}

func TestConcurrentSearchAndUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	testBlockRows = 96
	defer func() { testBlockRows = 0 }()
	ix := NewIndex(24, CenterL2)
	anchor := randVecs(rng, 40, 24, 1)
	if err := ix.Add("anchor", anchor, nil); err != nil {
		t.Fatal(err)
	}
	churn := make([][][]float32, 4)
	for i := range churn {
		churn[i] = randVecs(rng, 200, 24, float32(i))
	}
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i%2)
				if i%3 == 2 {
					_ = ix.Put(name, churn[(i+w)%4], nil)
				} else if !ix.Remove(name) {
					_ = ix.Add(name, churn[(i+w)%4], nil)
				}
			}
		}()
	}
	errs := make(chan error, 3)
	for r := range 3 { // an anchor row queried finds itself with score 1, whatever the mean
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := range 40 {
				q := anchor[(i*7+r)%len(anchor)]
				hs, err := ix.Search([][]float32{q}, 3)
				if err == nil && (hs[0][0].Expert != "anchor" || math.Abs(float64(hs[0][0].Score)-1) > 1e-4) {
					err = fmt.Errorf("reader %d: top hit %+v", r, hs[0][0])
				}
				if err == nil {
					_, err = ix.Route([][]float32{q, q}, RouteOptions{Aggregation: Softmax})
				}
				if err != nil {
					errs <- err
					return
				}
				_ = ix.Mean()
				_ = ix.Experts()
				_ = ix.Len()
			}
		}()
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCopied(t *testing.T) {
	ix := NewIndex(2, L2)
	v := [][]float32{{1, 0}, {0, 1}, {1, 1}, {1, 2}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ix.Add("a", v[:2], []string{"x", "y"}))
	must(ix.Add("b", v[:2], []string{"z", "w"}))
	must(ix.Add("merge", v, []string{"x", "z", "q", "x"})) // "x" twice: its own copy does not count
	must(ix.Add("bare", v[:1], nil))
	got := ix.Copied()
	want := map[string]float64{"a": 0.5, "b": 0.5, "merge": 0.75}
	if len(got) != len(want) {
		t.Fatalf("Copied = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("Copied[%s] = %v, want %v", k, got[k], w)
		}
	}
}

// Rows outside the index are scored as the index scores its own: the index's
// own rows given to ScoreRows get Search's best scores, under every
// normalisation (center-l2 centres both on the index's mean).
func TestScoreRowsMatchesSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := randVecs(rng, 40, 16, 0.5)
	queries := randVecs(rng, 5, 16, 0.5)
	for _, norm := range []Normalization{CenterL2, L2, Raw} {
		ix := NewIndex(16, norm)
		if err := ix.Add("a", rows[:25], nil); err != nil {
			t.Fatal(err)
		}
		if err := ix.Add("b", rows[25:], nil); err != nil {
			t.Fatal(err)
		}
		hits, err := ix.Search(queries, 1)
		if err != nil {
			t.Fatal(err)
		}
		best, arg, err := ix.ScoreRows(queries, slices.Concat(rows...), 1)
		if err != nil {
			t.Fatal(err)
		}
		for q := range queries {
			want := hits[q][0]
			got := arg[q]
			wantRow := want.Row
			if want.Expert == "b" {
				wantRow += 25
			}
			if best[q] != want.Score || got != wantRow {
				t.Errorf("%s query %d: ScoreRows %v (row %d), Search %v (row %d)", norm, q, best[q], got, want.Score, wantRow)
			}
		}
	}
	empty := NewIndex(16, CenterL2)
	best, arg, err := empty.ScoreRows(queries, slices.Concat(rows...), 1)
	if err != nil || !math.IsInf(float64(best[0]), -1) || arg[0] != -1 {
		t.Errorf("empty center-l2 index: %v %v %v", best, arg, err)
	}
	if _, _, err := empty.ScoreRows(queries, []float32{1, 2}, 1); !errors.Is(err, ErrDim) {
		t.Errorf("a row of the wrong width: %v", err)
	}
}

// ScoreRows with k > 1 is the mean of the k best of Search's scores (summed
// best first), k past the rows the mean of all, and its best row is still
// the best; a non-finite row never counts.
func TestScoreRowsTopMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows := randVecs(rng, 30, 16, 0.5)
	queries := randVecs(rng, 6, 16, 0.5)
	for _, norm := range []Normalization{CenterL2, L2, Raw} {
		ix := NewIndex(16, norm)
		if err := ix.Add("a", rows, nil); err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{1, 2, 7, 30, 100} {
			hits, err := ix.Search(queries, min(k, 30))
			if err != nil {
				t.Fatal(err)
			}
			got, arg, err := ix.ScoreRows(queries, slices.Concat(rows...), k)
			if err != nil {
				t.Fatal(err)
			}
			for q := range queries {
				var sum float32
				for _, h := range hits[q] {
					sum += h.Score
				}
				want := sum / float32(len(hits[q]))
				if got[q] != want || arg[q] != hits[q][0].Row {
					t.Errorf("%s k=%d query %d: %v (row %d), want %v (row %d)", norm, k, q, got[q], arg[q], want, hits[q][0].Row)
				}
			}
		}
	}
	ix := NewIndex(2, Raw)
	bad := []float32{1, 0, float32(math.NaN()), 0, float32(math.Inf(1)), 0, 0.5, 0}
	got, arg, err := ix.ScoreRows([][]float32{{1, 0}}, bad, 3)
	if err != nil || got[0] != 0.75 || arg[0] != 0 {
		t.Errorf("non-finite rows: %v %v %v, want 0.75 (the mean of the 2 finite rows) at row 0", got, arg, err)
	}
}
