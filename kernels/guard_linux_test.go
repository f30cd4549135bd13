//go:build linux

package kernels

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns a slice of n float32 that ends exactly at an unmapped page,
// so any read or write past its end faults.
func guarded(t *testing.T, n int) []float32 {
	page := syscall.Getpagesize()
	size := (n*4+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Skip("mprotect:", err)
	}
	end := size - page
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[end-4*n])), n)
}

// guardedBF16 is guarded for bf16 values (zero, so finite).
func guardedBF16(t *testing.T, n int) []uint16 {
	f := guarded(t, (n+1)/2)
	b := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(f))), 2*len(f))
	return b[len(b)-n:]
}

// TestNoOverread runs every kernel on slices that end at a guard page.
func TestNoOverread(t *testing.T) {
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(12, 13))
		fill := func(v []float32) []float32 {
			for i := range v {
				v[i] = r.Float32() - 0.5
			}
			return v
		}
		for _, n := range []int{1, 3, 7, 8, 9, 15, 16, 17, 33, 63} {
			a, b := fill(guarded(t, n)), fill(guarded(t, n))
			Dot(a, b)
			Axpy(2, a, b)
			Add(a, b)
			RMSNorm(a, a, b, 1e-5)
			Softmax(a)
			SiLUMul(a, b)
			c := fill(guarded(t, 2*n))
			RoPE(c, a, b)
			for _, m := range []int{1, 4, 5} {
				for _, nn := range []int{1, 3, 6, 7} {
					x, w, d := fill(guarded(t, m*n)), fill(guarded(t, nn*n)), guarded(t, m*nn)
					MatMulT(d, x, w, m, nn, n)
					wb := guardedBF16(t, nn*n)
					MatMulTBF16(d, x, wb, m, nn, n)
					if m == 1 {
						WidenBF16(guarded(t, nn*n), wb)
					}
				}
			}
		}
	})
}

// TestNoOverreadPacked runs the packed prefill GEMM on slices that end at a
// guard page, at whole and partial tiles.
func TestNoOverreadPacked(t *testing.T) {
	saved := packMinM
	defer func() { packMinM = saved }()
	packMinM = 1
	eachImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(14, 15))
		fill := func(v []float32) []float32 {
			for i := range v {
				v[i] = r.Float32() - 0.5
			}
			return v
		}
		for _, k := range []int{1, 3, 16, 17, 400} {
			for _, m := range []int{1, 8, 9, 16} {
				for _, n := range []int{1, 47, 48, 49, 96} {
					x, w, d := fill(guarded(t, m*k)), fill(guarded(t, n*k)), guarded(t, m*n)
					MatMulT(d, x, w, m, n, k)
					MatMulTBF16(d, x, guardedBF16(t, n*k), m, n, k)
				}
			}
		}
	})
}
