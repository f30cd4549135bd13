package adapters

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"roe/model"
)

func randomDense(rng *rand.Rand, out, in int) []float32 {
	d := make([]float32, out*in)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return d
}

// reconstructionError is ‖d − B·A‖_F / ‖d‖_F, computed in float64 from the factors.
func reconstructionError(d []float32, f factors, out, in int) float64 {
	num, den := 0.0, 0.0
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			s := 0.0
			for t := 0; t < f.k; t++ {
				s += float64(f.B[o*f.k+t]) * float64(f.A[t*in+i])
			}
			x := float64(d[o*in+i])
			num += (x - s) * (x - s)
			den += x * x
		}
	}
	return math.Sqrt(num / den)
}

// Full rank reproduces the update; the error falls as the rank grows.
func TestRefactorDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const out, in = 20, 30
	d := randomDense(rng, out, in)
	prev := math.Inf(1)
	for k := 1; k <= out; k++ {
		f, err := refactorDense(d, out, in, k)
		if err != nil {
			t.Fatal(err)
		}
		got := reconstructionError(d, f, out, in)
		rep := math.Sqrt(f.errSq / f.normSq)
		if math.Abs(got-rep) > 1e-5 {
			t.Errorf("rank %d: reported %.6g, measured %.6g", k, rep, got)
		}
		if got > prev+1e-12 {
			t.Errorf("rank %d: error %.6g grew from %.6g", k, got, prev)
		}
		prev = got
		if k == out && got > 1e-5 {
			t.Errorf("full rank: error %.3g", got)
		}
	}
	// A rank above min(out, in) is clamped.
	if f, _ := refactorDense(d, out, in, 100); f.k != out {
		t.Errorf("rank %d, want %d", f.k, out)
	}
}

// The randomized SVD (used for large dense updates) is near the optimum.
func TestRandomizedSVD(t *testing.T) {
	saved := exactSVDMax
	defer func() { exactSVDMax = saved }()
	rng := rand.New(rand.NewPCG(2, 2))
	const out, in, r = 120, 90, 12
	// Low rank plus noise, with decaying singular values, as merged updates are.
	d := make([]float32, out*in)
	for t := 0; t < r; t++ {
		u, v := randomDense(rng, out, 1), randomDense(rng, in, 1)
		s := math.Pow(0.7, float64(t))
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				d[o*in+i] += float32(s) * u[o] * v[i]
			}
		}
	}
	for i := range d {
		d[i] += float32(0.01 * rng.NormFloat64())
	}
	for _, k := range []int{4, 8} {
		exact, _ := refactorDense(d, out, in, k)
		exactSVDMax = 10
		approx, err := refactorDense(d, out, in, k)
		exactSVDMax = saved
		if err != nil {
			t.Fatal(err)
		}
		e, a := reconstructionError(d, exact, out, in), reconstructionError(d, approx, out, in)
		if a > e*1.01+1e-9 {
			t.Errorf("rank %d: randomized error %.5g, exact %.5g", k, a, e)
		}
		if rep := math.Sqrt(approx.errSq / approx.normSq); math.Abs(rep-a) > 1e-5 {
			t.Errorf("rank %d: randomized reports %.5g, measured %.5g", k, rep, a)
		}
	}
}

// The low-rank path equals the dense SVD of the same sum, including rank-deficient sums.
func TestRefactorLowRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const out, in = 14, 11
	b1, a1 := randomDense(rng, out, 3), randomDense(rng, 3, in)
	b2, a2 := randomDense(rng, out, 4), randomDense(rng, 4, in)
	stack := func(c2 float64) ([][]float64, [][]float64, []float32) {
		var bc, ar [][]float64
		d := make([]float32, out*in)
		add := func(b, a []float32, r int, c float64) {
			for j := 0; j < r; j++ {
				col, row := make([]float64, out), make([]float64, in)
				for o := range col {
					col[o] = c * float64(b[o*r+j])
				}
				for i := range row {
					row[i] = float64(a[j*in+i])
				}
				bc, ar = append(bc, col), append(ar, row)
				for o := range col {
					for i := range row {
						d[o*in+i] += float32(col[o] * row[i])
					}
				}
			}
		}
		add(b1, a1, 3, 1)
		add(b2, a2, 4, c2)
		return bc, ar, d
	}
	for _, k := range []int{2, 5, 7, 20} {
		bc, ar, d := stack(-0.5)
		f, err := refactorLowRank(bc, ar, out, in, k)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := refactorDense(d, out, in, k)
		fe, ge := reconstructionError(d, f, out, in), reconstructionError(d, g, out, in)
		if math.Abs(fe-ge) > 1e-5 {
			t.Errorf("rank %d: low-rank path %.6g, dense %.6g", k, fe, ge)
		}
		if k >= 7 && fe > 1e-5 {
			t.Errorf("rank %d ≥ 7: error %.3g", k, fe)
		}
	}
	// The same factors twice (rank-deficient stack) stay exact.
	bc, ar, _ := stack(0)
	bc2, ar2, _ := stack(0)
	bc, ar = append(bc[:3], bc2[:3]...), append(ar[:3], ar2[:3]...)
	f, _ := refactorLowRank(bc, ar, out, in, 6)
	d := make([]float32, out*in)
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			for j := 0; j < 3; j++ {
				d[o*in+i] += 2 * b1[o*3+j] * a1[j*in+i]
			}
		}
	}
	if e := reconstructionError(d, f, out, in); e > 1e-5 {
		t.Errorf("duplicated factors: error %.3g", e)
	}
}

// TestRefactorErrorNumbers logs how much a linear merge of random rank-8 experts
// loses when re-factored at rank 8 and 16 (q_proj etc. are [64,64]..[128,64]).
func TestRefactorErrorNumbers(t *testing.T) {
	base := model.Config{NumLayers: 2, HiddenSize: 64, IntermediateSize: 128, NumHeads: 4, NumKVHeads: 2, HeadDim: 16}
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{2, 4} {
		ls := make([]*LoRA, n)
		for i := range ls {
			ls[i] = randomLoRA(rng, base, 8, nil, false)
		}
		prev := math.Inf(1)
		ranks := []int{8, 16}
		if 8*n > 16 {
			ranks = append(ranks, 8*n)
		}
		for _, r := range ranks {
			m, rep := mustMerge(t, ls, MergeOptions{Method: MethodLinear, Rank: r})
			got := relDiff(t, denseOf(m), combine(ls, uniform(n)))
			t.Logf("linear merge of %d random rank-8 experts at rank %2d: relative Frobenius error %.4g (max module %.4g)",
				n, r, rep.RelFrobError, rep.MaxModuleRelError)
			if math.Abs(got-rep.RelFrobError) > 1e-4 {
				t.Errorf("reported %.5g, measured %.5g", rep.RelFrobError, got)
			}
			if rep.RelFrobError > prev {
				t.Errorf("error grew with rank")
			}
			prev = rep.RelFrobError
		}
		if prev > 1e-6 {
			t.Errorf("rank %d (Σ rᵢ) should be exact, got %.3g", 8*n, prev)
		}
	}
}

func uniform(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / float64(n)
	}
	return w
}

// BenchmarkRefactorDense times the dense re-factoring at rank 16: exact SVD up
// to min(out, in) = exactSVDMax, randomized above.
func BenchmarkRefactorDense(b *testing.B) {
	for _, n := range []int{256, 512, 2048} {
		d := randomDense(rand.New(rand.NewPCG(5, 5)), n, n)
		b.Run(fmt.Sprintf("%dx%d", n, n), func(b *testing.B) {
			for b.Loop() {
				if _, err := refactorDense(d, n, n, 16); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMergeLinear times a linear merge of four rank-16 experts over
// Llama-7B-shaped modules of one layer (low-rank path: no dense ΔW).
func BenchmarkMergeLinear(b *testing.B) {
	base := model.Config{NumLayers: 1, HiddenSize: 4096, IntermediateSize: 11008, NumHeads: 32, NumKVHeads: 32, HeadDim: 128}
	rng := rand.New(rand.NewPCG(6, 6))
	ls := make([]*LoRA, 4)
	for i := range ls {
		ls[i] = randomLoRA(rng, base, 16, nil, false)
	}
	for b.Loop() {
		if _, _, err := Merge(ls, MergeOptions{Method: MethodLinear, Rank: 16}); err != nil {
			b.Fatal(err)
		}
	}
}
