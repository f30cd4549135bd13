package kernels

import "math"

// The plain reference twins of every kernel: scalar loops, float64 accumulation
// where it matters, no parallelism. Fast kernels are tested against these.

func matMulTRef(dst, x, w []float32, m, n, k int) {
	for i := 0; i < m; i++ {
		xi := x[i*k : i*k+k]
		for j := 0; j < n; j++ {
			dst[i*n+j] = dotRef(xi, w[j*k:j*k+k])
		}
	}
}

func dotRef(a, b []float32) float32 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return float32(s)
}

func axpyRef(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

func addRef(dst, x []float32) {
	for i, v := range x {
		dst[i] += v
	}
}

func rmsNormRef(dst, x, w []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		dst[i] = w[i] * (v * inv)
	}
}

func ropeRef(x, cos, sin []float32) {
	h := len(x) / 2
	for i := 0; i < h; i++ {
		a, b := x[i], x[i+h]
		x[i] = a*cos[i] - b*sin[i]
		x[i+h] = b*cos[i] + a*sin[i]
	}
}

func softmaxRef(x []float32) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	var sum float64
	for i, v := range x {
		e := math.Exp(float64(v - mx))
		x[i] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

func siluMulRef(gate, up []float32) {
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

func matMulTStridedRef(dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, m, n, k int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			dst[i*ldd+j] = dotRef(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
		}
	}
}
