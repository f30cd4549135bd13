package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// eachImpl runs f once per kernel set this CPU has (avx512, avx2, go).
func eachImpl(t *testing.T, f func(t *testing.T)) {
	saved := cur
	defer func() { cur = saved }()
	for _, im := range impls {
		cur = im
		t.Run(im.name, f)
	}
}

func randVec(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (r.Float32()*2 - 1) * scale
	}
	return v
}

var sizes = func() []int {
	s := make([]int, 0, 80)
	for n := 0; n <= 67; n++ {
		s = append(s, n)
	}
	return append(s, 127, 128, 129, 255, 1000, 4096, 10007)
}()

// close reports whether got is within tol of want, relative to scale.
func near(got, want, scale, tol float64) bool {
	return math.Abs(got-want) <= tol*scale+1e-30
}

func TestDot(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range sizes {
			a, b := randVec(r, n, 1), randVec(r, n+3, 1)
			var abs float64
			for i := range a {
				abs += math.Abs(float64(a[i]) * float64(b[i]))
			}
			got, want := Dot(a, b), dotRef(a, b)
			if !near(float64(got), float64(want), abs, 1e-6) {
				t.Fatalf("n=%d: got %v want %v", n, got, want)
			}
		}
	})
}

// TestElementwise covers Axpy, Add, RMSNorm, RoPE, SiLUMul, checking that
// elements past the length are untouched.
func TestElementwise(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range sizes {
			x := randVec(r, n, 3)
			y := randVec(r, n+5, 3)
			alpha := r.Float32()*4 - 2

			got, want := append([]float32(nil), y...), append([]float32(nil), y...)
			Axpy(alpha, x, got)
			axpyRef(alpha, x, want[:n])
			checkVec(t, fmt.Sprintf("Axpy n=%d", n), got, want, 1e-6, 4)

			got, want = append([]float32(nil), y...), append([]float32(nil), y...)
			Add(got, x)
			addRef(want[:n], x)
			checkVec(t, fmt.Sprintf("Add n=%d", n), got, want, 1e-6)

			got, want = append([]float32(nil), y...), append([]float32(nil), y...)
			Scale(got[:n], alpha)
			for i := range want[:n] {
				want[i] *= alpha
			}
			if !slices.Equal(got, want) { // one rounding per element, as the reference
				t.Fatalf("Scale n=%d: got %v want %v", n, got, want)
			}

			wt := randVec(r, n, 2)
			got, want = append([]float32(nil), y...), append([]float32(nil), y...)
			RMSNorm(got, x, wt, 1e-5)
			rmsNormRef(want[:n], x, wt, 1e-5)
			checkVec(t, fmt.Sprintf("RMSNorm n=%d", n), got, want, 1e-5)
			xa := append([]float32(nil), x...) // aliased dst
			RMSNorm(xa, xa, wt, 1e-5)
			checkVec(t, fmt.Sprintf("RMSNorm alias n=%d", n), xa, want[:n], 1e-5)

			cs, sn := randVec(r, n/2, 1), randVec(r, n/2, 1)
			got, want = append([]float32(nil), x...), append([]float32(nil), x...)
			RoPE(got, cs, sn)
			ropeRef(want, cs, sn)
			checkVec(t, fmt.Sprintf("RoPE n=%d", n), got, want, 1e-6, 3)

			g := randVec(r, n, 20)
			if n > 2 {
				g[0], g[1], g[2] = 100, -100, -88
			}
			got, want = append([]float32(nil), g...), append([]float32(nil), g...)
			SiLUMul(got, y)
			siluMulRef(want, y)
			checkVec(t, fmt.Sprintf("SiLUMul n=%d", n), got, want, 1e-6)
		}
	})
}

func TestSoftmax(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range sizes {
			for _, sc := range []float32{1, 30, 200} {
				x := randVec(r, n, sc)
				if n > 3 {
					x[n/2] = float32(math.Inf(-1)) // a masked position
				}
				got, want := append([]float32(nil), x...), append([]float32(nil), x...)
				Softmax(got)
				softmaxRef(want)
				checkVec(t, fmt.Sprintf("Softmax n=%d scale=%v", n, sc), got, want, 1e-5)
			}
		}
	})
}

// TestExpAccuracy bounds the relative error of the vector exp over its range.
func TestExpAccuracy(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		const n = 1 << 16
		x := make([]float32, n)
		for i := range x {
			x[i] = -87 + 87*float32(i)/n
		}
		e := append([]float32(nil), x...)
		cur.expSum(e, 0)
		var worst float64
		for i, v := range x {
			want := math.Exp(float64(v))
			worst = max(worst, math.Abs(float64(e[i])-want)/want)
		}
		t.Logf("max relative error of exp on [-87, 0]: %.3g", worst)
		if worst > 2.5e-7 {
			t.Fatalf("exp relative error %.3g", worst)
		}
	})
}

// checkVec compares elementwise with a relative tolerance, absolute below
// floor (default 1e-3, the size of terms that may cancel).
func checkVec(t *testing.T, what string, got, want []float32, tol float64, floor ...float64) {
	t.Helper()
	fl := 1e-3
	if len(floor) > 0 {
		fl = floor[0]
	}
	if len(got) != len(want) {
		t.Fatalf("%s: len %d vs %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) || !near(g, w, max(math.Abs(w), fl), tol) {
			t.Fatalf("%s: [%d] got %v want %v", what, i, got[i], want[i])
		}
	}
}

func checkMatMul(t *testing.T, r *rand.Rand, m, n, k int) {
	t.Helper()
	x, w := randVec(r, m*k, 1), randVec(r, n*k, 1)
	const guard = 7
	dst := randVec(r, m*n+guard, 1)
	tail := append([]float32(nil), dst[m*n:]...)
	MatMulT(dst, x, w, m, n, k)
	want := make([]float32, m*n)
	matMulTRef(want, x, w, m, n, k)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var abs float64
			for p := 0; p < k; p++ {
				abs += math.Abs(float64(x[i*k+p]) * float64(w[j*k+p]))
			}
			if !near(float64(dst[i*n+j]), float64(want[i*n+j]), abs, 2e-6) {
				t.Fatalf("m=%d n=%d k=%d: dst[%d,%d] = %v want %v", m, n, k, i, j, dst[i*n+j], want[i*n+j])
			}
		}
	}
	for i, v := range tail {
		if dst[m*n+i] != v {
			t.Fatalf("m=%d n=%d k=%d: wrote past dst", m, n, k)
		}
	}
}

func TestMatMulT(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, m := range []int{1, 2, 3, 4, 5, 7, 8, 9} {
			for _, n := range []int{1, 2, 3, 5, 6, 7, 12, 13, 25} {
				for _, k := range []int{1, 3, 8, 15, 16, 17, 31, 33, 64, 67} {
					checkMatMul(t, r, m, n, k)
				}
			}
		}
		// Shapes that go parallel, cross block edges and k slices.
		for _, s := range [][3]int{
			{1, 1536, 576}, {1, 100, 3000}, {3, 1000, 67}, {8, 97, 576},
			{17, 200, 100}, {64, 96, 576}, {67, 101, 129}, {130, 197, 64},
			{129, 37, 4100}, {2, 5, 9000}, {200, 13, 7},
		} {
			checkMatMul(t, r, s[0], s[1], s[2])
		}
		for range 150 { // random shapes
			checkMatMul(t, r, 1+r.IntN(40), 1+r.IntN(40), 1+r.IntN(300))
		}
	})
}

func TestMatMulTThreads(t *testing.T) {
	defer SetThreads(Threads())
	r := rand.New(rand.NewPCG(9, 10))
	for _, th := range []int{1, 2, 3, 5} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			checkMatMul(t, r, 1, 1537, 577)
			checkMatMul(t, r, 70, 300, 97)
		})
	}
}

func TestMatMulTEdges(t *testing.T) {
	MatMulT(nil, nil, nil, 0, 0, 0)
	dst := []float32{1, 2, 3, 4}
	MatMulT(dst, nil, nil, 2, 2, 0)
	for _, v := range dst {
		if v != 0 {
			t.Fatalf("k=0 should zero dst, got %v", dst)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("short w should panic")
		}
	}()
	MatMulT(make([]float32, 4), make([]float32, 6), make([]float32, 5), 2, 2, 3)
}

func TestShortSlicesPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"Dot":     func() { Dot(make([]float32, 3), make([]float32, 2)) },
		"Axpy":    func() { Axpy(1, make([]float32, 3), make([]float32, 2)) },
		"Add":     func() { Add(make([]float32, 2), make([]float32, 3)) },
		"RMSNorm": func() { RMSNorm(make([]float32, 3), make([]float32, 3), make([]float32, 2), 1) },
		"RoPE":    func() { RoPE(make([]float32, 8), make([]float32, 4), make([]float32, 3)) },
		"SiLUMul": func() { SiLUMul(make([]float32, 3), make([]float32, 2)) },
		"AxpyRows": func() {
			AxpyRows(make([]float32, 4), make([]float32, 7), 4, make([]float32, 2))
		},
		"AxpyRowsBF16": func() {
			AxpyRowsBF16(make([]float32, 4), make([]uint16, 7), 4, make([]float32, 2))
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic on short slice", name)
				}
			}()
			f()
		}()
	}
}

func TestParallel(t *testing.T) {
	defer SetThreads(Threads())
	for _, th := range []int{1, 2, 4} {
		SetThreads(th)
		for _, n := range []int{0, 1, 2, 7, 100, 1001} {
			hits := make([]int32, n)
			Parallel(n, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					hits[i]++
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("threads=%d n=%d: item %d ran %d times", th, n, i, h)
				}
			}
		}
	}
}

// ParallelWork covers every item once; small work is one call on the caller.
func TestParallelWork(t *testing.T) {
	defer SetThreads(Threads())
	SetThreads(2)
	for _, work := range []int{0, serialWork - 1, serialWork, 1 << 30} {
		for _, n := range []int{0, 1, 9, 100} {
			hits := make([]atomic.Int32, n)
			var calls atomic.Int32
			ParallelWork(n, work, func(lo, hi int) {
				calls.Add(1)
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("work=%d n=%d: item %d ran %d times", work, n, i, h)
				}
			}
			if work < serialWork && n > 0 && calls.Load() != 1 {
				t.Fatalf("work=%d n=%d: %d calls, want 1 on the caller", work, n, calls.Load())
			}
		}
	}
}

// TestConcurrent runs nested Parallel and MatMulT from several goroutines at
// once: no deadlock, no race (run with -race), correct results.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 11))
			m, n, k := 9, 130, 64
			x, w := randVec(r, m*k, 1), randVec(r, n*k, 1)
			want := make([]float32, m*n)
			matMulTRef(want, x, w, m, n, k)
			outs := make([][]float32, 6)
			Parallel(len(outs), func(lo, hi int) {
				for h := lo; h < hi; h++ {
					outs[h] = make([]float32, m*n)
					MatMulT(outs[h], x, w, m, n, k)
				}
			})
			for _, o := range outs {
				for i := range o {
					if math.Abs(float64(o[i]-want[i])) > 1e-4 {
						t.Errorf("concurrent MatMulT mismatch at %d", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// UsePath switches to a named set or a family's best one, and names the
// sets it has when asked for one it lacks.
func TestUsePath(t *testing.T) {
	saved := cur
	defer func() { cur = saved }()
	for _, name := range Paths() {
		if err := UsePath(name); err != nil || Path() != name {
			t.Fatalf("UsePath(%q): %v, now %q", name, err, Path())
		}
	}
	if err := UsePath("go"); err != nil || Path() != "go" {
		t.Fatalf("UsePath(go): %v", err)
	}
	if err := UsePath("sse9"); err == nil || !strings.Contains(err.Error(), "go") {
		t.Fatalf("UsePath(sse9) = %v, want an error listing the sets", err)
	}
	if Path() != "go" {
		t.Fatalf("a failed UsePath changed the set to %q", Path())
	}
	for _, im := range impls {
		if fam, _, ok := strings.Cut(im.name, "-"); ok {
			if err := UsePath(fam); err != nil || !strings.HasPrefix(Path(), fam+"-") {
				t.Fatalf("UsePath(%q): %v, now %q", fam, err, Path())
			}
		}
	}
}

// LogSumExp against a float64 twin, on every kernel set.
func TestLogSumExp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	defer UsePath(Path())
	for _, p := range Paths() {
		UsePath(p)
		for _, n := range []int{1, 7, 16, 33, 320, 4096, 49152} {
			x := randVec(r, n, 8)
			keep := slices.Clone(x)
			got := LogSumExp(x, make([]float32, n))
			mx := math.Inf(-1)
			for _, v := range x {
				mx = math.Max(mx, float64(v))
			}
			var sum float64
			for _, v := range x {
				sum += math.Exp(float64(v) - mx)
			}
			want := mx + math.Log(sum)
			if math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("%s n=%d: %.9g, float64 %.9g", p, n, got, want)
			}
			if !slices.Equal(x, keep) {
				t.Errorf("%s n=%d: x changed", p, n)
			}
		}
	}
}

// AccRows equals Axpy row by row, bit for bit, in every kernel set: rows
// repeated and out of order, widths on and off the fast path's 64.
func TestAccRows(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(71, 72))
		for _, d := range []int{64, 128, 192, 48, 8} {
			nt := 50
			table, weight := randVec(r, nt*d, 1), randVec(r, nt, 2)
			for _, n := range []int{0, 1, 7, 300} {
				rows := make([]uint32, n)
				for i := range rows {
					rows[i] = uint32(r.IntN(nt))
				}
				got, want := randVec(r, d+1, 1), make([]float32, d+1)
				copy(want, got)
				AccRows(got, table, weight, rows, d)
				for _, row := range rows {
					Axpy(weight[row], table[int(row)*d:int(row+1)*d], want[:d])
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("d=%d n=%d: dst[%d] = %v, Axpy row by row %v", d, n, i, got[i], want[i])
					}
				}
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("a row outside the table did not panic")
		}
	}()
	AccRows(make([]float32, 64), make([]float32, 64), make([]float32, 1), []uint32{1}, 64)
}
