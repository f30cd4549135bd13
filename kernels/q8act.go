package kernels

import "math"

// Opt-in int8 activations (lossy). MatMulTQ8 and Product.Q8 quantize each
// row of x to blocks of 32 int8 with one float32 scale (d = max|x|/127,
// q = x/d rounded half to even, as ggml's Q8_0 but with the scale kept in
// float32; ggml multiplies by 1/d, which overflows for tiny blocks) and run
// integer dot products of the weight quants against them:
// per block Σ q_w·q_x in int32, times the weight's and the activation's
// scales. This is what llama.cpp does for every quantized type, so it is as
// lossy as llama.cpp; roe's default products (MatMulTQ) stay exact.
//
// The types with int8 kernels are Q8_0, Q4_0, Q5_0, Q4_K and Q6_K (Q8Types;
// Q8_0, Q4_0 and Q5_0 with VPDPBUSD where the CPU has AVX-512 VNNI);
// others, and products of more than q8Rows rows (prefill), take the exact
// float32 path even when int8 activations are asked for.

// q8Rows is the most rows of x that take the int8 kernels: decode and small
// batches. More rows dequantize panels once and run the float32 GEMM, which
// beats re-unpacking every weight block for every row.
var q8Rows = 8

// q8Row is one row of k activations quantized to k/32 blocks:
// qs[32b:32b+32]·d[b] ≈ x[32b:32b+32], s[b] = Σ qs[32b:32b+32]. The VNNI
// kernels also read it in int32 lanes of four activations:
// p[i] = -Σ qs[4i:4i+4] and dx[i] = d[i/8] (k/4 each; setLanes), which
// quantizeQ8 fills only for the sets that read them (impl.q8Lanes).
type q8Row struct {
	qs []int8
	d  []float32
	s  []int32
	p  []int32
	dx []float32
}

// setLanes fills a.p and a.dx from a.qs and a.d.
func (a *q8Row) setLanes() {
	for i := range a.p {
		q := a.qs[4*i : 4*i+4]
		a.p[i] = -(int32(q[0]) + int32(q[1]) + int32(q[2]) + int32(q[3]))
		a.dx[i] = a.d[i/8]
	}
}

// q8dotFunc computes dst[j] ≈ x · w_j for j < len(dst) with x quantized in a
// (len(a.qs) weights per row), where w_j is the row at w[j·rb:].
type q8dotFunc func(dst []float32, a *q8Row, w []byte, rb int)

// Q8Types lists the weight types with int8-activation kernels.
func Q8Types() []QType { return []QType{Q8_0, Q4_0, Q5_0, Q4_K, Q6_K} }

// HasQ8 reports whether products with weights of type t quantize the
// activations when asked to (MatMulTQ8, Product.Q8).
func HasQ8(t QType) bool { return t < 32 && q8dotGo[t] != nil }

// q8dotFor is kernel set im's int8 kernel for type t: its own, or the
// portable one (nil: none).
func q8dotFor(im *impl, t QType) q8dotFunc {
	if f := im.q8dot[t]; f != nil {
		return f
	}
	return q8dotGo[t]
}

// MatMulTQ8 is MatMulTQ with the activations quantized to int8 blocks
// (lossy, see above) where the weight type has int8 kernels and m ≤ 8;
// otherwise it is MatMulTQ.
//
//	x: [m, w.Cols], w: [w.Rows, w.Cols], dst: [m, w.Rows] (overwritten)
func MatMulTQ8(dst, x []float32, w QMatrix, m int) {
	if err := w.Check(); err != nil {
		panic("kernels: MatMulTQ8: " + err.Error())
	}
	matMulTQx(cur, dst, x, w, m, true)
}

// quantizeQ8Ref is the reference quantizer of one row (len(x) a multiple of
// 32). Blocks of zeros get d = 0 and q = 0; a block with an infinity gets
// d = +Inf, one with a NaN d = NaN, and q = 0 (its products are then NaN,
// never silently finite).
func quantizeQ8Ref(a *q8Row, x []float32) {
	for b := range a.d {
		xb, qb := x[32*b:32*b+32], a.qs[32*b:32*b+32]
		var amax float32
		nan := false
		for _, v := range xb {
			nan = nan || v != v
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		if nan {
			d = float32(math.NaN())
		}
		var s int32
		for l, v := range xb {
			var q int8
			// x/d, not x·(1/d): 1/d overflows for subnormal d.
			if f := v / d; f == f { // 0/0 and Inf/Inf (NaN) stay 0
				q = int8(math.RoundToEven(float64(max(-127, min(127, f)))))
			}
			qb[l] = q
			s += int32(q)
		}
		a.d[b], a.s[b] = d, s
	}
}

// q8dotGo is the portable set's table: the reference kernels.
var q8dotGo = [32]q8dotFunc{
	Q8_0: rowsQ8(q8dotQ8_0Ref), Q4_0: rowsQ8(q8dotQ4_0Ref), Q5_0: rowsQ8(q8dotQ5_0Ref),
	Q4_K: rowsQ8(q8dotQ4KRef), Q6_K: rowsQ8(q8dotQ6KRef),
}

// rowsQ8 makes a q8dotFunc of a one-row reference kernel.
func rowsQ8(f func(w []byte, a *q8Row) float32) q8dotFunc {
	return func(dst []float32, a *q8Row, w []byte, rb int) {
		for j := range dst {
			dst[j] = f(w[j*rb:], a)
		}
	}
}

// The reference int8 dot products: one weight row w (at least its blocks)
// against a. Integer sums per block, then float32 scales in a fixed order.

func q8dotQ8_0Ref(w []byte, a *q8Row) float32 {
	var s float32
	for b := range a.d {
		q, x := w[34*b:34*b+34], a.qs[32*b:32*b+32]
		var is int32
		for l := range 32 {
			is += int32(int8(q[2+l])) * int32(x[l])
		}
		s += f16ToF32(le16(q)) * a.d[b] * float32(is)
	}
	return s
}

// Q4_0: Σ (q-8)·x = Σ q·x - 8·Σ x.
func q8dotQ4_0Ref(w []byte, a *q8Row) float32 {
	var s float32
	for b := range a.d {
		q, x := w[18*b:18*b+18], a.qs[32*b:32*b+32]
		var is int32
		for l := range 16 {
			is += int32(q[2+l]&15)*int32(x[l]) + int32(q[2+l]>>4)*int32(x[l+16])
		}
		is -= 8 * a.s[b]
		s += f16ToF32(le16(q)) * a.d[b] * float32(is)
	}
	return s
}

// Q5_0: the fifth bit of weight l is bit l of qh; Σ (q-16)·x.
func q8dotQ5_0Ref(w []byte, a *q8Row) float32 {
	var s float32
	for b := range a.d {
		q, x := w[22*b:22*b+22], a.qs[32*b:32*b+32]
		qh := le32(q[2:])
		var is int32
		for l := range 16 {
			lo := int32(q[6+l]&15) | int32(qh>>l&1)<<4
			hi := int32(q[6+l]>>4) | int32(qh>>(l+16)&1)<<4
			is += lo*int32(x[l]) + hi*int32(x[l+16])
		}
		is -= 16 * a.s[b]
		s += f16ToF32(le16(q)) * a.d[b] * float32(is)
	}
	return s
}

// Q4_K: sub-block j of 32 weights has a six-bit scale and min; the mins
// multiply the activation block sums.
func q8dotQ4KRef(w []byte, a *q8Row) float32 {
	var s, mins float32
	for b := 0; b < len(a.d)/8; b++ {
		q := w[144*b : 144*b+144]
		d, dmin := f16ToF32(le16(q)), f16ToF32(le16(q[2:]))
		sc, qs := q[4:16], q[16:144]
		for j := range 8 {
			c, sh := j/2, 4*uint(j%2)
			x := a.qs[256*b+32*j : 256*b+32*j+32]
			var is int32
			for l := range 32 {
				is += int32(qs[32*c+l]>>sh&15) * int32(x[l])
			}
			scj, mj := scaleMinK4(j, sc)
			ab := 8*b + j
			s += d * float32(scj) * a.d[ab] * float32(is)
			mins += dmin * float32(mj) * a.d[ab] * float32(a.s[ab])
		}
	}
	return s - mins
}

// Q6_K: per 128-weight half n, quant group g (32 weights, one activation
// block) takes int8 scales sc[2g] (first 16) and sc[2g+1] (last 16).
func q8dotQ6KRef(w []byte, a *q8Row) float32 {
	var s float32
	for b := 0; b < len(a.d)/8; b++ {
		q := w[210*b : 210*b+210]
		d := f16ToF32(le16(q[208:]))
		for n := range 2 {
			ql, qh, sc := q[64*n:64*n+64], q[128+32*n:160+32*n], q[192+8*n:200+8*n]
			for g := range 4 {
				x := a.qs[256*b+128*n+32*g : 256*b+128*n+32*g+32]
				var is int32
				for h := range 2 {
					var p int32
					for l := 16 * h; l < 16*h+16; l++ {
						p += int32(q6kQuant(ql, qh, g, l)-32) * int32(x[l])
					}
					is += int32(int8(sc[2*g+h])) * p
				}
				s += d * a.d[8*b+4*n+g] * float32(is)
			}
		}
	}
	return s
}

// q6kQuant is quant l (< 32) of group g of a Q6_K half (0..63).
func q6kQuant(ql, qh []byte, g, l int) int {
	lo := ql[l+32*(g%2)] >> (4 * uint(g/2)) & 15
	hi := qh[l] >> (2 * uint(g)) & 3
	return int(lo | hi<<4)
}

// q8Buf holds m quantized rows of x for one product, pooled.
type q8Buf struct {
	qs   []int8
	d    []float32
	s, p []int32
	dx   []float32
	rows []q8Row
}

var q8Pool = newFreeList(func() *q8Buf { return new(q8Buf) })

// quantizeRows quantizes m rows of x (stride ldx, k weights each) into a
// pooled q8Buf.
func quantizeRows(im *impl, x []float32, ldx, m, k int) *q8Buf {
	a := q8Pool.get()
	nb := k / 32
	a.qs, a.d, a.s = grow8(a.qs, m*k), grow(a.d, m*nb), grow32(a.s, m*nb)
	if im.q8Lanes {
		a.p, a.dx = grow32(a.p, m*k/4), grow(a.dx, m*k/4)
	}
	if cap(a.rows) < m {
		a.rows = make([]q8Row, m)
	}
	a.rows = a.rows[:m]
	for i := range m {
		a.rows[i] = q8Row{qs: a.qs[i*k : (i+1)*k], d: a.d[i*nb : (i+1)*nb], s: a.s[i*nb : (i+1)*nb]}
		if im.q8Lanes {
			a.rows[i].p, a.rows[i].dx = a.p[i*k/4:(i+1)*k/4], a.dx[i*k/4:(i+1)*k/4]
		}
		quantizeQ8(im, &a.rows[i], x[i*ldx:i*ldx+k])
	}
	return a
}

func quantizeQ8(im *impl, a *q8Row, x []float32) {
	if im.quantQ8 != nil {
		im.quantQ8(a, x)
	} else {
		quantizeQ8Ref(a, x)
	}
	if im.q8Lanes {
		a.setLanes()
	}
}

func grow8(s []int8, n int) []int8 {
	if cap(s) < n {
		return make([]int8, n)
	}
	return s[:n]
}

func grow32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
