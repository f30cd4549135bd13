package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// newQ8Row allocates a quantized row of k activations.
func newQ8Row(k int) *q8Row {
	return &q8Row{qs: make([]int8, k), d: make([]float32, k/32), s: make([]int32, k/32), p: make([]int32, k/4), dx: make([]float32, k/4)}
}

// q8Inputs returns activation rows that exercise the quantizer: random
// scales per block, all-zero blocks, single spikes, extremes and
// subnormals, exact ties of the rounding.
func q8Inputs(r *rand.Rand, k int) [][]float32 {
	var rows [][]float32
	for range 20 {
		x := make([]float32, k)
		for b := 0; b < k/32; b++ {
			xb := x[32*b : 32*b+32]
			switch r.IntN(8) {
			case 0: // zeros
			case 1: // one spike
				xb[r.IntN(32)] = (r.Float32()*2 - 1) * 100
			case 2: // huge
				for l := range xb {
					xb[l] = (r.Float32()*2 - 1) * 3e38
				}
			case 3: // tiny, subnormal
				for l := range xb {
					xb[l] = (r.Float32()*2 - 1) * 1e-39
				}
			case 4: // ties: multiples of d/2 with d = 1
				for l := range xb {
					xb[l] = float32(r.IntN(255)-127) / 2
				}
				xb[0] = 127
			default:
				s := float32(math.Pow(10, float64(r.IntN(8)-4)))
				for l := range xb {
					xb[l] = (r.Float32()*2 - 1) * s
				}
			}
		}
		rows = append(rows, x)
	}
	return rows
}

// Every kernel set quantizes rows exactly as the reference does, and the
// reference is within half a step of x everywhere.
func TestQuantizeQ8(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(61, 62))
		for _, k := range []int{32, 64, 256, 576} {
			for i, x := range q8Inputs(r, k) {
				want, got := newQ8Row(k), newQ8Row(k)
				quantizeQ8Ref(want, x)
				quantizeQ8(cur, got, x)
				for b := range want.d {
					if math.Float32bits(got.d[b]) != math.Float32bits(want.d[b]) || got.s[b] != want.s[b] {
						t.Fatalf("k=%d row %d block %d: d %v s %d, want %v %d", k, i, b, got.d[b], got.s[b], want.d[b], want.s[b])
					}
					var s int32
					for l := 32 * b; l < 32*b+32; l++ {
						if got.qs[l] != want.qs[l] {
							t.Fatalf("k=%d row %d: q[%d] = %d, want %d (x %v d %v)", k, i, l, got.qs[l], want.qs[l], x[l], want.d[b])
						}
						e := math.Abs(float64(x[l]) - float64(want.d[b])*float64(want.qs[l]))
						if e > float64(want.d[b])*0.5000001+2e-43 {
							t.Fatalf("k=%d row %d: x[%d] = %v quantized to %d·%v", k, i, l, x[l], want.qs[l], want.d[b])
						}
						s += int32(want.qs[l])
					}
					if s != want.s[b] {
						t.Fatalf("block sum %d, want %d", want.s[b], s)
					}
				}
			}
		}
	})
}

// q8Want is x_q · w in float64 from the dequantized weights, and Σ|terms|.
func q8Want(ty QType, w []byte, a *q8Row) (want, abs float64) {
	k := len(a.qs)
	wf := make([]float32, k)
	dequantizeRowRef(ty, wf, w[:mustRowBytes(ty, k)])
	for p, v := range wf {
		t := float64(v) * float64(a.d[p/32]) * float64(a.qs[p])
		want += t
		abs += math.Abs(t)
	}
	return want, abs
}

// Each set's int8 kernels agree with the dequantized product over the
// quantized activations (to float32 rounding), on random rows, 1..9 rows,
// strided, dst untouched past its end.
func TestQ8Dot(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(63, 64))
		for _, ty := range Q8Types() {
			f := q8dotFor(cur, ty)
			for iter := 0; iter < 60; iter++ {
				rows, nb := 1+r.IntN(9), 1+r.IntN(6)
				k := nb * ty.BlockSize()
				rb := mustRowBytes(ty, k) + r.IntN(3)*7
				w := make([]byte, rows*rb)
				for j := range rows {
					copy(w[j*rb:], randQRow(r, ty, k, 1))
				}
				xs := q8Inputs(r, k)
				a := newQ8Row(k)
				quantizeQ8Ref(a, xs[r.IntN(len(xs))])
				a.setLanes()
				got := randVec(r, rows+1, 1)
				end := got[rows]
				f(got[:rows], a, w, rb)
				for j := range rows {
					want, abs := q8Want(ty, w[j*rb:], a)
					if abs > 1e37 {
						continue // float32 overflows
					}
					if !near(float64(got[j]), want, abs, 1e-5) {
						t.Fatalf("%s rows=%d nb=%d: dst[%d] = %v, want %v (Σ|·| %v)", ty, rows, nb, j, got[j], want, abs)
					}
				}
				if got[rows] != end {
					t.Fatalf("%s: wrote past dst", ty)
				}
			}
		}
	})
}

// With unit scales and small activations every partial sum is an integer
// below 2²⁴, so any order of float32 additions is exact: the kernels' integer
// sums must equal the reference's bit for bit. Extreme quants (all weights
// at their ends, activations ±127) check that no int16 step saturates.
func TestQ8DotExactIntegers(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(65, 66))
		for _, ty := range Q8Types() {
			for iter := 0; iter < 40; iter++ {
				nb := 1 + r.IntN(2)
				if ty.BlockSize() == 32 {
					nb = 1 + r.IntN(8)
				}
				k := nb * ty.BlockSize()
				w := randQRow(r, ty, k, 1)
				extreme := iter%4 == 0
				bb := ty.BlockBytes()
				for b := range nb {
					q := w[b*bb : (b+1)*bb]
					switch ty {
					case Q6_K:
						putLE16(q[208:], 0x3c00)
					case Q4_K:
						putLE16(q, 0x3c00)
						putLE16(q[2:], 0x3c00)
					default:
						putLE16(q, 0x3c00)
					}
					if extreme {
						fill := byte(0xff) // Q4/Q5: 15 or 31; Q6_K: 63
						if ty == Q8_0 && r.IntN(2) == 0 {
							fill = 0x80 // -128
						}
						switch ty {
						case Q8_0:
							for l := 2; l < 34; l++ {
								q[l] = fill
							}
						case Q4_0, Q5_0:
							for l := 2; l < bb; l++ {
								q[l] = fill
							}
						case Q4_K:
							for l := 16; l < 144; l++ {
								q[l] = fill
							}
						case Q6_K:
							for l := 0; l < 192; l++ {
								q[l] = fill
							}
						}
					}
				}
				a := newQ8Row(k)
				lim := 127
				if !extreme && ty.BlockSize() == 256 {
					lim = 3
				}
				for p := range a.qs {
					v := r.IntN(2*lim+1) - lim
					if extreme {
						v = lim
						if r.IntN(2) == 0 && ty != Q6_K && ty != Q4_K {
							v = -lim
						}
					}
					a.qs[p] = int8(v)
					a.s[p/32] += int32(v)
				}
				for b := range a.d {
					a.d[b] = 1
				}
				a.setLanes()
				want, _ := q8Want(ty, w, a)
				if ty.BlockSize() == 256 && extreme {
					// K-quant sums with ±127 exceed 2²⁴: compare in float64.
					var got [1]float32
					q8dotFor(cur, ty)(got[:], a, w, len(w))
					if math.Abs(float64(got[0])-want) > 1e-6*math.Abs(want)+1 {
						t.Fatalf("%s extreme: got %v want %v", ty, got[0], want)
					}
					continue
				}
				if math.Abs(want) >= 1<<24 {
					t.Fatalf("%s: test sum %v too large to be exact", ty, want)
				}
				ref := rowsQ8Ref(ty)(w, a)
				var got [1]float32
				q8dotFor(cur, ty)(got[:], a, w, len(w))
				if float64(ref) != want || got[0] != ref {
					t.Fatalf("%s nb=%d extreme=%v: kernel %v, reference %v, exact %v", ty, nb, extreme, got[0], ref, want)
				}
			}
		}
	})
}

func rowsQ8Ref(ty QType) func([]byte, *q8Row) float32 {
	return map[QType]func([]byte, *q8Row) float32{
		Q8_0: q8dotQ8_0Ref, Q4_0: q8dotQ4_0Ref, Q5_0: q8dotQ5_0Ref, Q4_K: q8dotQ4KRef, Q6_K: q8dotQ6KRef,
	}[ty]
}

// Property: the int8 product differs from the exact float product by at
// most the activations' rounding, Σ_p |w_p|·d_b/2 (plus float32 rounding).
func TestQ8Error(t *testing.T) {
	r := rand.New(rand.NewPCG(67, 68))
	for _, ty := range Q8Types() {
		k := 512
		for _, x := range q8Inputs(r, k) {
			w := randQMatrix(r, ty, 4, k)
			exact, got := make([]float32, 4), make([]float32, 4)
			matMulTQRef(exact, x, w, 1)
			MatMulTQ8(got, x, w, 1)
			a := newQ8Row(k)
			quantizeQ8Ref(a, x)
			a.setLanes()
			rb := mustRowBytes(ty, k)
			wf := make([]float32, k)
			for j := range 4 {
				dequantizeRowRef(ty, wf, w.Data[j*rb:(j+1)*rb])
				var bound, abs float64
				for p, v := range wf {
					bound += math.Abs(float64(v)) * float64(a.d[p/32]) / 2
					abs += math.Abs(float64(v) * float64(x[p]))
				}
				if abs > 1e37 {
					continue
				}
				if e := math.Abs(float64(got[j]) - float64(exact[j])); e > bound*1.0001+abs*1e-5+1e-30 {
					t.Fatalf("%s: int8 %v exact %v: error %g over the bound %g", ty, got[j], exact[j], e, bound)
				}
			}
		}
	}
}

// MatMulTQ8 and Product.Q8 run the int8 kernels for up to q8Rows rows on 1
// and 2 threads (equal to the reference per row) and the exact path beyond
// that and for types without int8 kernels.
func TestMatMulTQ8(t *testing.T) {
	defer SetThreads(Threads())
	for _, th := range []int{1, 2} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(69, uint64(th)))
			for _, ty := range []QType{Q8_0, Q4_0, Q5_0, Q4_K, Q6_K, Q5_K, Q4_1} {
				for _, m := range []int{1, 2, 3, 8, 9, 40} {
					n, k := 1+r.IntN(300), 256*(1+r.IntN(3))
					w := randQMatrix(r, ty, n, k)
					x := randVec(r, m*k, 1)
					want := make([]float32, m*n)
					q8 := HasQ8(ty) && m <= q8Rows
					if q8 {
						a := newQ8Row(k)
						for i := range m {
							quantizeQ8Ref(a, x[i*k:(i+1)*k])
							a.setLanes()
							rowsQ8(rowsQ8Ref(ty))(want[i*n:(i+1)*n], a, w.Data, mustRowBytes(ty, k))
						}
					} else {
						matMulTQRef(want, x, w, m)
					}
					got := make([]float32, m*n)
					MatMulTQ8(got, x, w, m)
					what := fmt.Sprintf("%s m=%d n=%d k=%d", ty, m, n, k)
					checkQ(t, what, got, want, x, w, m)
					// The same through a group.
					clear(got)
					MatMulTGroup(Product{Dst: got, X: x, Q: &w, M: m, N: n, K: k, Q8: true})
					checkQ(t, what+" (group)", got, want, x, w, m)
				}
			}
		})
	}
}

// A NaN or an infinity in the activations makes the int8 products NaN, as
// they make the float products non-finite, in every kernel set.
func TestQ8NonFinite(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(71, 72))
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			x := randVec(r, 512, 1)
			x[40] = bad
			a, want := newQ8Row(512), newQ8Row(512)
			quantizeQ8(cur, a, x)
			quantizeQ8Ref(want, x)
			if d := a.d[1]; math.Float32bits(d) != math.Float32bits(want.d[1]) || a.s[1] != 0 || (bad == bad) != !math.IsNaN(float64(d)) {
				t.Fatalf("%v: block d %v s %d, reference d %v", bad, d, a.s[1], want.d[1])
			}
			for _, ty := range Q8Types() {
				w := randQMatrix(r, ty, 3, 512)
				got := make([]float32, 3)
				MatMulTQ8(got, x, w, 1)
				for j, v := range got {
					if !math.IsNaN(float64(v)) {
						t.Fatalf("%s with %v: dst[%d] = %v, want NaN", ty, bad, j, v)
					}
				}
			}
		}
	})
}
