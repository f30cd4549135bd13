package adapters

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"roe/internal/testenv"
	"roe/model"
	"roe/model/safetensors"
)

// Adapters on the families of ../shared/golden/arch: per-sequence application
// equals the merged weights, and for Phi-3 a PEFT adapter on the fused
// qkv_proj and gate_up_proj modules adds exactly its fused ΔW.

const archDir = "../../shared/golden/arch"

func loadArch(t testing.TB, name string) *model.Model {
	t.Helper()
	dir := filepath.Join(archDir, name)
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logitsOf(t testing.TB, m *model.Model, ids []int, a model.Adapter) []float32 {
	t.Helper()
	out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: ids, Adapter: a, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Logits
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

var archIDs = []int{317, 46, 77, 66, 68, 220, 84, 79, 78, 77, 259, 256, 291, 68, 5, 9, 11, 300, 200, 100, 7, 8}

// archLoRA is Random with entries large enough to move the logits.
func archLoRA(base model.Config, r int, seed uint64) *LoRA {
	l := Random(base, r, seed)
	for i := range l.Layers {
		for p, pr := range l.Layers[i] {
			if pr != nil {
				for j := range pr.B {
					pr.B[j] *= 10
				}
				l.SetPair(i, model.Proj(p), pr)
			}
		}
	}
	return l
}

func TestArchAdapterEqualsMerged(t *testing.T) {
	for _, name := range []string{"qwen3", "gemma2", "gemma3", "phi3"} {
		t.Run(name, func(t *testing.T) {
			m := loadArch(t, name)
			l := archLoRA(m.Config, 4, 1)
			plain := logitsOf(t, m, archIDs, nil)
			adapted := logitsOf(t, m, archIDs, l)
			if d := maxDiff(plain, adapted); d < 1e-2 {
				t.Fatalf("the adapter moves the logits by only %.3g", d)
			}
			merged, err := Merged(m, l)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(logitsOf(t, merged, archIDs, nil), adapted); d > tol {
				t.Errorf("merged vs per-sequence: max |Δ| = %.3g", d)
			}
			// In a batch beside the base model, each sequence gets its own.
			out, err := m.Forward([]model.Step{
				{Cache: m.NewCache(), Tokens: archIDs, Adapter: l, AllLogits: true},
				{Cache: m.NewCache(), Tokens: archIDs, AllLogits: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			if maxDiff(out[0].Logits, adapted) > tol || maxDiff(out[1].Logits, plain) > tol {
				t.Error("a batch mixes the adapters")
			}
			// Saved and loaded back, the adapter computes the same.
			dir := t.TempDir()
			if err := l.Save(dir); err != nil {
				t.Fatal(err)
			}
			back, err := Load(dir, m.Config)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(logitsOf(t, m, archIDs, back), adapted); d > tol {
				t.Errorf("saved and reloaded: max |Δ| = %.3g", d)
			}
		})
	}
}

// fusedPEFT builds a PEFT adapter for Phi-3 as PEFT would save it: lora_A
// [r, H] and lora_B over the fused rows, for qkv_proj, gate_up_proj and
// o_proj, with an alpha_pattern on one fused module.
func fusedPEFT(c model.Config, r int) (Config, *memTensors) {
	rng := rand.New(rand.NewPCG(9, 9))
	H, I := c.HiddenSize, c.IntermediateSize
	qkv := (c.NumHeads + 2*c.NumKVHeads) * c.HeadDim
	mem := &memTensors{data: map[string][]float32{}}
	add := func(name string, rows, cols int) {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.2)
		}
		mem.infos = append(mem.infos, safetensors.TensorInfo{Name: name, DType: "F32", Shape: []int{rows, cols}})
		mem.data[name] = v
	}
	for l := 0; l < c.NumLayers; l++ {
		p := "base_model.model.model.layers." + string(rune('0'+l)) + "."
		add(p+"self_attn.qkv_proj.lora_A.weight", r, H)
		add(p+"self_attn.qkv_proj.lora_B.weight", qkv, r)
		add(p+"self_attn.o_proj.lora_A.weight", r, c.NumHeads*c.HeadDim)
		add(p+"self_attn.o_proj.lora_B.weight", H, r)
		add(p+"mlp.gate_up_proj.lora_A.weight", r, H)
		add(p+"mlp.gate_up_proj.lora_B.weight", 2*I, r)
	}
	cfg := Config{R: r, Alpha: 2 * float64(r), TargetModules: []string{"gate_up_proj", "o_proj", "qkv_proj"},
		AlphaPattern: map[string]float64{"model.layers.1.mlp.gate_up_proj": 3}}
	return cfg, mem
}

func TestPhi3FusedPEFT(t *testing.T) {
	m := loadArch(t, "phi3")
	c, mem := fusedPEFT(m.Config, 4)
	l, err := FromTensors(c, m.Config, mem)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: add s·B·A to the fused checkpoint tensors themselves.
	ref := m.Clone()
	params := map[string][]float32{}
	for _, p := range ref.Params() {
		params[p.Name] = p.Data
	}
	for _, info := range mem.infos {
		if !strings.HasSuffix(info.Name, "lora_A.weight") {
			continue
		}
		mod := strings.TrimSuffix(strings.TrimPrefix(info.Name, "base_model.model."), ".lora_A.weight")
		A, B := mem.data[info.Name], mem.data["base_model.model."+mod+".lora_B.weight"]
		r, in := info.Shape[0], info.Shape[1]
		out := len(B) / r
		s := c.Alpha / float64(r)
		if a, ok := c.AlphaPattern[mod]; ok {
			s = a / float64(r)
		}
		W := params[mod+".weight"]
		if len(W) != out*in {
			t.Fatalf("%s: %d weights for ΔW %d×%d", mod, len(W), out, in)
		}
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				var d float64
				for k := 0; k < r; k++ {
					d += float64(B[o*r+k]) * float64(A[k*in+i])
				}
				W[o*in+i] += float32(s * d)
			}
		}
	}
	want := logitsOf(t, ref, archIDs, nil)
	if d := maxDiff(want, logitsOf(t, m, archIDs, nil)); d < 1e-2 {
		t.Fatalf("the adapter moves the logits by only %.3g", d)
	}
	if d := maxDiff(logitsOf(t, m, archIDs, l), want); d > tol {
		t.Errorf("per-sequence fused adapter: max |Δ| = %.3g", d)
	}
	merged, err := Merged(m, l)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(logitsOf(t, merged, archIDs, nil), want); d > tol {
		t.Errorf("merged fused adapter: max |Δ| = %.3g", d)
	}
	// Saved, it is the PEFT folder it came from.
	dir := t.TempDir()
	if err := l.Save(dir); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, info := range f.Tensors() {
		names = append(names, info.Name)
		v, err := f.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v, mem.data[info.Name]) {
			t.Errorf("%s differs from the loaded tensor", info.Name)
		}
	}
	if len(names) != len(mem.infos) {
		t.Errorf("saved %d tensors, loaded %d: %v", len(names), len(mem.infos), names)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := ParseConfig(cb)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(saved.TargetModules, c.TargetModules) || !reflect.DeepEqual(saved.AlphaPattern, c.AlphaPattern) {
		t.Errorf("saved config: targets %v alpha pattern %v; want %v %v", saved.TargetModules, saved.AlphaPattern, c.TargetModules, c.AlphaPattern)
	}
	// On a base without fused modules, fused names are refused by name.
	llama := loadBase(t)
	if _, err := FromTensors(c, llama.Config, mem); err == nil || !strings.Contains(err.Error(), "qkv_proj") {
		t.Errorf("a qkv_proj adapter on Llama: %v", err)
	}
}
