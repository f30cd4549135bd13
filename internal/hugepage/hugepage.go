// Package hugepage asks the kernel for transparent huge pages under memory
// that is streamed every step (weights, adapter factors): on 4 KiB pages each
// 4 KiB read costs a TLB miss and restarts the hardware prefetcher. The
// requests are hints; where they are not honoured the memory works the same.
package hugepage

import "unsafe"

// Size is the huge page size regions are aligned to.
const Size = 2 << 20

// Advise asks for huge pages over the whole huge pages inside b
// (MADV_HUGEPAGE on Linux, nothing elsewhere).
func Advise(b []byte) {
	if len(b) == 0 {
		return
	}
	lo := int((Size - uintptr(unsafe.Pointer(&b[0]))%Size) % Size)
	if hi := lo + (len(b)-lo)/Size*Size; hi > lo {
		advise(b[lo:hi])
	}
}

// Buf returns n zeroed elements starting on a huge page boundary, advised
// onto huge pages before first touch.
func Buf[T any](n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if n == 0 || size == 0 {
		return make([]T, n)
	}
	buf := make([]T, n+(Size+size-1)/size)
	off := int((Size - uintptr(unsafe.Pointer(&buf[0]))%Size) % Size / uintptr(size))
	f := buf[off : off+n : off+n]
	Advise(unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), n*size))
	return f
}
