//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mmapfile

import "os"

// mapFile reads the whole file into memory on platforms without syscall.Mmap.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	return read(f, size)
}
