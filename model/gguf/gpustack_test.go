package gguf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gp "github.com/gpustack/gguf-parser-go"
)

// native turns a Value into plain Go values: typed scalars, arrays as []any.
func native(v Value) any {
	switch {
	case v.Type == TypeString:
		return v.str
	case v.Type == TypeBool:
		return v.num != 0
	case v.Type == TypeArray:
		rv := reflect.ValueOf(v.arr)
		out := make([]any, 0, v.Len())
		for i := range v.Len() {
			x := rv.Index(i).Interface()
			if inner, ok := x.(Value); ok {
				x = native(inner)
			}
			out = append(out, x)
		}
		return out
	}
	switch v.Type {
	case TypeUint8:
		return uint8(v.num)
	case TypeInt8:
		return int8(v.num)
	case TypeUint16:
		return uint16(v.num)
	case TypeInt16:
		return int16(v.num)
	case TypeUint32:
		return uint32(v.num)
	case TypeInt32:
		return int32(v.num)
	case TypeUint64:
		return v.num
	case TypeInt64:
		return int64(v.num)
	case TypeFloat32:
		return math.Float32frombits(uint32(v.num))
	case TypeFloat64:
		return math.Float64frombits(v.num)
	}
	return nil
}

// trimStrings applies strings.TrimSpace to the strings of a native value.
func trimStrings(x any) any {
	switch x := x.(type) {
	case string:
		return strings.TrimSpace(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = trimStrings(e)
		}
		return out
	}
	return x
}

// gpNative turns a gguf-parser-go value into the same plain form.
func gpNative(x any) any {
	if a, ok := x.(gp.GGUFMetadataKVArrayValue); ok {
		out := make([]any, 0, len(a.Array))
		for _, e := range a.Array {
			out = append(out, gpNative(e))
		}
		return out
	}
	return x
}

// crossCheck compares our parse of path with gguf-parser-go's.
func crossCheck(t *testing.T, path string) {
	t.Helper()
	want, err := gp.ParseGGUFFile(path)
	if err != nil {
		t.Fatalf("gguf-parser-go: %v", err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if uint32(want.Header.Version) != f.Version {
		t.Errorf("version %d, gguf-parser-go %d", f.Version, want.Header.Version)
	}
	kvs := want.Header.MetadataKV
	if len(kvs) != len(f.Keys()) {
		t.Fatalf("%d keys, gguf-parser-go %d", len(f.Keys()), len(kvs))
	}
	for i, kv := range f.KVs() {
		w := kvs[i]
		if w.Key != kv.Key {
			t.Fatalf("key %d: %q, gguf-parser-go %q", i, kv.Key, w.Key)
		}
		if uint32(w.ValueType) != uint32(kv.Value.Type) {
			t.Errorf("%s: type %s, gguf-parser-go %v", kv.Key, kv.Value.Type, w.ValueType)
			continue
		}
		if kv.Value.Type == TypeArray {
			a := w.ValueArray()
			if uint32(a.Type) != uint32(kv.Value.Elem()) || a.Len != uint64(kv.Value.Len()) {
				t.Errorf("%s: array of %d %s, gguf-parser-go %d %v", kv.Key, kv.Value.Len(), kv.Value.Elem(), a.Len, a.Type)
			}
		}
		// gguf-parser-go trims surrounding whitespace from every string it
		// reads (stories260K's tokens "\u00a0" and "\u200a" come back empty).
		if got, exp := trimStrings(native(kv.Value)), gpNative(w.Value); !reflect.DeepEqual(got, exp) {
			t.Errorf("%s: %s differs from gguf-parser-go's value", kv.Key, kv.Value.Describe())
		}
	}
	if len(want.TensorInfos) != len(f.Tensors) {
		t.Fatalf("%d tensors, gguf-parser-go %d", len(f.Tensors), len(want.TensorInfos))
	}
	for i, ti := range f.Tensors {
		w := want.TensorInfos[i]
		dims := make([]uint64, len(ti.Shape))
		for j, d := range ti.Shape {
			dims[j] = uint64(d)
		}
		if w.Name != ti.Name || uint32(w.Type) != uint32(ti.Type) || !reflect.DeepEqual(w.Dimensions, dims) ||
			w.Offset != uint64(ti.Offset) {
			t.Errorf("tensor %d: %s %s %v @%d, gguf-parser-go %s %v %v @%d",
				i, ti.Name, ti.Type, ti.Shape, ti.Offset, w.Name, w.Type, w.Dimensions, w.Offset)
		}
		if uint64(ti.Size) != w.Bytes() {
			t.Errorf("%s: %d bytes, gguf-parser-go %d", ti.Name, ti.Size, w.Bytes())
		}
	}
	if want.TensorDataStartOffset != f.DataOffset {
		t.Errorf("data offset %d, gguf-parser-go %d", f.DataOffset, want.TensorDataStartOffset)
	}
}

// TestGGUFParserGoAgrees cross-checks every golden file with an independent
// parser (github.com/gpustack/gguf-parser-go).
func TestGGUFParserGoAgrees(t *testing.T) {
	for _, path := range goldenFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) { crossCheck(t, path) })
	}
}

// TestGGUFParserGoReadsWritten checks that files from Write parse with
// gguf-parser-go too, including every value type and a non-default alignment.
func TestGGUFParserGoReadsWritten(t *testing.T) {
	for name, kvs := range map[string][]KV{"all-types": allTypesKVs(), "align64": append(allTypesKVs()[:3:3], KV{AlignmentKey, NewUint32(64)})} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.gguf")
			out, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(out, kvs, sampleTensors()); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
			crossCheck(t, path)
		})
	}
}
