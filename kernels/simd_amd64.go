//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// SIMD kernel sets, generated into kernels_avx512_amd64.s and
// kernels_avx2_amd64.s by gen_asm.go. The wrappers below bounds-check every
// row the assembly will touch, so it never reads or writes outside a slice.

//go:generate go run gen_asm.go

func simdImpls() []*impl {
	var s []*impl
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL {
		s = append(s, avx512Impl)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		s = append(s, avx2Impl)
	}
	return s
}

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func axpyAVX512(x, y *float32, n int, alpha float32)

//go:noescape
func addAVX512(dst, x *float32, n int)

//go:noescape
func mulScaleAVX512(dst, x, w *float32, n int, s float32)

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func ropeAVX512(x0, x1, cos, sin *float32, n int)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func expSumAVX512(x *float32, n int, mx float32) float32

//go:noescape
func siluMulAVX512(gate, up *float32, n int)

//go:noescape
func tileAVX512(dst *float32, ldd, acc int, x *float32, ldx int, w *float32, ldw, k int)

//go:noescape
func tileM1AVX512(dst *float32, acc int, x, w *float32, ldw, k int)

//go:noescape
func tileN1AVX512(dst *float32, ldd, acc int, x *float32, ldx int, w *float32, k int)

//go:noescape
func tileBF16AVX512(dst *float32, ldd, acc int, x *float32, ldx int, w *uint16, ldw, k int)

//go:noescape
func tileM1BF16AVX512(dst *float32, acc int, x *float32, w *uint16, ldw, k int)

//go:noescape
func fmaLoopAVX512(n int)

//go:noescape
func gemmPAVX512(dst *float32, ldd, acc int, x *float32, ldx int, b *float32, k, tiles int)

//go:noescape
func packBAVX512(dst, w *float32, ldw, k int)

//go:noescape
func widenAVX512(dst *float32, src *uint16, n int)

//go:noescape
func axpyRowsBF16AVX512(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)

//go:noescape
func axpyRowsAVX512(y *float32, d int, b *float32, ldb int, a *float32, r, split int)

//go:noescape
func axpyRowsF16AVX512(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)

var avx512Impl = &impl{
	name: "avx512",
	dot: func(a, b []float32) float32 {
		if len(a) == 0 {
			return 0
		}
		_ = b[len(a)-1]
		return dotAVX512(&a[0], &b[0], len(a))
	},
	axpy: func(alpha float32, x, y []float32) {
		if len(x) == 0 {
			return
		}
		_ = y[len(x)-1]
		axpyAVX512(&x[0], &y[0], len(x), alpha)
	},
	add: func(dst, x []float32) {
		if len(x) == 0 {
			return
		}
		_ = dst[len(x)-1]
		addAVX512(&dst[0], &x[0], len(x))
	},
	mulScale: func(dst, x, w []float32, s float32) {
		if len(x) == 0 {
			return
		}
		_, _ = dst[len(x)-1], w[len(x)-1]
		mulScaleAVX512(&dst[0], &x[0], &w[0], len(x), s)
	},
	scale: func(x []float32, s float32) {
		if len(x) == 0 {
			return
		}
		scaleAVX512(&x[0], len(x), s)
	},
	rope: func(x0, x1, cos, sin []float32) {
		if len(x0) == 0 {
			return
		}
		n := len(x0)
		_, _, _ = x1[n-1], cos[n-1], sin[n-1]
		ropeAVX512(&x0[0], &x1[0], &cos[0], &sin[0], n)
	},
	max: func(x []float32) float32 { return maxAVX512(&x[0], len(x)) },
	expSum: func(x []float32, mx float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return expSumAVX512(&x[0], len(x), mx)
	},
	siluMul: func(g, u []float32) {
		if len(g) == 0 {
			return
		}
		_ = u[len(g)-1]
		siluMulAVX512(&g[0], &u[0], len(g))
	},
	mr: 4,
	nr: 6,
	tile: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, ldw, k int) {
		_, _, _ = dst[3*ldd+5], x[3*ldx+k-1], w[5*ldw+k-1]
		tileAVX512(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], ldw, k)
	},
	tileM1: func(dst []float32, acc bool, x, w []float32, ldw, k int) {
		_, _, _ = dst[5], x[k-1], w[5*ldw+k-1]
		tileM1AVX512(&dst[0], b2i(acc), &x[0], &w[0], ldw, k)
	},
	tileN1: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, k int) {
		_, _, _ = dst[3*ldd], x[3*ldx+k-1], w[k-1]
		tileN1AVX512(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], k)
	},
	bk: 16,
	tileBF16: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []uint16, ldw, k int) {
		_, _, _ = dst[3*ldd+5], x[3*ldx+k-1], w[5*ldw+k-1]
		tileBF16AVX512(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], ldw, k)
	},
	tileM1BF16: func(dst []float32, acc bool, x []float32, w []uint16, ldw, k int) {
		_, _, _ = dst[5], x[k-1], w[5*ldw+k-1]
		tileM1BF16AVX512(&dst[0], b2i(acc), &x[0], &w[0], ldw, k)
	},
	widen: func(dst []float32, src []uint16) {
		_ = dst[len(src)-1]
		widenAVX512(&dst[0], &src[0], len(src))
	},
	axpyRowsBF16: func(y []float32, b []uint16, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsBF16AVX512(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRowsF16: func(y []float32, b []uint16, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsF16AVX512(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRows: func(y, b []float32, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsAVX512(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRowsW: 16,
	pmr:       8,
	pnr:       48,
	gemmPacked: func(dst []float32, ldd int, acc bool, x []float32, ldx int, b []float32, k, tiles int) {
		if tiles <= 0 || k <= 0 {
			return
		}
		r := 8*tiles - 1
		_, _, _ = dst[r*ldd+47], x[r*ldx+k-1], b[k*48-1]
		gemmPAVX512(&dst[0], ldd, b2i(acc), &x[0], ldx, &b[0], k, tiles)
	},
	packB: func(dst, w []float32, ldw, k int) {
		if k <= 0 {
			return
		}
		_, _ = dst[k*48-1], w[47*ldw+k-1]
		k16 := k &^ 15
		if k16 > 0 {
			packBAVX512(&dst[0], &w[0], ldw, k16)
		}
		for p := k16; p < k; p++ {
			for j := range 48 {
				dst[p*48+j] = w[j*ldw+p]
			}
		}
	},
	fmaLoop:    fmaLoopAVX512,
	fmaPerIter: 16 * 2 * 16,
}

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(x, y *float32, n int, alpha float32)

//go:noescape
func addAVX2(dst, x *float32, n int)

//go:noescape
func mulScaleAVX2(dst, x, w *float32, n int, s float32)

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

//go:noescape
func ropeAVX2(x0, x1, cos, sin *float32, n int)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expSumAVX2(x *float32, n int, mx float32) float32

//go:noescape
func siluMulAVX2(gate, up *float32, n int)

//go:noescape
func tileAVX2(dst *float32, ldd, acc int, x *float32, ldx int, w *float32, ldw, k int)

//go:noescape
func tileM1AVX2(dst *float32, acc int, x, w *float32, ldw, k int)

//go:noescape
func tileN1AVX2(dst *float32, ldd, acc int, x *float32, ldx int, w *float32, k int)

//go:noescape
func tileBF16AVX2(dst *float32, ldd, acc int, x *float32, ldx int, w *uint16, ldw, k int)

//go:noescape
func tileM1BF16AVX2(dst *float32, acc int, x *float32, w *uint16, ldw, k int)

//go:noescape
func fmaLoopAVX2(n int)

//go:noescape
func gemmPAVX2(dst *float32, ldd, acc int, x *float32, ldx int, b *float32, k, tiles int)

//go:noescape
func packBAVX2(dst, w *float32, ldw, k int)

//go:noescape
func widenAVX2(dst *float32, src *uint16, n int)

//go:noescape
func axpyRowsBF16AVX2(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)

//go:noescape
func axpyRowsAVX2(y *float32, d int, b *float32, ldb int, a *float32, r, split int)

//go:noescape
func axpyRowsF16AVX2(y *float32, d int, b *uint16, ldb int, a *float32, r, split int)

var avx2Impl = &impl{
	name: "avx2",
	dot: func(a, b []float32) float32 {
		if len(a) == 0 {
			return 0
		}
		_ = b[len(a)-1]
		return dotAVX2(&a[0], &b[0], len(a))
	},
	axpy: func(alpha float32, x, y []float32) {
		if len(x) == 0 {
			return
		}
		_ = y[len(x)-1]
		axpyAVX2(&x[0], &y[0], len(x), alpha)
	},
	add: func(dst, x []float32) {
		if len(x) == 0 {
			return
		}
		_ = dst[len(x)-1]
		addAVX2(&dst[0], &x[0], len(x))
	},
	mulScale: func(dst, x, w []float32, s float32) {
		if len(x) == 0 {
			return
		}
		_, _ = dst[len(x)-1], w[len(x)-1]
		mulScaleAVX2(&dst[0], &x[0], &w[0], len(x), s)
	},
	scale: func(x []float32, s float32) {
		if len(x) == 0 {
			return
		}
		scaleAVX2(&x[0], len(x), s)
	},
	rope: func(x0, x1, cos, sin []float32) {
		if len(x0) == 0 {
			return
		}
		n := len(x0)
		_, _, _ = x1[n-1], cos[n-1], sin[n-1]
		ropeAVX2(&x0[0], &x1[0], &cos[0], &sin[0], n)
	},
	max: func(x []float32) float32 { return maxAVX2(&x[0], len(x)) },
	expSum: func(x []float32, mx float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return expSumAVX2(&x[0], len(x), mx)
	},
	siluMul: func(g, u []float32) {
		if len(g) == 0 {
			return
		}
		_ = u[len(g)-1]
		siluMulAVX2(&g[0], &u[0], len(g))
	},
	mr: 4,
	nr: 3,
	tile: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, ldw, k int) {
		_, _, _ = dst[3*ldd+2], x[3*ldx+k-1], w[2*ldw+k-1]
		tileAVX2(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], ldw, k)
	},
	tileM1: func(dst []float32, acc bool, x, w []float32, ldw, k int) {
		_, _, _ = dst[2], x[k-1], w[2*ldw+k-1]
		tileM1AVX2(&dst[0], b2i(acc), &x[0], &w[0], ldw, k)
	},
	tileN1: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, k int) {
		_, _, _ = dst[3*ldd], x[3*ldx+k-1], w[k-1]
		tileN1AVX2(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], k)
	},
	bk: 8,
	tileBF16: func(dst []float32, ldd int, acc bool, x []float32, ldx int, w []uint16, ldw, k int) {
		_, _, _ = dst[3*ldd+2], x[3*ldx+k-1], w[2*ldw+k-1]
		tileBF16AVX2(&dst[0], ldd, b2i(acc), &x[0], ldx, &w[0], ldw, k)
	},
	tileM1BF16: func(dst []float32, acc bool, x []float32, w []uint16, ldw, k int) {
		_, _, _ = dst[2], x[k-1], w[2*ldw+k-1]
		tileM1BF16AVX2(&dst[0], b2i(acc), &x[0], &w[0], ldw, k)
	},
	widen: func(dst []float32, src []uint16) {
		_ = dst[len(src)-1]
		widenAVX2(&dst[0], &src[0], len(src))
	},
	axpyRowsBF16: func(y []float32, b []uint16, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsBF16AVX2(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRowsF16: func(y []float32, b []uint16, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsF16AVX2(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRows: func(y, b []float32, ldb int, a []float32, split int) {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		axpyRowsAVX2(&y[0], len(y), &b[0], ldb, &a[0], len(a), split)
	},
	axpyRowsW: 8,
	pmr:       4,
	pnr:       24,
	gemmPacked: func(dst []float32, ldd int, acc bool, x []float32, ldx int, b []float32, k, tiles int) {
		if tiles <= 0 || k <= 0 {
			return
		}
		r := 4*tiles - 1
		_, _, _ = dst[r*ldd+23], x[r*ldx+k-1], b[k*24-1]
		gemmPAVX2(&dst[0], ldd, b2i(acc), &x[0], ldx, &b[0], k, tiles)
	},
	packB: func(dst, w []float32, ldw, k int) {
		if k <= 0 {
			return
		}
		_, _ = dst[k*24-1], w[23*ldw+k-1]
		k8 := k &^ 7
		if k8 > 0 {
			packBAVX2(&dst[0], &w[0], ldw, k8)
		}
		for p := k8; p < k; p++ {
			for j := range 24 {
				dst[p*24+j] = w[j*ldw+p]
			}
		}
	},
	fmaLoop:    fmaLoopAVX2,
	fmaPerIter: 12 * 2 * 8,
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Fused quantized GEMV kernels (gen_asm.go qgemv*): dst[j] = x · w_j for
// rows rows of nb blocks, rb bytes apart.

//go:noescape
func qgemvQ8_0AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_0AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_1AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_0AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_1AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_KAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ6_KAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ6_KBWAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ8_0AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_0AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_1AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_0AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_1AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvIQ4_NLAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvIQ4_XSAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ2_KAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ3_KAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_KAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvIQ4_NLAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvIQ4_XSAVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ2_KAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ3_KAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ5_KAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ4_KAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvQ6_KAVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

// qgemvAsm wraps an assembly GEMV for type t: it checks that every block
// the kernel reads lies inside the slices. Q2_K's kernel gets the sums of x
// over 16 weights, the others those over 32.
func qgemvAsm(t QType, f func(dst, x, xs *float32, w *byte, rb, nb, rows int)) qgemvFunc {
	bs, bb := t.BlockSize(), t.BlockBytes()
	return func(dst, x, xs []float32, w []byte, rb int) {
		nb, rows := len(x)/bs, len(dst)
		if nb == 0 || rows == 0 {
			clear(dst)
			return
		}
		k := nb * bs
		_, _ = x[k-1], xs[xsLen(k)-1]
		_ = w[(rows-1)*rb+nb*bb-1]
		if t == Q2_K {
			xs = xs[k/32:]
		}
		f(&dst[0], &x[0], &xs[0], &w[0], rb, nb, rows)
	}
}

// f16tab holds every IEEE half widened to float32. The Q8_0, Q4_0, Q4_1,
// Q5_0 and Q5_1 GEMVs look their blocks' f16 scales up in it (two loads)
// instead of widening each in vector registers (a broadcast and a
// conversion: three uops on the ports their arithmetic runs on, two of
// them with AVX-512).
var f16tab = func() (t [1 << 16]float32) {
	for i := range t {
		t[i] = f16ToF32(uint16(i))
	}
	return t
}()

// GEMVs of float weight rows (gen_asm.go qgemvFloats): nb blocks of 64
// weights per row; xs is not read.

//go:noescape
func qgemvF32AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvBF16AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvF16AVX512(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvF32AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvBF16AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

//go:noescape
func qgemvF16AVX2(dst, x, xs *float32, w *byte, rb, nb, rows int)

// qgemvFloatAsm wraps a float-weight GEMV of type t: the first k−k%64
// weights of every row in assembly, the rest added after in Go.
func qgemvFloatAsm(t QType, f func(dst, x, xs *float32, w *byte, rb, nb, rows int)) qgemvFunc {
	es := t.BlockBytes()
	return func(dst, x, xs []float32, w []byte, rb int) {
		k, rows := len(x), len(dst)
		if rows == 0 {
			return
		}
		_ = w[(rows-1)*rb+k*es-1]
		nb := k / 64
		if nb == 0 {
			clear(dst)
		} else {
			f(&dst[0], &x[0], &x[0], &w[0], rb, nb, rows)
		}
		if k0 := nb * 64; k0 < k {
			for j := range dst {
				dst[j] += dotFloatGo(t, x[k0:], w[j*rb+k0*es:j*rb+k*es])
			}
		}
	}
}

// AVX-512 CPUs run the AVX-512 fused GEMVs of every type (1.4–2× the AVX2
// ones on one Zen 5 core).
func init() {
	avx2Impl.qgemv = [32]qgemvFunc{
		Q8_0: qgemvAsm(Q8_0, qgemvQ8_0AVX2), Q4_0: qgemvAsm(Q4_0, qgemvQ4_0AVX2),
		Q4_1: qgemvAsm(Q4_1, qgemvQ4_1AVX2), Q5_0: qgemvAsm(Q5_0, qgemvQ5_0AVX2),
		Q5_1: qgemvAsm(Q5_1, qgemvQ5_1AVX2), Q2_K: qgemvAsm(Q2_K, qgemvQ2_KAVX2),
		Q3_K: qgemvAsm(Q3_K, qgemvQ3_KAVX2), Q5_K: qgemvAsm(Q5_K, qgemvQ5_KAVX2),
		Q4_K: qgemvAsm(Q4_K, qgemvQ4_KAVX2), Q6_K: qgemvAsm(Q6_K, qgemvQ6_KAVX2),
		IQ4_NL: qgemvAsm(IQ4_NL, qgemvIQ4_NLAVX2), IQ4_XS: qgemvAsm(IQ4_XS, qgemvIQ4_XSAVX2),
	}
	avx2Impl.qgemvNoSums = [32]bool{Q8_0: true, Q3_K: true, Q6_K: true, IQ4_NL: true, IQ4_XS: true, F32: true, BF16: true, F16: true}
	avx2Impl.qgemv[F32] = qgemvFloatAsm(F32, qgemvF32AVX2)
	avx2Impl.qgemv[BF16] = qgemvFloatAsm(BF16, qgemvBF16AVX2)
	avx2Impl.qgemv[F16] = qgemvFloatAsm(F16, qgemvF16AVX2)
	avx512Impl.qgemv = avx2Impl.qgemv
	avx512Impl.qgemvNoSums = avx2Impl.qgemvNoSums
	avx512Impl.qgemvNoSums[Q4_0] = true // looked up as q-8 (gen_asm.go qgemvQ4_0LUT)
	avx512Impl.qgemvNoSums[Q5_0] = true
	avx512Impl.qgemv[Q8_0] = qgemvAsm(Q8_0, qgemvQ8_0AVX512)
	avx512Impl.qgemv[Q4_0] = qgemvAsm(Q4_0, qgemvQ4_0AVX512)
	avx512Impl.qgemv[Q4_K] = qgemvAsm(Q4_K, qgemvQ4_KAVX512)
	avx512Impl.qgemv[Q6_K] = qgemvAsm(Q6_K, qgemvQ6_KAVX512)
	if cpu.X86.HasAVX512BW {
		// Byte-wide unpacking: the same bits in fewer uops (gen_asm.go).
		avx512Impl.qgemv[Q6_K] = qgemvAsm(Q6_K, qgemvQ6_KBWAVX512)
	}
	avx512Impl.qgemv[Q4_1] = qgemvAsm(Q4_1, qgemvQ4_1AVX512)
	avx512Impl.qgemv[Q5_0] = qgemvAsm(Q5_0, qgemvQ5_0AVX512)
	avx512Impl.qgemv[Q5_1] = qgemvAsm(Q5_1, qgemvQ5_1AVX512)
	avx512Impl.qgemv[Q2_K] = qgemvAsm(Q2_K, qgemvQ2_KAVX512)
	avx512Impl.qgemv[Q3_K] = qgemvAsm(Q3_K, qgemvQ3_KAVX512)
	avx512Impl.qgemv[Q5_K] = qgemvAsm(Q5_K, qgemvQ5_KAVX512)
	avx512Impl.qgemv[IQ4_NL] = qgemvAsm(IQ4_NL, qgemvIQ4_NLAVX512)
	avx512Impl.qgemv[IQ4_XS] = qgemvAsm(IQ4_XS, qgemvIQ4_XSAVX512)
	avx512Impl.qgemv[F32] = qgemvFloatAsm(F32, qgemvF32AVX512)
	avx512Impl.qgemv[BF16] = qgemvFloatAsm(BF16, qgemvBF16AVX512)
	avx512Impl.qgemv[F16] = qgemvFloatAsm(F16, qgemvF16AVX512)
}

// Exact dequantization kernels (gen_asm.go dequant*): nb blocks of w into
// dst; dequantF16 takes a multiple of the vector width of values.

//go:noescape
func dequantQ8_0AVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ4_0AVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ4_1AVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ5_0AVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ5_1AVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ2_KAVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ3_KAVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ5_KAVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ4_KAVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantQ6_KAVX2(dst *float32, w *byte, nb int)

//go:noescape
func dequantF16AVX2(dst *float32, w *byte, nb int)

// dequantAsm wraps an assembly dequantizer for type t (whole blocks; for
// F16, blocks of lanes values with the rest in Go).
func dequantAsm(t QType, lanes int, f func(dst *float32, w *byte, nb int)) func(dst []float32, src []byte) {
	if t == F16 {
		return func(dst []float32, src []byte) {
			n := len(dst) - len(dst)%lanes
			if n > 0 {
				_ = src[2*n-1]
				f(&dst[0], &src[0], n)
			}
			for i := n; i < len(dst); i++ {
				dst[i] = f16ToF32(le16(src[2*i:]))
			}
		}
	}
	bs, bb := t.BlockSize(), t.BlockBytes()
	return func(dst []float32, src []byte) {
		nb := len(dst) / bs
		if nb == 0 {
			return
		}
		_ = src[nb*bb-1]
		f(&dst[0], &src[0], nb)
	}
}

func init() {
	avx2Impl.dequant = [32]func([]float32, []byte){
		Q8_0: dequantAsm(Q8_0, 8, dequantQ8_0AVX2), Q4_0: dequantAsm(Q4_0, 8, dequantQ4_0AVX2),
		Q4_1: dequantAsm(Q4_1, 8, dequantQ4_1AVX2), Q5_0: dequantAsm(Q5_0, 8, dequantQ5_0AVX2),
		Q5_1: dequantAsm(Q5_1, 8, dequantQ5_1AVX2), Q2_K: dequantAsm(Q2_K, 8, dequantQ2_KAVX2),
		Q3_K: dequantAsm(Q3_K, 8, dequantQ3_KAVX2), Q5_K: dequantAsm(Q5_K, 8, dequantQ5_KAVX2),
		Q4_K: dequantAsm(Q4_K, 8, dequantQ4_KAVX2), Q6_K: dequantAsm(Q6_K, 8, dequantQ6_KAVX2),
		F16: dequantAsm(F16, 8, dequantF16AVX2),
	}
	avx512Impl.dequant = avx2Impl.dequant
}

// Int8-activation kernels (gen_asm.go q8*, q8act.go): quantQ8 quantizes nb
// blocks of 32 floats; q8dotT computes dst[j] for rows rows of nb weight
// blocks, rb bytes apart, against quantized activations.

//go:noescape
func quantQ8AVX2(qs *int8, d *float32, s *int32, x *float32, nb int)

//go:noescape
func q8dotQ8_0AVX2(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ4_0AVX2(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ5_0AVX2(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ4_KAVX2(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ6_KAVX2(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)

// q8dotAsm wraps an assembly int8 kernel for type t: it checks that every
// block the kernel reads lies inside the slices.
func q8dotAsm(t QType, f func(dst *float32, qs *int8, d *float32, s *int32, w *byte, rb, nb, rows int)) q8dotFunc {
	bs, bb := t.BlockSize(), t.BlockBytes()
	return func(dst []float32, a *q8Row, w []byte, rb int) {
		nb, rows := len(a.qs)/bs, len(dst)
		if nb == 0 || rows == 0 {
			clear(dst)
			return
		}
		k := nb * bs
		_, _, _ = a.qs[k-1], a.d[k/32-1], a.s[k/32-1]
		_ = w[(rows-1)*rb+nb*bb-1]
		f(&dst[0], &a.qs[0], &a.d[0], &a.s[0], &w[0], rb, nb, rows)
	}
}

func quantQ8Asm(a *q8Row, x []float32) {
	nb := len(a.d)
	if nb == 0 {
		return
	}
	_, _, _ = a.qs[32*nb-1], a.s[nb-1], x[32*nb-1]
	quantQ8AVX2(&a.qs[0], &a.d[0], &a.s[0], &x[0], nb)
}

func init() {
	avx2Impl.q8dot = [32]q8dotFunc{
		Q8_0: q8dotAsm(Q8_0, q8dotQ8_0AVX2), Q4_0: q8dotAsm(Q4_0, q8dotQ4_0AVX2),
		Q5_0: q8dotAsm(Q5_0, q8dotQ5_0AVX2), Q4_K: q8dotAsm(Q4_K, q8dotQ4_KAVX2),
		Q6_K: q8dotAsm(Q6_K, q8dotQ6_KAVX2),
	}
	avx2Impl.quantQ8 = quantQ8Asm
	avx512Impl.q8dot, avx512Impl.quantQ8 = avx2Impl.q8dot, avx2Impl.quantQ8
	if cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512BW {
		avx512Impl.q8dot[Q8_0] = q8dotVNNI(Q8_0, q8dotQ8_0VNNI)
		avx512Impl.q8dot[Q4_0] = q8dotVNNI(Q4_0, q8dotQ4_0VNNI)
		avx512Impl.q8dot[Q5_0] = q8dotVNNI(Q5_0, q8dotQ5_0VNNI)
		avx512Impl.q8Note = "AVX-512 VNNI for Q8_0, Q4_0 and Q5_0, AVX2 for the others"
		avx512Impl.q8Lanes = true
	}
}

//go:noescape
func accRowsAVX512(dst, table, weight *float32, rows *uint32, n, d int)

func init() {
	avx512Impl.accRows = func(dst, table, weight []float32, rows []uint32, d int) {
		accRowsAVX512(&dst[0], &table[0], &weight[0], &rows[0], len(rows), d)
	}
}

// AVX-512 VNNI int8 kernels (gen_asm.go q8VNNI): as q8dotT, reading the
// activations' int32 lanes (q8Row.p, q8Row.dx) instead of d and s.

//go:noescape
func q8dotQ8_0VNNI(dst *float32, qs *int8, p *int32, dx *float32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ5_0VNNI(dst *float32, qs *int8, p *int32, dx *float32, w *byte, rb, nb, rows int)

//go:noescape
func q8dotQ4_0VNNI(dst *float32, qs *int8, p *int32, dx *float32, w *byte, rb, nb, rows int)

// q8dotVNNI wraps a VNNI kernel for type t (32-weight blocks), checking
// every block and lane it reads.
func q8dotVNNI(t QType, f func(dst *float32, qs *int8, p *int32, dx *float32, w *byte, rb, nb, rows int)) q8dotFunc {
	bb := t.BlockBytes()
	return func(dst []float32, a *q8Row, w []byte, rb int) {
		nb, rows := len(a.qs)/32, len(dst)
		if nb == 0 || rows == 0 {
			clear(dst)
			return
		}
		_, _, _ = a.qs[32*nb-1], a.p[8*nb-1], a.dx[8*nb-1]
		_ = w[(rows-1)*rb+nb*bb-1]
		f(&dst[0], &a.qs[0], &a.p[0], &a.dx[0], &w[0], rb, nb, rows)
	}
}
