package kernels

import (
	"fmt"
	"math"
)

// MatMulT computes dst = x · wᵀ, the Hugging Face linear layout.
//
//	x: [m, k], w: [n, k], dst: [m, n] (overwritten)
//
// Large products run on the worker pool (see SetThreads).
func MatMulT(dst, x, w []float32, m, n, k int) {
	if w == nil {
		w = []float32{}
	}
	matMulT(cur, dst, x, w, m, n, k)
}

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 {
	need("Dot", len(b), len(a))
	return cur.dot(a, b[:len(a)])
}

// Axpy computes y += alpha·x over len(x) elements.
func Axpy(alpha float32, x, y []float32) {
	need("Axpy", len(y), len(x))
	cur.axpy(alpha, x, y[:len(x)])
}

// AxpyRows computes y += Σ_j a[j] · b[j·ldb : j·ldb+len(y)] over the len(a)
// rows of b, in order: Axpy row by row, with the same bits, in one call that
// keeps y in registers across the rows.
//
//	y: [d], b: [len(a), ldb] (ldb ≥ d), a: [r]
func AxpyRows(y, b []float32, ldb int, a []float32) {
	axpyRowsOf("AxpyRows", y, b, ldb, a, 0, cur.axpyRows, asIs)
}

// AxpyRowsSplit is AxpyRows in two parts, rows [0, split) and [split, r):
// each part's Σ_j a[j]·b_j is accumulated from zero, in order, and then
// added to y, first part first. The bits are those of AxpyRows of each part
// into a zeroed buffer followed by Add (a delta summed in parts whose bits
// must not depend on how many threads computed it), in one pass over b.
// 0 < split < len(a).
//
//	y: [d], b: [len(a), ldb] (ldb ≥ d), a: [r]
func AxpyRowsSplit(y, b []float32, ldb int, a []float32, split int) {
	needSplit("AxpyRowsSplit", split, len(a))
	axpyRowsOf("AxpyRowsSplit", y, b, ldb, a, split, cur.axpyRows, asIs)
}

// asIs is the widening of float32 values: none.
func asIs(v float32) float32 { return v }

// needSplit panics unless 0 < split < r.
func needSplit(name string, split, r int) {
	if split <= 0 || split >= r {
		panic(fmt.Sprintf("kernels: %s: split %d of %d rows, want 0 < split < rows", name, split, r))
	}
}

// rowsScratch holds axpyRowsOf's widened chunk and part sums (a local
// array would escape through cur.axpy and allocate per call).
var rowsScratch = newFreeList(func() *[2][64]float32 { return new([2][64]float32) })

// axpyRowsOf is AxpyRows (split 0) or AxpyRowsSplit over rows of T: vec (the
// kernel set's, nil where it has none) over whole vectors of y, the rest a
// chunk at a time as Axpy (and Add) on the values widened by widen, which
// gives vec's bits.
func axpyRowsOf[T float32 | uint16](name string, y []float32, b []T, ldb int, a []float32, split int, vec func(y []float32, b []T, ldb int, a []float32, split int), widen func(T) float32) {
	if !needRows(name, len(y), len(b), ldb, len(a)) {
		return
	}
	if vec != nil {
		if n := len(y) - len(y)%cur.axpyRowsW; n > 0 {
			vec(y[:n], b, ldb, a, split)
			y, b = y[n:], b[n:]
		}
	}
	if len(y) == 0 {
		return
	}
	parts := [][2]int{{0, len(a)}}
	if split > 0 {
		parts = [][2]int{{0, split}, {split, len(a)}}
	}
	sp := rowsScratch.get()
	defer rowsScratch.put(sp)
	buf, acc := sp[0][:], sp[1][:]
	for c := 0; c < len(y); c += len(buf) {
		n := min(len(buf), len(y)-c)
		yc := y[c : c+n]
		for _, p := range parts {
			dst := yc
			if split > 0 {
				dst = acc[:n]
				clear(dst)
			}
			for j := p[0]; j < p[1]; j++ {
				for i, v := range b[j*ldb+c : j*ldb+c+n] {
					buf[i] = widen(v)
				}
				cur.axpy(a[j], buf[:n], dst)
			}
			if split > 0 {
				cur.add(yc, dst)
			}
		}
	}
}

// needRows panics unless b holds r rows of d values ldb apart (AxpyRows'
// operands), and reports whether there is anything to compute.
func needRows(name string, d, nb, ldb, r int) bool {
	if ldb < d || r > 0 && nb < (r-1)*ldb+d {
		panic(fmt.Sprintf("kernels: %s: %d rows of %d (stride %d) need %d values, have %d", name, r, d, ldb, (r-1)*ldb+d, nb))
	}
	return d > 0 && r > 0
}

// AccRows computes dst[:d] += weight[r] · table[r·d : (r+1)·d] for each r in
// rows, in order: Axpy row by row, with the same bits, in one call (a
// weighted sum of embedding-table rows).
func AccRows(dst, table, weight []float32, rows []uint32, d int) {
	need("AccRows", len(dst), d)
	for _, r := range rows {
		if int(r) >= len(weight) || (int(r)+1)*d > len(table) {
			panic(fmt.Sprintf("kernels: AccRows: row %d outside a table of %d rows of %d (weights %d)", r, len(table)/max(d, 1), d, len(weight)))
		}
	}
	if cur.accRows != nil && d > 0 && d%64 == 0 && len(rows) > 0 {
		cur.accRows(dst[:d], table, weight, rows, d)
		return
	}
	for _, r := range rows {
		cur.axpy(weight[r], table[int(r)*d:(int(r)+1)*d], dst[:d])
	}
}

// Add computes dst += x over len(x) elements.
func Add(dst, x []float32) {
	need("Add", len(dst), len(x))
	cur.add(dst[:len(x)], x)
}

// Scale computes x *= s over len(x) elements.
func Scale(x []float32, s float32) {
	if len(x) > 0 {
		cur.scale(x, s)
	}
}

// RMSNorm computes dst = w ⊙ x / sqrt(mean(x²) + eps) for one row.
//
//	x, w, dst: [d]; dst may alias x
func RMSNorm(dst, x, w []float32, eps float32) {
	d := len(x)
	need("RMSNorm", len(dst), d)
	need("RMSNorm", len(w), d)
	if d == 0 {
		return
	}
	ss := cur.dot(x, x)
	inv := float32(1 / math.Sqrt(float64(ss)/float64(d)+float64(eps)))
	cur.mulScale(dst[:d], x, w[:d], inv)
}

// RoPE rotates one head in place, rotate_half style: dimension i pairs with i+d/2.
//
//	x: [d], cos, sin: [d/2] for this position
func RoPE(x, cos, sin []float32) {
	h := len(x) / 2
	need("RoPE", len(cos), h)
	need("RoPE", len(sin), h)
	if h == 0 {
		return
	}
	cur.rope(x[:h], x[h:2*h], cos[:h], sin[:h])
}

// Softmax replaces x by exp(x - max) / Σ exp(x - max).
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	mx := cur.max(x)
	s := cur.expSum(x, mx)
	cur.scale(x, float32(1/float64(s)))
}

// LogSumExp returns log Σ exp(x), the normaliser of log-softmax, with one
// vectorised max and exp pass; scratch (≥ len(x)) takes the exponentials so
// x is unchanged. The sum is float32 (relative error ~1e-6 over a 50k
// vocabulary), the log float64.
func LogSumExp(x, scratch []float32) float64 {
	if len(x) == 0 {
		return math.Inf(-1)
	}
	need("LogSumExp", len(scratch), len(x))
	mx := cur.max(x)
	if math.IsInf(float64(mx), 0) {
		return float64(mx) // every logit -Inf (all masked), or one +Inf
	}
	s := scratch[:len(x)]
	copy(s, x)
	return float64(mx) + math.Log(float64(cur.expSum(s, mx)))
}

// SiLUMul computes gate = silu(gate) ⊙ up, the SwiGLU activation.
func SiLUMul(gate, up []float32) {
	need("SiLUMul", len(up), len(gate))
	cur.siluMul(gate, up[:len(gate)])
}

// need panics when a slice is shorter than the kernel needs: a caller bug.
func need(op string, have, want int) {
	if have < want {
		panic(fmt.Sprintf("kernels: %s: slice of length %d, need %d", op, have, want))
	}
}

// MatMulTStrided is MatMulT over sub-matrices whose rows are ldd, ldx and ldw
// elements apart: one attention head inside [T, heads·HeadDim], say.
//
//	x: [m, k] (stride ldx), w: [n, k] (stride ldw), dst: [m, n] (stride ldd)
func MatMulTStrided(dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, m, n, k int) {
	if w == nil {
		w = []float32{}
	}
	matMulTStrided(cur, dst, ldd, x, ldx, w, nil, ldw, m, n, k)
}
