//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mmapfile

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. The mapping outlives the
// descriptor, so the caller may close f afterwards.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if size == 0 {
		return nil, func() error { return nil }, nil
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		// Some filesystems (e.g. certain FUSE mounts) refuse mmap: fall back to reading.
		return read(f, size)
	}
	adviseHuge(data)
	return data, func() error { return syscall.Munmap(data) }, nil
}
