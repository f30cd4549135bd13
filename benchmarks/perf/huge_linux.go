package main

import (
	"syscall"
	"unsafe"
)

// hugeFloats returns n float32s of anonymous memory that asked for
// transparent huge pages before first touch, as roe's weight mappings ask
// (mmapfile), so the read ceiling is measured on the pages decode gets;
// free unmaps them.
func hugeFloats(n int) (buf []float32, free func()) {
	b, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]float32, n), func() {}
	}
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), func() { syscall.Munmap(b) }
}
