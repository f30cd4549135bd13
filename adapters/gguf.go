package adapters

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"roe/kernels"
	"roe/model"
	"roe/model/gguf"
	"roe/model/safetensors"
)

// LoadGGUF reads a LoRA adapter in llama.cpp's GGUF format (general.type
// adapter, adapter.type lora, adapter.lora.alpha, "<base tensor>.lora_a" /
// ".lora_b" pairs) and checks it against the base model's config. Llama q/k
// lora_b rows are stored permuted like the base weights; they are put back
// in Hugging Face order, so the adapter is the PEFT one it was made from.
func LoadGGUF(path string, base model.Config) (*LoRA, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	defer f.Close()
	l, err := fromGGUF(f, base)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ParseGGUF is LoadGGUF for a GGUF LoRA held in memory; name is for errors.
func ParseGGUF(name string, data []byte, base model.Config) (*LoRA, error) {
	f, err := gguf.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", name, err)
	}
	defer f.Close()
	l, err := fromGGUF(f, base)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

func fromGGUF(f *gguf.File, base model.Config) (*LoRA, error) {
	str := func(key string) string {
		v, _ := f.Get(key)
		s, _ := v.String()
		return s
	}
	if t := str("general.type"); t != "adapter" {
		return nil, fmt.Errorf("%w: general.type is %q, not adapter", ErrConfig, t)
	}
	if t := str("adapter.type"); t != "lora" {
		return nil, fmt.Errorf("%w: adapter.type %q (only lora)", ErrUnsupported, t)
	}
	if a, want := str("general.architecture"), base.GGUFArchitecture(); a != want {
		return nil, fmt.Errorf("%w: adapter for architecture %q, the base model is %q", ErrConfig, a, want)
	}
	alpha, err := f.Float("adapter.lora.alpha")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if !(alpha > 0) {
		return nil, fmt.Errorf("%w: adapter.lora.alpha must be positive, got %g", ErrConfig, alpha)
	}
	// Every tensor becomes its PEFT twin; FromTensors then checks names,
	// targets, ranks and shapes exactly as for a PEFT folder.
	src := &memTensors{data: map[string][]float32{}}
	ranks := map[string]int{}
	var targets []string
	for _, t := range f.Tensors {
		stem, ab, ok := strings.Cut(t.Name, ".lora_")
		if !ok || (ab != "a" && ab != "b") {
			return nil, unknownTensor(t.Name)
		}
		name, target, p, ok := ggufModule(base, stem)
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q adapts no projection of the base model", ErrTensor, t.Name)
		}
		if len(t.Shape) != 2 {
			return nil, fmt.Errorf("%w: tensor %q is not 2-D", ErrShape, t.Name)
		}
		v, err := ggufFloat32(f, t)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrTensor, t.Name, err)
		}
		cols, rows := t.Shape[0], t.Shape[1]
		if ab == "a" {
			ranks[name] = rows // lora_a: [r, in]
		} else if h := base.GGUFPermutedHeads(p); h > 0 {
			if rows%(2*h) != 0 {
				return nil, fmt.Errorf("%w: tensor %q has %d rows, not a whole number of head pairs", ErrShape, t.Name, rows)
			}
			v = model.UnpermuteGGUFRows(v, cols, h)
		}
		peft := "base_model.model." + name + ".lora_" + strings.ToUpper(ab) + ".weight"
		src.infos = append(src.infos, safetensors.TensorInfo{Name: peft, DType: "F32", Shape: []int{rows, cols}})
		src.data[peft] = v
		if !slices.Contains(targets, target) {
			targets = append(targets, target)
		}
	}
	if len(ranks) == 0 {
		return nil, fmt.Errorf("%w: no lora_a/lora_b tensors", ErrTensor)
	}
	c := Config{Alpha: alpha, TargetModules: targets}
	for _, r := range ranks {
		c.R = max(c.R, r)
	}
	for name, r := range ranks {
		if r != c.R {
			if c.RankPattern == nil {
				c.RankPattern = map[string]int{}
			}
			c.RankPattern[name] = r
		}
	}
	return FromTensors(c, base, src)
}

// ggufModule maps a GGUF LoRA tensor's stem ("blk.3.attn_q.weight") to the
// PEFT module it adapts on base and its target name: a projection, or on a
// base whose GGUF fuses modules (Phi-3) attn_qkv to qkv_proj and ffn_up to
// gate_up_proj (p is then the fused module's first part).
func ggufModule(base model.Config, stem string) (key, target string, p model.Proj, ok bool) {
	var layer int
	if rest, fused := strings.CutSuffix(strings.TrimSuffix(stem, ".weight"), ".attn_qkv"); fused && base.FusedQKV {
		n, err := strconv.Atoi(strings.TrimPrefix(rest, "blk."))
		if err != nil || !strings.HasPrefix(rest, "blk.") {
			return "", "", 0, false
		}
		layer, p = n, model.ProjQ
	} else if layer, p, ok = model.GGUFProj(stem); !ok {
		return "", "", 0, false
	} else if base.FusedGateUp && p == model.ProjUp {
		p = model.ProjGate // llama.cpp's ffn_up holds gate and up
	} else if fusedName(base, p) != "" {
		return "", "", 0, false // a part of a fused module: no such base tensor
	}
	if layer < 0 || layer >= base.NumLayers {
		return "", "", 0, false
	}
	if name := fusedName(base, p); name != "" {
		return strings.TrimSuffix(moduleKey(layer, p), p.String()) + name, name, p, true
	}
	return moduleKey(layer, p), p.String(), p, true
}

// ggufFloat32 widens a float tensor or dequantizes a quantized one.
func ggufFloat32(f *gguf.File, t gguf.TensorInfo) ([]float32, error) {
	if !t.Type.Quantized() {
		return f.Float32(t.Name)
	}
	data, err := f.Data(t.Name)
	if err != nil {
		return nil, err
	}
	cols, rows := t.Shape[0], t.Shape[1]
	v := make([]float32, rows*cols)
	rb := len(data) / rows
	for i := 0; i < rows; i++ {
		if err := kernels.DequantizeRow(t.Type, v[i*cols:(i+1)*cols], data[i*rb:(i+1)*rb]); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// memTensors is a TensorReader over float32 tensors in memory.
type memTensors struct {
	infos []safetensors.TensorInfo
	data  map[string][]float32
}

func (m *memTensors) Tensors() []safetensors.TensorInfo { return m.infos }

func (m *memTensors) Float32(name string) ([]float32, error) {
	v, ok := m.data[name]
	if !ok {
		return nil, fmt.Errorf("%w: no tensor %q", ErrTensor, name)
	}
	return v, nil
}

// WriteGGUF writes the adapter in llama.cpp's GGUF LoRA format for a base
// of config base: one adapter.lora.alpha, "<base tensor>.lora_a" [r, in]
// and ".lora_b" [out, r] in float32, Llama q/k lora_b rows permuted like the
// base weights. On a base whose GGUF fuses modules (Phi-3's attn_qkv and
// ffn_up) the parts are fused back as for a PEFT folder (see fusedFile).
// llama.cpp scales every module by alpha/r, so a module whose PEFT scale
// differs (rank or alpha patterns, rsLoRA, a fused block-diagonal B) has the
// ratio folded into its B.
func (l *LoRA) WriteGGUF(w io.Writer, base model.Config) error {
	return l.WriteGGUFAs(w, base, kernels.F32)
}

// WriteGGUFAs is WriteGGUF with the tensors in t: F32 (exact), or F16 or
// BF16 (rounded, as llama.cpp's converter's --outtype f16 / bf16; F16 is
// its default, and what llama.cpp b4747 applies without crashing on an
// AMX CPU).
func (l *LoRA) WriteGGUFAs(w io.Writer, base model.Config, t kernels.QType) error {
	if t != kernels.F32 && t != kernels.F16 && t != kernels.BF16 {
		return fmt.Errorf("%w: GGUF LoRA tensor type %s (want F32, F16 or BF16)", ErrUnsupported, t)
	}
	arch := base.GGUFArchitecture()
	if arch == "" {
		return fmt.Errorf("%w: no GGUF architecture for %s", ErrUnsupported, base.Architecture)
	}
	alpha := l.Config.Alpha
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.NewString(arch)},
		{Key: "general.type", Value: gguf.NewString("adapter")},
		{Key: "adapter.type", Value: gguf.NewString("lora")},
		{Key: "adapter.lora.alpha", Value: gguf.NewFloat32(float32(alpha))},
	}
	type named struct {
		hf string
		t  []gguf.WriteTensor
	}
	var ts []named
	// add writes one module: a [rank, in], b [out, rank], scaled by scale.
	add := func(key string, a, b []float32, rank, in int, scale float32, heads int) {
		if s := float32(alpha / float64(rank)); s != scale {
			b = slices.Clone(b)
			kernels.Scale(b, scale/s)
		}
		if heads > 0 {
			b = model.PermuteGGUFRows(b, rank, heads)
		}
		name := base.GGUFName(key + ".weight")
		ts = append(ts, named{key, []gguf.WriteTensor{
			{Name: name + ".lora_a", Type: t, Shape: []int{in, rank}, Data: floatBytes(t, a)},
			{Name: name + ".lora_b", Type: t, Shape: []int{rank, len(b) / rank}, Data: floatBytes(t, b)},
		}})
	}
	fm := fusedModules(base)
	for layer := range l.Layers {
		done := map[model.Proj]bool{}
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Layers[layer][p]
			if pr == nil || done[p] {
				continue
			}
			name := fusedName(base, p)
			if name == "" {
				add(moduleKey(layer, p), pr.A, pr.B, pr.Rank, pr.In, pr.Scale, base.GGUFPermutedHeads(p))
				continue
			}
			for _, q := range fm[name] {
				done[q] = true
			}
			a, b, rank, al := l.fuse(layer, fm[name])
			key := strings.TrimSuffix(moduleKey(layer, p), p.String()) + name
			add(key, a, b, rank, pr.In, l.Config.Scale(rank, al), 0)
		}
	}
	// llama.cpp's converter writes tensors in sorted Hugging Face name order.
	slices.SortFunc(ts, func(a, b named) int { return strings.Compare(a.hf, b.hf) })
	var all []gguf.WriteTensor
	for _, t := range ts {
		all = append(all, t.t...)
	}
	return gguf.Write(w, kvs, all)
}

// floatBytes is v as little-endian values of float type t (F32, F16 or
// BF16; the 16-bit ones rounded to nearest, ties to even).
func floatBytes(t kernels.QType, v []float32) []byte {
	b := make([]byte, len(v)*t.BlockBytes())
	_ = kernels.QuantizeRow(t, b, v) // a float type: any length, no error
	return b
}
