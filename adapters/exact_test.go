package adapters

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"roe/model"
	"roe/models"
)

// weighted applies several adapters unmerged in one forward: y += Σ wᵢ·Δᵢ(x).
// It is the reference a merge of the same adapters must reproduce.
type weighted struct {
	ls []*LoRA
	w  []float32
}

func (s weighted) AddDelta(layer int, p model.Proj, x, y []float32, rows int) {
	for i, l := range s.ls {
		pr := l.Pair(layer, p)
		if pr == nil {
			continue
		}
		d := make([]float32, rows*pr.Out) // [rows, out]
		l.AddDelta(layer, p, x, d, rows)
		for j, v := range d {
			y[j] += s.w[i] * v
		}
	}
}

func loadStories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadFS(models.Stories260K())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rank46 returns a rank-4 expert on q, v, up and a rank-6 expert on k, o, v, up
// for base: different ranks, and modules that only one of them adapts next to
// modules (v, up) where both do. B is scaled down so that the updates move the
// logits without swamping the base weights.
func rank46(base model.Config) []*LoRA {
	rng := rand.New(rand.NewPCG(40, 41))
	a := randomLoRA(rng, base, 4, []model.Proj{model.ProjQ, model.ProjV, model.ProjUp}, false)
	b := randomLoRA(rng, base, 6, []model.Proj{model.ProjK, model.ProjO, model.ProjV, model.ProjUp}, false)
	return []*LoRA{scaledCopy(a, 0.03), scaledCopy(b, 0.03)}
}

var storiesIDs = []int{1, 403, 89, 260, 17, 511, 42, 300}

// The default linear merge of experts of different ranks and modules is ½ΔW_a +
// ½ΔW_b exactly: its logits are those of both experts applied unmerged at ½.
// (The old default re-factored v and up to rank 6 and missed by far more.)
func TestLinearMergeEqualsUnmerged(t *testing.T) {
	m := loadStories(t)
	ls := rank46(m.Config)
	merged, rep := mustMerge(t, ls, MergeOptions{Method: MethodLinear})
	if rep.Compressed || rep.RelFrobError != 0 || rep.Rank != 10 || rep.ExactRank != 10 {
		t.Errorf("report %+v, want exact at rank 10", rep)
	}
	for p, want := range map[model.Proj]int{model.ProjQ: 4, model.ProjK: 6, model.ProjV: 10, model.ProjUp: 10, model.ProjDown: 0} {
		got := 0
		if pr := merged.Pair(0, p); pr != nil {
			got = pr.Rank
		}
		if got != want {
			t.Errorf("%s: rank %d, want %d (0: absent)", p, got, want)
		}
	}
	ref := whole(t, m, storiesIDs, weighted{ls, []float32{0.5, 0.5}})
	got := whole(t, m, storiesIDs, merged)
	d, moved := maxAbsDiff(got, ref), maxAbsDiff(ref, whole(t, m, storiesIDs, nil))
	t.Logf("merged vs unmerged ½+½: max |Δlogit| %.3g; the experts move the logits by up to %.3g", d, moved)
	if d > tol {
		t.Errorf("merged vs unmerged ½+½: max |Δlogit| %.3g", d)
	}
	if moved < 1e-2 {
		t.Errorf("the experts barely move the logits (%.3g): test is vacuous", moved)
	}
	// Saved and loaded (rank_pattern for the mixed ranks), it is the same adapter.
	dir := t.TempDir()
	if err := merged.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(whole(t, m, storiesIDs, back), got); d != 0 {
		t.Errorf("loaded merge differs by %.3g", d)
	}
}

// Rank below the exact rank compresses, and the report says so with the
// measured error; at or above it the result stays exact.
func TestMergeCompressionReport(t *testing.T) {
	m := loadStories(t)
	ls := rank46(m.Config)
	exact := combine(ls, []float64{0.5, 0.5})
	for _, c := range []struct {
		rank       int
		compressed bool
	}{{0, false}, {12, false}, {10, false}, {6, true}, {2, true}} {
		merged, rep := mustMerge(t, ls, MergeOptions{Method: MethodLinear, Rank: c.rank})
		got := relDiff(t, denseOf(merged), exact)
		t.Logf("rank-4 + rank-6 linear, Rank %2d: result rank %2d, compressed %v, relative Frobenius error %.4g (max module %.4g)",
			c.rank, rep.Rank, rep.Compressed, rep.RelFrobError, rep.MaxModuleRelError)
		if rep.Compressed != c.compressed || rep.ExactRank != 10 {
			t.Errorf("Rank %d: report %+v", c.rank, rep)
		}
		if math.Abs(got-rep.RelFrobError) > 1e-5 {
			t.Errorf("Rank %d: reported error %.5g, measured %.5g", c.rank, rep.RelFrobError, got)
		}
		if c.compressed && (rep.RelFrobError < 0.05 || rep.Rank != c.rank || rep.MaxModuleRelError < rep.RelFrobError) {
			t.Errorf("Rank %d: compressed but report %+v", c.rank, rep)
		}
		if !c.compressed && (rep.RelFrobError != 0 || rep.Rank != 10) {
			t.Errorf("Rank %d: exact but report %+v", c.rank, rep)
		}
	}
	// The compressed merge no longer matches the experts applied unmerged.
	merged, _ := mustMerge(t, ls, MergeOptions{Method: MethodLinear, Rank: 6})
	d := maxAbsDiff(whole(t, m, storiesIDs, merged), whole(t, m, storiesIDs, weighted{ls, []float32{0.5, 0.5}}))
	t.Logf("rank 6 vs unmerged: max |Δlogit| %.3g", d)
	if d < 10*tol {
		t.Errorf("rank-6 compression changes the logits by only %.3g", d)
	}
}

// A single expert under linear is scaled by its weight; weights that cannot
// be normalised are refused.
func TestLinearWeightOfOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 43))
	e := randomLoRA(rng, testBase, 3, []model.Proj{model.ProjQ, model.ProjGate}, false)
	for _, w := range []float64{0.5, 1, 3} {
		m, rep := mustMerge(t, []*LoRA{e}, MergeOptions{Method: MethodLinear, Weights: []float64{w}})
		if d := relDiff(t, denseOf(m), combine([]*LoRA{e}, []float64{w})); d > 1e-6 || rep.Compressed {
			t.Errorf("weight %g: differs from %g·ΔW by %.3g, report %+v", w, w, d, rep)
		}
	}
	// No weights: the expert itself.
	m, _ := mustMerge(t, []*LoRA{e}, MergeOptions{Method: MethodLinear})
	if d := relDiff(t, denseOf(m), denseOf(e)); d > 1e-6 {
		t.Errorf("unweighted merge of one differs by %.3g", d)
	}
	// Several experts are still normalised: (2, 2) is (½, ½).
	f := randomLoRA(rng, testBase, 2, []model.Proj{model.ProjQ}, false)
	m, _ = mustMerge(t, []*LoRA{e, f}, MergeOptions{Method: MethodLinear, Weights: []float64{2, 2}})
	if d := relDiff(t, denseOf(m), combine([]*LoRA{e, f}, []float64{0.5, 0.5})); d > 1e-6 {
		t.Errorf("weights (2, 2) differ from (½, ½) by %.3g", d)
	}
	for _, w := range [][]float64{{0}, {-1}, {0, 0}, {1, -1}, {-1, -2}} {
		ls := []*LoRA{e, f}[:len(w)]
		_, _, err := Merge(ls, MergeOptions{Method: MethodLinear, Weights: w})
		if !errors.Is(err, ErrMerge) || !strings.Contains(err.Error(), "positive sum") {
			t.Errorf("weights %v: %v, want a refusal", w, err)
		}
	}
}

// Dense methods are exact by default (their numerical rank) and compressed
// only when Rank asks.
func TestDenseMergeExactByDefault(t *testing.T) {
	rng := rand.New(rand.NewPCG(44, 45))
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 3, nil, false)}
	// dare-linear at density 1 is Σ ΔWᵢ: rank 5, found as the numerical rank.
	m, rep := mustMerge(t, ls, MergeOptions{Method: MethodDARELinear, Density: 1})
	if d := relDiff(t, denseOf(m), combine(ls, []float64{1, 1})); d > 1e-5 || rep.Compressed || rep.Rank != 5 || rep.ExactRank != 5 {
		t.Errorf("dare-linear at density 1: differs by %.3g, report %+v", d, rep)
	}
	// TIES trims entries: full rank, min(out, in) = 8 for k/v and 16 for the rest.
	full, rep := mustMerge(t, ls, MergeOptions{Method: MethodTIES, Density: 0.5})
	if rep.Compressed || rep.RelFrobError > 1e-6 || rep.Rank != 16 || rep.ExactRank != 16 || full.Pair(0, model.ProjK).Rank != 8 {
		t.Errorf("ties: report %+v, k_proj rank %d", rep, full.Pair(0, model.ProjK).Rank)
	}
	small, rep := mustMerge(t, ls, MergeOptions{Method: MethodTIES, Density: 0.5, Rank: 4})
	if got := relDiff(t, denseOf(small), denseOf(full)); !rep.Compressed || rep.Rank != 4 || rep.ExactRank != 16 ||
		rep.RelFrobError < 0.05 || math.Abs(got-rep.RelFrobError) > 1e-4 {
		t.Errorf("ties at rank 4: report %+v, measured error %.4g", rep, got)
	}
}
