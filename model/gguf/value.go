package gguf

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// ValueType is the type of a metadata value, numbered as GGUF numbers them.
type ValueType uint32

// The GGUF metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
	"float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String is the type's name, e.g. "uint32".
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// valid reports whether t is one of the thirteen GGUF value types.
func (t ValueType) valid() bool { return t <= TypeFloat64 }

// size is the encoded size of a fixed-size scalar (0 for string and array).
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

func (t ValueType) signed() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

func (t ValueType) unsigned() bool {
	return t == TypeUint8 || t == TypeUint16 || t == TypeUint32 || t == TypeUint64
}

// Value is one metadata value. Scalars keep their exact type; arrays keep
// their element type (Elem), and an array of arrays holds Values.
type Value struct {
	Type ValueType
	elem ValueType // arrays: the element type
	num  uint64    // scalars: unsigned value, sign-extended signed value, float bits, or 0/1
	str  string    // TypeString
	// arr holds an array's elements as the Go slice of its element type:
	// []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32,
	// []bool, []string, []uint64, []int64, []float64, or []Value (arrays).
	arr any
}

// Elem is the element type of an array (meaningless for other values).
func (v Value) Elem() ValueType { return v.elem }

// String returns a string value.
func (v Value) String() (string, bool) {
	if v.Type != TypeString {
		return "", false
	}
	return v.str, true
}

// Uint returns any unsigned integer, or a signed one that is not negative.
func (v Value) Uint() (uint64, bool) {
	switch {
	case v.Type.unsigned():
		return v.num, true
	case v.Type.signed() && int64(v.num) >= 0:
		return v.num, true
	}
	return 0, false
}

// Int returns any signed integer, or an unsigned one that fits an int64.
func (v Value) Int() (int64, bool) {
	switch {
	case v.Type.signed():
		return int64(v.num), true
	case v.Type.unsigned() && v.num <= math.MaxInt64:
		return int64(v.num), true
	}
	return 0, false
}

// Float returns a float32 or float64 value.
func (v Value) Float() (float64, bool) {
	switch v.Type {
	case TypeFloat32:
		return float64(math.Float32frombits(uint32(v.num))), true
	case TypeFloat64:
		return math.Float64frombits(v.num), true
	}
	return 0, false
}

// Bool returns a bool value.
func (v Value) Bool() (bool, bool) {
	if v.Type != TypeBool {
		return false, false
	}
	return v.num != 0, true
}

// Len is the number of elements of an array (0 for other values).
func (v Value) Len() int {
	if v.Type != TypeArray {
		return 0
	}
	switch a := v.arr.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

// arrayOf returns a copy of v's elements when v is an array of Go type T.
func arrayOf[T any](v Value) ([]T, bool) {
	if v.Type != TypeArray {
		return nil, false
	}
	a, ok := v.arr.([]T)
	if !ok {
		if v.arr == nil && v.elem == elemTypeOf[T]() {
			return []T{}, true
		}
		return nil, false
	}
	return slices.Clone(a), true
}

// elemTypeOf is the GGUF element type stored as the Go type T.
func elemTypeOf[T any]() ValueType {
	var z T
	switch any(z).(type) {
	case uint8:
		return TypeUint8
	case int8:
		return TypeInt8
	case uint16:
		return TypeUint16
	case int16:
		return TypeInt16
	case uint32:
		return TypeUint32
	case int32:
		return TypeInt32
	case float32:
		return TypeFloat32
	case bool:
		return TypeBool
	case string:
		return TypeString
	case uint64:
		return TypeUint64
	case int64:
		return TypeInt64
	case float64:
		return TypeFloat64
	}
	return TypeArray
}

// Strings returns a copy of an array of strings.
func (v Value) Strings() ([]string, bool) { return arrayOf[string](v) }

// Float32s returns a copy of an array of float32.
func (v Value) Float32s() ([]float32, bool) { return arrayOf[float32](v) }

// Float64s returns a copy of an array of float64.
func (v Value) Float64s() ([]float64, bool) { return arrayOf[float64](v) }

// Bools returns a copy of an array of bools.
func (v Value) Bools() ([]bool, bool) { return arrayOf[bool](v) }

// Arrays returns the elements of an array of arrays.
func (v Value) Arrays() ([]Value, bool) { return arrayOf[Value](v) }

// Int32s returns an array of any integer element type as int32, when every
// element fits.
func (v Value) Int32s() ([]int32, bool) {
	if v.Type != TypeArray {
		return nil, false
	}
	switch a := v.arr.(type) {
	case []int32:
		return slices.Clone(a), true
	case []uint8:
		return convert[int32](a)
	case []int8:
		return convert[int32](a)
	case []uint16:
		return convert[int32](a)
	case []int16:
		return convert[int32](a)
	case []uint32:
		return convert[int32](a)
	case []uint64:
		return convert[int32](a)
	case []int64:
		return convert[int32](a)
	case nil:
		if v.elem.signed() || v.elem.unsigned() {
			return []int32{}, true
		}
	}
	return nil, false
}

// Uint64s returns an array of any integer element type as uint64, when no
// element is negative.
func (v Value) Uint64s() ([]uint64, bool) {
	if v.Type != TypeArray {
		return nil, false
	}
	switch a := v.arr.(type) {
	case []uint64:
		return slices.Clone(a), true
	case []uint8:
		return convert[uint64](a)
	case []int8:
		return convert[uint64](a)
	case []uint16:
		return convert[uint64](a)
	case []int16:
		return convert[uint64](a)
	case []uint32:
		return convert[uint64](a)
	case []int32:
		return convert[uint64](a)
	case []int64:
		return convert[uint64](a)
	case nil:
		if v.elem.signed() || v.elem.unsigned() {
			return []uint64{}, true
		}
	}
	return nil, false
}

type integer interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64
}

// convert converts every element to D, or fails if one does not survive
// the round trip (or changes sign).
func convert[D, S integer](a []S) ([]D, bool) {
	out := make([]D, len(a))
	for i, x := range a {
		d := D(x)
		if S(d) != x || (x < 0) != (d < 0) {
			return nil, false
		}
		out[i] = d
	}
	return out, true
}

// Describe formats the value for messages: scalars as Go literals, arrays
// by element type and length, e.g. "[string × 320]".
func (v Value) Describe() string {
	switch {
	case v.Type == TypeString:
		s := v.str
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		return strconv.Quote(s)
	case v.Type == TypeBool:
		return strconv.FormatBool(v.num != 0)
	case v.Type.unsigned():
		return strconv.FormatUint(v.num, 10)
	case v.Type.signed():
		return strconv.FormatInt(int64(v.num), 10)
	case v.Type == TypeFloat32:
		return strconv.FormatFloat(float64(math.Float32frombits(uint32(v.num))), 'g', -1, 32)
	case v.Type == TypeFloat64:
		return strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64)
	case v.Type == TypeArray:
		return fmt.Sprintf("[%s × %d]", v.elem, v.Len())
	}
	return v.Type.String()
}

// Scalar constructors.

// NewUint8 makes a uint8 value.
func NewUint8(u uint8) Value { return Value{Type: TypeUint8, num: uint64(u)} }

// NewInt8 makes an int8 value.
func NewInt8(i int8) Value { return Value{Type: TypeInt8, num: uint64(int64(i))} }

// NewUint16 makes a uint16 value.
func NewUint16(u uint16) Value { return Value{Type: TypeUint16, num: uint64(u)} }

// NewInt16 makes an int16 value.
func NewInt16(i int16) Value { return Value{Type: TypeInt16, num: uint64(int64(i))} }

// NewUint32 makes a uint32 value.
func NewUint32(u uint32) Value { return Value{Type: TypeUint32, num: uint64(u)} }

// NewInt32 makes an int32 value.
func NewInt32(i int32) Value { return Value{Type: TypeInt32, num: uint64(int64(i))} }

// NewUint64 makes a uint64 value.
func NewUint64(u uint64) Value { return Value{Type: TypeUint64, num: u} }

// NewInt64 makes an int64 value.
func NewInt64(i int64) Value { return Value{Type: TypeInt64, num: uint64(i)} }

// NewFloat32 makes a float32 value.
func NewFloat32(f float32) Value {
	return Value{Type: TypeFloat32, num: uint64(math.Float32bits(f))}
}

// NewFloat64 makes a float64 value.
func NewFloat64(f float64) Value { return Value{Type: TypeFloat64, num: math.Float64bits(f)} }

// NewBool makes a bool value.
func NewBool(b bool) Value {
	v := Value{Type: TypeBool}
	if b {
		v.num = 1
	}
	return v
}

// NewString makes a string value.
func NewString(s string) Value { return Value{Type: TypeString, str: s} }

// Array constructors; each copies its argument.

func newArray[T any](a []T) Value {
	return Value{Type: TypeArray, elem: elemTypeOf[T](), arr: append([]T{}, a...)}
}

// NewStrings makes an array of strings.
func NewStrings(a []string) Value { return newArray(a) }

// NewFloat32s makes an array of float32.
func NewFloat32s(a []float32) Value { return newArray(a) }

// NewFloat64s makes an array of float64.
func NewFloat64s(a []float64) Value { return newArray(a) }

// NewInt32s makes an array of int32.
func NewInt32s(a []int32) Value { return newArray(a) }

// NewUint32s makes an array of uint32.
func NewUint32s(a []uint32) Value { return newArray(a) }

// NewInt64s makes an array of int64.
func NewInt64s(a []int64) Value { return newArray(a) }

// NewUint64s makes an array of uint64.
func NewUint64s(a []uint64) Value { return newArray(a) }

// NewUint8s makes an array of uint8.
func NewUint8s(a []uint8) Value { return newArray(a) }

// NewInt8s makes an array of int8.
func NewInt8s(a []int8) Value { return newArray(a) }

// NewBools makes an array of bools.
func NewBools(a []bool) Value { return newArray(a) }

// NewArrays makes an array of arrays; each element must itself be an array
// of a non-array type (Write checks this).
func NewArrays(a []Value) Value { return newArray(a) }
