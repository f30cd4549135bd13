package adapters

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"roe/model"
)

// testBase is a small model shape: q [16,16], k/v [8,16], o [16,16], gate/up [24,16], down [16,24].
var testBase = model.Config{NumLayers: 3, HiddenSize: 16, IntermediateSize: 24, NumHeads: 4, NumKVHeads: 2, HeadDim: 4}

// randomLoRA builds an adapter of one rank over the given modules (all when nil),
// with alpha = 2·rank so that its scale is 2. positive draws only positive factors.
func randomLoRA(rng *rand.Rand, base model.Config, rank int, targets []model.Proj, positive bool) *LoRA {
	if targets == nil {
		for p := model.Proj(0); p < model.NumProj; p++ {
			targets = append(targets, p)
		}
	}
	c := Config{R: rank, Alpha: float64(2 * rank)}
	for _, p := range targets {
		c.TargetModules = append(c.TargetModules, p.String())
	}
	l := New(base, c)
	draw := func(n int, sd float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			x := rng.NormFloat64() * sd
			if positive {
				x = math.Abs(x)
			}
			v[i] = float32(x)
		}
		return v
	}
	for layer := 0; layer < base.NumLayers; layer++ {
		for _, p := range targets {
			out, in := base.ProjShape(p)
			l.SetPair(layer, p, &Pair{A: draw(rank*in, 0.5), B: draw(out*rank, 0.5), Rank: rank, In: in, Out: out, Alpha: float64(2 * rank)})
		}
	}
	return l
}

// denseOf returns every module's s·B·A in float64, computed independently of the code
// under test: [layer][proj] → [out·in], nil where the module is absent.
func denseOf(l *LoRA) [][model.NumProj][]float64 {
	out := make([][model.NumProj][]float64, len(l.Layers))
	for layer := range l.Layers {
		for p, pr := range l.Layers[layer] {
			if pr == nil {
				continue
			}
			d := make([]float64, pr.Out*pr.In)
			for o := 0; o < pr.Out; o++ {
				for i := 0; i < pr.In; i++ {
					s := 0.0
					for r := 0; r < pr.Rank; r++ {
						s += float64(pr.B[o*pr.Rank+r]) * float64(pr.A[r*pr.In+i])
					}
					d[o*pr.In+i] = float64(pr.Scale) * s
				}
			}
			out[layer][p] = d
		}
	}
	return out
}

// combine returns Σ cᵢ·ΔWᵢ per module (absent modules count as zero).
func combine(ls []*LoRA, c []float64) [][model.NumProj][]float64 {
	var acc [][model.NumProj][]float64
	for i, l := range ls {
		d := denseOf(l)
		if acc == nil {
			acc = make([][model.NumProj][]float64, len(d))
		}
		for layer := range d {
			for p, v := range d[layer] {
				if v == nil {
					continue
				}
				if acc[layer][p] == nil {
					acc[layer][p] = make([]float64, len(v))
				}
				for j := range v {
					acc[layer][p][j] += c[i] * v[j]
				}
			}
		}
	}
	return acc
}

// relDiff is ‖got − want‖_F / ‖want‖_F over all modules (a module missing on one side is zero).
func relDiff(t *testing.T, got, want [][model.NumProj][]float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d layers, want %d", len(got), len(want))
	}
	num, den := 0.0, 0.0
	for layer := range want {
		for p := range want[layer] {
			g, w := got[layer][p], want[layer][p]
			n := max(len(g), len(w))
			for j := 0; j < n; j++ {
				var a, b float64
				if j < len(g) {
					a = g[j]
				}
				if j < len(w) {
					b = w[j]
				}
				num += (a - b) * (a - b)
				den += b * b
			}
		}
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func mustMerge(t *testing.T, ls []*LoRA, o MergeOptions) (*LoRA, MergeReport) {
	t.Helper()
	m, rep, err := Merge(ls, o)
	if err != nil {
		t.Fatalf("%s: %v", o.Method, err)
	}
	return m, rep
}

func TestMethodsListed(t *testing.T) {
	if len(Methods()) != 10 {
		t.Fatalf("Methods() = %v", Methods())
	}
}

// A merge of one expert is that expert.
func TestMergeOfOneIsIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	e := randomLoRA(rng, testBase, 4, []model.Proj{model.ProjQ, model.ProjV, model.ProjDown}, false)
	want := denseOf(e)
	for _, o := range []MergeOptions{
		{Method: MethodLinear},
		{Method: MethodParamAverage},
		{Method: MethodTaskArithmetic, Weights: []float64{1}},
		{Method: MethodCat},
		{Method: MethodTIES, Density: 1},
		{Method: MethodDARELinear, Density: 1},
		{Method: MethodDARETIES, Density: 1},
		{Method: MethodMagnitudePrune, Density: 1},
		{Method: MethodCPI},
	} {
		m, rep := mustMerge(t, []*LoRA{e}, o)
		if d := relDiff(t, denseOf(m), want); d > 1e-5 {
			t.Errorf("%s of one expert differs by %.3g (relative)", o.Method, d)
		}
		if rep.RelFrobError > 1e-6 {
			t.Errorf("%s of one expert reports error %.3g", o.Method, rep.RelFrobError)
		}
		if m.Config.R != 4 || strings.Join(m.Config.TargetModules, ",") != "down_proj,q_proj,v_proj" {
			t.Errorf("%s config %+v", o.Method, m.Config)
		}
	}
}

// cat is exactly Σ λᵢ·ΔWᵢ, at rank Σ rᵢ.
func TestCatIsExactSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 3, nil, false), randomLoRA(rng, testBase, 4, nil, false)}
	w := []float64{1, -0.5, 2}
	m, rep := mustMerge(t, ls, MergeOptions{Method: MethodCat, Weights: w})
	if d := relDiff(t, denseOf(m), combine(ls, w)); d > 1e-6 {
		t.Errorf("cat differs from the weighted sum by %.3g", d)
	}
	if rep.Rank != 9 || rep.RelFrobError != 0 || m.Pair(0, model.ProjQ).Rank != 9 {
		t.Errorf("report %+v", rep)
	}
	if s := m.Pair(1, model.ProjUp).Scale; s != 1 {
		t.Errorf("scale %g, want 1", s)
	}
	// Task arithmetic gives the same update after re-factoring at the full rank.
	ta, rep := mustMerge(t, ls, MergeOptions{Method: MethodTaskArithmetic, Weights: w, Rank: 9})
	if d := relDiff(t, denseOf(ta), combine(ls, w)); d > 1e-5 || rep.RelFrobError > 1e-6 {
		t.Errorf("task arithmetic at rank 9 differs by %.3g, reports %.3g", d, rep.RelFrobError)
	}
}

func TestLinearIsWeightedMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 2, []model.Proj{model.ProjQ}, false)}
	m, rep := mustMerge(t, ls, MergeOptions{Method: MethodLinear, Weights: []float64{3, 1}, Rank: 4})
	if d := relDiff(t, denseOf(m), combine(ls, []float64{0.75, 0.25})); d > 1e-5 {
		t.Errorf("linear differs by %.3g", d)
	}
	if rep.RelFrobError > 1e-6 {
		t.Errorf("exact rank reports %.3g", rep.RelFrobError)
	}
	// Ranks differ per module (q_proj has 4, the rest 2): the config says so.
	if m.Config.R != 2 || m.Config.RankPattern["model.layers.0.self_attn.q_proj"] != 4 || m.Config.AlphaPattern["model.layers.0.self_attn.q_proj"] != 4 {
		t.Errorf("config %+v", m.Config)
	}
}

// param-average is mean(s·B)·mean(A), which is not the mean of the updates.
func TestParamAverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a, b := randomLoRA(rng, testBase, 3, nil, false), randomLoRA(rng, testBase, 3, nil, false)
	m, rep := mustMerge(t, []*LoRA{a, b}, MergeOptions{Method: MethodParamAverage})
	pa, pb, pm := a.Pair(2, model.ProjO), b.Pair(2, model.ProjO), m.Pair(2, model.ProjO)
	for i := range pm.A {
		if math.Abs(float64(pm.A[i]-(pa.A[i]+pb.A[i])/2)) > 1e-6 {
			t.Fatalf("A[%d] is not the mean", i)
		}
	}
	for i := range pm.B {
		if math.Abs(float64(pm.B[i]-(pa.Scale*pa.B[i]+pb.Scale*pb.B[i])/2)) > 1e-6 {
			t.Fatalf("B[%d] is not the mean of s·B", i)
		}
	}
	if rep.RelFrobError != 0 || rep.Rank != 3 {
		t.Errorf("report %+v", rep)
	}
	if d := relDiff(t, denseOf(m), combine([]*LoRA{a, b}, []float64{0.5, 0.5})); d < 0.1 {
		t.Errorf("param-average should differ from linear (cross terms), got %.3g", d)
	}
	c := randomLoRA(rng, testBase, 2, nil, false)
	if _, _, err := Merge([]*LoRA{a, c}, MergeOptions{Method: MethodParamAverage}); !errors.Is(err, ErrMerge) || !strings.Contains(err.Error(), "q_proj") {
		t.Errorf("unequal ranks: %v", err)
	}
}

// TIES with density 1 and agreeing signs is the mean.
func TestTIESAgreeingIsMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, true), randomLoRA(rng, testBase, 2, nil, true)}
	m, _ := mustMerge(t, ls, MergeOptions{Method: MethodTIES, Density: 1, Rank: 4})
	if d := relDiff(t, denseOf(m), combine(ls, []float64{0.5, 0.5})); d > 1e-5 {
		t.Errorf("TIES of agreeing experts differs from the mean by %.3g", d)
	}
}

func TestTIESCombine(t *testing.T) {
	ds := [][]float32{{1, -2, 3, 0}, {-1, -1, 1, 5}}
	got := tiesCombine(ds, []float64{1, 1}, true)
	// sums 0 (elected +), -3, 4, 5
	want := []float32{1, -1.5, 2, 5}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tiesCombine = %v, want %v", got, want)
		}
	}
	got = tiesCombine(ds, []float64{2, 1}, false)
	want = []float32{2, -5, 7, 5}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("unnormalised tiesCombine = %v, want %v", got, want)
		}
	}
}

func TestTrimAndKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 2, 7, 100, 1000} {
		a := make([]float32, n)
		for i := range a {
			a[i] = float32(rng.IntN(20)) // many ties
		}
		for _, k := range []int{1, n / 2, n} {
			if k < 1 {
				continue
			}
			b := append([]float32(nil), a...)
			got := kthLargest(b, k)
			c := append([]float32(nil), a...)
			sortDesc(c)
			if got != c[k-1] {
				t.Fatalf("n %d k %d: %g, want %g", n, k, got, c[k-1])
			}
		}
	}
	d := []float32{0.1, -5, 3, -0.2, 4}
	trim(d, 0.4)
	if d[0] != 0 || d[1] != -5 || d[2] != 0 || d[3] != 0 || d[4] != 4 {
		t.Errorf("trim kept %v", d)
	}
}

func sortDesc(a []float32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] > a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func TestMagnitudePruneSparsity(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	e := randomLoRA(rng, testBase, 3, []model.Proj{model.ProjGate}, false)
	full := min(testBase.IntermediateSize, testBase.HiddenSize)
	m, rep := mustMerge(t, []*LoRA{e}, MergeOptions{Method: MethodMagnitudePrune, Density: 0.25, Rank: full})
	if rep.RelFrobError > 1e-6 {
		t.Errorf("full rank reports %.3g", rep.RelFrobError)
	}
	d := denseOf(m)[0][model.ProjGate]
	nz := 0
	for _, v := range d {
		if math.Abs(v) > 1e-5 {
			nz++
		}
	}
	if want := len(d) / 4; nz != want {
		t.Errorf("%d non-zero entries, want %d", nz, want)
	}
}

// DARE is reproducible for a seed and different for another.
func TestDAREDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	ls := []*LoRA{randomLoRA(rng, testBase, 4, nil, false), randomLoRA(rng, testBase, 4, nil, false)}
	for _, meth := range []Method{MethodDARELinear, MethodDARETIES} {
		o := MergeOptions{Method: meth, Density: 0.3, Seed: 42, Rank: 16}
		a, _ := mustMerge(t, ls, o)
		b, _ := mustMerge(t, ls, o)
		if d := relDiff(t, denseOf(a), denseOf(b)); d != 0 {
			t.Errorf("%s: same seed differs by %.3g", meth, d)
		}
		o.Seed = 43
		c, _ := mustMerge(t, ls, o)
		if d := relDiff(t, denseOf(a), denseOf(c)); d < 0.1 {
			t.Errorf("%s: another seed differs only by %.3g", meth, d)
		}
	}
	// Kept entries are rescaled by 1/density: the expectation is the input.
	d := make([]float32, 100000)
	for i := range d {
		d[i] = 1
	}
	dare(d, 0.25, 7, 0, 0, 0)
	sum, kept := 0.0, 0
	for _, v := range d {
		sum += float64(v)
		if v != 0 {
			kept++
			if v != 4 {
				t.Fatalf("kept value %g, want 4", v)
			}
		}
	}
	if mean := sum / float64(len(d)); math.Abs(mean-1) > 0.03 || math.Abs(float64(kept)/1e5-0.25) > 0.01 {
		t.Errorf("mean %.3f after DARE (want ≈1), kept %d", mean, kept)
	}
}

// SLERP at t≈0 is the first expert, at t=1 the second; T=0 means 0.5.
func TestSLERPEnds(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	ls := []*LoRA{randomLoRA(rng, testBase, 3, nil, false), randomLoRA(rng, testBase, 3, nil, false)}
	first, _ := mustMerge(t, ls, MergeOptions{Method: MethodSLERP, T: 1e-12})
	if d := relDiff(t, denseOf(first), denseOf(ls[0])); d > 1e-5 {
		t.Errorf("t→0 differs from the first expert by %.3g", d)
	}
	second, _ := mustMerge(t, ls, MergeOptions{Method: MethodSLERP, T: 1})
	if d := relDiff(t, denseOf(second), denseOf(ls[1])); d > 1e-5 {
		t.Errorf("t=1 differs from the second expert by %.3g", d)
	}
	mid, _ := mustMerge(t, ls, MergeOptions{Method: MethodSLERP, Rank: 6})
	// Random experts are nearly orthogonal: the midpoint is ≈ (v0+v1)·sin(π/4)/sin(π/2)·… ;
	// check it against the coefficients per module.
	d0, d1 := denseOf(ls[0]), denseOf(ls[1])
	dm := denseOf(mid)
	for layer := range dm {
		for p := range dm[layer] {
			c0, c1 := slerpCoefficients(f32(d0[layer][p]), f32(d1[layer][p]), 0.5)
			if math.Abs(c0-c1) > 1e-9 || c0 < 0.5 {
				t.Fatalf("midpoint coefficients %g %g", c0, c1)
			}
			w := make([]float64, len(dm[layer][p]))
			for i := range w {
				w[i] = c0*d0[layer][p][i] + c1*d1[layer][p][i]
			}
			if d := relDiff(t, [][model.NumProj][]float64{{w}}, [][model.NumProj][]float64{{dm[layer][p]}}); d > 1e-5 {
				t.Fatalf("midpoint differs by %.3g", d)
			}
		}
	}
	// Colinear vectors interpolate linearly.
	if c0, c1 := slerpCoefficients([]float32{1, 2}, []float32{2, 4}, 0.25); c0 != 0.75 || c1 != 0.25 {
		t.Errorf("colinear coefficients %g %g", c0, c1)
	}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func TestTaskArithmeticSelfIsZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	e := randomLoRA(rng, testBase, 4, nil, false)
	m, _ := mustMerge(t, []*LoRA{e, e}, MergeOptions{Method: MethodTaskArithmetic, Weights: []float64{1, -1}})
	num, den := 0.0, 0.0
	got, ref := denseOf(m), denseOf(e)
	for layer := range got {
		for p := range got[layer] {
			for i, v := range got[layer][p] {
				num += v * v
				den += ref[layer][p][i] * ref[layer][p][i]
			}
		}
	}
	if r := math.Sqrt(num / den); r > 1e-6 {
		t.Errorf("e − e = %.3g relative", r)
	}
}

// CPI keeps each expert's core and fills the rest.
func TestCPI(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ls := []*LoRA{randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 2, nil, false)}
	mods, err := modules(ls)
	if err != nil {
		t.Fatal(err)
	}
	o, err := MergeOptions{Method: MethodCPI, CoreFraction: 0.05}.normalized(3)
	if err != nil || o.CoreFill != "average" {
		t.Fatalf("%+v %v", o, err)
	}
	m := mods[0]
	ds := [][]float32{m.dense(0), m.dense(1), m.dense(2)}
	fused := cpiFuse(m, ds, o)
	k := keepCount(len(fused), 0.05)
	cores := 0
	for e := range fused {
		var claim []float32
		for i := range ds {
			if float32(math.Abs(float64(ds[i][e]))) >= topThreshold(ds[i], k) {
				claim = append(claim, ds[i][e])
			}
		}
		want := (ds[0][e] + ds[1][e] + ds[2][e]) / 3
		if len(claim) > 0 {
			cores++
			want = 0
			for _, v := range claim {
				want += v / float32(len(claim))
			}
		}
		if math.Abs(float64(fused[e]-want)) > 1e-6 {
			t.Fatalf("entry %d: %g, want %g", e, fused[e], want)
		}
	}
	if cores < k || cores > 3*k {
		t.Errorf("%d core entries for k = %d", cores, k)
	}
	// Two experts default to a SLERP fill.
	o2, _ := MergeOptions{Method: MethodCPI}.normalized(2)
	if o2.CoreFill != "slerp" || o2.T != 0.5 || o2.CoreFraction != 0.01 {
		t.Errorf("two-expert defaults %+v", o2)
	}
	full := min(testBase.HiddenSize, testBase.IntermediateSize)
	if _, rep := mustMerge(t, ls[:2], MergeOptions{Method: MethodCPI, Rank: full}); rep.RelFrobError > 1e-6 {
		t.Errorf("full-rank cpi reports %.3g", rep.RelFrobError)
	}
}

func TestMergeInvalid(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	a, b := randomLoRA(rng, testBase, 2, nil, false), randomLoRA(rng, testBase, 2, nil, false)
	other := testBase
	other.NumLayers = 2
	short := randomLoRA(rng, other, 2, nil, false)
	wide := testBase
	wide.HiddenSize = 20
	wrongShape := randomLoRA(rng, wide, 2, nil, false)
	broken := randomLoRA(rng, testBase, 2, nil, false)
	broken.Pair(1, model.ProjK).A = broken.Pair(1, model.ProjK).A[:3]
	two := []*LoRA{a, b}
	cases := []struct {
		name    string
		ls      []*LoRA
		o       MergeOptions
		mention string
	}{
		{"unknown method", two, MergeOptions{Method: "average"}, "unknown method"},
		{"no experts", nil, MergeOptions{Method: MethodLinear}, "no experts"},
		{"nil expert", []*LoRA{a, nil}, MergeOptions{Method: MethodLinear}, "expert 1 is nil"},
		{"slerp of three", []*LoRA{a, b, a}, MergeOptions{Method: MethodSLERP}, "exactly 2"},
		{"slerp with weights", two, MergeOptions{Method: MethodSLERP, Weights: []float64{1, 1}}, "weights"},
		{"weights length", two, MergeOptions{Method: MethodLinear, Weights: []float64{1}}, "1 weights for 2"},
		{"NaN weight", two, MergeOptions{Method: MethodTaskArithmetic, Weights: []float64{1, math.NaN()}}, "weight 1"},
		{"zero-sum linear", two, MergeOptions{Method: MethodLinear, Weights: []float64{1, -1}}, "positive sum"},
		{"density > 1", two, MergeOptions{Method: MethodTIES, Density: 1.5}, "density"},
		{"negative density", two, MergeOptions{Method: MethodDARELinear, Density: -0.1}, "density"},
		{"t > 1", two, MergeOptions{Method: MethodSLERP, T: 2}, "t 2"},
		{"negative rank", two, MergeOptions{Method: MethodLinear, Rank: -1}, "rank"},
		{"core fraction", two, MergeOptions{Method: MethodCPI, CoreFraction: 2}, "core fraction"},
		{"core fill", two, MergeOptions{Method: MethodCPI, CoreFill: "max"}, "core fill"},
		{"slerp fill of three", []*LoRA{a, b, a}, MergeOptions{Method: MethodCPI, CoreFill: "slerp"}, "exactly 2"},
		{"layers differ", []*LoRA{a, short}, MergeOptions{Method: MethodLinear}, "2 layers"},
		{"shapes differ", []*LoRA{a, wrongShape}, MergeOptions{Method: MethodLinear}, "q_proj"},
		{"broken pair", []*LoRA{a, broken}, MergeOptions{Method: MethodLinear}, "k_proj"},
		{"empty adapters", []*LoRA{New(testBase, Config{})}, MergeOptions{Method: MethodLinear}, "no module"},
	}
	for _, c := range cases {
		_, _, err := Merge(c.ls, c.o)
		if !errors.Is(err, ErrMerge) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: got %v, want ErrMerge naming %q", c.name, err, c.mention)
		}
	}
}

// A merged adapter with per-module ranks and partial targets survives Save/Load.
func TestMergedSaveLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	a := randomLoRA(rng, testBase, 2, []model.Proj{model.ProjQ, model.ProjUp}, false)
	b := randomLoRA(rng, testBase, 3, []model.Proj{model.ProjQ}, false)
	b.Layers[2] = [model.NumProj]*Pair{} // b lacks layer 2
	a.Layers[1] = [model.NumProj]*Pair{} // a lacks layer 1
	m, _ := mustMerge(t, []*LoRA{a, b}, MergeOptions{Method: MethodCat, Weights: []float64{0.5, 2}})
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir, testBase)
	if err != nil {
		t.Fatal(err)
	}
	if d := relDiff(t, denseOf(back), combine([]*LoRA{a, b}, []float64{0.5, 2})); d > 1e-6 {
		t.Errorf("loaded merge differs by %.3g", d)
	}
	for layer := range m.Layers {
		for p, pr := range m.Layers[layer] {
			q := back.Layers[layer][p]
			if (pr == nil) != (q == nil) || (pr != nil && (pr.Rank != q.Rank || q.Scale != 1)) {
				t.Errorf("layer %d %s: saved %v, loaded %v", layer, model.Proj(p), pr != nil, q != nil)
			}
		}
	}
}

// The golden adapter merged with a scaled copy, saved and loaded back, gives the
// logits of the base model with the merged update added directly.
func TestGoldenMergeSaveLoad(t *testing.T) {
	base := loadBase(t)
	l := loadGoldenLoRA(t, base)
	ls := []*LoRA{l, scaledCopy(l, -0.7)}
	ids := []int{317, 5, 9, 100, 42, 7}
	direct := func(d [][model.NumProj][]float64) []float32 {
		m := base.CloneWeights()
		for layer := range d {
			for p, v := range d[layer] {
				w := m.Weight(layer, model.Proj(p))
				for i := range v {
					w[i] += float32(v[i])
				}
			}
		}
		return whole(t, m, ids, nil)
	}
	full := base.Config.HiddenSize // ≥ min(out, in) of every module: re-factoring is exact
	cases := []struct {
		o    MergeOptions
		want func() [][model.NumProj][]float64
	}{
		{MergeOptions{Method: MethodLinear, Weights: []float64{0.3, 0.7}}, func() [][model.NumProj][]float64 { return combine(ls, []float64{0.3, 0.7}) }},
		{MergeOptions{Method: MethodTaskArithmetic, Weights: []float64{1, 0.5}}, func() [][model.NumProj][]float64 { return combine(ls, []float64{1, 0.5}) }},
		{MergeOptions{Method: MethodCat, Weights: []float64{2, 1}}, func() [][model.NumProj][]float64 { return combine(ls, []float64{2, 1}) }},
		{MergeOptions{Method: MethodTIES, Density: 0.5, Rank: full}, func() [][model.NumProj][]float64 {
			// Signs disagree everywhere (the copy is scaled by −0.7): each entry kept
			// by TIES is the elected expert's value, so compute it entry by entry.
			ref := make([][model.NumProj][]float64, len(l.Layers))
			mods, _ := modules(ls)
			for _, m := range mods {
				ds := [][]float32{m.dense(0), m.dense(1)}
				for i := range ds {
					trim(ds[i], 0.5)
				}
				v := make([]float64, len(ds[0]))
				for e := range v {
					a, b := float64(ds[0][e]), float64(ds[1][e])
					switch {
					case a+b >= 0 && a > 0 && b > 0, a+b < 0 && a < 0 && b < 0:
						v[e] = (a + b) / 2
					case a+b >= 0 && a > 0, a+b < 0 && a < 0:
						v[e] = a
					case a+b >= 0 && b > 0, a+b < 0 && b < 0:
						v[e] = b
					}
				}
				ref[m.layer][m.proj] = v
			}
			return ref
		}},
	}
	for _, c := range cases {
		merged, rep := mustMerge(t, ls, c.o)
		dir := t.TempDir()
		if err := merged.Save(dir); err != nil {
			t.Fatal(err)
		}
		back, err := Load(dir, base.Config)
		if err != nil {
			t.Fatalf("%s: %v", c.o.Method, err)
		}
		if rep.RelFrobError > 1e-5 {
			t.Errorf("%s: re-factoring error %.3g at full rank", c.o.Method, rep.RelFrobError)
		}
		want := direct(c.want())
		if d := maxAbsDiff(whole(t, base, ids, back), want); d > tol {
			t.Errorf("%s: loaded merge vs direct update: max |Δlogit| %.3g", c.o.Method, d)
		}
		if d := maxAbsDiff(whole(t, base, ids, back), whole(t, base, ids, merged)); d != 0 {
			t.Errorf("%s: loaded merge differs from the in-memory one by %.3g", c.o.Method, d)
		}
		if d := maxAbsDiff(want, whole(t, base, ids, nil)); d < 1e-3 {
			t.Errorf("%s: the merged update barely changes the logits (%.3g): test is vacuous", c.o.Method, d)
		}
	}
}
