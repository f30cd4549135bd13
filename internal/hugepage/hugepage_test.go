package hugepage

import (
	"testing"
	"unsafe"
)

// Buf starts on a huge page boundary, holds n zeroed elements and cannot be
// grown into its slack.
func TestBuf(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 3 << 20} {
		b := Buf[float32](n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("n=%d: len %d cap %d", n, len(b), cap(b))
		}
		if n == 0 {
			continue
		}
		if p := uintptr(unsafe.Pointer(&b[0])); p%Size != 0 {
			t.Errorf("n=%d: starts at %#x, not on a %d-byte boundary", n, p, Size)
		}
		for i, v := range b {
			if v != 0 {
				t.Fatalf("n=%d: b[%d] = %v", n, i, v)
			}
		}
	}
	Advise(nil)
	Advise(make([]byte, 100)) // smaller than a huge page: nothing to ask
}
