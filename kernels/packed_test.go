package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestMatMulTPacked runs the packed prefill GEMM (where the kernel set has
// one) at shapes around its tiles (8×48, 4×24) and k-slice edges, serial and
// parallel, and compares with the old tiles at the same shapes.
func TestMatMulTPacked(t *testing.T) {
	defer SetThreads(Threads())
	savedMin := packMinM
	defer func() { packMinM = savedMin }()
	r := rand.New(rand.NewPCG(21, 22))
	for _, th := range []int{1, 2} {
		SetThreads(th)
		eachImpl(t, func(t *testing.T) {
			for _, pm := range []int{1, 8, 32} {
				packMinM = pm
				for _, m := range []int{1, 7, 8, 9, 17, 33, 63, 129} {
					for _, n := range []int{1, 23, 24, 25, 47, 48, 49, 97} {
						for _, k := range []int{1, 2, 15, 16, 17, 385} {
							if th > 1 && (m*n*k)%3 != 0 {
								continue // keep the parallel runs short
							}
							if pm != 32 && (m+n+k)%2 == 0 {
								continue
							}
							checkMatMul(t, r, m, n, k)
						}
					}
				}
				// k slices (packKC) and long k.
				for _, s := range [][3]int{{40, 49, 800}, {33, 97, 1537}, {64, 48, 769}} {
					checkMatMul(t, r, s[0], s[1], s[2])
				}
			}
		})
	}
}

// TestMatMulTPackedStrided checks the packed path on sub-matrices and both
// weight types (bf16 goes through the widened panel).
func TestMatMulTPackedStrided(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	eachImpl(t, func(t *testing.T) {
		for _, s := range [][3]int{{40, 50, 17}, {64, 96, 300}, {33, 49, 64}, {129, 145, 31}} {
			m, n, k := s[0], s[1], s[2]
			ldd, ldx, ldw := n+3, k+5, k+2
			x, w := randVec(r, m*ldx, 1), randVec(r, n*ldw, 1)
			dst := randVec(r, m*ldd, 1)
			keep := append([]float32(nil), dst...)
			MatMulTStrided(dst, ldd, x, ldx, w, ldw, m, n, k)
			for i := 0; i < m; i++ {
				for j := 0; j < ldd; j++ {
					got := dst[i*ldd+j]
					if j >= n {
						if got != keep[i*ldd+j] {
							t.Fatalf("%v: wrote outside dst at [%d,%d]", s, i, j)
						}
						continue
					}
					want := dotRef(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
					if !near(float64(got), float64(want), float64(k), 2e-6) {
						t.Fatalf("%v: dst[%d,%d] = %v want %v", s, i, j, got, want)
					}
				}
			}
		}
	})
}
