package kernels

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// randProduct makes a product with random x and w, bf16 weights when bf.
func randProduct(r *rand.Rand, m, n, k int, bf bool) (Product, []float32) {
	p := Product{X: randVec(r, m*k, 1), M: m, N: n, K: k, Dst: randVec(r, m*n, 1)}
	want := make([]float32, m*n)
	if bf {
		p.WH = randBF16(r, n*k)
		matMulTBF16Ref(want, p.X, p.WH, m, n, k)
	} else {
		p.W = randVec(r, n*k, 1)
		matMulTRef(want, p.X, p.W, m, n, k)
	}
	return p, want
}

func checkClose(t *testing.T, what string, got, want []float32, k int) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Sqrt(float64(k))*max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s: element %d got %v want %v", what, i, got[i], want[i])
		}
	}
}

// MatMulTGroup agrees with the reference for every product of a group, with
// mixed f32 and bf16 weights, on every path and thread count.
func TestMatMulTGroup(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, th := range []int{1, 2} {
			prev := Threads()
			SetThreads(th)
			for iter := 0; iter < 60; iter++ {
				np := 1 + r.IntN(maxGroup)
				m := 1 + r.IntN(9)
				if iter%6 == 0 {
					m = 40 + r.IntN(90) // prefill-sized: the packed route
				}
				k := r.IntN(80)
				if iter%5 == 0 {
					k = 256 + r.IntN(300)
				}
				ps := make([]Product, np)
				wants := make([][]float32, np)
				for i := range ps {
					ps[i], wants[i] = randProduct(r, m, 1+r.IntN(200), k, r.IntN(2) == 0)
				}
				MatMulTGroup(ps...)
				for i := range ps {
					checkClose(t, "group product", ps[i].Dst, wants[i], k)
				}
			}
			SetThreads(prev)
		}
	})
}

// SwiGLU equals silu(x·Wgᵀ) ⊙ (x·Wuᵀ) from the reference twins and leaves
// the up projection in up.Dst.
func TestSwiGLU(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, th := range []int{1, 2} {
			prev := Threads()
			SetThreads(th)
			for iter := 0; iter < 40; iter++ {
				m, n, k := 1+r.IntN(4), 1+r.IntN(300), r.IntN(70)
				if iter%4 == 0 {
					m, n, k = 33+r.IntN(70), 100+r.IntN(200), 200+r.IntN(200)
				}
				bf := r.IntN(2) == 0
				gate, wantG := randProduct(r, m, n, k, bf)
				up, wantU := randProduct(r, m, n, k, bf)
				up.X = gate.X
				if bf {
					matMulTBF16Ref(wantU, up.X, up.WH, m, n, k)
				} else {
					matMulTRef(wantU, up.X, up.W, m, n, k)
				}
				siluMulRef(wantG, wantU)
				SwiGLU(gate, up)
				checkClose(t, "up", up.Dst, wantU, k)
				checkClose(t, "gate", gate.Dst, wantG, k)
			}
			SetThreads(prev)
		}
	})
}

func TestGroupShapeMismatchPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gate, _ := randProduct(r, 2, 8, 16, false)
	up, _ := randProduct(r, 2, 9, 16, false)
	for name, f := range map[string]func(){
		"swiglu shapes": func() { SwiGLU(gate, up) },
		"short dst":     func() { MatMulTGroup(Product{Dst: make([]float32, 3), X: gate.X, W: gate.W, M: 2, N: 8, K: 16}) },
		"too many":      func() { MatMulTGroup(make([]Product, maxGroup+1)...) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// A decode step's grouped products allocate nothing.
func TestGroupNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	q, _ := randProduct(r, 1, 576, 576, false)
	k, _ := randProduct(r, 1, 192, 576, true)
	v, _ := randProduct(r, 1, 192, 576, true)
	gate, _ := randProduct(r, 1, 1536, 576, false)
	up, _ := randProduct(r, 1, 1536, 576, false)
	up.X = gate.X
	ps := [3]Product{q, k, v}
	for _, th := range []int{1, 2} {
		prev := Threads()
		SetThreads(th)
		MatMulTGroup(ps[:]...)
		if n := testing.AllocsPerRun(50, func() { MatMulTGroup(ps[:]...); SwiGLU(gate, up) }); n != 0 {
			t.Errorf("threads=%d: %v allocations per call", th, n)
		}
		SetThreads(prev)
	}
}

// MatMulTGroupAnd runs every extra item exactly once, beside products that
// come out as MatMulTGroup's, at every thread count.
func TestMatMulTGroupAnd(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	prev := Threads()
	defer SetThreads(prev)
	for _, th := range []int{1, 2} {
		SetThreads(th)
		for _, n := range []int{0, 1, 7, 40} {
			p, _ := randProduct(r, 1, 300, 256, false)
			q := p
			q.Dst = make([]float32, len(p.Dst))
			MatMulTGroup(q)
			var ran [40]atomic.Int32
			MatMulTGroupAnd(n, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					ran[i].Add(1)
				}
			}, p)
			for i := range ran {
				want := int32(0)
				if i < n {
					want = 1
				}
				if got := ran[i].Load(); got != want {
					t.Fatalf("threads %d, %d items: item %d ran %d times, want %d", th, n, i, got, want)
				}
			}
			for i := range q.Dst {
				if p.Dst[i] != q.Dst[i] {
					t.Fatalf("threads %d, %d items: product element %d %v, MatMulTGroup %v", th, n, i, p.Dst[i], q.Dst[i])
				}
			}
		}
	}
}
