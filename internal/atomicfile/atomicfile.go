// Package atomicfile writes files so that readers see the old file or the
// complete new one, never a half-written one: the data goes to a temporary
// file in the same folder, which is synced and then renamed over the path.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// chunk is the size and alignment of Write's writes: the page cache keeps
// written data in folios no larger than the writes that filled them (2 MiB
// at most), and readers map 2 MiB folios with huge pages (see mmapfile).
// Written 1 MiB at a time, a GGUF was cached in small folios and decoded
// from ~20% slower until evicted.
const chunk = 2 << 20

// Write creates or replaces path with what fill writes.
func Write(path string, fill func(io.Writer) error) error {
	return write(path, func(f *os.File) error {
		cw := &chunkWriter{f: f, buf: make([]byte, 0, chunk)}
		if err := fill(cw); err != nil {
			return err
		}
		return cw.flush()
	})
}

// chunkWriter writes to f in whole chunks at multiples of chunk (the last
// one short): unlike bufio.Writer it never passes a large write through at
// an unaligned offset.
type chunkWriter struct {
	f   *os.File
	buf []byte
	err error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && w.err == nil {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf, p, n = w.buf[:len(w.buf)+k], p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			w.err = w.flush()
		}
	}
	return n, w.err
}

func (w *chunkWriter) flush() error {
	if w.err != nil {
		return w.err
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// write creates or replaces path with what fill writes to the temporary file.
func write(path string, fill func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600 files
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename durable where the platform allows fsync on a folder.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteFile creates or replaces path with b.
func WriteFile(path string, b []byte) error {
	return write(path, func(f *os.File) error {
		_, err := f.Write(b)
		return err
	})
}
