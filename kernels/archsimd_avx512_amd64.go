//go:build goexperiment.simd && amd64 && !purego && !go1.27

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// The archsimd AVX-512 set: the kernels of simd_amd64.go written with Go's
// simd/archsimd intrinsics instead of generated assembly. Everything below
// the header is shared with archsimd_avx2_amd64.go, which gen_archsimd.go
// writes from this file (edit here, then go generate).

// header: 16 float32 lanes.
type f512 = archsimd.Float32x16

const n512 = 16

func ld512(s []float32) f512     { return archsimd.LoadFloat32x16Slice(s) }
func ldp512(s []float32) f512    { return archsimd.LoadFloat32x16SlicePart(s) }
func st512(v f512, s []float32)  { v.StoreSlice(s) }
func stp512(v f512, s []float32) { v.StoreSlicePart(s) }
func splat512(x float32) f512    { return archsimd.BroadcastFloat32x16(x) }
func arr512(v f512) (a [n512]float32) {
	v.Store(&a)
	return a
}

// at512 and ath512 load lanes i.. of a float32 (bf16) row at p without a
// bounds check: the tiles slice every row to k up front, and read below k.
func at512(p *float32, i int) f512 {
	return archsimd.LoadFloat32x16((*[n512]float32)(unsafe.Add(unsafe.Pointer(p), 4*i)))
}

func ath512(p *uint16, i int) f512 {
	return archsimd.LoadUint16x16((*[n512]uint16)(unsafe.Add(unsafe.Pointer(p), 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
}

// ldh512 loads n512 bf16 values widened to float32.
func ldh512(s []uint16) f512 {
	return archsimd.LoadUint16x16Slice(s).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
}

// quarter512 folds the vector to 4 lanes (lane i: Σ lanes ≡ i mod 4).
func quarter512(v f512) archsimd.Float32x4 {
	h := v.GetLo().Add(v.GetHi())
	return h.GetLo().Add(h.GetHi())
}

func round512(v f512) f512 { return v.RoundToEvenScaled(0) }

// pow2i512 is 2ⁿ for integral n in [-126, 127], built in the exponent bits.
func pow2i512(n f512) f512 {
	return n.ConvertToInt32().Add(archsimd.BroadcastInt32x16(127)).ShiftAllLeft(23).AsFloat32x16()
}

var archsimd512Impl = &impl{
	name: "archsimd-avx512",
	dot:  dot512, axpy: axpy512, add: add512, mulScale: mulScale512, scale: scale512,
	rope: rope512, max: max512, expSum: expSum512, siluMul: siluMul512,
	mr: 2, nr: 4,
	tile: tile512, tileM1: tileM1512, tileN1: tileN1512,
	bk: n512, tileBF16: tileBF16512, tileM1BF16: tileM1BF16512, widen: widen512,
	fmaLoop: fmaLoop512, fmaPerIter: 12 * n512 * 2,
}

// body: shared with the AVX2 set from here on.

func hsum512(v f512) float32 {
	q := quarter512(v)
	q = q.AddPairs(q)
	q = q.AddPairs(q)
	var a [4]float32
	q.Store(&a)
	return a[0]
}

func dot512(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 f512
	i := 0
	if n >= 4*n512 {
		pa, pb := &a[0], &b[0]
		for ; i+4*n512 <= n; i += 4 * n512 {
			s0 = at512(pa, i).MulAdd(at512(pb, i), s0)
			s1 = at512(pa, i+n512).MulAdd(at512(pb, i+n512), s1)
			s2 = at512(pa, i+2*n512).MulAdd(at512(pb, i+2*n512), s2)
			s3 = at512(pa, i+3*n512).MulAdd(at512(pb, i+3*n512), s3)
		}
	}
	for ; i+n512 <= n; i += n512 {
		s0 = ld512(a[i:]).MulAdd(ld512(b[i:]), s0)
	}
	if i < n {
		s1 = ldp512(a[i:]).MulAdd(ldp512(b[i:]), s1)
	}
	return hsum512(s0.Add(s1).Add(s2.Add(s3)))
}

func axpy512(alpha float32, x, y []float32) {
	n := len(x)
	y = y[:n]
	a := splat512(alpha)
	i := 0
	for ; i+n512 <= n; i += n512 {
		st512(ld512(x[i:]).MulAdd(a, ld512(y[i:])), y[i:])
	}
	if i < n {
		stp512(ldp512(x[i:]).MulAdd(a, ldp512(y[i:])), y[i:])
	}
}

func add512(dst, x []float32) {
	n := len(x)
	dst = dst[:n]
	i := 0
	for ; i+n512 <= n; i += n512 {
		st512(ld512(dst[i:]).Add(ld512(x[i:])), dst[i:])
	}
	if i < n {
		stp512(ldp512(dst[i:]).Add(ldp512(x[i:])), dst[i:])
	}
}

// mulScale512: dst = w ⊙ (x·s), in the reference's order.
func mulScale512(dst, x, w []float32, s float32) {
	n := len(x)
	dst, w = dst[:n], w[:n]
	sv := splat512(s)
	i := 0
	for ; i+n512 <= n; i += n512 {
		st512(ld512(x[i:]).Mul(sv).Mul(ld512(w[i:])), dst[i:])
	}
	if i < n {
		stp512(ldp512(x[i:]).Mul(sv).Mul(ldp512(w[i:])), dst[i:])
	}
}

func scale512(x []float32, s float32) {
	n := len(x)
	sv := splat512(s)
	i := 0
	for ; i+n512 <= n; i += n512 {
		st512(ld512(x[i:]).Mul(sv), x[i:])
	}
	if i < n {
		stp512(ldp512(x[i:]).Mul(sv), x[i:])
	}
}

// rope512 rotates pairs (x0[i], x1[i]) by the angle with cos[i], sin[i].
func rope512(x0, x1, cos, sin []float32) {
	n := len(x0)
	x1, cos, sin = x1[:n], cos[:n], sin[:n]
	i := 0
	for ; i+n512 <= n; i += n512 {
		a, b, c, s := ld512(x0[i:]), ld512(x1[i:]), ld512(cos[i:]), ld512(sin[i:])
		st512(a.Mul(c).Sub(b.Mul(s)), x0[i:])
		st512(b.Mul(c).Add(a.Mul(s)), x1[i:])
	}
	if i < n {
		a, b, c, s := ldp512(x0[i:]), ldp512(x1[i:]), ldp512(cos[i:]), ldp512(sin[i:])
		stp512(a.Mul(c).Sub(b.Mul(s)), x0[i:])
		stp512(b.Mul(c).Add(a.Mul(s)), x1[i:])
	}
}

// max512 is the largest element (n ≥ 1); NaN lanes are skipped as in the
// reference's comparison loop unless the first element is NaN.
func max512(x []float32) float32 {
	n := len(x)
	mv := splat512(x[0])
	i := 0
	for ; i+n512 <= n; i += n512 {
		mv = mv.Max(ld512(x[i:]))
	}
	m := x[0]
	for _, v := range arr512(mv) {
		if v > m {
			m = v
		}
	}
	for ; i < n; i++ {
		if x[i] > m {
			m = x[i]
		}
	}
	return m
}

// exp512 is Cephes expf: x = n·ln2 + r, e^r by a polynomial, 2ⁿ in the
// exponent bits; x is clamped so that 2ⁿ stays a normal float.
func exp512(x f512) f512 {
	x = x.Min(splat512(88.3762626647949)).Max(splat512(-87.33654475))
	n := round512(x.Mul(splat512(1.44269504088896341)))
	x = n.MulAdd(splat512(-0.693359375), x)
	x = n.MulAdd(splat512(2.12194440e-4), x)
	p := splat512(1.9875691500e-4)
	p = p.MulAdd(x, splat512(1.3981999507e-3))
	p = p.MulAdd(x, splat512(8.3334519073e-3))
	p = p.MulAdd(x, splat512(4.1665795894e-2))
	p = p.MulAdd(x, splat512(1.6666665459e-1))
	p = p.MulAdd(x, splat512(5.0000001201e-1))
	p = p.MulAdd(x.Mul(x), x).Add(splat512(1))
	return p.Mul(pow2i512(n))
}

func expSum512(x []float32, mx float32) float32 {
	n := len(x)
	m := splat512(mx)
	var s f512
	i := 0
	for ; i+n512 <= n; i += n512 {
		e := exp512(ld512(x[i:]).Sub(m))
		st512(e, x[i:])
		s = s.Add(e)
	}
	sum := hsum512(s)
	if i < n {
		e := exp512(ldp512(x[i:]).Sub(m))
		stp512(e, x[i:])
		a := arr512(e)
		for _, v := range a[:n-i] {
			sum += v
		}
	}
	return sum
}

// siluMul512: g = g / (1 + exp(-g)) · u.
func siluMul512(g, u []float32) {
	n := len(g)
	u = u[:n]
	one := splat512(1)
	var zero f512
	i := 0
	for ; i+n512 <= n; i += n512 {
		gv := ld512(g[i:])
		st512(gv.Div(exp512(zero.Sub(gv)).Add(one)).Mul(ld512(u[i:])), g[i:])
	}
	if i < n {
		gv := ldp512(g[i:])
		stp512(gv.Div(exp512(zero.Sub(gv)).Add(one)).Mul(ldp512(u[i:])), g[i:])
	}
}

// tile512: dst[i*ldd+j] (+)= x_i · w_j for a 2×4 tile.
func tile512(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, ldw, k int) {
	x0, x1 := x[:k], x[ldx:ldx+k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var c00, c01, c02, c03, c10, c11, c12, c13 f512
	p := 0
	if k >= n512 {
		px0, px1, pw0, pw1, pw2, pw3 := &x0[0], &x1[0], &w0[0], &w1[0], &w2[0], &w3[0]
		for ; p+n512 <= k; p += n512 {
			a0, a1 := at512(px0, p), at512(px1, p)
			b := at512(pw0, p)
			c00, c10 = a0.MulAdd(b, c00), a1.MulAdd(b, c10)
			b = at512(pw1, p)
			c01, c11 = a0.MulAdd(b, c01), a1.MulAdd(b, c11)
			b = at512(pw2, p)
			c02, c12 = a0.MulAdd(b, c02), a1.MulAdd(b, c12)
			b = at512(pw3, p)
			c03, c13 = a0.MulAdd(b, c03), a1.MulAdd(b, c13)
		}
	}
	if p < k {
		a0, a1 := ldp512(x0[p:]), ldp512(x1[p:])
		b := ldp512(w0[p:])
		c00, c10 = a0.MulAdd(b, c00), a1.MulAdd(b, c10)
		b = ldp512(w1[p:])
		c01, c11 = a0.MulAdd(b, c01), a1.MulAdd(b, c11)
		b = ldp512(w2[p:])
		c02, c12 = a0.MulAdd(b, c02), a1.MulAdd(b, c12)
		b = ldp512(w3[p:])
		c03, c13 = a0.MulAdd(b, c03), a1.MulAdd(b, c13)
	}
	sum4(dst[:4], acc, quarter512(c00), quarter512(c01), quarter512(c02), quarter512(c03))
	sum4(dst[ldd:ldd+4], acc, quarter512(c10), quarter512(c11), quarter512(c12), quarter512(c13))
}

// tileM1512: a 1×4 tile (decode's GEMV), two accumulators per output.
func tileM1512(dst []float32, acc bool, x, w []float32, ldw, k int) {
	x = x[:k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var c0, c1, c2, c3, d0, d1, d2, d3 f512
	p := 0
	if k >= 2*n512 {
		px, p0, p1, p2, p3 := &x[0], &w0[0], &w1[0], &w2[0], &w3[0]
		for ; p+2*n512 <= k; p += 2 * n512 {
			a, e := at512(px, p), at512(px, p+n512)
			c0, d0 = a.MulAdd(at512(p0, p), c0), e.MulAdd(at512(p0, p+n512), d0)
			c1, d1 = a.MulAdd(at512(p1, p), c1), e.MulAdd(at512(p1, p+n512), d1)
			c2, d2 = a.MulAdd(at512(p2, p), c2), e.MulAdd(at512(p2, p+n512), d2)
			c3, d3 = a.MulAdd(at512(p3, p), c3), e.MulAdd(at512(p3, p+n512), d3)
		}
	}
	for ; p < k; p += n512 {
		a := ldp512(x[p:])
		c0 = a.MulAdd(ldp512(w0[p:]), c0)
		c1 = a.MulAdd(ldp512(w1[p:]), c1)
		c2 = a.MulAdd(ldp512(w2[p:]), c2)
		c3 = a.MulAdd(ldp512(w3[p:]), c3)
	}
	sum4(dst[:4], acc, quarter512(c0.Add(d0)), quarter512(c1.Add(d1)), quarter512(c2.Add(d2)), quarter512(c3.Add(d3)))
}

// tileN1512: a 2×1 tile.
func tileN1512(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, k int) {
	x0, x1 := x[:k], x[ldx:ldx+k]
	w = w[:k]
	var c0, c1 f512
	for p := 0; p < k; p += n512 {
		b := ldp512(w[p:])
		c0 = ldp512(x0[p:]).MulAdd(b, c0)
		c1 = ldp512(x1[p:]).MulAdd(b, c1)
	}
	s0, s1 := hsum512(c0), hsum512(c1)
	if acc {
		s0 += dst[0]
		s1 += dst[ldd]
	}
	dst[0], dst[ldd] = s0, s1
}

// tileBF16512 is tile512 with bf16 w; k is a multiple of n512.
func tileBF16512(dst []float32, ldd int, acc bool, x []float32, ldx int, w []uint16, ldw, k int) {
	x0, x1 := x[:k], x[ldx:ldx+k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var c00, c01, c02, c03, c10, c11, c12, c13 f512
	if k >= n512 {
		px0, px1, pw0, pw1, pw2, pw3 := &x0[0], &x1[0], &w0[0], &w1[0], &w2[0], &w3[0]
		for p := 0; p+n512 <= k; p += n512 {
			a0, a1 := at512(px0, p), at512(px1, p)
			b := ath512(pw0, p)
			c00, c10 = a0.MulAdd(b, c00), a1.MulAdd(b, c10)
			b = ath512(pw1, p)
			c01, c11 = a0.MulAdd(b, c01), a1.MulAdd(b, c11)
			b = ath512(pw2, p)
			c02, c12 = a0.MulAdd(b, c02), a1.MulAdd(b, c12)
			b = ath512(pw3, p)
			c03, c13 = a0.MulAdd(b, c03), a1.MulAdd(b, c13)
		}
	}
	sum4(dst[:4], acc, quarter512(c00), quarter512(c01), quarter512(c02), quarter512(c03))
	sum4(dst[ldd:ldd+4], acc, quarter512(c10), quarter512(c11), quarter512(c12), quarter512(c13))
}

// tileM1BF16512 is tileM1512 with bf16 w; k is a multiple of n512.
func tileM1BF16512(dst []float32, acc bool, x []float32, w []uint16, ldw, k int) {
	x = x[:k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var c0, c1, c2, c3, d0, d1, d2, d3 f512
	if k >= n512 {
		px, p0, p1, p2, p3 := &x[0], &w0[0], &w1[0], &w2[0], &w3[0]
		p := 0
		for ; p+2*n512 <= k; p += 2 * n512 {
			a, e := at512(px, p), at512(px, p+n512)
			c0, d0 = a.MulAdd(ath512(p0, p), c0), e.MulAdd(ath512(p0, p+n512), d0)
			c1, d1 = a.MulAdd(ath512(p1, p), c1), e.MulAdd(ath512(p1, p+n512), d1)
			c2, d2 = a.MulAdd(ath512(p2, p), c2), e.MulAdd(ath512(p2, p+n512), d2)
			c3, d3 = a.MulAdd(ath512(p3, p), c3), e.MulAdd(ath512(p3, p+n512), d3)
		}
		if p < k {
			a := at512(px, p)
			c0 = a.MulAdd(ath512(p0, p), c0)
			c1 = a.MulAdd(ath512(p1, p), c1)
			c2 = a.MulAdd(ath512(p2, p), c2)
			c3 = a.MulAdd(ath512(p3, p), c3)
		}
	}
	sum4(dst[:4], acc, quarter512(c0.Add(d0)), quarter512(c1.Add(d1)), quarter512(c2.Add(d2)), quarter512(c3.Add(d3)))
}

// widen512 widens bf16 to float32; len(src) is a multiple of n512.
func widen512(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i := 0; i+n512 <= len(src); i += n512 {
		st512(ldh512(src[i:]), dst[i:])
	}
}

// fmaLoop512 runs 12 independent FMA chains n times (the peak probe).
func fmaLoop512(n int) {
	a0, a1, a2, a3, a4, a5 := splat512(1), splat512(2), splat512(3), splat512(4), splat512(5), splat512(6)
	a6, a7, a8, a9, a10, a11 := splat512(7), splat512(8), splat512(9), splat512(10), splat512(11), splat512(12)
	m, c := splat512(0.999999), splat512(1e-7)
	for range n {
		a0, a1, a2, a3 = a0.MulAdd(m, c), a1.MulAdd(m, c), a2.MulAdd(m, c), a3.MulAdd(m, c)
		a4, a5, a6, a7 = a4.MulAdd(m, c), a5.MulAdd(m, c), a6.MulAdd(m, c), a7.MulAdd(m, c)
		a8, a9, a10, a11 = a8.MulAdd(m, c), a9.MulAdd(m, c), a10.MulAdd(m, c), a11.MulAdd(m, c)
	}
	s := a0.Add(a1).Add(a2.Add(a3)).Add(a4.Add(a5).Add(a6.Add(a7))).Add(a8.Add(a9).Add(a10.Add(a11)))
	fmaSink += hsum512(s)
}
