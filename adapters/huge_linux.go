package adapters

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks for transparent huge pages over the whole huge pages
// inside f (a hint: errors are ignored, the memory works either way).
func adviseHuge(b []byte) {
	if len(b) == 0 {
		return
	}
	lo := int((hugePage - uintptr(unsafe.Pointer(&b[0]))%hugePage) % hugePage)
	hi := lo + (len(b)-lo)/hugePage*hugePage
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(b[lo:hi], syscall.MADV_HUGEPAGE)
}
