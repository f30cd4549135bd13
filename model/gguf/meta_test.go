package gguf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMetaGetters(t *testing.T) {
	var buf bytes.Buffer
	kvs := []KV{
		{"general.architecture", NewString("qwen2")},
		{"qwen2.block_count", NewUint32(24)}, {"neg", NewInt32(-1)}, {"i64", NewInt64(7)},
		{"eps", NewFloat32(1e-6)}, {"base", NewFloat64(1e6)}, {"flag", NewBool(true)},
		{"toks", NewStrings([]string{"a"})},
	}
	if err := Write(&buf, kvs, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if a, err := f.Architecture(); a != "qwen2" || err != nil {
		t.Errorf("Architecture %q %v", a, err)
	}
	if n, err := f.Uint("qwen2.block_count"); n != 24 || err != nil {
		t.Errorf("Uint %d %v", n, err)
	}
	if n, err := f.Uint("i64"); n != 7 || err != nil {
		t.Errorf("Uint of int64 %d %v", n, err)
	}
	if x, err := f.Float("eps"); float32(x) != 1e-6 || err != nil {
		t.Errorf("Float %v %v", x, err)
	}
	if x, err := f.OptFloat("base", 1e4); x != 1e6 || err != nil {
		t.Errorf("OptFloat %v %v", x, err)
	}
	if x, err := f.OptFloat("rope.missing", 1e4); x != 1e4 || err != nil {
		t.Errorf("OptFloat default %v %v", x, err)
	}
	if n, err := f.OptUint("missing", 5); n != 5 || err != nil {
		t.Errorf("OptUint default %d %v", n, err)
	}
	if b, err := f.OptBool("flag", false); !b || err != nil {
		t.Errorf("OptBool %v %v", b, err)
	}
	if b, err := f.OptBool("missing", true); !b || err != nil {
		t.Errorf("OptBool default %v %v", b, err)
	}
	for _, c := range []struct {
		name string
		err  error
		kind error
		msg  string
	}{
		{"missing", second(f.Uint("qwen2.context_length")), ErrNotFound, `metadata key "qwen2.context_length" missing`},
		{"negative", second(f.Uint("neg")), ErrFormat, `metadata key "neg" is int32 -1, want a non-negative integer`},
		{"float as uint", second(f.OptUint("eps", 1)), ErrFormat, `"eps" is float32 1e-06`},
		{"uint as float", second(f.OptFloat("qwen2.block_count", 1)), ErrFormat, `"qwen2.block_count" is uint32 24, want a float`},
		{"array as string", second(f.String("toks")), ErrFormat, `"toks" is array [string × 1], want a string`},
		{"string as bool", second(f.OptBool("general.architecture", false)), ErrFormat, `want a bool`},
		{"no arch", second((&File{}).Architecture()), ErrNotFound, `"general.architecture" missing`},
	} {
		if !errors.Is(c.err, c.kind) || !strings.Contains(c.err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", c.name, c.err, c.kind, c.msg)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestValueAccessors(t *testing.T) {
	if u, ok := NewInt8(-1).Uint(); ok {
		t.Errorf("Uint of -1 = %d", u)
	}
	if i, ok := NewUint64(1 << 63).Int(); ok {
		t.Errorf("Int of 2^63 = %d", i)
	}
	if i, ok := NewUint16(9).Int(); !ok || i != 9 {
		t.Errorf("Int of uint16 = %d %v", i, ok)
	}
	if _, ok := NewUint32(1).Float(); ok {
		t.Error("Float of uint32")
	}
	if s, ok := NewString("x").String(); !ok || s != "x" {
		t.Error("String")
	}
	if _, ok := NewUint8(1).Bool(); ok {
		t.Error("Bool of uint8")
	}
	if a, ok := NewUint32s([]uint32{1, 1 << 31}).Int32s(); ok {
		t.Errorf("Int32s of 2^31 = %v", a)
	}
	if a, ok := NewInt8s([]int8{-3, 4}).Int32s(); !ok || a[0] != -3 || a[1] != 4 {
		t.Errorf("Int32s of int8 = %v %v", a, ok)
	}
	if a, ok := NewInt64s([]int64{-1}).Uint64s(); ok {
		t.Errorf("Uint64s of -1 = %v", a)
	}
	if _, ok := NewFloat32s([]float32{1}).Int32s(); ok {
		t.Error("Int32s of float32s")
	}
	if _, ok := NewStrings([]string{"a"}).Float32s(); ok {
		t.Error("Float32s of strings")
	}
	if n := NewUint32(3).Len(); n != 0 {
		t.Errorf("Len of scalar %d", n)
	}
	v := NewStrings([]string{"a", "b"})
	s, _ := v.Strings()
	s[0] = "changed"
	if s2, _ := v.Strings(); s2[0] != "a" {
		t.Error("Strings does not copy")
	}
	if a, ok := (Value{Type: TypeArray, elem: TypeInt16}).Int32s(); !ok || len(a) != 0 {
		t.Error("empty hand-built array")
	}
}
