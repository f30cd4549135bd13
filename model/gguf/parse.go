package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"roe/kernels"
)

const (
	// DefaultAlignment is the data alignment when general.alignment is absent.
	DefaultAlignment = 32
	// MaxDims is the most dimensions a tensor may have (ggml's limit).
	MaxDims = 4
	// MaxNameLen caps key and tensor name lengths (the spec's 65535 for keys).
	MaxNameLen = 65535

	// AlignmentKey is the metadata key that sets the data alignment.
	AlignmentKey = "general.alignment"

	magic = "GGUF"
	// The smallest encodings, used to bound untrusted counts by the bytes
	// left: a KV is a key length, a value type and at least one byte; a
	// tensor info is a name length, n_dims, one dimension, type and offset.
	minKVBytes     = 8 + 4 + 1
	minTensorBytes = 8 + 4 + 8 + 4 + 8
	// Initial capacity for slices sized by untrusted counts: they grow as
	// entries are actually decoded, so memory follows the bytes consumed.
	maxPrealloc = 1 << 12
)

// gerror is an error of this package: "file: message", unwrapping to its kind.
type gerror struct {
	file string
	msg  string
	kind error
}

func (e *gerror) Error() string {
	if e.file != "" {
		return e.file + ": " + e.msg
	}
	return "gguf: " + e.msg
}

func (e *gerror) Unwrap() error { return e.kind }

func errFormat(format string, args ...any) error {
	return &gerror{msg: fmt.Sprintf(format, args...), kind: ErrFormat}
}

func errUnsupported(format string, args ...any) error {
	return &gerror{msg: fmt.Sprintf(format, args...), kind: ErrUnsupported}
}

// prefix puts context ("key \"x\": ") in front of a gerror's message.
func prefix(err error, format string, args ...any) error {
	if e, ok := err.(*gerror); ok {
		e.msg = fmt.Sprintf(format, args...) + e.msg
	}
	return err
}

// decoder reads little-endian fields from the header, checking every length
// against the bytes left before using it.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) need(n int, what string) error {
	if n > d.left() {
		return errFormat("%s at byte %d: need %d bytes, %d left", what, d.off, n, d.left())
	}
	return nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v, nil
}

// str reads a length-prefixed string of at most limit bytes (copied, so it
// outlives a mapping).
func (d *decoder) str(what string, limit uint64) (string, error) {
	start := d.off
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", errFormat("%s at byte %d: length %d exceeds the %d-byte limit", what, start, n, limit)
	}
	if n > uint64(d.left()) {
		return "", errFormat("%s at byte %d: length %d, only %d bytes left", what, start, n, d.left())
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

// scalar reads one fixed-size value of type t.
func (d *decoder) scalar(t ValueType) (Value, error) {
	n := t.size()
	if err := d.need(n, t.String()+" value"); err != nil {
		return Value{}, err
	}
	b := d.b[d.off : d.off+n]
	v := Value{Type: t}
	switch t {
	case TypeUint8:
		v.num = uint64(b[0])
	case TypeInt8:
		v.num = uint64(int64(int8(b[0])))
	case TypeBool:
		if b[0] > 1 {
			return Value{}, errFormat("bool at byte %d is %d, want 0 or 1", d.off, b[0])
		}
		v.num = uint64(b[0])
	case TypeUint16:
		v.num = uint64(binary.LittleEndian.Uint16(b))
	case TypeInt16:
		v.num = uint64(int64(int16(binary.LittleEndian.Uint16(b))))
	case TypeUint32, TypeFloat32:
		v.num = uint64(binary.LittleEndian.Uint32(b))
	case TypeInt32:
		v.num = uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	case TypeUint64, TypeInt64, TypeFloat64:
		v.num = binary.LittleEndian.Uint64(b)
	}
	d.off += n
	return v, nil
}

// value reads a value of type t; depth counts the enclosing arrays.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	switch {
	case !t.valid():
		return Value{}, errFormat("value type %d at byte %d is not a GGUF type", uint32(t), d.off-4)
	case t == TypeString:
		s, err := d.str("string", math.MaxUint64)
		return Value{Type: TypeString, str: s}, err
	case t == TypeArray:
		return d.array(depth)
	}
	return d.scalar(t)
}

// array reads an array's element type, length and elements.
func (d *decoder) array(depth int) (Value, error) {
	start := d.off
	et, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, errFormat("array at byte %d: element type %d is not a GGUF type", start, et)
	}
	if elem == TypeArray && depth >= 1 {
		return Value{}, errUnsupported("array at byte %d: arrays nested more than one level deep", start)
	}
	n64, err := d.u64("array length")
	if err != nil {
		return Value{}, err
	}
	minSize := elem.size()
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 4 + 8
	}
	if n64 > uint64(d.left()/minSize) {
		return Value{}, errFormat("array at byte %d: %d elements of type %s cannot fit in the %d bytes left",
			start, n64, elem, d.left())
	}
	n := int(n64)
	v := Value{Type: TypeArray, elem: elem}
	b := d.b[d.off:]
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		v.arr = decodeArray(b, n, 1, func(b []byte) uint8 { return b[0] })
	case TypeInt8:
		v.arr = decodeArray(b, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeBool:
		for i, c := range b[:n] {
			if c > 1 {
				return Value{}, errFormat("array at byte %d: bool element %d is %d, want 0 or 1", start, i, c)
			}
		}
		v.arr = decodeArray(b, n, 1, func(b []byte) bool { return b[0] == 1 })
	case TypeUint16:
		v.arr = decodeArray(b, n, 2, le.Uint16)
	case TypeInt16:
		v.arr = decodeArray(b, n, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TypeUint32:
		v.arr = decodeArray(b, n, 4, le.Uint32)
	case TypeInt32:
		v.arr = decodeArray(b, n, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TypeFloat32:
		v.arr = decodeArray(b, n, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TypeUint64:
		v.arr = decodeArray(b, n, 8, le.Uint64)
	case TypeInt64:
		v.arr = decodeArray(b, n, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case TypeFloat64:
		v.arr = decodeArray(b, n, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case TypeString:
		a := make([]string, 0, min(n, maxPrealloc))
		for i := range n {
			s, err := d.str("string", math.MaxUint64)
			if err != nil {
				return Value{}, prefix(err, "array element %d: ", i)
			}
			a = append(a, s)
		}
		v.arr = a
		return v, nil
	case TypeArray:
		a := make([]Value, 0, min(n, maxPrealloc))
		for i := range n {
			inner, err := d.array(depth + 1)
			if err != nil {
				return Value{}, prefix(err, "array element %d: ", i)
			}
			a = append(a, inner)
		}
		v.arr = a
		return v, nil
	}
	d.off += n * minSize
	return v, nil
}

// decodeArray decodes n fixed-size elements; the caller checked that
// b holds n*size bytes.
func decodeArray[T any](b []byte, n, size int, f func([]byte) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(b[i*size:])
	}
	return out
}

// header is what parsing the bytes before the tensor data yields.
type header struct {
	version    uint32
	alignment  int
	kvs        []KV
	keys       map[string]int
	tensors    []TensorInfo
	names      map[string]int
	dataOffset int64
}

// parseHeader decodes and validates everything: header, metadata, tensor
// infos, and the tensors' placement in a file of len(b) bytes. It never
// panics and allocates in proportion to the bytes it has consumed.
func parseHeader(b []byte) (*header, error) {
	if len(b) < 8 {
		return nil, errFormat("file is %d bytes, too short for a GGUF header", len(b))
	}
	switch m := string(b[:4]); m {
	case magic:
	case "FUGG":
		return nil, errUnsupported("big-endian GGUF file (magic bytes %q); roe reads little-endian files only", m)
	case "lmgg", "fmgg", "tjgg":
		return nil, errUnsupported("pre-GGUF ggml file (magic %q); convert it to GGUF", m)
	default:
		return nil, errFormat("not a GGUF file: magic bytes %q, want %q", m, magic)
	}
	d := &decoder{b: b, off: 4}
	version, _ := d.u32("version")
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, errUnsupported("GGUF version 1 is not supported (roe reads versions 2 and 3)")
	case bits.ReverseBytes32(version) >= 1 && bits.ReverseBytes32(version) <= 3:
		return nil, errUnsupported("big-endian GGUF file (version field %#08x is version %d byte-swapped); roe reads little-endian files only",
			version, bits.ReverseBytes32(version))
	case version == 0:
		return nil, errFormat("GGUF version 0")
	default:
		return nil, errUnsupported("GGUF version %d is not supported (roe reads versions 2 and 3)", version)
	}
	nt, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	left := uint64(d.left())
	if nt > left/minTensorBytes {
		return nil, errFormat("tensor count %d cannot fit in the %d bytes left", nt, left)
	}
	if nkv > left/minKVBytes || nkv*minKVBytes+nt*minTensorBytes > left {
		return nil, errFormat("metadata count %d (with %d tensors) cannot fit in the %d bytes left", nkv, nt, left)
	}

	h := &header{version: version, alignment: DefaultAlignment,
		kvs:  make([]KV, 0, min(nkv, maxPrealloc)),
		keys: make(map[string]int, min(nkv, maxPrealloc))}
	for i := range nkv {
		key, err := d.str("key", MaxNameLen)
		if err != nil {
			return nil, prefix(err, "metadata entry %d: ", i)
		}
		if key == "" {
			return nil, errFormat("metadata entry %d: empty key", i)
		}
		if _, dup := h.keys[key]; dup {
			return nil, errFormat("duplicate key %q", key)
		}
		t, err := d.u32("value type")
		if err != nil {
			return nil, prefix(err, "key %q: ", key)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, prefix(err, "key %q: ", key)
		}
		h.keys[key] = len(h.kvs)
		h.kvs = append(h.kvs, KV{Key: key, Value: v})
	}
	if i, ok := h.keys[AlignmentKey]; ok {
		a, err := alignmentOf(h.kvs[i].Value)
		if err != nil {
			return nil, err
		}
		h.alignment = a
	}

	// Tensor infos: structure first; an unsupported type is reported only
	// once the whole header is known to be well-formed.
	h.tensors = make([]TensorInfo, 0, min(nt, maxPrealloc))
	h.names = make(map[string]int, min(nt, maxPrealloc))
	var unsupported error
	for i := range nt {
		t, err := d.tensorInfo()
		if err != nil {
			if t.Name == "" {
				return nil, prefix(err, "tensor info %d: ", i)
			}
			return nil, prefix(err, "tensor %q: ", t.Name)
		}
		if _, dup := h.names[t.Name]; dup {
			return nil, errFormat("duplicate tensor name %q", t.Name)
		}
		if !t.Type.Known() && unsupported == nil {
			unsupported = errUnsupported("tensor %q: type %s (%d) is not supported", t.Name, t.Type, uint32(t.Type))
		}
		if t.Offset%int64(h.alignment) != 0 {
			return nil, errFormat("tensor %q: offset %d is not aligned to %d bytes", t.Name, t.Offset, h.alignment)
		}
		h.names[t.Name] = len(h.tensors)
		h.tensors = append(h.tensors, t)
	}
	if unsupported != nil {
		return nil, unsupported
	}

	end := int64(d.off)
	h.dataOffset = alignUp(end, int64(h.alignment))
	if len(h.tensors) == 0 {
		return h, nil
	}
	if h.dataOffset > int64(len(b)) {
		return nil, errFormat("header ends at byte %d, so the tensor data starts at %d, past the end of the file (%d bytes)",
			end, h.dataOffset, len(b))
	}
	dataLen := int64(len(b)) - h.dataOffset
	for i := range h.tensors {
		t := &h.tensors[i]
		size, err := tensorBytes(t.Type, t.Shape)
		if err != nil {
			return nil, prefix(err, "tensor %q: ", t.Name)
		}
		t.Size = size
		if t.Offset > dataLen || size > dataLen-t.Offset {
			return nil, errFormat("tensor %q: %d bytes at data offset %d run past the end of the file (data region holds %d bytes)",
				t.Name, size, t.Offset, dataLen)
		}
	}
	return h, checkOverlap(h.tensors)
}

// tensorInfo reads one tensor info: name, n_dims, ne, type, offset.
func (d *decoder) tensorInfo() (TensorInfo, error) {
	var t TensorInfo
	name, err := d.str("tensor name", MaxNameLen)
	if err != nil {
		return t, err
	}
	if name == "" {
		return t, errFormat("empty tensor name")
	}
	t.Name = name
	nd, err := d.u32("n_dims")
	if err != nil {
		return t, err
	}
	if nd < 1 || nd > MaxDims {
		return t, errFormat("%d dimensions, want 1 to %d", nd, MaxDims)
	}
	t.Shape = make([]int, nd)
	elems := uint64(1)
	for j := range t.Shape {
		ne, err := d.u64("dimension")
		if err != nil {
			return t, err
		}
		if ne == 0 {
			return t, errFormat("dimension %d is 0", j)
		}
		if ne > math.MaxInt64/elems || ne > uint64(math.MaxInt) {
			return t, errFormat("shape overflows: dimension %d is %d after %d elements", j, ne, elems)
		}
		elems *= ne
		t.Shape[j] = int(ne)
	}
	typ, err := d.u32("tensor type")
	if err != nil {
		return t, err
	}
	t.Type = kernels.QType(typ)
	off, err := d.u64("tensor offset")
	if err != nil {
		return t, err
	}
	if off > math.MaxInt64 {
		return t, errFormat("offset %d too large", off)
	}
	t.Offset = int64(off)
	return t, nil
}

// tensorBytes is the stored size of a tensor of type t and shape (ne order),
// or an error when rows are not whole blocks or the size overflows.
func tensorBytes(t kernels.QType, shape []int) (int64, error) {
	if len(shape) == 0 {
		return 0, errFormat("no dimensions")
	}
	if !t.Known() {
		return 0, errUnsupported("type %s (%d) is not supported", t, uint32(t))
	}
	// kernels.RowBytes does not guard against overflow: check first.
	if shape[0] < 1 || shape[0]/t.BlockSize() > math.MaxInt/t.BlockBytes() {
		return 0, errFormat("shape %v of %s overflows", shape, t)
	}
	row, err := kernels.RowBytes(t, shape[0])
	if err != nil {
		return 0, errFormat("row length %d is not a multiple of the %s block size %d", shape[0], t, t.BlockSize())
	}
	size := int64(row)
	for _, ne := range shape[1:] {
		if ne < 1 {
			return 0, errFormat("dimension %d, want ≥ 1", ne)
		}
		if size > math.MaxInt64/int64(ne) {
			return 0, errFormat("shape %v of %s overflows", shape, t)
		}
		size *= int64(ne)
	}
	return size, nil
}

// checkOverlap refuses two tensors whose byte ranges intersect.
func checkOverlap(ts []TensorInfo) error {
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return ts[order[i]].Offset < ts[order[j]].Offset })
	for k := 1; k < len(order); k++ {
		p, q := ts[order[k-1]], ts[order[k]]
		if q.Offset < p.Offset+p.Size {
			return errFormat("tensor %q (bytes %d to %d of the data) overlaps tensor %q (bytes %d to %d)",
				q.Name, q.Offset, q.Offset+q.Size, p.Name, p.Offset, p.Offset+p.Size)
		}
	}
	return nil
}

// alignmentOf checks a general.alignment value: a uint32 power of two.
func alignmentOf(v Value) (int, error) {
	if v.Type != TypeUint32 {
		return 0, errFormat("key %q is %s %s, want uint32", AlignmentKey, v.Type, v.Describe())
	}
	a := v.num
	if a == 0 || a&(a-1) != 0 {
		return 0, errFormat("key %q is %d, want a power of two", AlignmentKey, a)
	}
	return int(a), nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
