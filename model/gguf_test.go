package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"roe/model/gguf"
)

const ggufGoldenDir = "../../shared/golden/gguf"

// ggufGolden is the part of a folder's golden.json the model tests read.
type ggufGolden struct {
	Files []ggufGoldenFile `json:"files"`
}

type ggufGoldenFile struct {
	File       string `json:"file"`
	LogitsFile string `json:"logits_file"`
	Greedy     struct {
		PromptIDs []int     `json:"prompt_ids"`
		RefNewIDs []int     `json:"ref_new_ids"`
		Margins   []float64 `json:"ref_margins"`
	} `json:"greedy"`
}

func readGGUFGolden(t *testing.T, folder string) ggufGolden {
	t.Helper()
	dir := filepath.Join(ggufGoldenDir, folder)
	needDir(t, dir)
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g ggufGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// Every GGUF of the goldens loads, and its logits match the float64 forward
// over its own dequantized weights: activations stay float32, so the only
// difference is float32 rounding, as for safetensors.
func TestGGUFGoldenLogits(t *testing.T) {
	for _, folder := range []string{"tiny-llama", "tiny-qwen2", "tiny-llama-k256", "stories260K"} {
		g := readGGUFGolden(t, folder)
		if len(g.Files) == 0 { // stories260K: one F32 file, its greedy sequence
			g.Files = append(g.Files, ggufGoldenFile{File: folder + "-F32.gguf", LogitsFile: folder + "-F32.logits.safetensors"})
		}
		for _, f := range g.Files {
			t.Run(f.File, func(t *testing.T) {
				m, file, err := LoadGGUF(filepath.Join(ggufGoldenDir, folder, f.File), LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer file.Close()
				lg := openGolden(t, filepath.Join(ggufGoldenDir, folder, f.LogitsFile))
				n := 0
				for _, name := range []string{"seq0", "seq1", "seq2", "seq3", "greedy"} {
					if _, ok := lg.Info(name + ".logits"); !ok {
						continue
					}
					n++
					ids := ints(t, lg, name+".input_ids")
					want := floats(t, lg, name+".logits")
					got := forwardWhole(t, m, ids, nil)
					if d := maxAbsDiff(got.Logits, want); d > tol {
						t.Errorf("%s (%s): logits differ by %.3g (tol %g)", name, m.WeightFormat(), d, tol)
					}
				}
				if n == 0 {
					t.Fatal("no sequences in", f.LogitsFile)
				}
				// Greedy decoding reproduces the reference where its margins
				// are far above float32 rounding.
				if len(f.Greedy.PromptIDs) == 0 {
					return
				}
				ids := slices.Clone(f.Greedy.PromptIDs)
				c := m.NewCache()
				next := ids
				for step, want := range f.Greedy.RefNewIDs {
					out, err := m.Forward([]Step{{Cache: c, Tokens: next}})
					if err != nil {
						t.Fatal(err)
					}
					id := argmax(out[0].Logits)
					if id != want {
						if step < len(f.Greedy.Margins) && f.Greedy.Margins[step] < 1e-3 {
							return // a near-tie: either token is right
						}
						t.Fatalf("greedy step %d: %d, want %d", step, id, want)
					}
					next = []int{id}
				}
			})
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// A GGUF of a model is the same base as its safetensors: same config, same
// fingerprint (so its experts apply), same logits up to file precision.
func TestGGUFSameBaseAsSafetensors(t *testing.T) {
	for _, c := range []struct{ gguf, hf string }{
		{"tiny-llama/tiny-llama-F32.gguf", goldenDir},
		{"tiny-llama/tiny-llama-Q8_0.gguf", goldenDir},
		{"tiny-qwen2/tiny-qwen2-F32.gguf", goldenDir + "/qwen2"},
	} {
		path := filepath.Join(ggufGoldenDir, c.gguf)
		needDir(t, path)
		hf := loadModel(t, c.hf)
		m, f, err := LoadGGUF(path, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // the model's weights live in the mapping
		a, b := hf.Config, m.Config
		a.MaxPositions, b.MaxPositions = 0, 0
		a.ModelType, b.ModelType = "", ""
		a.TorchDType, b.TorchDType = "", ""
		a.BOS, b.BOS, a.EOS, b.EOS = nil, nil, nil, nil
		if !equalJSON(a, b) {
			t.Errorf("%s: config %+v, safetensors %+v", c.gguf, b, a)
		}
		if m.Fingerprint() != hf.Fingerprint() {
			t.Errorf("%s: fingerprint %.12s, safetensors %.12s", c.gguf, m.Fingerprint(), hf.Fingerprint())
		}
		if strings.Contains(c.gguf, "F32") {
			ids := []int{1, 5, 9, 30, 2, 7}
			if d := maxAbsDiff(forwardWhole(t, m, ids, nil).Logits, forwardWhole(t, hf, ids, nil).Logits); d > 1e-5 {
				t.Errorf("%s: logits differ from safetensors by %.3g", c.gguf, d)
			}
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A GGUF's float matrices stay in the file's mapping, as quantized ones
// do (no float32 copy, Llama q/k in llama.cpp's row order), unless float32
// ones are asked for as bf16; norms are small float32 copies.
func TestGGUFFloatTensorsMapped(t *testing.T) {
	for _, c := range []struct {
		file   string
		o      LoadOptions
		mapped bool
	}{
		{"tiny-llama-F32.gguf", LoadOptions{}, true},
		{"tiny-llama-F16.gguf", LoadOptions{}, true},
		{"tiny-llama-BF16.gguf", LoadOptions{}, true},
		{"tiny-llama-F16.gguf", LoadOptions{Weights: WeightsBF16}, true},
		{"tiny-llama-F32.gguf", LoadOptions{Weights: WeightsBF16}, false},
	} {
		path := filepath.Join(ggufGoldenDir, "tiny-llama", c.file)
		needDir(t, path)
		m, f, err := LoadGGUF(path, c.o)
		if err != nil {
			t.Fatal(err)
		}
		check := func(hf string, w matrix) {
			data, err := f.Data(m.Config.GGUFName(hf))
			if err != nil {
				t.Fatalf("%s: %v", hf, err)
			}
			in := w.q != nil && &w.q.Data[0] == &data[0] && len(w.q.Data) == len(data)
			if in != c.mapped {
				t.Errorf("%s %+v: %s in the mapping %v, want %v (format %s)", c.file, c.o, hf, in, c.mapped, w.format())
			}
		}
		for i := range m.layers {
			for p := Proj(0); p < NumProj; p++ {
				name, _ := m.Config.ProjParam(i, p)
				check(name, *m.layers[i].proj(p))
			}
		}
		check("lm_head.weight", m.lmHead)
		if c.mapped {
			if got, want := m.WeightFormat(), WeightFormat(strings.TrimSuffix(strings.TrimPrefix(c.file, "tiny-llama-"), ".gguf")); got != want {
				t.Errorf("%s: weight format %s, want %s", c.file, got, want)
			}
		}
		f.Close()
	}
}

// A model split by llama.cpp's gguf-split loads from its first part, the
// other parts opened beside it, as the whole file; a later part, a missing
// part, or the first part opened alone are refused by name.
func TestGGUFSplit(t *testing.T) {
	src := filepath.Join(ggufGoldenDir, "tiny-llama", "tiny-llama-Q8_0.gguf")
	needDir(t, src)
	whole, wf, err := LoadGGUF(src, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	part := func(i int) string { return filepath.Join(dir, fmt.Sprintf("tiny-%05d-of-00003.gguf", i)) }
	n := len(f.Tensors)
	for i := 1; i <= 3; i++ {
		kvs := []gguf.KV{{Key: "split.no", Value: gguf.NewUint16(uint16(i - 1))}, {Key: "split.count", Value: gguf.NewUint16(3)}}
		if i == 1 {
			kvs = append(f.KVs(), append(kvs, gguf.KV{Key: "split.tensors.count", Value: gguf.NewInt32(int32(n))})...)
		}
		var ts []gguf.WriteTensor
		for _, ti := range f.Tensors[(i-1)*n/3 : i*n/3] {
			data, err := f.Data(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, gguf.WriteTensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: data})
		}
		var b bytes.Buffer
		if err := gguf.Write(&b, kvs, ts); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(part(i), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, mf, err := LoadGGUF(part(1), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 5, 9, 30, 2, 7}
	if d := maxAbsDiff(forwardWhole(t, m, ids, nil).Logits, forwardWhole(t, whole, ids, nil).Logits); d != 0 {
		t.Errorf("split model: logits differ from the whole file's by %.3g", d)
	}
	if len(mf.Tensors) != n {
		t.Errorf("split model: %d tensors, want %d", len(mf.Tensors), n)
	}
	mf.Close()
	if _, _, err := LoadGGUF(part(2), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "open the first") {
		t.Errorf("a later part: %v", err)
	}
	first, err := gguf.Open(part(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConfigFromGGUF(first); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "without the others") {
		t.Errorf("the first part opened alone: %v", err)
	}
	first.Close()
	os.Remove(part(3))
	if _, _, err := LoadGGUF(part(1), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "part 3 of 3") {
		t.Errorf("a missing part: %v", err)
	}
}
