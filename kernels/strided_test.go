package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// MatMulTStrided agrees with its reference on sub-matrices, on every path and
// thread count, and writes nothing between or after the dst rows.
func TestMatMulTStrided(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, th := range []int{1, 2} {
			prev := Threads()
			SetThreads(th)
			for iter := 0; iter < 200; iter++ {
				m, n, k := 1+r.IntN(70), 1+r.IntN(130), 1+r.IntN(90)
				if iter%10 == 0 {
					m, n, k = 64+r.IntN(100), 200+r.IntN(300), 64+r.IntN(64)
				}
				ldx, ldw, ldd := k+r.IntN(9), k+r.IntN(9), n+r.IntN(9)
				x, w := randVec(r, span(m, k, ldx), 1), randVec(r, span(n, k, ldw), 1)
				got := make([]float32, span(m, n, ldd)+5)
				want := make([]float32, len(got))
				for i := range got {
					got[i] = 7
					want[i] = 7
				}
				MatMulTStrided(got, ldd, x, ldx, w, ldw, m, n, k)
				matMulTStridedRef(want, ldd, x, ldx, w, ldw, m, n, k)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*math.Sqrt(float64(k)) {
						t.Fatalf("m=%d n=%d k=%d ld=%d,%d,%d: element %d got %v want %v", m, n, k, ldd, ldx, ldw, i, got[i], want[i])
					}
				}
			}
			SetThreads(prev)
		}
	})
}
