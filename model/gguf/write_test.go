package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"roe/kernels"
	"roe/model/safetensors"
)

// allTypesKVs uses every value type, empty and nested arrays.
func allTypesKVs() []KV {
	return []KV{
		{"general.architecture", NewString("llama")},
		{"general.name", NewString("tiny ✓")},
		{"llama.block_count", NewUint32(2)},
		{"u8", NewUint8(200)}, {"i8", NewInt8(-5)}, {"u16", NewUint16(65535)}, {"i16", NewInt16(-300)},
		{"i32", NewInt32(-7)}, {"u64", NewUint64(1 << 40)}, {"i64", NewInt64(-1 << 40)},
		{"f32", NewFloat32(1e-5)}, {"f64", NewFloat64(math.Pi)}, {"yes", NewBool(true)}, {"no", NewBool(false)},
		{"empty", NewString("")},
		{"tokenizer.ggml.tokens", NewStrings([]string{"<s>", "</s>", "Ġworld", ""})},
		{"tokenizer.ggml.scores", NewFloat32s([]float32{0, -1, -2.5, float32(math.Inf(-1))})},
		{"tokenizer.ggml.token_type", NewInt32s([]int32{3, 3, 1, 1})},
		{"u32s", NewUint32s([]uint32{1, 2})}, {"u64s", NewUint64s([]uint64{1 << 50})}, {"i64s", NewInt64s([]int64{-1})},
		{"f64s", NewFloat64s([]float64{0.5})}, {"u8s", NewUint8s([]byte{0, 255})}, {"i8s", NewInt8s([]int8{-128})},
		{"bools", NewBools([]bool{true, false})}, {"none", NewStrings(nil)},
		{"nested", NewArrays([]Value{NewStrings([]string{"a"}), NewInt32s([]int32{1, 2}), NewFloat32s(nil)})},
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func u16Bytes(v []uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// sampleTensors covers float and quantized types, 1 to 4 dimensions, and
// sizes that need padding between tensors.
func sampleTensors() []WriteTensor {
	r := rand.New(rand.NewPCG(1, 2))
	q := func(name string, t kernels.QType, shape ...int) WriteTensor {
		size, _ := tensorBytes(t, shape)
		return WriteTensor{Name: name, Type: t, Shape: shape, Data: randBytes(r, int(size))}
	}
	f16 := []uint16{safetensors.F32ToF16(1.5), safetensors.F32ToF16(-2), 0x3c00, 0x0001, 0x7bff}
	return []WriteTensor{
		{Name: "a.f32", Type: kernels.F32, Shape: []int{3, 2}, Data: f32Bytes([]float32{1, 2, 3, 4, 5, -6.25})},
		{Name: "b.f16", Type: kernels.F16, Shape: []int{5}, Data: u16Bytes(f16)},
		{Name: "c.bf16", Type: kernels.BF16, Shape: []int{2, 1, 1, 2}, Data: u16Bytes([]uint16{0x3f80, 0xc000, 0x4049, 0x0001})},
		q("d.q4_0", kernels.Q4_0, 64, 3),
		q("e.q8_0", kernels.Q8_0, 32),
		q("f.q4_k", kernels.Q4_K, 256, 2),
		q("g.q6_k", kernels.Q6_K, 256, 1, 2),
	}
}

func TestWriteRoundTrip(t *testing.T) {
	kvs, tensors := allTypesKVs(), sampleTensors()
	var buf bytes.Buffer
	if err := Write(&buf, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%DefaultAlignment != 0 {
		t.Errorf("file size %d not a multiple of the alignment", buf.Len())
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	if !reflect.DeepEqual(f.KVs(), kvs) {
		t.Errorf("metadata differs:\n got %v\nwant %v", f.KVs(), kvs)
	}
	want := make([]string, len(kvs))
	for i, kv := range kvs {
		want[i] = kv.Key
	}
	if !slices.Equal(f.Keys(), want) {
		t.Errorf("keys %v", f.Keys())
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	for i, wt := range tensors {
		ti := f.Tensors[i]
		if ti.Name != wt.Name || ti.Type != wt.Type || !slices.Equal(ti.Shape, wt.Shape) || ti.Size != int64(len(wt.Data)) {
			t.Errorf("tensor %d: %+v, wrote %s %s %v", i, ti, wt.Name, wt.Type, wt.Shape)
		}
		if ti.Offset%32 != 0 {
			t.Errorf("%s: offset %d", ti.Name, ti.Offset)
		}
		b, err := f.Data(wt.Name)
		if err != nil || !bytes.Equal(b, wt.Data) {
			t.Errorf("%s: data differs (%v)", wt.Name, err)
		}
	}
	// Float32 widens the float types exactly.
	got, _ := f.Float32("a.f32")
	if !slices.Equal(got, []float32{1, 2, 3, 4, 5, -6.25}) {
		t.Errorf("a.f32 = %v", got)
	}
	got, _ = f.Float32("b.f16")
	if !bitEqual(got, []float32{1.5, -2, 1, 5.9604645e-08, 65504}) {
		t.Errorf("b.f16 = %v", got)
	}
	got, _ = f.Float32("c.bf16")
	if !bitEqual(got, []float32{1, -2, 3.140625, math.Float32frombits(0x00010000)}) {
		t.Errorf("c.bf16 = %v", got)
	}
	if _, err := f.Float32("d.q4_0"); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "Q4_0") {
		t.Errorf("Float32 of Q4_0: %v", err)
	}
	if _, err := f.Data("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Data("a.f32"); !errors.Is(err, ErrClosed) {
		t.Errorf("Data after Close: %v", err)
	}
	if v, ok := f.Get("llama.block_count"); !ok || v.Describe() != "2" {
		t.Errorf("metadata after Close: %v", v)
	}

	// Writing what was parsed gives the same bytes.
	f2, _ := Parse(buf.Bytes())
	var again bytes.Buffer
	var wts []WriteTensor
	for _, ti := range f2.Tensors {
		b, _ := f2.Data(ti.Name)
		wts = append(wts, WriteTensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: b})
	}
	if err := Write(&again, f2.KVs(), wts); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("rewrite differs (%v)", err)
	}
}

func TestWriteAlignment(t *testing.T) {
	kvs := []KV{{AlignmentKey, NewUint32(256)}, {"x", NewString("y")}}
	var buf bytes.Buffer
	if err := Write(&buf, kvs, sampleTensors()); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 256 || f.DataOffset%256 != 0 {
		t.Errorf("alignment %d data offset %d", f.Alignment, f.DataOffset)
	}
	for _, ti := range f.Tensors {
		if ti.Offset%256 != 0 {
			t.Errorf("%s at %d", ti.Name, ti.Offset)
		}
	}
	// No tensors, no metadata.
	buf.Reset()
	if err := Write(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	if f, err := Parse(buf.Bytes()); err != nil || len(f.Tensors) != 0 || len(f.Keys()) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	ok := sampleTensors()[0]
	cases := []struct {
		name    string
		kvs     []KV
		tensors []WriteTensor
		kind    error
		msg     string
	}{
		{"empty key", []KV{{"", NewUint8(1)}}, nil, ErrFormat, "empty key"},
		{"duplicate key", []KV{{"a", NewUint8(1)}, {"a", NewUint8(2)}}, nil, ErrFormat, `duplicate key "a"`},
		{"bad value type", []KV{{"a", Value{Type: 13}}}, nil, ErrFormat, `key "a": value type 13`},
		{"alignment type", []KV{{AlignmentKey, NewUint64(32)}}, nil, ErrFormat, "want uint32"},
		{"alignment not power of two", []KV{{AlignmentKey, NewUint32(48)}}, nil, ErrFormat, "power of two"},
		{"deep nesting", []KV{{"n", NewArrays([]Value{NewArrays(nil)})}}, nil, ErrUnsupported, "nested"},
		{"scalar in array of arrays", []KV{{"n", NewArrays([]Value{NewUint8(1)})}}, nil, ErrFormat, "element 0 is uint8"},
		{"empty name", nil, []WriteTensor{{Type: kernels.F32, Shape: []int{1}, Data: make([]byte, 4)}}, ErrFormat, "empty name"},
		{"duplicate tensor", nil, []WriteTensor{ok, ok}, ErrFormat, "duplicate tensor name"},
		{"no dims", nil, []WriteTensor{{Name: "x", Type: kernels.F32, Data: nil}}, ErrFormat, "0 dimensions"},
		{"five dims", nil, []WriteTensor{{Name: "x", Type: kernels.F32, Shape: []int{1, 1, 1, 1, 1}, Data: make([]byte, 4)}}, ErrFormat, "5 dimensions"},
		{"zero dim", nil, []WriteTensor{{Name: "x", Type: kernels.F32, Shape: []int{2, 0}}}, ErrFormat, "dimension 0"},
		{"unknown type", nil, []WriteTensor{{Name: "x", Type: 17, Shape: []int{256}}}, ErrUnsupported, "IQ2_XS"},
		{"partial block", nil, []WriteTensor{{Name: "x", Type: kernels.Q4_0, Shape: []int{33}}}, ErrFormat, "block size 32"},
		{"size mismatch", nil, []WriteTensor{{Name: "x", Type: kernels.F16, Shape: []int{3, 2}, Data: make([]byte, 11)}}, ErrFormat, "needs 12 bytes, got 11"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, c.kvs, c.tensors)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %v containing %q", err, c.kind, c.msg)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before refusing", buf.Len())
			}
		})
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteReportsWriterError(t *testing.T) {
	err := Write(&failWriter{n: 100}, allTypesKVs(), sampleTensors())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v", err)
	}
}
