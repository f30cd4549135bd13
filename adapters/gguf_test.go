package adapters

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"roe/internal/testenv"
	"roe/internal/testmodel"
	"roe/kernels"
	"roe/model"
	"roe/model/gguf"
	"roe/model/safetensors"
)

const ggufLoRADir = "../../shared/golden/gguf/tiny-llama-lora"

// A llama.cpp GGUF LoRA on the GGUF base gives the reference logits, and it
// is the PEFT adapter it was converted from (q/k lora_b rows un-permuted).
func TestGGUFLoRAGolden(t *testing.T) {
	if _, err := os.Stat(ggufLoRADir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	base := testmodel.GGUF(t, "../../shared/golden/gguf/tiny-llama/tiny-llama-F32.gguf", model.LoadOptions{})
	peft := loadGoldenLoRA(t, loadBase(t))
	for _, c := range []struct {
		name string
		tol  float64 // vs the PEFT adapter's own weights
	}{{"F32", 0}, {"F16", 2e-3}} {
		l, err := LoadGGUF(filepath.Join(ggufLoRADir, "tiny-llama-lora-"+c.name+".gguf"), base.Config)
		if err != nil {
			t.Fatal(err)
		}
		for layer := range l.Layers {
			for p := model.Proj(0); p < model.NumProj; p++ {
				a, b := l.Pair(layer, p), peft.Pair(layer, p)
				if (a == nil) != (b == nil) {
					t.Fatalf("%s: layer %d %s adapted in one adapter only", c.name, layer, p)
				}
				if a == nil {
					continue
				}
				if a.Scale != b.Scale || maxAbsDiff(a.A, b.A) > c.tol || maxAbsDiff(a.B, b.B) > c.tol {
					t.Errorf("%s: layer %d %s differs from the PEFT adapter", c.name, layer, p)
				}
			}
		}
		g, err := safetensors.Open(filepath.Join(ggufLoRADir, "tiny-llama-lora-"+c.name+".logits.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 4; k++ {
			ids32, err := g.Int32(fmt.Sprintf("seq%d.input_ids", k))
			if err != nil {
				t.Fatal(err)
			}
			want, err := g.Float32(fmt.Sprintf("seq%d.logits", k))
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]int, len(ids32))
			for i, v := range ids32 {
				ids[i] = int(v)
			}
			if d := maxAbsDiff(whole(t, base, ids, l), want); d > tol {
				t.Errorf("%s seq%d: logits differ by %.3g", c.name, k, d)
			}
		}
		g.Close()
	}
}

func TestGGUFLoRARefusals(t *testing.T) {
	if _, err := os.Stat(ggufLoRADir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	base := loadBase(t)
	// A model file is not an adapter.
	if _, err := LoadGGUF("../../shared/golden/gguf/tiny-llama/tiny-llama-F32.gguf", base.Config); err == nil {
		t.Error("a model GGUF loaded as an adapter")
	}
	// The adapter does not fit another architecture.
	qwen, err := model.LoadConfig(baseDir + "/qwen2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadGGUF(filepath.Join(ggufLoRADir, "tiny-llama-lora-F32.gguf"), qwen); err == nil {
		t.Error("a llama adapter loaded on a qwen2 base")
	}
}

// The PEFT golden adapter exported as GGUF is llama.cpp's conversion of it:
// the same tensors, in the same order, with the same bytes; it reads back as
// the adapter it came from.
func TestWriteGGUFMatchesConverter(t *testing.T) {
	if _, err := os.Stat(ggufLoRADir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	base := loadBase(t)
	l := loadGoldenLoRA(t, base)
	var b bytes.Buffer
	if err := l.WriteGGUF(&b, base.Config); err != nil {
		t.Fatal(err)
	}
	got, err := gguf.Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want, err := gguf.Open(filepath.Join(ggufLoRADir, "tiny-llama-lora-F32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, the converter wrote %d", len(got.Tensors), len(want.Tensors))
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		gd, _ := got.Data(g.Name)
		wd, _ := want.Data(w.Name)
		if g.Name != w.Name || g.Type != w.Type || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(gd, wd) {
			t.Errorf("tensor %d: %s %s %v, the converter's %s %s %v (bytes equal: %v)", i, g.Name, g.Type, g.Shape, w.Name, w.Type, w.Shape, bytes.Equal(gd, wd))
		}
	}
	for _, k := range []string{"general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"} {
		a, _ := got.Get(k)
		c, _ := want.Get(k)
		if a.Describe() != c.Describe() {
			t.Errorf("%s = %s, the converter's %s", k, a.Describe(), c.Describe())
		}
	}
	back, err := fromGGUF(got, base.Config)
	if err != nil {
		t.Fatal(err)
	}
	for layer := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if a, c := back.Pair(layer, p), l.Pair(layer, p); (a == nil) != (c == nil) || a != nil && (a.Scale != c.Scale || maxAbsDiff(a.B, c.B) != 0) {
				t.Fatalf("layer %d %s does not read back", layer, p)
			}
		}
	}
}

// A Phi-3 adapter is written as llama.cpp's Phi-3 reads one: its parts
// fused back into attn_qkv and ffn_up (gate and up) LoRA tensors, no
// per-projection ones; and such a file reads back as the same adapter, with
// parts sharing A (a PEFT qkv_proj adapter) or not (block-diagonal B).
func TestGGUFLoRAFused(t *testing.T) {
	m := loadArch(t, "phi3")
	c, mem := fusedPEFT(m.Config, 4)
	shared, err := FromTensors(c, m.Config, mem)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*LoRA{"shared A": shared, "separate A": Random(m.Config, 4, 1)} {
		var b bytes.Buffer
		if err := l.WriteGGUF(&b, m.Config); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := gguf.Parse(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		fused := 0
		for _, ti := range f.Tensors {
			stem, _, _ := strings.Cut(ti.Name, ".lora_")
			switch {
			case strings.HasSuffix(stem, ".attn_qkv.weight"), strings.HasSuffix(stem, ".ffn_up.weight"):
				fused++
			case strings.HasSuffix(stem, ".attn_output.weight"), strings.HasSuffix(stem, ".ffn_down.weight"):
			default:
				t.Errorf("%s: tensor %s names no tensor of llama.cpp's Phi-3", name, ti.Name)
			}
		}
		f.Close()
		if fused == 0 {
			t.Fatalf("%s: no fused LoRA tensors", name)
		}
		back, err := ParseGGUF(name, b.Bytes(), m.Config)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for layer := range l.Layers {
			for p := model.Proj(0); p < model.NumProj; p++ {
				a, w := back.Pair(layer, p), l.Pair(layer, p)
				if (a == nil) != (w == nil) {
					t.Fatalf("%s: layer %d %s: read back %v, want %v", name, layer, p, a != nil, w != nil)
				}
				if a != nil && maxAbsDiff(a.Delta(), w.Delta()) > 1e-6 {
					t.Errorf("%s: layer %d %s: ΔW read back differs by %.3g", name, layer, p, maxAbsDiff(a.Delta(), w.Delta()))
				}
			}
		}
		if d := maxDiff(logitsOf(t, m, archIDs, back), logitsOf(t, m, archIDs, l)); d > tol {
			t.Errorf("%s: logits with the adapter read back differ by %.3g", name, d)
		}
	}
	// Per-projection q/k/v or gate tensors name nothing in a fused GGUF:
	// refused by name.
	H := m.Config.HiddenSize
	for _, stem := range []string{"blk.0.attn_q.weight", "blk.0.ffn_gate.weight"} {
		var b bytes.Buffer
		kvs := []gguf.KV{
			{Key: "general.architecture", Value: gguf.NewString("phi3")},
			{Key: "general.type", Value: gguf.NewString("adapter")},
			{Key: "adapter.type", Value: gguf.NewString("lora")},
			{Key: "adapter.lora.alpha", Value: gguf.NewFloat32(8)},
		}
		ts := []gguf.WriteTensor{{Name: stem + ".lora_a", Type: kernels.F32, Shape: []int{H, 4}, Data: make([]byte, 16*H)}}
		if err := gguf.Write(&b, kvs, ts); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseGGUF(stem, b.Bytes(), m.Config); !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), stem) {
			t.Errorf("%s in a Phi-3 GGUF LoRA: %v", stem, err)
		}
	}
}
