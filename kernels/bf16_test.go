package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func randBF16(r *rand.Rand, n int) []uint16 {
	w := make([]uint16, n)
	for i := range w {
		w[i] = ToBF16((r.Float32()*2 - 1))
	}
	return w
}

func TestBF16Conversions(t *testing.T) {
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0, 0},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // above half
		{float32(math.Inf(1)), 0x7f80},
	} {
		if got := ToBF16(c.f); got != c.want {
			t.Errorf("ToBF16(%v) = %#x, want %#x", c.f, got, c.want)
		}
	}
	if v := FromBF16(ToBF16(float32(math.NaN()))); !math.IsNaN(float64(v)) {
		t.Errorf("NaN became %v", v)
	}
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 3))
		for _, n := range sizes {
			src := randBF16(r, n)
			dst := make([]float32, n+3)
			WidenBF16(dst, src)
			for i, h := range src {
				if dst[i] != FromBF16(h) {
					t.Fatalf("n=%d: [%d] = %v want %v", n, i, dst[i], FromBF16(h))
				}
			}
			for _, v := range dst[n:] {
				if v != 0 {
					t.Fatalf("n=%d: wrote past the end", n)
				}
			}
		}
	})
}

func checkMatMulBF16(t *testing.T, r *rand.Rand, m, n, k int) {
	t.Helper()
	x, w := randVec(r, m*k, 1), randBF16(r, n*k)
	const guard = 7
	dst := randVec(r, m*n+guard, 1)
	tail := append([]float32(nil), dst[m*n:]...)
	MatMulTBF16(dst, x, w, m, n, k)
	want := make([]float32, m*n)
	matMulTBF16Ref(want, x, w, m, n, k)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var abs float64
			for p := 0; p < k; p++ {
				abs += math.Abs(float64(x[i*k+p]) * float64(FromBF16(w[j*k+p])))
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

// MatMulTBF16 agrees with its reference twin on every path and thread count,
// through both the widen-on-load (few rows) and widen-a-panel (many rows) routes.
func TestMatMulTBF16(t *testing.T) {
	defer SetThreads(Threads())
	for _, th := range []int{1, 2} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(17, uint64(th)))
			for _, m := range []int{1, 2, 3, 4, 5, 8, 9, 13} {
				for _, n := range []int{1, 2, 3, 5, 6, 7, 12, 13, 25} {
					for _, k := range []int{1, 3, 8, 15, 16, 17, 31, 33, 64, 67} {
						checkMatMulBF16(t, r, m, n, k)
					}
				}
			}
			for _, s := range [][3]int{
				{1, 1536, 576}, {1, 100, 3000}, {3, 1000, 67}, {8, 97, 576}, {12, 500, 64},
				{17, 200, 100}, {32, 150, 200}, {33, 150, 200}, {64, 96, 576}, {67, 101, 129}, {130, 197, 64}, {129, 37, 4100},
			} {
				checkMatMulBF16(t, r, s[0], s[1], s[2])
			}
			for range 100 {
				checkMatMulBF16(t, r, 1+r.IntN(40), 1+r.IntN(40), 1+r.IntN(300))
			}
		})
	}
}

// A parallel MatMulT, MatMulTBF16 or Parallel with a kept closure allocates nothing.
func TestMatMulTNoAllocs(t *testing.T) {
	defer SetThreads(Threads())
	SetThreads(2)
	r := rand.New(rand.NewPCG(5, 5))
	for _, s := range [][3]int{{1, 1536, 576}, {4, 1536, 576}, {64, 192, 576}} {
		m, n, k := s[0], s[1], s[2]
		x, w, wb, dst := randVec(r, m*k, 1), randVec(r, n*k, 1), randBF16(r, n*k), make([]float32, m*n)
		if a := testing.AllocsPerRun(50, func() { MatMulT(dst, x, w, m, n, k) }); a != 0 {
			t.Errorf("MatMulT %v: %v allocs per call", s, a)
		}
		if a := testing.AllocsPerRun(50, func() { MatMulTBF16(dst, x, wb, m, n, k) }); a != 0 {
			t.Errorf("MatMulTBF16 %v: %v allocs per call", s, a)
		}
	}
	var hits [64]int
	fn := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			hits[i]++
		}
	}
	if a := testing.AllocsPerRun(50, func() { Parallel(len(hits), fn) }); a != 0 {
		t.Errorf("Parallel: %v allocs per call", a)
	}
}

// With real helper threads (GOMAXPROCS ≥ 2, which AllocsPerRun turns off),
// the parallel path allocates nothing once its free lists are warm.
func TestParallelNoAllocs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2")
	}
	defer SetThreads(Threads())
	SetThreads(2)
	r := rand.New(rand.NewPCG(6, 6))
	m, n, k := 4, 1536, 576
	x, w, wb, dst := randVec(r, m*k, 1), randVec(r, n*k, 1), randBF16(r, n*k), make([]float32, m*n)
	run := func() {
		MatMulT(dst, x, w, m, n, k)
		MatMulTBF16(dst, x, wb, m, n, k)
	}
	for range 100 {
		run()
	}
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for range 200 {
		run()
	}
	runtime.ReadMemStats(&b)
	if d := b.Mallocs - a.Mallocs; d > 10 { // slack for the runtime and test framework
		t.Errorf("200 parallel calls made %d allocations", d)
	}
}

func TestFMALoop(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		if f := FMALoop(1000); f <= 0 {
			t.Fatalf("FMALoop reported %d flops", f)
		}
	})
}

// AxpyRows has the bits of Axpy row by row (the LoRA decode delta's
// parts depend on it), in every kernel set, against the reference too, and
// leaves y past its length alone.
func TestAxpyRows(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, d := range []int{1, 7, 8, 15, 16, 31, 64, 100, 576, 1536} {
			for _, rk := range []int{1, 3, 8} {
				ldb := d + 5
				b := randVec(r, (rk-1)*ldb+d, 1)
				a := randVec(r, rk, 2)
				y := randVec(r, d+3, 1)
				got, same, want := slices.Clone(y), slices.Clone(y), slices.Clone(y)
				AxpyRows(got[:d], b, ldb, a)
				for j := range rk {
					Axpy(a[j], b[j*ldb:j*ldb+d], same[:d])
					axpyRef(a[j], b[j*ldb:j*ldb+d], want[:d])
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(same[i]) {
						t.Fatalf("AxpyRows d=%d r=%d: y[%d] = %v, Axpy row by row %v", d, rk, i, got[i], same[i])
					}
				}
				checkVec(t, fmt.Sprintf("AxpyRows d=%d r=%d", d, rk), got, want, 1e-6, 4)
			}
		}
	})
}

// AxpyRowsBF16 equals Axpy row by row over the widened rows, in every
// kernel set, and leaves y past its length alone.
func TestAxpyRowsBF16(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, d := range []int{1, 7, 8, 16, 31, 64, 100, 576} {
			for _, rk := range []int{1, 3, 8} {
				ldb := d + 5
				b := make([]uint16, (rk-1)*ldb+d)
				for i := range b {
					b[i] = ToBF16(r.Float32()*2 - 1)
				}
				a := randVec(r, rk, 2)
				y := randVec(r, d+3, 1)
				got, want := slices.Clone(y), slices.Clone(y)
				AxpyRowsBF16(got[:d], b, ldb, a)
				row := make([]float32, d)
				for j := range rk {
					WidenBF16(row, b[j*ldb:j*ldb+d])
					axpyRef(a[j], row, want[:d])
				}
				checkVec(t, fmt.Sprintf("AxpyRowsBF16 d=%d r=%d", d, rk), got, want, 1e-6, 4)
			}
		}
	})
}

// AxpyRowsF16 equals Axpy row by row over the widened half-precision rows
// in every kernel set, and leaves y past its length alone.
func TestAxpyRowsF16(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, d := range []int{1, 7, 8, 16, 31, 64, 100, 576} {
			for _, rk := range []int{1, 3, 8} {
				ldb := d + 5
				b := make([]uint16, (rk-1)*ldb+d)
				for i := range b {
					b[i] = f32ToF16((r.Float32()*2 - 1) * 3)
				}
				a := randVec(r, rk, 2)
				y := randVec(r, d+3, 1)
				got, same := slices.Clone(y), slices.Clone(y)
				AxpyRowsF16(got[:d], b, ldb, a)
				row := make([]float32, d)
				for j := range rk {
					for i := range row {
						row[i] = f16ToF32(b[j*ldb+i])
					}
					Axpy(a[j], row, same[:d])
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(same[i]) {
						t.Fatalf("AxpyRowsF16 d=%d r=%d: y[%d] = %v, Axpy row by row %v", d, rk, i, got[i], same[i])
					}
				}
			}
		}
	})
}

// GemvF16 agrees with the float64 product of the widened rows.
func TestGemvF16(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, n := range []int{1, 3, 8} {
			for _, k := range []int{1, 15, 64, 65, 576} {
				wf := make([]float32, n*k)
				wh, wb := make([]uint16, n*k), make([]uint16, n*k)
				for i := range wf {
					wf[i] = r.Float32()*2 - 1
					wh[i], wb[i] = f32ToF16(wf[i]), ToBF16(wf[i])
				}
				x := randVec(r, k, 1)
				for _, c := range []struct {
					name string
					gemv func(dst []float32)
					w    func(i int) float32
				}{
					{"GemvF16", func(dst []float32) { GemvF16(dst, x, wh) }, func(i int) float32 { return f16ToF32(wh[i]) }},
					{"GemvBF16", func(dst []float32) { GemvBF16(dst, x, wb) }, func(i int) float32 { return FromBF16(wb[i]) }},
					{"GemvF32", func(dst []float32) { GemvF32(dst, x, wf) }, func(i int) float32 { return wf[i] }},
				} {
					got := randVec(r, n+1, 1)
					end := got[n]
					c.gemv(got[:n])
					for j := range n {
						var want, abs float64
						for i := range k {
							p := float64(x[i]) * float64(c.w(j*k+i))
							want += p
							abs += math.Abs(p)
						}
						if math.Abs(float64(got[j])-want) > 1e-6*abs+1e-30 {
							t.Fatalf("%s n=%d k=%d: dst[%d] = %v, want %v", c.name, n, k, j, got[j], want)
						}
					}
					if got[n] != end {
						t.Fatalf("%s n=%d k=%d wrote past dst", c.name, n, k)
					}
				}
			}
		}
	})
}

// AxpyRowsSplit (and its 16-bit forms) equal AxpyRows of each part into a
// zeroed buffer followed by Add, bit for bit, in every kernel set, leave y
// past its length alone, and refuse a split outside (0, rows).
func TestAxpyRowsSplit(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, d := range []int{1, 7, 8, 16, 31, 64, 100, 192, 576, 1536} {
			for _, rk := range []int{2, 3, 8, 16} {
				for _, split := range []int{1, rk / 2, rk - 1} {
					ldb := d + 5
					bf := randVec(r, (rk-1)*ldb+d, 1)
					bh, bb := make([]uint16, len(bf)), make([]uint16, len(bf))
					for i, v := range bf {
						bh[i], bb[i] = f32ToF16(v*3), ToBF16(v)
					}
					a := randVec(r, rk, 2)
					y := randVec(r, d+3, 1)
					for _, k := range []struct {
						name  string
						split func(y []float32)
						rows  func(y []float32, lo, hi int)
					}{
						{"", func(y []float32) { AxpyRowsSplit(y, bf, ldb, a, split) },
							func(y []float32, lo, hi int) { AxpyRows(y, bf[lo*ldb:], ldb, a[lo:hi]) }},
						{"BF16", func(y []float32) { AxpyRowsSplitBF16(y, bb, ldb, a, split) },
							func(y []float32, lo, hi int) { AxpyRowsBF16(y, bb[lo*ldb:], ldb, a[lo:hi]) }},
						{"F16", func(y []float32) { AxpyRowsSplitF16(y, bh, ldb, a, split) },
							func(y []float32, lo, hi int) { AxpyRowsF16(y, bh[lo*ldb:], ldb, a[lo:hi]) }},
					} {
						got, want := slices.Clone(y), slices.Clone(y)
						k.split(got[:d])
						part := make([]float32, d)
						for _, p := range [][2]int{{0, split}, {split, rk}} {
							clear(part)
							k.rows(part, p[0], p[1])
							Add(want[:d], part)
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("AxpyRowsSplit%s d=%d r=%d split=%d: y[%d] = %v, parts then Add %v", k.name, d, rk, split, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
		for _, split := range []int{0, 3, -1} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("AxpyRowsSplit with split %d of 3 rows did not panic", split)
					}
				}()
				AxpyRowsSplit(make([]float32, 4), make([]float32, 12), 4, make([]float32, 3), split)
			}()
		}
	})
}
