package kernels

import (
	"os"
	"sync/atomic"
)

// Packed prefill GEMM (GotoBLAS style). For blocks with many rows of x the
// driver packs a kc×pnr panel of w k-major (w row j becomes column j of the
// panel) into per-thread scratch, once, and runs a broadcast-FMA micro-kernel
// over the block's rows: each x element is broadcast and multiplied into
// pnr/16 vector accumulators, so no horizontal sums are needed and the panel
// is read from L1 by every pmr-row group. x is read in place (its rows are
// already k-contiguous). Rows and columns at the block edges go through small
// zero-padded scratch so the micro-kernel only ever sees whole tiles.

// packMinM: blocks with fewer rows of x keep the dot-style tiles (decode).
// packKC: the longest k slice, so that a packed panel (packKC·pnr floats)
// stays in L1/L2 while the row groups sweep past it.
var (
	packMinM = 32
	packKC   = 384
)

var packedOn atomic.Bool

func init() { packedOn.Store(os.Getenv("ROE_GEMM_PACKED") != "0") }

// SetPackedGEMM switches the packed prefill GEMM on or off (for comparisons;
// it is on unless ROE_GEMM_PACKED=0) and returns the previous setting. Kernel
// sets without a packed micro-kernel (AVX2, pure Go) never use it.
func SetPackedGEMM(on bool) bool { return packedOn.Swap(on) }

// usePacked reports whether a block of rows x rows goes the packed way.
func usePacked(im *impl, rows int) bool {
	return im.gemmPacked != nil && rows >= packMinM && packedOn.Load()
}

type packScratch struct {
	b  []float32 // packed panel, kc×pnr
	c  []float32 // edge output, rows×pnr
	xp []float32 // edge rows of x, pmr×kc
}

var packPool = newFreeList(func() *packScratch { return new(packScratch) })

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// gemmBlockPacked computes dst[i0:i1, j0:j1] like gemmBlock.
func gemmBlockPacked(im *impl, dst []float32, ldd int, x []float32, ldx int, w []float32, ldw, k, i0, i1, j0, j1 int) {
	mr, nr := im.pmr, im.pnr
	kc := k
	if k > packKC {
		s := (k + packKC - 1) / packKC
		kc = (k + s - 1) / s
	}
	rows := i1 - i0
	full, rem := rows/mr, rows%mr
	sc := packPool.get()
	sc.b = grow(sc.b, kc*nr)
	sc.xp = grow(sc.xp, mr*kc)
	sc.c = grow(sc.c, max(full, 1)*mr*nr)
	b, c, xp := sc.b, sc.c, sc.xp
	for p := 0; p < k; p += kc {
		kl := min(kc, k-p)
		acc := p > 0
		for j := j0; j < j1; j += nr {
			nc := min(nr, j1-j)
			if nc == nr {
				im.packB(b, w[j*ldw+p:], ldw, kl)
			} else {
				packGo(b[:kl*nr], nr, w[j*ldw+p:], ldw, nc, kl)
			}
			if full > 0 {
				if nc == nr {
					im.gemmPacked(dst[i0*ldd+j:], ldd, acc, x[i0*ldx+p:], ldx, b, kl, full)
				} else {
					im.gemmPacked(c, nr, false, x[i0*ldx+p:], ldx, b, kl, full)
					putEdge(dst[i0*ldd+j:], ldd, acc, c, nr, full*mr, nc)
				}
			}
			if rem > 0 {
				r0 := i0 + full*mr
				for r := 0; r < rem; r++ {
					copy(xp[r*kl:(r+1)*kl], x[(r0+r)*ldx+p:])
				}
				clear(xp[rem*kl : mr*kl])
				im.gemmPacked(c, nr, false, xp, kl, b, kl, 1)
				putEdge(dst[r0*ldd+j:], ldd, acc, c, nr, rem, nc)
			}
		}
	}
	packPool.put(sc)
}

// packGo packs nc (≤ nr) rows of w k-major into b[p*nr+j], zero-filling
// columns nc..nr.
func packGo(b []float32, nr int, w []float32, ldw, nc, k int) {
	for j := 0; j < nc; j++ {
		row := w[j*ldw : j*ldw+k]
		for p, v := range row {
			b[p*nr+j] = v
		}
	}
	if nc < nr {
		for p := 0; p < k; p++ {
			clear(b[p*nr+nc : p*nr+nr])
		}
	}
}

// putEdge stores (or adds) the rows×cols corner of c (stride ldc) into dst.
func putEdge(dst []float32, ldd int, acc bool, c []float32, ldc, rows, cols int) {
	for i := 0; i < rows; i++ {
		d, s := dst[i*ldd:i*ldd+cols], c[i*ldc:i*ldc+cols]
		if acc {
			for j, v := range s {
				d[j] += v
			}
		} else {
			copy(d, s)
		}
	}
}
