package kernels

import "math"

// Portable kernels: plain Go, unrolled into independent accumulators so the
// scalar pipeline stays busy. Used off amd64, with -tags purego, and when the
// CPU lacks AVX2+FMA.

var goImpl = &impl{
	name:     "go",
	dot:      dotGo,
	axpy:     axpyGo,
	add:      addGo,
	mulScale: mulScaleGo,
	scale:    scaleGo,
	rope:     ropeGo,
	max:      maxGo,
	expSum:   expSumGo,
	siluMul:  siluMulGo,
	mr:       2,
	nr:       4,
	tile:     tileGo,
	tileM1:   tileM1Go,
	tileN1:   tileN1Go,

	bk:          1,
	tileBF16:    tileBF16Go,
	tileM1BF16:  tileM1BF16Go,
	fmaLoop:     fmaLoopGo,
	fmaPerIter:  8 * 2,
	qgemv:       qgemvGo,
	qgemvNoSums: [32]bool{Q8_0: true, Q3_K: true, IQ4_NL: true, IQ4_XS: true, F32: true, BF16: true, F16: true},
	q8dot:       q8dotGo,
}

func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa, bb := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xx, yy := x[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] += alpha * xx[0]
		yy[1] += alpha * xx[1]
		yy[2] += alpha * xx[2]
		yy[3] += alpha * xx[3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

func addGo(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] += v
	}
}

func mulScaleGo(dst, x, w []float32, s float32) {
	dst, w = dst[:len(x)], w[:len(x)]
	for i, v := range x {
		dst[i] = w[i] * (v * s)
	}
}

func scaleGo(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

func ropeGo(x0, x1, cos, sin []float32) {
	x1, cos, sin = x1[:len(x0)], cos[:len(x0)], sin[:len(x0)]
	for i, a := range x0 {
		b := x1[i]
		x0[i] = a*cos[i] - b*sin[i]
		x1[i] = b*cos[i] + a*sin[i]
	}
}

func maxGo(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

func expSumGo(x []float32, mx float32) float32 {
	var s float64
	for i, v := range x {
		e := math.Exp(float64(v - mx))
		x[i] = float32(e)
		s += e
	}
	return float32(s)
}

func siluMulGo(g, u []float32) {
	u = u[:len(g)]
	for i, v := range g {
		g[i] = v / (1 + float32(math.Exp(float64(-v)))) * u[i]
	}
}

// tileGo is the 2×4 tile: 8 accumulators fit the scalar register file.
func tileGo(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, ldw, k int) {
	x0, x1 := x[:k], x[ldx:ldx+k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var a00, a01, a02, a03, a10, a11, a12, a13 float32
	for p := range x0 {
		u, v := x0[p], x1[p]
		b0, b1, b2, b3 := w0[p], w1[p], w2[p], w3[p]
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

func tileM1Go(dst []float32, acc bool, x, w []float32, ldw, k int) {
	x0 := x[:k]
	w0, w1, w2, w3 := w[:k], w[ldw:ldw+k], w[2*ldw:2*ldw+k], w[3*ldw:3*ldw+k]
	var a0, a1, a2, a3 float32
	for p, u := range x0 {
		a0 += u * w0[p]
		a1 += u * w1[p]
		a2 += u * w2[p]
		a3 += u * w3[p]
	}
	putRow(dst[:4], acc, a0, a1, a2, a3)
}

func tileN1Go(dst []float32, ldd int, acc bool, x []float32, ldx int, w []float32, k int) {
	a0, a1 := dotGo(x[:k], w[:k]), dotGo(x[ldx:ldx+k], w[:k])
	if acc {
		dst[0] += a0
		dst[ldd] += a1
	} else {
		dst[0], dst[ldd] = a0, a1
	}
}

func putRow(d []float32, acc bool, a0, a1, a2, a3 float32) {
	d = d[:4]
	if acc {
		d[0] += a0
		d[1] += a1
		d[2] += a2
		d[3] += a3
	} else {
		d[0], d[1], d[2], d[3] = a0, a1, a2, a3
	}
}
