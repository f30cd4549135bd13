package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// bfloat16 support: weights kept as the top 16 bits of a float32 (1 sign, 8
// exponent, 7 mantissa bits) and widened on the fly, which halves the bytes a
// memory-bound decode step streams.

// ToBF16 rounds one float32 to bfloat16 (round to nearest, ties to even; NaN
// stays NaN).
func ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet and non-zero
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// FromBF16 widens one bfloat16 to float32 (exact).
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// NarrowBF16 rounds src into dst, element by element.
//
//	src, dst: [n]
func NarrowBF16(dst []uint16, src []float32) {
	need("NarrowBF16", len(dst), len(src))
	for i, v := range src {
		dst[i] = ToBF16(v)
	}
}

// WidenBF16 widens src into dst, element by element.
//
//	src, dst: [n]
func WidenBF16(dst []float32, src []uint16) {
	need("WidenBF16", len(dst), len(src))
	widenBF16(cur, dst[:len(src)], src)
}

// MatMulTBF16 is MatMulT with bfloat16 weights, widened to float32 inside the
// kernels (products and sums are float32, as in MatMulT).
//
//	x: [m, k], w: [n, k] (bf16 bits), dst: [m, n] (overwritten)
func MatMulTBF16(dst, x []float32, w []uint16, m, n, k int) {
	if w == nil {
		w = []uint16{}
	}
	matMulTStrided(cur, dst, n, x, k, nil, w, k, m, n, k)
}

// AxpyRowsBF16 computes y += Σ_j a[j] · b[j·ldb : j·ldb+len(y)] over the
// len(a) rows of b, in order, the rows widened from bfloat16: Axpy row by row
// on b's widened rows in one call, with y held in registers across the rows.
//
//	y: [d], b: [len(a), ldb] (bf16 bits, ldb ≥ d), a: [r]
func AxpyRowsBF16(y []float32, b []uint16, ldb int, a []float32) {
	axpyRowsOf("AxpyRowsBF16", y, b, ldb, a, 0, cur.axpyRowsBF16, FromBF16)
}

// AxpyRowsSplitBF16 is AxpyRowsSplit with b's rows bfloat16 bits.
func AxpyRowsSplitBF16(y []float32, b []uint16, ldb int, a []float32, split int) {
	needSplit("AxpyRowsSplitBF16", split, len(a))
	axpyRowsOf("AxpyRowsSplitBF16", y, b, ldb, a, split, cur.axpyRowsBF16, FromBF16)
}

// ToF16 rounds one float32 to IEEE half precision (round to nearest, ties
// to even; overflow gives infinity, NaN stays NaN).
func ToF16(f float32) uint16 { return f32ToF16(f) }

// FromF16 widens one IEEE half to float32 (exact).
func FromF16(h uint16) float32 { return f16ToF32(h) }

// NarrowF16 rounds src into dst as IEEE halves, element by element.
//
//	dst: [len(src)]
func NarrowF16(dst []uint16, src []float32) {
	need("NarrowF16", len(dst), len(src))
	for i, v := range src {
		dst[i] = f32ToF16(v)
	}
}

// AxpyRowsF16 is AxpyRowsBF16 with b's rows IEEE half-precision bits
// (F16), widened exactly: Axpy row by row on the widened rows, bit for bit.
//
//	y: [d], b: [len(a), ldb] (f16 bits, ldb ≥ d), a: [r]
func AxpyRowsF16(y []float32, b []uint16, ldb int, a []float32) {
	axpyRowsOf("AxpyRowsF16", y, b, ldb, a, 0, cur.axpyRowsF16, f16ToF32)
}

// AxpyRowsSplitF16 is AxpyRowsSplit with b's rows IEEE half bits.
func AxpyRowsSplitF16(y []float32, b []uint16, ldb int, a []float32, split int) {
	needSplit("AxpyRowsSplitF16", split, len(a))
	axpyRowsOf("AxpyRowsSplitF16", y, b, ldb, a, split, cur.axpyRowsF16, f16ToF32)
}

// GemvF16 computes dst[j] = x · w_j for the len(dst) rows of len(x) IEEE
// half-precision values in w, widened exactly: serially, in the calling
// goroutine, with the fused GEMV of a GGUF's F16 rows (prefetching ahead),
// for products as small as an adapter's decode factors.
//
//	x: [k], w: [n, k] (f16 bits), dst: [n]
func GemvF16(dst, x []float32, w []uint16) { gemvAs("GemvF16", F16, dst, x, w, f16ToF32) }

// GemvBF16 is GemvF16 over bfloat16 rows.
func GemvBF16(dst, x []float32, w []uint16) { gemvAs("GemvBF16", BF16, dst, x, w, FromBF16) }

// GemvF32 is GemvF16 over float32 rows.
func GemvF32(dst, x, w []float32) {
	gemvAs("GemvF32", F32, dst, x, w, asIs)
}

// gemvAs runs the kernel set's GEMV for rows of type t (T's bytes, read
// little-endian) over w.
func gemvAs[T float32 | uint16](name string, t QType, dst, x []float32, w []T, widen func(T) float32) {
	n, k := len(dst), len(x)
	if len(w) != n*k {
		panic(fmt.Sprintf("kernels: %s: %d rows of %d need %d values, have %d", name, n, k, n*k, len(w)))
	}
	if n == 0 {
		return
	}
	if k == 0 {
		clear(dst)
		return
	}
	if !nativeLE { // the kernels read the values' bytes little-endian
		for j := range dst {
			var s float32
			for i, v := range x {
				s += v * widen(w[j*k+i])
			}
			dst[j] = s
		}
		return
	}
	size := int(unsafe.Sizeof(w[0]))
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), size*len(w))
	f := cur.qgemv[t]
	if f == nil { // a set without float GEMVs
		f = qgemvGo[t]
	}
	f(dst, x, nil, b, size*k)
}

// widenBF16 widens with the impl's vector loop where it has one, and a Go
// loop for the rest.
func widenBF16(im *impl, dst []float32, src []uint16) {
	if im.widen != nil {
		n := len(src) - len(src)%im.bk
		if n > 0 {
			im.widen(dst[:n], src[:n])
		}
		dst, src = dst[n:], src[n:]
	}
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func dotBF16Go(x []float32, w []uint16) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xx, ww := x[i:i+4:i+4], w[i:i+4:i+4]
		s0 += xx[0] * math.Float32frombits(uint32(ww[0])<<16)
		s1 += xx[1] * math.Float32frombits(uint32(ww[1])<<16)
		s2 += xx[2] * math.Float32frombits(uint32(ww[2])<<16)
		s3 += xx[3] * math.Float32frombits(uint32(ww[3])<<16)
	}
	for ; i < len(x); i++ {
		s0 += x[i] * math.Float32frombits(uint32(w[i])<<16)
	}
	return (s0 + s1) + (s2 + s3)
}

// tileBF16Go is the 2×4 Go tile with bf16 w.
func tileBF16Go(dst []float32, ldd int, acc bool, x []float32, ldx int, w []uint16, ldw, k int) {
	x0, x1 := x[:k], x[ldx:ldx+k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var a00, a01, a02, a03, a10, a11, a12, a13 float32
	for p := range x0 {
		u, v := x0[p], x1[p]
		b0 := math.Float32frombits(uint32(w0[p]) << 16)
		b1 := math.Float32frombits(uint32(w1[p]) << 16)
		b2 := math.Float32frombits(uint32(w2[p]) << 16)
		b3 := math.Float32frombits(uint32(w3[p]) << 16)
		a00 += u * b0
		a01 += u * b1
		a02 += u * b2
		a03 += u * b3
		a10 += v * b0
		a11 += v * b1
		a12 += v * b2
		a13 += v * b3
	}
	putRow(dst[:4], acc, a00, a01, a02, a03)
	putRow(dst[ldd:ldd+4], acc, a10, a11, a12, a13)
}

func tileM1BF16Go(dst []float32, acc bool, x []float32, w []uint16, ldw, k int) {
	x0 := x[:k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var a0, a1, a2, a3 float32
	for p, u := range x0 {
		a0 += u * math.Float32frombits(uint32(w0[p])<<16)
		a1 += u * math.Float32frombits(uint32(w1[p])<<16)
		a2 += u * math.Float32frombits(uint32(w2[p])<<16)
		a3 += u * math.Float32frombits(uint32(w3[p])<<16)
	}
	putRow(dst[:4], acc, a0, a1, a2, a3)
}

// fmaLoopGo is the portable peak probe: 8 independent scalar chains.
func fmaLoopGo(n int) {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x, y := float32(0.999), float32(1e-3)
	for range n {
		a0 = a0*x + y
		a1 = a1*x + y
		a2 = a2*x + y
		a3 = a3*x + y
		a4 = a4*x + y
		a5 = a5*x + y
		a6 = a6*x + y
		a7 = a7*x + y
	}
	fmaSink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
}

var fmaSink float32

// FMALoop runs iters iterations of the current path's peak-throughput probe
// (independent fused multiply-add chains, registers only) on the calling
// goroutine and returns the float32 FLOPs it did: time it to measure a core's
// FP32 peak. Run it on several goroutines at once for several cores.
func FMALoop(iters int) (flops int64) {
	cur.fmaLoop(iters)
	return int64(iters) * int64(cur.fmaPerIter)
}

func matMulTBF16Ref(dst, x []float32, w []uint16, m, n, k int) {
	wf := make([]float32, k)
	for j := 0; j < n; j++ {
		for p := range wf {
			wf[p] = FromBF16(w[j*k+p])
		}
		for i := 0; i < m; i++ {
			dst[i*n+j] = dotRef(x[i*k:i*k+k], wf)
		}
	}
}
