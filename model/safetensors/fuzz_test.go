package safetensors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseHeader feeds arbitrary bytes (and file sizes larger than the
// buffer) to ParseHeader: it must never panic, every error must wrap
// ErrHeader, and every accepted header must satisfy the invariants that
// File relies on (offsets inside the data, sizes matching shapes, no
// overlap, names sorted), and survive a re-encode.
func FuzzParseHeader(f *testing.F) {
	for _, c := range badCases() {
		f.Add(c.file, uint16(0))
	}
	var buf bytes.Buffer
	Encode(&buf, []Tensor{
		F32Tensor("a", []int{2, 2}, []float32{1, 2, 3, 4}),
		BF16Tensor("b", []int{3}, []float32{1, 2, 3}),
		I32Tensor("ids", []int{1}, []int32{5}),
		F32Tensor("empty", []int{0}, nil),
	}, map[string]string{"format": "pt"})
	f.Add(buf.Bytes(), uint16(0))
	f.Add(mkFile(`{}`, 0), uint16(3))
	f.Add(mkFile(`{"__metadata__":null,"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}   `, 8), uint16(0))

	f.Fuzz(func(t *testing.T, b []byte, extra uint16) {
		size := int64(len(b)) + int64(extra)
		infos, meta, start, err := ParseHeader(b, size)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			if infos != nil || meta != nil {
				t.Fatal("results returned with an error")
			}
			return
		}
		if meta == nil || start < 10 || start > size {
			t.Fatalf("meta %v start %d size %d", meta, start, size)
		}
		dataSize := size - start
		var maxEnd int64
		tensors := make([]Tensor, 0, len(infos))
		for i, in := range infos {
			if i > 0 && infos[i-1].Name >= in.Name {
				t.Fatalf("names not sorted/unique: %q %q", infos[i-1].Name, in.Name)
			}
			if in.Begin < 0 || in.Begin > in.End || in.End > dataSize {
				t.Fatalf("%q: offsets [%d %d] of %d", in.Name, in.Begin, in.End, dataSize)
			}
			if in.Numel()*int64(in.DType.Size()) != in.End-in.Begin {
				t.Fatalf("%q: size mismatch", in.Name)
			}
			if in.End > maxEnd {
				maxEnd = in.End
			}
			// Re-encode only small headers: a valid header may claim a huge
			// tensor within a huge (virtual) file size.
			if in.End-in.Begin <= 1<<16 {
				tensors = append(tensors, Tensor{Name: in.Name, DType: in.DType, Shape: in.Shape, Data: make([]byte, in.End-in.Begin)})
			}
		}
		// Non-empty tensors do not overlap: their sizes add up within the data.
		var total int64
		for _, in := range infos {
			total += in.End - in.Begin
		}
		if total > maxEnd {
			t.Fatalf("overlap: %d bytes in a %d-byte span", total, maxEnd)
		}
		if len(tensors) == len(infos) && len(infos) > 0 {
			var out bytes.Buffer
			if err := Encode(&out, tensors, meta); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			infos2, meta2, _, err := ParseHeader(out.Bytes(), int64(out.Len()))
			if err != nil || len(infos2) != len(infos) || len(meta2) != len(meta) {
				t.Fatalf("re-parse: %v", err)
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus under
// testdata/fuzz/FuzzParseHeader when SAFETENSORS_WRITE_CORPUS=1; the same
// seeds are also added in code, so the corpus is a convenience for
// `go test -fuzz` runs and for other tools.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SAFETENSORS_WRITE_CORPUS") != "1" {
		t.Skip("set SAFETENSORS_WRITE_CORPUS=1 to regenerate testdata/fuzz/FuzzParseHeader")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseHeader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(0)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range badCases() {
		write("bad-"+strings.ReplaceAll(c.name, " ", "-"), c.file)
	}
	var buf bytes.Buffer
	Encode(&buf, []Tensor{
		F32Tensor("model.norm.weight", []int{4}, []float32{1, 2, 3, 4}),
		BF16Tensor("model.layers.0.mlp.up_proj.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		F16Tensor("h", []int{2}, []float32{1, 2}),
		I32Tensor("seq0.input_ids", []int{3}, []int32{317, 1, 2}),
		{Name: "mask", DType: BOOL, Shape: []int{3}, Data: []byte{1, 0, 1}},
		F32Tensor("empty", []int{0, 3}, nil),
	}, map[string]string{"format": "pt"})
	write("valid-mixed", buf.Bytes())
	write("valid-empty", mkFile(`{}`, 0))
	write("valid-metadata-only", mkFile(`{"__metadata__":{"format":"pt"}}      `, 0))
	write("valid-scalar-gap", mkFile(`{"__metadata__":null,"s":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}`, 24))
}
