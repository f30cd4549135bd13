package gguf

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"roe/kernels"
)

// hb builds raw GGUF bytes, including malformed ones.
type hb struct{ b []byte }

func gguf(version uint32, tensors, kvs uint64) *hb {
	h := &hb{b: []byte("GGUF")}
	return h.u32(version).u64(tensors).u64(kvs)
}

func (h *hb) raw(b ...byte) *hb { h.b = append(h.b, b...); return h }
func (h *hb) u32(v uint32) *hb  { h.b = binary.LittleEndian.AppendUint32(h.b, v); return h }
func (h *hb) u64(v uint64) *hb  { h.b = binary.LittleEndian.AppendUint64(h.b, v); return h }
func (h *hb) str(s string) *hb  { h.u64(uint64(len(s))); h.b = append(h.b, s...); return h }

// kv appends a key, a value type and the raw value bytes.
func (h *hb) kv(key string, t ValueType, val ...byte) *hb {
	return h.str(key).u32(uint32(t)).raw(val...)
}

func (h *hb) kvU32(key string, v uint32) *hb {
	return h.kv(key, TypeUint32, binary.LittleEndian.AppendUint32(nil, v)...)
}

// tensor appends a tensor info.
func (h *hb) tensor(name string, t kernels.QType, off uint64, dims ...uint64) *hb {
	h.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		h.u64(d)
	}
	return h.u32(uint32(t)).u64(off)
}

// data pads to align and appends n data bytes.
func (h *hb) data(align, n int) *hb {
	for len(h.b)%align != 0 {
		h.b = append(h.b, 0)
	}
	h.b = append(h.b, make([]byte, n)...)
	return h
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestParseValidRaw(t *testing.T) {
	// One-level nested arrays, every scalar type, a 64-byte alignment.
	nested := (&hb{}).u32(uint32(TypeArray)).u64(2).
		u32(uint32(TypeUint8)).u64(2).raw(7, 9).
		u32(uint32(TypeString)).u64(0).b
	b := gguf(2, 2, 3).
		kvU32(AlignmentKey, 64).
		kv("nested", TypeArray, nested...).
		kv("f", TypeFloat32, le32(math.Float32bits(0.5))...).
		tensor("w", kernels.Q8_0, 0, 32, 2).
		tensor("n", kernels.F32, 128, 4).
		data(64, 128+16).b
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 || f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	v, _ := f.Get("nested")
	inner, ok := v.Arrays()
	if !ok || len(inner) != 2 || inner[0].Elem() != TypeUint8 || inner[1].Elem() != TypeString || inner[1].Len() != 0 {
		t.Fatalf("nested = %s %v", v.Describe(), inner)
	}
	if u, ok := inner[0].Uint64s(); !ok || u[0] != 7 || u[1] != 9 {
		t.Errorf("inner[0] = %v", u)
	}
	if x, _ := f.Float("f"); x != 0.5 {
		t.Errorf("f = %v", x)
	}
	w, _ := f.Tensor("w")
	if w.Size != 68 || w.Rows() != 2 || w.Elements() != 64 {
		t.Errorf("w: %+v", w)
	}
}

// TestParseRefuses: each validation rule triggers its error, naming the
// problem (and the key or tensor).
func TestParseRefuses(t *testing.T) {
	one := func() *hb { return gguf(3, 1, 0) }
	cases := []struct {
		name string
		b    []byte
		kind error
		msg  string
	}{
		{"empty", nil, ErrFormat, "too short"},
		{"short", []byte("GGUF\x03"), ErrFormat, "too short"},
		{"magic", []byte("GGUG\x03\x00\x00\x00"), ErrFormat, "not a GGUF file"},
		{"ggjt", []byte("tjgg\x03\x00\x00\x00"), ErrUnsupported, "pre-GGUF"},
		{"big-endian magic", []byte("FUGG\x00\x00\x00\x03"), ErrUnsupported, "big-endian"},
		{"big-endian version", []byte("GGUF\x00\x00\x00\x03" + strings.Repeat("\x00", 16)), ErrUnsupported, "big-endian"},
		{"version 1", gguf(1, 0, 0).b, ErrUnsupported, "version 1"},
		{"version 4", gguf(4, 0, 0).b, ErrUnsupported, "version 4"},
		{"version 0", gguf(0, 0, 0).b, ErrFormat, "version 0"},
		{"counts cut", []byte("GGUF\x03\x00\x00\x00\x00\x00"), ErrFormat, "tensor count"},
		{"tensor count", gguf(3, 1<<40, 0).b, ErrFormat, "tensor count 1099511627776"},
		{"tensor count max", gguf(3, math.MaxUint64, 0).b, ErrFormat, "tensor count"},
		{"kv count", gguf(3, 0, 1<<62).b, ErrFormat, "metadata count"},
		{"counts together", gguf(3, 1, 2).kvU32("a", 1).raw(make([]byte, 32)...).b, ErrFormat, "metadata count 2 (with 1 tensors)"},
		{"key length", gguf(3, 0, 1).u64(1 << 20).raw(make([]byte, 20)...).b, ErrFormat, "key at byte 24: length 1048576 exceeds"},
		{"key past end", gguf(3, 0, 1).u64(100).raw(make([]byte, 20)...).b, ErrFormat, "key at byte 24: length 100, only 20 bytes left"},
		{"empty key", gguf(3, 0, 1).kvU32("", 1).b, ErrFormat, "empty key"},
		{"duplicate key", gguf(3, 0, 2).kvU32("k", 1).kvU32("k", 2).b, ErrFormat, `duplicate key "k"`},
		{"value type", gguf(3, 0, 1).kv("k", 13, 0).b, ErrFormat, `key "k": value type 13`},
		{"value cut", gguf(3, 0, 1).kv("k", TypeUint64, 1, 2, 3, 4, 5).b, ErrFormat, `key "k": uint64 value`},
		{"string past end", gguf(3, 0, 1).kv("k", TypeString, le64(50)...).raw([]byte("abc")...).b, ErrFormat, `key "k": string at byte`},
		{"bool", gguf(3, 0, 1).kv("k", TypeBool, 2).b, ErrFormat, `key "k": bool at byte 37 is 2`},
		{"bool array", gguf(3, 0, 1).kv("k", TypeArray, append(append(le32(uint32(TypeBool)), le64(3)...), 1, 0, 5)...).b, ErrFormat, "bool element 2 is 5"},
		{"array element type", gguf(3, 0, 1).kv("k", TypeArray, append(le32(99), le64(0)...)...).b, ErrFormat, `key "k": array at byte 37: element type 99`},
		{"array length", gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeUint32)), le64(1<<61)...)...).raw(make([]byte, 40)...).b, ErrFormat, `key "k": array at byte 37: 2305843009213693952 elements of type uint32`},
		{"string array length", gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeString)), le64(6)...)...).raw(make([]byte, 40)...).b, ErrFormat, "6 elements of type string cannot fit in the 40 bytes"},
		{"string array element", gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeString)), le64(2)...)...).str("a").u64(99).raw(make([]byte, 8)...).b, ErrFormat, `key "k": array element 1: string at byte`},
		{"nesting", gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeArray)), le64(1)...)...).u32(uint32(TypeArray)).u64(0).b, ErrUnsupported, `key "k": array element 0: array at byte 49: arrays nested more than one level deep`},
		{"alignment type", gguf(3, 0, 1).kv(AlignmentKey, TypeUint64, le64(32)...).b, ErrFormat, `"general.alignment" is uint64 32, want uint32`},
		{"alignment zero", gguf(3, 0, 1).kvU32(AlignmentKey, 0).b, ErrFormat, "power of two"},
		{"alignment 48", gguf(3, 0, 1).kvU32(AlignmentKey, 48).b, ErrFormat, "is 48, want a power of two"},
		{"empty tensor name", one().tensor("", kernels.F32, 0, 1).data(32, 4).b, ErrFormat, "tensor info 0: empty tensor name"},
		{"tensor name length", one().u64(1 << 17).raw(make([]byte, 40)...).b, ErrFormat, "tensor info 0: tensor name at byte 24: length 131072 exceeds"},
		{"duplicate tensor", gguf(3, 2, 0).tensor("t", kernels.F32, 0, 1).tensor("t", kernels.F32, 32, 1).data(32, 64).b, ErrFormat, `duplicate tensor name "t"`},
		{"0 dims", one().tensor("t", kernels.F32, 0).raw(make([]byte, 40)...).b, ErrFormat, `tensor "t": 0 dimensions, want 1 to 4`},
		{"5 dims", one().tensor("t", kernels.F32, 0, 1, 1, 1, 1, 1).data(32, 4).b, ErrFormat, `tensor "t": 5 dimensions`},
		{"dim 0", one().tensor("t", kernels.F32, 0, 4, 0).data(32, 4).b, ErrFormat, `tensor "t": dimension 1 is 0`},
		{"element overflow", one().tensor("t", kernels.F32, 0, 1<<32, 1<<32).data(32, 4).b, ErrFormat, `tensor "t": shape overflows`},
		{"byte overflow", one().tensor("t", kernels.F32, 0, 1<<31, 1<<31).data(32, 4).b, ErrFormat, `tensor "t": shape [2147483648 2147483648] of F32 overflows`},
		{"row bytes overflow", one().tensor("t", kernels.Q8_0, 0, 1<<63-32).data(32, 34).b, ErrFormat, `tensor "t": shape [9223372036854775776] of Q8_0 overflows`},
		{"dims cut", one().str("t").u32(4).u64(4).u64(4).raw(1, 2, 3).b, ErrFormat, `tensor "t": dimension at byte`},
		{"IQ2_XS", one().tensor("t", 17, 0, 256).data(32, 66).b, ErrUnsupported, `tensor "t": type IQ2_XS (17) is not supported`},
		{"Q8_K", one().tensor("t", kernels.Q8_K, 0, 256).data(32, 292).b, ErrUnsupported, "Q8_K"},
		{"type 99", one().tensor("t", 99, 0, 4).data(32, 16).b, ErrUnsupported, "type99 (99)"},
		{"unsupported after malformed", gguf(3, 2, 0).tensor("a", 17, 0, 256).tensor("b", kernels.F32, 0, 0).b, ErrFormat, `tensor "b": dimension 0 is 0`},
		{"partial block", one().tensor("t", kernels.Q4_0, 0, 48).data(32, 64).b, ErrFormat, `tensor "t": row length 48 is not a multiple of the Q4_0 block size 32`},
		{"offset unaligned", gguf(3, 2, 0).tensor("a", kernels.F32, 0, 1).tensor("b", kernels.F32, 4, 1).data(32, 64).b, ErrFormat, `tensor "b": offset 4 is not aligned to 32 bytes`},
		{"offset huge", one().tensor("t", kernels.F32, 1<<63, 1).data(32, 64).b, ErrFormat, `tensor "t": offset 9223372036854775808 too large`},
		{"data region", one().tensor("t", kernels.F32, 0, 1).b, ErrFormat, "past the end of the file"},
		{"tensor past end", one().tensor("t", kernels.F32, 0, 5).data(32, 16).b, ErrFormat, `tensor "t": 20 bytes at data offset 0 run past the end`},
		{"tensor offset past end", one().tensor("t", kernels.F32, 64, 1).data(32, 32).b, ErrFormat, `tensor "t": 4 bytes at data offset 64`},
		{"overlap", gguf(3, 2, 0).tensor("a", kernels.F32, 0, 16).tensor("b", kernels.F32, 32, 4).data(32, 64).b, ErrFormat, `tensor "b" (bytes 32 to 48 of the data) overlaps tensor "a" (bytes 0 to 64)`},
		{"same offset", gguf(3, 2, 0).tensor("a", kernels.F32, 0, 1).tensor("b", kernels.F32, 0, 1).data(32, 64).b, ErrFormat, "overlaps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.b)
			if err == nil {
				t.Fatalf("accepted (%d tensors)", len(f.Tensors))
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q (%v), want %v containing %q", err, errors.Is(err, ErrFormat), c.kind, c.msg)
			}
			if errors.Is(err, ErrFormat) == errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v should wrap exactly one of ErrFormat, ErrUnsupported", err)
			}
		})
	}
}

// TestParseNoTensors: a metadata-only file may end right after its header.
func TestParseNoTensors(t *testing.T) {
	f, err := Parse(gguf(3, 0, 1).kvU32("a", 1).b)
	if err != nil || len(f.Tensors) != 0 {
		t.Fatalf("%v", err)
	}
}

func TestOpenErrorsNameFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(p, gguf(3, 0, 2).kvU32("k", 1).kvU32("k", 2).b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(p)
	if !errors.Is(err, ErrFormat) || err.Error() != `bad.gguf: duplicate key "k"` {
		t.Errorf("error %q", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrFormat) {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	empty := filepath.Join(dir, "empty.gguf")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); !errors.Is(err, ErrFormat) || !strings.HasPrefix(err.Error(), "empty.gguf: ") {
		t.Errorf("empty: %v", err)
	}
}

// TestParseCountsDoNotAllocate: a header claiming huge counts or lengths is
// refused without allocating for them.
func TestParseCountsDoNotAllocate(t *testing.T) {
	pad := make([]byte, 4096)
	inputs := map[string][]byte{
		"kv count":      gguf(3, 0, 300).raw(pad...).b,
		"tensor count":  gguf(3, 120, 0).raw(pad...).b,
		"string array":  gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeString)), le64(1<<40)...)...).raw(pad...).b,
		"nested array":  gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeArray)), le64(1<<40)...)...).raw(pad...).b,
		"float32 array": gguf(3, 0, 1).kv("k", TypeArray, append(le32(uint32(TypeFloat32)), le64(1<<40)...)...).raw(pad...).b,
		"string":        gguf(3, 0, 1).kv("k", TypeString, le64(1<<40)...).raw(pad...).b,
	}
	for name, b := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Parse(b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: %d bytes allocated", name, n)
		}
	}
}
