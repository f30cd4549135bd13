package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/internal/testenv"
	"roe/model/safetensors"
)

const ggufGolden = "../../shared/golden/gguf"

// quantTypes are the weight types roe computes with.
var quantTypes = []QType{F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS}

// TestDequantizeGolden dequantizes every tensor of every golden GGUF file
// that has a dequantized twin and compares bit for bit: ggml's to_float.
func TestDequantizeGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(ggufGolden, "*", "*.gguf"))
	if len(files) == 0 {
		testenv.SkipOrFail(t, "no GGUF goldens in %s", ggufGolden)
	}
	seen := map[QType]int{}
	checked := 0
	for _, path := range files {
		base := strings.TrimSuffix(path, ".gguf")
		deq, first16 := base+".dequant.safetensors", false
		if _, err := os.Stat(deq); err != nil {
			deq, first16 = base+".dequant-first16rows.safetensors", true
			if _, err := os.Stat(deq); err != nil {
				continue // F32 files: nothing to dequantize
			}
		}
		ts, err := readGGUF(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sf, err := safetensors.Open(deq)
		if err != nil {
			t.Fatalf("%s: %v", deq, err)
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			eachImpl(t, func(t *testing.T) {
				for _, ten := range ts {
					want, err := sf.Float32(ten.name)
					if err != nil {
						t.Fatalf("%s %s: %v", deq, ten.name, err)
					}
					cols := int(ten.ne[0])
					rows := len(ten.data) / mustRowBytes(ten.typ, cols)
					if first16 && len(ten.ne) > 1 {
						rows = min(rows, 16)
					}
					if len(want) != rows*cols {
						t.Fatalf("%s %s: golden has %d values, want %d×%d", deq, ten.name, len(want), rows, cols)
					}
					rb := mustRowBytes(ten.typ, cols)
					got := make([]float32, cols)
					for r := 0; r < rows; r++ {
						if err := DequantizeRow(ten.typ, got, ten.data[r*rb:(r+1)*rb]); err != nil {
							t.Fatalf("%s %s: %v", path, ten.name, err)
						}
						for c, g := range got {
							if math.Float32bits(g) != math.Float32bits(want[r*cols+c]) {
								t.Fatalf("%s %s (%s) row %d col %d: got %v want %v",
									filepath.Base(path), ten.name, ten.typ, r, c, g, want[r*cols+c])
							}
						}
					}
					seen[ten.typ]++
					checked++
				}
			})
		})
		sf.Close()
	}
	t.Logf("%d tensors bit-identical; types: %v", checked, seen)
	if checked == 0 {
		t.Fatal("no tensors checked")
	}
}

func mustRowBytes(t QType, n int) int {
	rb, err := RowBytes(t, n)
	if err != nil {
		panic(err)
	}
	return rb
}

// f16Fields lists the byte offsets of a block's f16 scales (d, dmin, m).
var f16Fields = map[QType][]int{
	Q4_0: {0}, Q4_1: {0, 2}, Q5_0: {0}, Q5_1: {0, 2}, Q8_0: {0},
	Q2_K: {80, 82}, Q3_K: {108}, Q4_K: {0, 2}, Q5_K: {0, 2}, Q6_K: {208}, IQ4_NL: {0}, IQ4_XS: {0},
}

// randQRow makes a row of n random weights of type t: random quants and
// finite scales of about scale (float types: random values of about scale).
func randQRow(r *rand.Rand, t QType, n int, scale float32) []byte {
	b := make([]byte, mustRowBytes(t, n))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f := func() float32 { return (r.Float32()*2 - 1) * scale }
	switch t {
	case F32:
		for i := 0; i < n; i++ {
			putLE32(b[4*i:], math.Float32bits(f()))
		}
	case F16:
		for i := 0; i < n; i++ {
			putLE16(b[2*i:], safetensors.F32ToF16(f()))
		}
	case BF16:
		for i := 0; i < n; i++ {
			putLE16(b[2*i:], ToBF16(f()))
		}
	default:
		bb := t.BlockBytes()
		for o := 0; o < len(b); o += bb {
			for _, off := range f16Fields[t] {
				putLE16(b[o+off:], safetensors.F32ToF16(f()/16))
			}
		}
	}
	return b
}

func putLE16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func randQMatrix(r *rand.Rand, t QType, rows, cols int) QMatrix {
	m := QMatrix{Type: t, Rows: rows, Cols: cols}
	for range rows {
		m.Data = append(m.Data, randQRow(r, t, cols, 1)...)
	}
	return m
}

// Every kernel set dequantizes random rows of every type exactly as the
// reference does.
func TestDequantizeRow(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(31, 32))
		for _, ty := range quantTypes {
			for _, blocks := range []int{0, 1, 2, 3, 7, 16} {
				n := blocks * ty.BlockSize()
				if ty.BlockSize() == 1 {
					n = blocks*13 + blocks%2
				}
				src := randQRow(r, ty, n, 4)
				want, got := make([]float32, n), make([]float32, n+1)
				got[n] = 42
				dequantizeRowRef(ty, want, src)
				if err := DequantizeRow(ty, got[:n], src); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s n=%d: element %d got %v want %v", ty, n, i, got[i], want[i])
					}
				}
				if got[n] != 42 {
					t.Fatalf("%s n=%d: wrote past the row", ty, n)
				}
			}
		}
	})
}

// Q5_1 has no golden file: check one block by hand.
func TestDequantizeQ5_1(t *testing.T) {
	b := make([]byte, 24)
	putLE16(b, safetensors.F32ToF16(0.5))
	putLE16(b[2:], safetensors.F32ToF16(-3))
	putLE32(b[4:], 1<<3|1<<20) // fifth bit of weights 3 and 20
	for j := range 16 {
		b[8+j] = byte(j) | byte(15-j)<<4
	}
	got := make([]float32, 32)
	if err := DequantizeRow(Q5_1, got, b); err != nil {
		t.Fatal(err)
	}
	for j := range 32 {
		q := j
		if j >= 16 {
			q = 31 - j
		}
		if j == 3 || j == 20 {
			q += 16
		}
		if want := float32(q)*0.5 - 3; got[j] != want {
			t.Fatalf("weight %d: got %v want %v", j, got[j], want)
		}
	}
}

func TestF16ToF32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := f16ToF32(uint16(h)), safetensors.F16ToF32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("%#04x: got %#08x want %#08x", h, math.Float32bits(got), math.Float32bits(want))
		}
	}
}

func TestDequantizeRowErrors(t *testing.T) {
	for _, c := range []struct {
		t    QType
		n, b int
		want error
	}{
		{Q4_0, 32, 17, ErrSize}, {Q4_0, 31, 18, ErrSize}, {Q4_K, 256, 145, ErrSize},
		{Q8_K, 256, 292, ErrType}, {Q8_1, 32, 36, ErrType}, {QType(4), 32, 20, ErrType},
		{QType(99), 1, 1, ErrType}, {F32, 3, 11, ErrSize},
	} {
		err := DequantizeRow(c.t, make([]float32, c.n), make([]byte, c.b))
		if !errors.Is(err, c.want) {
			t.Errorf("%s n=%d bytes=%d: got %v, want %v", c.t, c.n, c.b, err, c.want)
		}
	}
	for _, m := range []QMatrix{
		{Type: Q4_0, Rows: 2, Cols: 32, Data: make([]byte, 35)},
		{Type: Q4_0, Rows: -1, Cols: 32},
		{Type: Q6_K, Rows: 1, Cols: 255, Data: make([]byte, 210)},
		{Type: QType(21), Rows: 1, Cols: 256, Data: make([]byte, 110)},
		{Type: Q8_0, Rows: math.MaxInt / 2, Cols: 64, Data: make([]byte, 68)},
	} {
		if m.Check() == nil {
			t.Errorf("%s %d×%d with %d bytes: no error", m.Type, m.Rows, m.Cols, len(m.Data))
		}
	}
	if err := (QMatrix{Type: Q4_K, Rows: 3, Cols: 512, Data: make([]byte, 3*288)}).Check(); err != nil {
		t.Error(err)
	}
}

// checkQMatMul compares MatMulTQ with the reference for one shape.
func checkQMatMul(t *testing.T, r *rand.Rand, ty QType, m, n, k int) {
	t.Helper()
	w := randQMatrix(r, ty, n, k)
	x := randVec(r, m*k, 1)
	want := make([]float32, m*n)
	matMulTQRef(want, x, w, m)
	got := randVec(r, m*n+3, 1)
	tail := append([]float32(nil), got[m*n:]...)
	MatMulTQ(got, x, w, m)
	checkQ(t, fmt.Sprintf("%s m=%d n=%d k=%d", ty, m, n, k), got, want, x, w, m)
	for i, v := range tail {
		if got[m*n+i] != v {
			t.Fatalf("%s m=%d n=%d k=%d: wrote past dst", ty, m, n, k)
		}
	}
}

// checkQ compares got with want = x·wᵀ to a tolerance relative to Σ|x·w|
// per output, the scale of the summation's rounding.
func checkQ(t *testing.T, what string, got, want, x []float32, w QMatrix, m int) {
	t.Helper()
	n := w.Rows
	abs := qAbs(x, w, m)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			g, w, a := got[i*n+j], want[i*n+j], abs[i*n+j]
			if !near(float64(g), float64(w), a, 2e-6) {
				t.Fatalf("%s: dst[%d,%d] got %v want %v (Σ|xw| %v)", what, i, j, g, w, a)
			}
		}
	}
}

// qAbs returns Σ_p |x[i,p]·w[j,p]| for each output [i, j].
func qAbs(x []float32, w QMatrix, m int) []float64 {
	n, k := w.Rows, w.Cols
	wf := make([]float32, n*k)
	rb := mustRowBytes(w.Type, k)
	for j := 0; j < n; j++ {
		dequantizeRowRef(w.Type, wf[j*k:(j+1)*k], w.Data[j*rb:(j+1)*rb])
	}
	abs := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var a float64
			for p := 0; p < k; p++ {
				a += math.Abs(float64(x[i*k+p]) * float64(wf[j*k+p]))
			}
			abs[i*n+j] = a
		}
	}
	return abs
}

// MatMulTQ agrees with dequantize-then-reference on every path, type and
// thread count, for decode and prefill row counts and ragged n.
func TestMatMulTQ(t *testing.T) {
	defer SetThreads(Threads())
	for _, th := range []int{1, 2} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(41, uint64(th)))
			for _, ty := range quantTypes {
				for iter := 0; iter < 8; iter++ {
					m := 1 + r.IntN(4)
					switch iter % 4 {
					case 1:
						m = 1 + r.IntN(70)
					case 2:
						m = 1
					}
					bs := ty.BlockSize()
					if bs == 1 {
						bs = 16
					}
					k := bs * (1 + r.IntN(max(1, 1024/bs)))
					n := 1 + r.IntN(100)
					if iter == 3 {
						n = 200 + r.IntN(300) // several decode blocks
					}
					checkQMatMul(t, r, ty, m, n, k)
				}
			}
		})
	}
}

func TestMatMulTQEdges(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(43, 44))
		checkQMatMul(t, r, Q4_0, 0, 5, 32)
		checkQMatMul(t, r, Q4_0, 3, 0, 32)
		checkQMatMul(t, r, Q4_K, 2, 3, 0)
		for _, m := range []int{1, 2, 3, 4, 5, 8, 9, 31, 32, 33, 65} {
			checkQMatMul(t, r, Q8_0, m, 49, 64)
			checkQMatMul(t, r, Q4_K, m, 13, 512)
		}
	})
}

// Quantized products in a group and in SwiGLU equal the reference.
func TestGroupQuant(t *testing.T) {
	defer SetThreads(Threads())
	for _, th := range []int{1, 2} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(45, uint64(th)))
			for iter := 0; iter < 12; iter++ {
				m := 1 + r.IntN(3)
				if iter%4 == 0 {
					m = 33 + r.IntN(40)
				}
				k := 256 * (1 + r.IntN(2))
				ps := make([]Product, 3)
				wants := make([][]float32, 3)
				for i := range ps {
					n := 1 + r.IntN(150)
					ty := quantTypes[r.IntN(len(quantTypes))]
					if i == 2 {
						ps[i], wants[i] = randProduct(r, m, n, k, r.IntN(2) == 0)
						continue
					}
					q := randQMatrix(r, ty, n, k)
					ps[i] = Product{X: randVec(r, m*k, 1), Q: &q, M: m, N: n, K: k, Dst: make([]float32, m*n)}
					wants[i] = make([]float32, m*n)
					matMulTQRef(wants[i], ps[i].X, q, m)
				}
				MatMulTGroup(ps...)
				for i := range ps {
					if ps[i].Q != nil {
						checkQ(t, fmt.Sprintf("group product %d (%s)", i, ps[i].Q.Type), ps[i].Dst, wants[i], ps[i].X, *ps[i].Q, m)
					} else {
						checkClose(t, fmt.Sprintf("group product %d", i), ps[i].Dst, wants[i], k)
					}
				}
				// SwiGLU with a quantized gate and a float up.
				n := 1 + r.IntN(200)
				qg := randQMatrix(r, quantTypes[r.IntN(len(quantTypes))], n, k)
				x := randVec(r, m*k, 1)
				gate := Product{X: x, Q: &qg, M: m, N: n, K: k, Dst: make([]float32, m*n)}
				up, wantU := randProduct(r, m, n, k, false)
				up.X = x
				matMulTRef(wantU, x, up.W, m, n, k)
				wantG := make([]float32, m*n)
				matMulTQRef(wantG, x, qg, m)
				SwiGLU(gate, up)
				checkClose(t, "swiglu up", up.Dst, wantU, k)
				// gate.Dst = silu(g)·u; |silu'| < 1.1 bounds how an error in g
				// (relative to Σ|x·w|, as in checkQ) carries over.
				abs := qAbs(x, qg, m)
				for i, v := range gate.Dst {
					g, u := float64(wantG[i]), float64(wantU[i])
					sg := g / (1 + math.Exp(-g))
					tol := 1.1*math.Abs(u)*2e-6*abs[i] + math.Abs(sg)*1e-5*math.Sqrt(float64(k))*max(1, math.Abs(u)) + 1e-30
					if math.Abs(float64(v)-sg*u) > tol {
						t.Fatalf("swiglu gate %d: got %v want %v", i, v, sg*u)
					}
				}
			}
		})
	}
}

// Each kernel set's fused GEMV kernels agree with the reference on random
// rows: 1..9 rows, 1..9 blocks (1..300 weights of a float type), rows packed
// or strided, dst untouched past its end.
func TestQGEMV(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(51, 52))
		for ty, f := range cur.qgemv {
			if f == nil {
				continue
			}
			ty := QType(ty)
			for iter := 0; iter < 60; iter++ {
				rows, nb := 1+r.IntN(9), 1+r.IntN(9)
				k := nb * ty.BlockSize()
				if ty.BlockSize() == 1 { // float rows: whole pieces of 64 and a tail
					k = 1 + r.IntN(300)
				}
				rb := mustRowBytes(ty, k) + r.IntN(3)*7 // a stride past the row
				w := make([]byte, rows*rb)
				q := QMatrix{Type: ty, Rows: rows, Cols: k}
				for j := 0; j < rows; j++ {
					row := randQRow(r, ty, k, 1)
					copy(w[j*rb:], row)
					q.Data = append(q.Data, row...)
				}
				x := randVec(r, k, 1)
				xs := make([]float32, xsLen(k))
				xSums(xs, x)
				got := randVec(r, rows+1, 1)
				end := got[rows]
				f(got[:rows], x, xs, w, rb)
				want := make([]float32, rows)
				matMulTQRef(want, x, q, 1)
				checkQ(t, fmt.Sprintf("%s rows=%d nb=%d", ty, rows, nb), got[:rows], want, x, q, 1)
				if got[rows] != end {
					t.Fatalf("%s: wrote past dst", ty)
				}
			}
		}
	})
}

// A kernel set's qgemvNoSums names only kernels that never read the sums of
// x: given NaN sums they return the same bits as given the true ones.
func TestQGemvNoSums(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(41, 42))
		for _, ty := range quantTypes {
			f := cur.qgemv[ty]
			if f == nil || !cur.qgemvNoSums[ty] {
				continue
			}
			k := 2 * 256
			w := randQMatrix(r, ty, 3, k)
			x := randVec(r, k, 1)
			xs, nan := make([]float32, xsLen(k)), make([]float32, xsLen(k))
			xSums(xs, x)
			for i := range nan {
				nan[i] = float32(math.NaN())
			}
			want, got := make([]float32, 3), make([]float32, 3)
			f(want, x, xs, w.Data, w.rowBytes())
			f(got, x, nan, w.Data, w.rowBytes())
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: row %d reads the sums of x (%v, %v with them)", ty, i, got[i], want[i])
				}
			}
		}
	})
}

// F32 and BF16 rows run the float GEMMs in place when aligned (prefill),
// and the dequantized panels when not; both agree with the reference, and
// the fused GEMV (decode) takes either.
func TestMatMulTQFloatAlignment(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(61, 62))
		for _, ty := range []QType{F32, BF16, F16} {
			for _, off := range []int{0, 1} {
				for _, m := range []int{1, 2, 5, 40} {
					n, k := 37, 70+r.IntN(100)
					w := randQMatrix(r, ty, n, k)
					w.Data = append(make([]byte, off), w.Data...)[off:] // misaligned by off
					x := randVec(r, m*k, 1)
					want := make([]float32, m*n)
					matMulTQRef(want, x, w, m)
					got := make([]float32, m*n)
					MatMulTQ(got, x, w, m)
					checkQ(t, fmt.Sprintf("%s offset %d m=%d", ty, off, m), got, want, x, w, m)
				}
			}
		}
	})
}
