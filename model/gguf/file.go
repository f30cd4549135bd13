package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"roe/internal/mmapfile"
	"roe/kernels"
	"roe/model/safetensors"
)

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	Type kernels.QType
	// Shape is in GGUF ne order: Shape[0] is the row length (the fastest
	// dimension), so a [rows, cols] matrix is stored with Shape {cols, rows}.
	Shape []int
	// Offset is the byte offset of the data relative to the data region.
	Offset int64
	// Size is the data's size in bytes.
	Size int64
}

// Elements is the number of weights (the product of Shape).
func (t TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Rows is the number of rows: the product of Shape[1:] (1 for a vector).
func (t TensorInfo) Rows() int {
	n := 1
	for _, d := range t.Shape[min(1, len(t.Shape)):] {
		n *= d
	}
	return n
}

func (t TensorInfo) clone() TensorInfo {
	t.Shape = slices.Clone(t.Shape)
	return t
}

// File is a parsed, validated GGUF file. Its methods are safe for
// concurrent use.
type File struct {
	// Version is the GGUF version (2 or 3).
	Version uint32
	// Alignment is the data alignment in bytes (general.alignment, default 32).
	Alignment int
	// DataOffset is the absolute offset of the data region in the file.
	DataOffset int64
	// Tensors lists the tensors in file order, then those of a split
	// model's further parts (OpenSplit), each Offset within its own part
	// (a copy: changing it does not change what Data returns).
	Tensors []TensorInfo

	name    string // file name for messages; empty for Parse
	kvs     []KV
	keys    map[string]int
	tensors []TensorInfo
	names   map[string]int

	mu     sync.RWMutex // guards data against Close
	data   []byte       // the whole file; nil after Close
	unmap  func() error
	closed bool

	// The further parts of a split model (OpenSplit), and the part holding
	// each of their tensors.
	parts  []*File
	partOf map[string]*File
}

// Parse validates a GGUF file held in memory. The File refers to data (no
// copy) for tensor bytes; metadata is copied out.
func Parse(data []byte) (*File, error) {
	return parse("", data, nil)
}

func parse(name string, data []byte, unmap func() error) (*File, error) {
	h, err := parseHeader(data)
	if err != nil {
		var e *gerror
		if errors.As(err, &e) {
			e.file = name
		}
		return nil, err
	}
	f := &File{Version: h.version, Alignment: h.alignment, DataOffset: h.dataOffset,
		name: name, kvs: h.kvs, keys: h.keys, tensors: h.tensors, names: h.names,
		data: data, unmap: unmap}
	f.Tensors = make([]TensorInfo, len(h.tensors))
	for i, t := range h.tensors {
		f.Tensors[i] = t.clone()
	}
	return f, nil
}

// Open maps a GGUF file read-only (or reads it where mapping is not
// available) and validates it. Close releases it.
func Open(path string) (*File, error) {
	name := filepath.Base(path)
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close() // the mapping outlives the descriptor
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &gerror{file: name, msg: "not a regular file", kind: ErrFormat}
	}
	size := st.Size()
	if int64(int(size)) != size {
		return nil, &gerror{file: name, msg: fmt.Sprintf("file of %d bytes too large for this platform", size), kind: ErrUnsupported}
	}
	data, unmap, err := mmapfile.Map(fd, size)
	if errors.Is(err, mmapfile.ErrShrank) {
		err = fmt.Errorf("%w: %w", err, ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f, err := parse(name, data, unmap)
	if err != nil {
		unmap()
		return nil, err
	}
	return f, nil
}

// Close releases the mapping; Data and Float32 fail afterwards, metadata
// stays readable.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	var errs []error
	for _, p := range f.parts {
		errs = append(errs, p.Close())
	}
	if f.unmap != nil {
		errs = append(errs, f.unmap())
	}
	return errors.Join(errs...)
}

// Get returns the value of a metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

// Keys returns the metadata keys in file order.
func (f *File) Keys() []string {
	out := make([]string, len(f.kvs))
	for i, kv := range f.kvs {
		out[i] = kv.Key
	}
	return out
}

// KVs returns the metadata entries in file order.
func (f *File) KVs() []KV { return slices.Clone(f.kvs) }

// Tensor returns the description of one tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.names[name]
	if !ok {
		if p := f.partOf[name]; p != nil {
			return p.Tensor(name)
		}
		return TensorInfo{}, false
	}
	return f.tensors[i].clone(), true
}

// errf makes an error of kind about f ("file: msg").
func (f *File) errf(kind error, format string, args ...any) error {
	return &gerror{file: f.name, msg: fmt.Sprintf(format, args...), kind: kind}
}

// Data returns the tensor's stored bytes without copying. They may be a
// read-only mapping: do not write to them or use them after Close.
func (f *File) Data(name string) ([]byte, error) {
	i, ok := f.names[name]
	if !ok {
		if p := f.partOf[name]; p != nil {
			return p.Data(name)
		}
		return nil, f.errf(ErrNotFound, "no tensor %q", name)
	}
	t := f.tensors[i]
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, f.errf(ErrClosed, "tensor %q: file closed", name)
	}
	lo := f.DataOffset + t.Offset
	hi := lo + t.Size
	return f.data[lo:hi:hi], nil
}

// Float32 returns an F32, F16 or BF16 tensor widened to a fresh []float32
// (in storage order: Shape[0] fastest). Quantized tensors are refused with
// ErrUnsupported: dequantizing them is the kernels' job.
func (f *File) Float32(name string) ([]float32, error) {
	i, ok := f.names[name]
	if !ok {
		if p := f.partOf[name]; p != nil {
			return p.Float32(name)
		}
		return nil, f.errf(ErrNotFound, "no tensor %q", name)
	}
	t := f.tensors[i]
	switch t.Type {
	case kernels.F32, kernels.F16, kernels.BF16:
	default:
		return nil, f.errf(ErrUnsupported, "tensor %q is %s; Float32 widens only F32, F16 and BF16 (dequantize with kernels)", name, t.Type)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, f.errf(ErrClosed, "tensor %q: file closed", name)
	}
	b := f.data[f.DataOffset+t.Offset : f.DataOffset+t.Offset+t.Size]
	le := binary.LittleEndian
	out := make([]float32, t.Elements())
	switch t.Type {
	case kernels.F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case kernels.F16:
		for i := range out {
			out[i] = safetensors.F16ToF32(le.Uint16(b[2*i:]))
		}
	case kernels.BF16:
		for i := range out {
			out[i] = kernels.FromBF16(le.Uint16(b[2*i:]))
		}
	}
	return out, nil
}
