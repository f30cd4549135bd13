package kernels

import "fmt"

// MatMulT driver: dst[m,n] = x[m,k]·w[n,k]ᵀ. The output is cut into blocks
// (mb rows of x × nb rows of w) that the pool claims one at a time. Inside a
// block, an nr-row group of w stays in L1 while the mr-row tiles of x sweep
// past it from L2; very long k is cut into kc slices so both stay cached.

const (
	serialFlops = 32 << 10 // m·n·k below this runs on the caller
	kcMax       = 2048     // longest k slice per tile pass
)

func matMulT(im *impl, dst, x, w []float32, m, n, k int) {
	matMulTStrided(im, dst, n, x, k, w, k, m, n, k)
}

// span is the length a strided [rows, cols] matrix with leading dimension ld occupies.
func span(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

func matMulTStrided(im *impl, dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, m, n, k int) {
	if m < 0 || n < 0 || k < 0 || ldd < n || ldx < k || ldw < k ||
		len(x) < span(m, k, ldx) || len(w) < span(n, k, ldw) || len(dst) < span(m, n, ldd) {
		panic(fmt.Sprintf("kernels: MatMulT m=%d n=%d k=%d ldd=%d ldx=%d ldw=%d with len(dst)=%d len(x)=%d len(w)=%d",
			m, n, k, ldd, ldx, ldw, len(dst), len(x), len(w)))
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(dst[i*ldd : i*ldd+n])
		}
		return
	}
	t := Threads()
	if t == 1 || m*n*k < serialFlops {
		gemmBlock(im, dst, ldd, x, ldx, w, ldw, k, 0, m, 0, n)
		return
	}
	// Blocks: decode-sized m keeps all rows together and splits n finely;
	// prefill uses 64×96 blocks (multiples of every impl's mr and nr).
	mb, nb := 64, 96
	if m <= 16 {
		mb = m
		nb = max(12, (n+8*t-1)/(8*t))
		nb = (nb + 11) / 12 * 12
	}
	bm, bn := (m+mb-1)/mb, (n+nb-1)/nb
	parallelFor(bm*bn, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			bi, bj := b%bm, b/bm
			gemmBlock(im, dst, ldd, x, ldx, w, ldw, k, bi*mb, min(m, bi*mb+mb), bj*nb, min(n, bj*nb+nb))
		}
	})
}

// gemmBlock computes dst[i0:i1, j0:j1]; ldd, ldx, ldw are the row strides.
func gemmBlock(im *impl, dst []float32, ldd int, x []float32, ldx int, w []float32, ldw, k, i0, i1, j0, j1 int) {
	mr, nr := im.mr, im.nr
	kc := k
	if k > kcMax {
		s := (k + kcMax - 1) / kcMax
		kc = ((k+s-1)/s + 15) &^ 15
	}
	for p := 0; p < k; p += kc {
		kl := min(kc, k-p)
		acc := p > 0
		j := j0
		for ; j+nr <= j1; j += nr {
			wj := w[j*ldw+p:]
			i := i0
			for ; i+mr <= i1; i += mr {
				im.tile(dst[i*ldd+j:], ldd, acc, x[i*ldx+p:], ldx, wj, ldw, kl)
			}
			for ; i < i1; i++ {
				im.tileM1(dst[i*ldd+j:], acc, x[i*ldx+p:], wj, ldw, kl)
			}
		}
		for ; j < j1; j++ {
			wj := w[j*ldw+p : j*ldw+p+kl]
			i := i0
			for ; i+mr <= i1; i += mr {
				im.tileN1(dst[i*ldd+j:], ldd, acc, x[i*ldx+p:], ldx, wj, kl)
			}
			for ; i < i1; i++ {
				d := im.dot(x[i*ldx+p:i*ldx+p+kl], wj)
				if acc {
					dst[i*ldd+j] += d
				} else {
					dst[i*ldd+j] = d
				}
			}
		}
	}
}
