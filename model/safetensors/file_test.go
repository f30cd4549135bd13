package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripAllDTypes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.safetensors")
	f32 := []float32{1, -2.5, 0x1p-20, float32(math.Inf(1)), 3.14159, 0}
	tensors := []Tensor{
		F32Tensor("f32", []int{2, 3}, f32),
		F16Tensor("f16", []int{6}, f32),
		BF16Tensor("bf16", []int{3, 2}, f32),
		I32Tensor("i32", []int{3}, []int32{-1, 0, math.MaxInt32}),
		I32Tensor("scalar", []int{}, []int32{42}),
		F32Tensor("empty", []int{0, 4}, nil),
	}
	// Every other dtype, filled with a byte pattern.
	for _, d := range []DType{BOOL, U8, I8, F8E4M3, F8E5M2, F8E8M0, I16, U16, U32, I64, U64, F64, C64} {
		data := make([]byte, 3*d.Size())
		for i := range data {
			data[i] = byte(i*7 + len(d))
		}
		tensors = append(tensors, Tensor{Name: "x." + string(d), DType: d, Shape: []int{3}, Data: data})
	}
	meta := map[string]string{"format": "pt", "note": "<a & b>"}
	if err := Write(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	// No temporary file is left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("folder holds %d entries, want 1", len(ents))
	}
	raw, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(raw)
	if (8+n)%8 != 0 || !bytes.Contains(raw[:8+n], []byte(`"note":"<a & b>"`)) {
		t.Errorf("header not padded or HTML-escaped: %q", raw[8:8+n])
	}

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Path() != path || f.Metadata()["note"] != "<a & b>" {
		t.Errorf("path/metadata: %s %v", f.Path(), f.Metadata())
	}
	infos := f.Tensors()
	if len(infos) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(infos), len(tensors))
	}
	for i := 1; i < len(infos); i++ {
		if infos[i-1].Name >= infos[i].Name {
			t.Errorf("not sorted: %s, %s", infos[i-1].Name, infos[i].Name)
		}
	}
	for _, want := range tensors {
		info, ok := f.Info(want.Name)
		if !ok || info.DType != want.DType || len(info.Shape) != len(want.Shape) {
			t.Errorf("%s: info %+v", want.Name, info)
			continue
		}
		// Each tensor is aligned to its element size in the file.
		if (8+int64(n)+info.Begin)%int64(want.DType.Size()) != 0 {
			t.Errorf("%s: misaligned at %d", want.Name, info.Begin)
		}
		got, err := f.Raw(want.Name)
		if err != nil || !bytes.Equal(got, want.Data) {
			t.Errorf("%s: raw %v %v", want.Name, got, err)
		}
	}
	check32 := func(name string, want []float32) {
		t.Helper()
		got, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: len %d", name, len(got))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s[%d] = %g, want %g", name, i, got[i], want[i])
			}
		}
	}
	check32("f32", f32)
	var f16, bf16 []float32
	for _, v := range f32 {
		f16 = append(f16, F16ToF32(F32ToF16(v)))
		bf16 = append(bf16, BF16ToF32(F32ToBF16(v)))
	}
	check32("f16", f16)
	check32("bf16", bf16)
	if f16[2] != 0x1p-20 || bf16[4] != 3.140625 {
		t.Errorf("conversion values %g %g", f16[2], bf16[4])
	}
	if v, err := f.Float32("empty"); err != nil || len(v) != 0 {
		t.Errorf("empty: %v %v", v, err)
	}
	ids, err := f.Int32("i32")
	if err != nil || ids[0] != -1 || ids[2] != math.MaxInt32 {
		t.Errorf("i32: %v %v", ids, err)
	}
	if s, err := f.Int32("scalar"); err != nil || len(s) != 1 || s[0] != 42 {
		t.Errorf("scalar: %v %v", s, err)
	}
	// Wrong dtype and missing tensors name the problem.
	if _, err := f.Float32("i32"); !errors.Is(err, ErrDType) || !strings.Contains(err.Error(), "I32") || !strings.Contains(err.Error(), "rt.safetensors") {
		t.Errorf("Float32(i32): %v", err)
	}
	if _, err := f.Int32("f32"); !errors.Is(err, ErrDType) {
		t.Errorf("Int32(f32): %v", err)
	}
	if _, err := f.Float32("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Float32(nope): %v", err)
	}
	// Callers cannot alter the file's state through returned slices.
	info, _ := f.Info("f32")
	info.Shape[0] = 99
	if again, _ := f.Info("f32"); again.Shape[0] != 2 {
		t.Error("Info shares its Shape slice")
	}
	view, err := f.View("i32")
	if err != nil || !bytes.Equal(view, tensors[3].Data) {
		t.Errorf("View: %v %v", view, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Float32("f32"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestInt32Widening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "i.safetensors")
	le64 := func(vs ...int64) []byte {
		b := make([]byte, 8*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		return b
	}
	err := Write(path, []Tensor{
		{Name: "ok64", DType: I64, Shape: []int{3}, Data: le64(-5, 0, math.MaxInt32)},
		{Name: "big64", DType: I64, Shape: []int{2}, Data: le64(1, math.MaxInt32+1)},
		{Name: "u8", DType: U8, Shape: []int{2}, Data: []byte{0, 255}},
		{Name: "i8", DType: I8, Shape: []int{2}, Data: []byte{0x80, 1}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, err := f.Int32("ok64"); err != nil || v[0] != -5 || v[2] != math.MaxInt32 {
		t.Errorf("ok64: %v %v", v, err)
	}
	if _, err := f.Int32("big64"); !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("big64: %v", err)
	}
	if v, _ := f.Int32("u8"); v[1] != 255 {
		t.Errorf("u8: %v", v)
	}
	if v, _ := f.Int32("i8"); v[0] != -128 {
		t.Errorf("i8: %v", v)
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := []struct {
		name    string
		tensors []Tensor
		kind    error
	}{
		{"length mismatch", []Tensor{F32Tensor("a", []int{3}, []float32{1, 2})}, ErrShape},
		{"negative shape", []Tensor{{Name: "a", DType: U8, Shape: []int{-1}}}, ErrShape},
		{"unknown dtype", []Tensor{{Name: "a", DType: "F4", Shape: []int{1}, Data: []byte{0}}}, ErrDType},
		{"duplicate", []Tensor{F32Tensor("a", []int{1}, []float32{1}), F32Tensor("a", []int{1}, []float32{1})}, ErrDuplicate},
		{"reserved name", []Tensor{F32Tensor("__metadata__", []int{1}, []float32{1})}, ErrHeader},
		{"empty name", []Tensor{F32Tensor("", []int{1}, []float32{1})}, ErrHeader},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := Encode(&buf, c.tensors, nil); !errors.Is(err, c.kind) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.kind)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the error", c.name, buf.Len())
		}
		path := filepath.Join(t.TempDir(), "bad.safetensors")
		if err := Write(path, c.tensors, nil); !errors.Is(err, c.kind) {
			t.Errorf("Write %s: got %v", c.name, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: file created despite the error", c.name)
		}
	}
}

// Write replaces an existing file atomically and leaves it intact on failure.
func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Write(path, []Tensor{F32Tensor("a", []int{1}, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []Tensor{F32Tensor("b", []int{1}, []float32{2})}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Info("b"); !ok {
		t.Error("not replaced")
	}
	f.Close()
	if err := Write(filepath.Join(dir, "missing", "m.safetensors"), nil, nil); err == nil {
		t.Error("write into a missing folder succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "absent.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrHeader) {
		t.Errorf("directory: %v", err)
	}
}

// Unaligned tensors (after an odd-sized U8 tensor) still decode correctly.
func TestUnaligned(t *testing.T) {
	hdr := `{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}`
	file := mkFile(hdr, 0)
	file = append(file, 7)
	file = binary.LittleEndian.AppendUint32(file, math.Float32bits(1.5))
	file = binary.LittleEndian.AppendUint32(file, math.Float32bits(-2))
	path := filepath.Join(t.TempDir(), "u.safetensors")
	os.WriteFile(path, file, 0o644)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Float32("f")
	if err != nil || v[0] != 1.5 || v[1] != -2 {
		t.Errorf("got %v %v", v, err)
	}
}

// FromBytes (bytes.go) validates in-memory files like Open does.
func TestFromBytes(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{F16Tensor("h", []int{2}, []float32{1, -0.5})}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := FromBytes("embedded.safetensors", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Float32("h"); err != nil || v[1] != -0.5 {
		t.Errorf("got %v %v", v, err)
	}
	f.Close()
	_, err = FromBytes("embedded.safetensors", buf.Bytes()[:buf.Len()-1])
	if !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "embedded.safetensors: ") {
		t.Errorf("truncated: %v", err)
	}
}
