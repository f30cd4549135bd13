//go:build !linux

package mmapfile

// adviseHuge is a no-op where transparent huge pages have no madvise hint.
func adviseHuge([]byte) {}
