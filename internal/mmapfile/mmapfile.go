// Package mmapfile maps weight files read-only, or reads them into memory
// where the platform or the filesystem cannot map them.
package mmapfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrShrank means the file got shorter while it was being read.
var ErrShrank = errors.New("file shrank while reading")

// Map returns size bytes of f and the function that releases them. The
// mapping outlives the descriptor, so the caller may close f afterwards.
func Map(f *os.File, size int64) (data []byte, release func() error, err error) {
	return mapFile(f, size)
}

// read reads size bytes of f into memory (the non-mmap path).
func read(f *os.File, size int64) ([]byte, func() error, error) {
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: %w", ErrShrank, err)
		}
		return nil, nil, err
	}
	return buf, func() error { return nil }, nil
}
