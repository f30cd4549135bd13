package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"roe/internal/mmapfile"
	"sort"
	"sync"
	"unsafe"
)

// File is an open, validated safetensors file. Its methods are safe for
// concurrent use; Close waits for reads in progress.
type File struct {
	path     string
	name     string // base name, used in error messages
	metadata map[string]string
	infos    []TensorInfo // sorted by name
	index    map[string]int

	mu     sync.RWMutex // guards data against Close during a read
	data   []byte       // the data buffer (mapped or read), nil after Close
	unmap  func() error
	closed bool
}

// Open opens and validates a safetensors file. The header is read and
// checked before the data is mapped, so a corrupt file is rejected without
// touching its data.
func Open(path string) (*File, error) {
	name := filepath.Base(path)
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close() // the mapping stays valid after the descriptor is closed
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", name, ErrHeader)
	}
	size := st.Size()
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: file of %d bytes too large for this platform: %w", name, size, ErrHeader)
	}
	hdr, err := readHeaderBytes(fd, name, size)
	if err != nil {
		return nil, err
	}
	infos, metadata, dataStart, err := parseHeader(name, hdr, size)
	if err != nil {
		return nil, err
	}
	all, unmap, err := mmapfile.Map(fd, size)
	if errors.Is(err, mmapfile.ErrShrank) {
		err = fmt.Errorf("%w: %w", err, ErrTruncated)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := &File{path: path, name: name, metadata: metadata, infos: infos,
		index: make(map[string]int, len(infos)), data: all[dataStart:], unmap: unmap}
	for i, t := range infos {
		f.index[t.Name] = i
	}
	return f, nil
}

// readHeaderBytes reads the length prefix and the JSON header, refusing to
// allocate for a length that cannot be right.
func readHeaderBytes(fd *os.File, name string, size int64) ([]byte, error) {
	if size < 8 {
		return nil, &formatError{file: name, kind: ErrTruncated,
			msg: fmt.Sprintf("file is %d bytes, shorter than the 8-byte header length", size)}
	}
	var pre [8]byte
	if _, err := fd.ReadAt(pre[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeaderSize || int64(n) > size-8 {
		return pre[:], nil // parseHeader reports the exact problem
	}
	buf := make([]byte, 8+n)
	if _, err := fd.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &formatError{file: name, kind: ErrTruncated, msg: "file shrank while reading the header"}
		}
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	return buf, nil
}

// Close releases the mapping; later calls return ErrClosed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.unmap != nil {
		return f.unmap()
	}
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Metadata returns a copy of the __metadata__ map (empty, never nil, if absent).
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Tensors returns the tensors sorted by name (copies: callers may modify them).
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.infos))
	for i, t := range f.infos {
		out[i] = t.clone()
	}
	return out
}

// Info returns the description of one tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.infos[i].clone(), true
}

// lookup finds a tensor or returns an error naming the file and tensor.
func (f *File) lookup(name string) (TensorInfo, error) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("%s: tensor %q: %w", f.name, name, ErrNotFound)
	}
	return f.infos[i], nil
}

// with runs fn on the tensor's bytes while holding the read lock, so Close
// cannot unmap them underneath.
func (f *File) with(name string, fn func(t TensorInfo, b []byte) error) error {
	t, err := f.lookup(name)
	if err != nil {
		return err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return fmt.Errorf("%s: %w", f.name, ErrClosed)
	}
	return fn(t, f.data[t.Begin:t.End])
}

// Raw returns a copy of the tensor's bytes, exactly as stored (little-endian).
func (f *File) Raw(name string) ([]byte, error) {
	var out []byte
	err := f.with(name, func(_ TensorInfo, b []byte) error {
		out = append([]byte{}, b...)
		return nil
	})
	return out, err
}

// View returns the tensor's stored bytes without copying. They may be a
// read-only memory mapping: do not write to them, and do not use them after
// Close (doing either crashes the process).
func (f *File) View(name string) ([]byte, error) {
	var out []byte
	err := f.with(name, func(_ TensorInfo, b []byte) error {
		out = b[:len(b):len(b)]
		return nil
	})
	return out, err
}

// Float32 returns the tensor converted to a fresh []float32; the dtype must
// be F32, F16 or BF16.
func (f *File) Float32(name string) ([]float32, error) {
	var out []float32
	err := f.with(name, func(t TensorInfo, b []byte) error {
		switch t.DType {
		case F32:
			out = make([]float32, len(b)/4)
			if littleEndian {
				// Copy into the fresh (hence aligned) slice viewed as bytes:
				// a memmove instead of a per-element loop.
				copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(b)), b)
			} else {
				for i := range out {
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
				}
			}
		case F16:
			out = make([]float32, len(b)/2)
			for i := range out {
				out[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case BF16:
			out = make([]float32, len(b)/2)
			for i := range out {
				out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		default:
			return fmt.Errorf("%s: tensor %q: dtype %s cannot be read as float32: %w", f.name, name, t.DType, ErrDType)
		}
		return nil
	})
	return out, err
}

// Int32 returns the tensor as a fresh []int32. I32 is read as is; the
// smaller integer types widen; I64, U32 and U64 are accepted when every
// value fits in an int32.
func (f *File) Int32(name string) ([]int32, error) {
	var out []int32
	err := f.with(name, func(t TensorInfo, b []byte) error {
		rangeErr := func(i int, v any) error {
			return fmt.Errorf("%s: tensor %q: element %d = %v does not fit in int32: %w", f.name, name, i, v, ErrRange)
		}
		n := int(t.Numel())
		out = make([]int32, n)
		switch t.DType {
		case I32:
			for i := range out {
				out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case I64:
			for i := range out {
				v := int64(binary.LittleEndian.Uint64(b[8*i:]))
				if v < math.MinInt32 || v > math.MaxInt32 {
					out = nil
					return rangeErr(i, v)
				}
				out[i] = int32(v)
			}
		case U64:
			for i := range out {
				v := binary.LittleEndian.Uint64(b[8*i:])
				if v > math.MaxInt32 {
					out = nil
					return rangeErr(i, v)
				}
				out[i] = int32(v)
			}
		case U32:
			for i := range out {
				v := binary.LittleEndian.Uint32(b[4*i:])
				if v > math.MaxInt32 {
					out = nil
					return rangeErr(i, v)
				}
				out[i] = int32(v)
			}
		case I16:
			for i := range out {
				out[i] = int32(int16(binary.LittleEndian.Uint16(b[2*i:])))
			}
		case U16:
			for i := range out {
				out[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case I8:
			for i := range out {
				out[i] = int32(int8(b[i]))
			}
		case U8:
			for i := range out {
				out[i] = int32(b[i])
			}
		default:
			out = nil
			return fmt.Errorf("%s: tensor %q: dtype %s cannot be read as int32: %w", f.name, name, t.DType, ErrDType)
		}
		return nil
	})
	return out, err
}

// littleEndian reports whether the host stores integers little-endian, the
// byte order of safetensors data.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// sortInfos sorts tensor descriptions by name.
func sortInfos(infos []TensorInfo) {
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
}
