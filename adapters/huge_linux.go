package adapters

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks for transparent huge pages over the whole huge pages
// inside f (a hint: errors are ignored, the memory works either way).
func adviseHuge(f []float32) {
	if len(f) == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4)
	lo := int((hugePage - uintptr(unsafe.Pointer(&b[0]))%hugePage) % hugePage)
	hi := lo + (len(b)-lo)/hugePage*hugePage
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(b[lo:hi], syscall.MADV_HUGEPAGE)
}
