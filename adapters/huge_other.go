//go:build !linux

package adapters

// adviseHuge is a no-op without Linux's transparent huge pages.
func adviseHuge([]byte) {}
