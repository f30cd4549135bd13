package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"roe/kernels"
)

// WriteTensor is one tensor to write.
type WriteTensor struct {
	Name string
	Type kernels.QType
	// Shape is in GGUF ne order: Shape[0] is the row length.
	Shape []int
	// Data holds the stored bytes: RowBytes(Type, Shape[0]) × the other dims.
	Data []byte
}

// Write writes a GGUF v3 file: the metadata in the order given, then the
// tensor infos and the data, each tensor aligned to general.alignment (when
// kvs has it; 32 otherwise). Everything is validated before the first byte
// is written, with the rules Parse applies.
func Write(w io.Writer, kvs []KV, tensors []WriteTensor) error {
	align := DefaultAlignment
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if kv.Key == "" {
			return errFormat("write: empty key")
		}
		if len(kv.Key) > MaxNameLen {
			return errFormat("write: key %.40q… is %d bytes, over the %d-byte limit", kv.Key, len(kv.Key), MaxNameLen)
		}
		if seen[kv.Key] {
			return errFormat("write: duplicate key %q", kv.Key)
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Value, 0); err != nil {
			return prefix(err, "write: key %q: ", kv.Key)
		}
		if kv.Key == AlignmentKey {
			a, err := alignmentOf(kv.Value)
			if err != nil {
				return prefix(err, "write: ")
			}
			align = a
		}
	}
	offsets := make([]int64, len(tensors))
	var off int64
	names := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		if t.Name == "" {
			return errFormat("write: tensor %d has an empty name", i)
		}
		if len(t.Name) > MaxNameLen {
			return errFormat("write: tensor %d: name of %d bytes, over the %d-byte limit", i, len(t.Name), MaxNameLen)
		}
		if names[t.Name] {
			return errFormat("write: duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		if len(t.Shape) < 1 || len(t.Shape) > MaxDims {
			return errFormat("write: tensor %q: %d dimensions, want 1 to %d", t.Name, len(t.Shape), MaxDims)
		}
		if t.Shape[0] < 1 {
			return errFormat("write: tensor %q: dimension %d, want ≥ 1", t.Name, t.Shape[0])
		}
		size, err := tensorBytes(t.Type, t.Shape)
		if err != nil {
			return prefix(err, "write: tensor %q: ", t.Name)
		}
		if int64(len(t.Data)) != size {
			return errFormat("write: tensor %q: %s %v needs %d bytes, got %d", t.Name, t.Type, t.Shape, size, len(t.Data))
		}
		off = alignUp(off, int64(align))
		offsets[i] = off
		off += size
	}

	bw := bufio.NewWriterSize(w, 1<<16)
	e := &encoder{w: bw}
	e.raw([]byte(magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(uint64(d))
		}
		e.u32(uint32(t.Type))
		e.u64(uint64(offsets[i]))
	}
	e.pad(align)
	start := e.n
	for i, t := range tensors {
		e.zeros(start + offsets[i] - e.n)
		e.raw(t.Data)
	}
	e.pad(align)
	if e.err != nil {
		return fmt.Errorf("gguf: write: %w", e.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

// checkValue refuses values Parse would refuse: unknown types, and arrays
// nested more than one level deep.
func checkValue(v Value, depth int) error {
	if !v.Type.valid() {
		return errFormat("value type %d is not a GGUF type", uint32(v.Type))
	}
	if v.Type != TypeArray {
		return nil
	}
	if !v.elem.valid() {
		return errFormat("array element type %d is not a GGUF type", uint32(v.elem))
	}
	if v.arr != nil && elemOfSlice(v.arr) != v.elem {
		return errFormat("array of %s holds %T", v.elem, v.arr)
	}
	if v.elem != TypeArray {
		return nil
	}
	if depth >= 1 {
		return errUnsupported("arrays nested more than one level deep")
	}
	inner, _ := v.arr.([]Value)
	for i, x := range inner {
		if x.Type != TypeArray {
			return errFormat("array of arrays: element %d is %s", i, x.Type)
		}
		if err := checkValue(x, depth+1); err != nil {
			return prefix(err, "array element %d: ", i)
		}
	}
	return nil
}

// elemOfSlice is the element type of one of the slices Value.arr holds.
func elemOfSlice(a any) ValueType {
	switch a.(type) {
	case []uint8:
		return TypeUint8
	case []int8:
		return TypeInt8
	case []uint16:
		return TypeUint16
	case []int16:
		return TypeInt16
	case []uint32:
		return TypeUint32
	case []int32:
		return TypeInt32
	case []float32:
		return TypeFloat32
	case []bool:
		return TypeBool
	case []string:
		return TypeString
	case []uint64:
		return TypeUint64
	case []int64:
		return TypeInt64
	case []float64:
		return TypeFloat64
	case []Value:
		return TypeArray
	}
	return ValueType(math.MaxUint32)
}

// encoder writes little-endian fields, keeping the first error and the
// number of bytes written.
type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	k, err := e.w.Write(b)
	e.n += int64(k)
	e.err = err
}

func (e *encoder) u8(v uint8) { e.raw([]byte{v}) }

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.raw(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		k, err := e.w.WriteString(s)
		e.n += int64(k)
		e.err = err
	}
}

func (e *encoder) zeros(n int64) {
	var z [64]byte
	for n > 0 {
		k := min(n, int64(len(z)))
		e.raw(z[:k])
		n -= k
	}
}

func (e *encoder) pad(align int) { e.zeros(alignUp(e.n, int64(align)) - e.n) }

// value writes v's payload (its type was written by the caller).
func (e *encoder) value(v Value) {
	switch v.Type {
	case TypeString:
		e.str(v.str)
	case TypeArray:
		e.u32(uint32(v.elem))
		e.u64(uint64(v.Len()))
		e.elements(v.arr)
	default:
		e.scalar(v.Type, v.num)
	}
}

func (e *encoder) scalar(t ValueType, num uint64) {
	switch t.size() {
	case 1:
		e.u8(uint8(num))
	case 2:
		e.u16(uint16(num))
	case 4:
		e.u32(uint32(num))
	case 8:
		e.u64(num)
	}
}

func (e *encoder) elements(a any) {
	switch a := a.(type) {
	case []uint8:
		e.raw(a)
	case []int8:
		for _, x := range a {
			e.u8(uint8(x))
		}
	case []bool:
		for _, x := range a {
			if x {
				e.u8(1)
			} else {
				e.u8(0)
			}
		}
	case []uint16:
		for _, x := range a {
			e.u16(x)
		}
	case []int16:
		for _, x := range a {
			e.u16(uint16(x))
		}
	case []uint32:
		for _, x := range a {
			e.u32(x)
		}
	case []int32:
		for _, x := range a {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range a {
			e.u32(math.Float32bits(x))
		}
	case []uint64:
		for _, x := range a {
			e.u64(x)
		}
	case []int64:
		for _, x := range a {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range a {
			e.u64(math.Float64bits(x))
		}
	case []string:
		for _, x := range a {
			e.str(x)
		}
	case []Value:
		for _, x := range a {
			e.value(x) // inner arrays: element type, length, elements
		}
	}
}
