package gguf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzSeeds: written files (every value type, quantized tensors), the
// golden files' metadata with their two smallest tensors, the golden
// headers alone, and truncations of all of these.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	var buf bytes.Buffer
	if err := Write(&buf, allTypesKVs(), sampleTensors()); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, slices.Clone(buf.Bytes()))
	buf.Reset()
	Write(&buf, []KV{{AlignmentKey, NewUint32(8)}}, sampleTensors()[:2])
	seeds = append(seeds, slices.Clone(buf.Bytes()))

	files, _ := filepath.Glob(filepath.Join(goldenDir, "*", "*.gguf"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		seeds = append(seeds, b[:f.DataOffset])
		ts := slices.Clone(f.Tensors)
		slices.SortFunc(ts, func(a, b TensorInfo) int { return int(a.Size - b.Size) })
		var wts []WriteTensor
		for _, ti := range ts[:min(2, len(ts))] {
			d, _ := f.Data(ti.Name)
			wts = append(wts, WriteTensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: d})
		}
		buf.Reset()
		if err := Write(&buf, f.KVs(), wts); err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, slices.Clone(buf.Bytes()))
	}
	n := len(seeds)
	for _, s := range seeds[:n] {
		for _, cut := range []int{3, 8, 23, 24, 40, len(s) / 3, len(s) / 2, len(s) - 1} {
			if cut < len(s) {
				seeds = append(seeds, s[:cut])
			}
		}
	}
	return seeds
}

// FuzzParse: Parse never panics; every error wraps exactly one of ErrFormat
// and ErrUnsupported; an accepted file satisfies the invariants Data and
// the loaders rely on, and writing it back and parsing again is stable.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			if g != nil {
				t.Fatal("File returned with an error")
			}
			if errors.Is(err, ErrFormat) == errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither or both sentinels", err)
			}
			return
		}
		if g.Version != 2 && g.Version != 3 {
			t.Fatalf("version %d", g.Version)
		}
		a := g.Alignment
		if a <= 0 || a&(a-1) != 0 || g.DataOffset%int64(a) != 0 {
			t.Fatalf("alignment %d data offset %d", a, g.DataOffset)
		}
		keys := g.Keys()
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] || k == "" {
				t.Fatalf("key %q empty or repeated", k)
			}
			seen[k] = true
			if _, ok := g.Get(k); !ok {
				t.Fatalf("Get(%q) fails", k)
			}
		}
		var total, span int64
		names := map[string]bool{}
		for _, ti := range g.Tensors {
			if names[ti.Name] || ti.Name == "" {
				t.Fatalf("tensor name %q empty or repeated", ti.Name)
			}
			names[ti.Name] = true
			if !ti.Type.Known() || len(ti.Shape) < 1 || len(ti.Shape) > MaxDims {
				t.Fatalf("%s: type %s shape %v", ti.Name, ti.Type, ti.Shape)
			}
			size, err := tensorBytes(ti.Type, ti.Shape)
			if err != nil || size != ti.Size || ti.Offset%int64(a) != 0 {
				t.Fatalf("%s: size %d (%v) offset %d", ti.Name, ti.Size, err, ti.Offset)
			}
			if g.DataOffset+ti.Offset+ti.Size > int64(len(b)) {
				t.Fatalf("%s past the end", ti.Name)
			}
			d, err := g.Data(ti.Name)
			if err != nil || int64(len(d)) != ti.Size {
				t.Fatalf("%s: Data %d bytes %v", ti.Name, len(d), err)
			}
			if !ti.Type.Quantized() {
				v, err := g.Float32(ti.Name)
				if err != nil || int64(len(v)) != ti.Elements() {
					t.Fatalf("%s: Float32 %d values %v", ti.Name, len(v), err)
				}
			}
			total += ti.Size
			span = max(span, ti.Offset+ti.Size)
		}
		if total > span {
			t.Fatalf("tensors overlap: %d bytes in a %d-byte span", total, span)
		}

		// Re-encode (skipping files whose alignment would make that huge):
		// writing, parsing and writing again gives the same bytes.
		if int64(a)*int64(len(g.Tensors)+2) > 1<<20 {
			return
		}
		w1 := rewrite(t, g)
		g2, err := Parse(w1)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !slices.Equal(g2.Keys(), keys) || len(g2.Tensors) != len(g.Tensors) {
			t.Fatal("re-parse lost keys or tensors")
		}
		if w2 := rewrite(t, g2); !bytes.Equal(w1, w2) {
			t.Fatal("second rewrite differs")
		}
	})
}

// rewrite writes g's metadata and tensors with Write.
func rewrite(t *testing.T, g *File) []byte {
	var wts []WriteTensor
	for _, ti := range g.Tensors {
		d, _ := g.Data(ti.Name)
		wts = append(wts, WriteTensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: d})
	}
	var buf bytes.Buffer
	if err := Write(&buf, g.KVs(), wts); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	return buf.Bytes()
}

// TestFuzzSeedsParse: the valid seeds are accepted, so the fuzzer starts
// from files that reach the deepest checks.
func TestFuzzSeedsParse(t *testing.T) {
	seeds := fuzzSeeds(t)
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*", "*.gguf"))
	ok := 0
	for _, s := range seeds {
		if _, err := Parse(s); err == nil {
			ok++
		}
	}
	if ok < 2+len(files) {
		t.Errorf("%d of %d seeds parse", ok, len(seeds))
	}
}
