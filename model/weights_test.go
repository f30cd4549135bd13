package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/model/llama2c"
	"roe/model/safetensors"
)

// copyModel writes the golden tiny llama with its tensors passed through edit.
func copyModel(t *testing.T, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	needDir(t, goldenDir)
	src, err := safetensors.Open(filepath.Join(goldenDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ts []safetensors.Tensor
	for _, info := range src.Tensors() {
		v, err := src.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.F32Tensor(info.Name, info.Shape, v))
	}
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(goldenDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), edit(ts), nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBadWeights(t *testing.T) {
	const name = "model.layers.1.self_attn.k_proj.weight"
	cases := []struct {
		what    string
		edit    func([]safetensors.Tensor) []safetensors.Tensor
		mention string
	}{
		{"missing tensor", func(ts []safetensors.Tensor) []safetensors.Tensor {
			out := ts[:0]
			for _, x := range ts {
				if x.Name != name {
					out = append(out, x)
				}
			}
			return out
		}, "missing tensor"},
		{"wrong shape", func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i, x := range ts {
				if x.Name == name {
					ts[i].Shape = []int{x.Shape[1], x.Shape[0]}
				}
			}
			return ts
		}, "shape [64 32]"},
		{"wrong dtype", func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i, x := range ts {
				if x.Name == name {
					ts[i] = safetensors.Tensor{Name: name, DType: "I32", Shape: x.Shape, Data: x.Data}
				}
			}
			return ts
		}, "dtype I32"},
	}
	for _, c := range cases {
		dir := copyModel(t, c.edit)
		_, err := Load(dir)
		if !errors.Is(err, ErrWeights) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "k_proj") {
			t.Errorf("%s: got %v", c.what, err)
		}
	}
}

// BF16 and F16 checkpoints load (converted to float32) and stay close to F32.
func TestHalfPrecisionWeights(t *testing.T) {
	for _, dt := range []string{"BF16", "F16"} {
		dir := copyModel(t, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i, x := range ts {
				v := make([]float32, len(x.Data)/4)
				for j := range v {
					v[j] = f32at(x.Data, j)
				}
				if dt == "BF16" {
					ts[i] = safetensors.BF16Tensor(x.Name, x.Shape, v)
				} else {
					ts[i] = safetensors.F16Tensor(x.Name, x.Shape, v)
				}
			}
			return ts
		})
		m, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		ref := loadModel(t, goldenDir)
		ids := []int{317, 5, 6, 7, 8, 9}
		a, b := forwardWhole(t, m, ids, nil), forwardWhole(t, ref, ids, nil)
		if d := maxAbsDiff(a.Logits, b.Logits); d > 0.5 || d == 0 {
			t.Errorf("%s logits differ from F32 by %.3g (want small but non-zero)", dt, d)
		}
	}
}

func f32at(b []byte, i int) float32 {
	u := uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	return math.Float32frombits(u)
}

func TestBadInputs(t *testing.T) {
	m := loadModel(t, goldenDir)
	if _, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: []int{320}}}); !errors.Is(err, ErrInput) {
		t.Errorf("token past vocab: %v", err)
	}
	if _, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: []int{-1}}}); !errors.Is(err, ErrInput) {
		t.Errorf("negative token: %v", err)
	}
	if _, err := m.Forward([]Step{{Cache: m.NewCache()}}); !errors.Is(err, ErrInput) {
		t.Errorf("no tokens: %v", err)
	}
	long := make([]int, m.Config.ContextLength()+1)
	c := m.NewCache()
	if _, err := m.Forward([]Step{{Cache: c, Tokens: long}}); !errors.Is(err, ErrContext) {
		t.Errorf("too long: %v", err)
	}
	if c.Len() != 0 {
		t.Error("a refused step changed the cache")
	}
}

// The llama2.c import gives the same logits as the reference Hugging Face copy.
func TestImportedLlama2cMatchesReference(t *testing.T) {
	src := "../../shared/data/models/stories260K"
	needDir(t, src)
	out := t.TempDir()
	if err := llama2c.Convert(filepath.Join(src, "stories260K.bin"), filepath.Join(src, "tok512.bin"), out); err != nil {
		t.Fatal(err)
	}
	a := loadModel(t, out)
	b := loadModel(t, storiesDir)
	ids := []int{1, 403, 407, 261, 378, 432, 383}
	if d := maxAbsDiff(forwardWhole(t, a, ids, nil).Logits, forwardWhole(t, b, ids, nil).Logits); d != 0 {
		t.Errorf("imported model logits differ by %.3g", d)
	}
}

func TestParamsCoverEveryTensor(t *testing.T) {
	for _, dir := range []string{goldenDir, filepath.Join(goldenDir, "qwen2")} {
		m := loadModel(t, dir)
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		ps := m.Params()
		if len(ps) != len(f.Tensors()) {
			t.Errorf("%s: %d params, file has %d tensors", dir, len(ps), len(f.Tensors()))
		}
		for _, p := range ps {
			v, err := f.Float32(p.Name)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			if maxAbsDiff(v, p.Data) != 0 {
				t.Errorf("%s differs", p.Name)
			}
		}
		f.Close()
		c := m.Clone()
		c.Params()[0].Data[0] += 1
		if m.Params()[0].Data[0] == c.Params()[0].Data[0] {
			t.Error("Clone shares memory")
		}
	}
}

// A tensor the model would not read is refused by name (an o_proj bias left
// unread changes every logit); rotary inv_freq buffers, which transformers
// recomputes too, are not.
func TestUnreadTensors(t *testing.T) {
	add := func(name string, n int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.F32Tensor(name, []int{n}, make([]float32, n)))
		}
	}
	const bias = "model.layers.0.self_attn.o_proj.bias"
	_, err := Load(copyModel(t, add(bias, 32)))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), bias) {
		t.Errorf("an unread %s: got %v", bias, err)
	}
	if _, err := Load(copyModel(t, add("model.layers.0.self_attn.rotary_emb.inv_freq", 4))); err != nil {
		t.Errorf("an inv_freq buffer: %v", err)
	}
}
