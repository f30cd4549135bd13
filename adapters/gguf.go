package adapters

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
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
		layer, p, ok := model.GGUFProj(stem)
		if !ok || layer >= base.NumLayers {
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
		name := moduleKey(layer, p)
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
		if pn := p.String(); !slices.Contains(targets, pn) {
			targets = append(targets, pn)
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
// base weights. llama.cpp scales every module by alpha/r, so a module whose
// PEFT scale differs (rank or alpha patterns, rsLoRA) has the ratio folded
// into its B.
func (l *LoRA) WriteGGUF(w io.Writer, base model.Config) error {
	arch := base.GGUFArchitecture()
	if arch == "" {
		return fmt.Errorf("%w: no GGUF architecture for %s", ErrUnsupported, base.Architecture)
	}
	if base.FusedQKV || base.FusedGateUp {
		// llama.cpp's Phi-3 has attn_qkv and a fused ffn_up, so per-projection
		// LoRA tensors would name tensors its base does not have.
		return fmt.Errorf("%w: a GGUF LoRA for %s, whose GGUF fuses q/k/v and gate/up", ErrUnsupported, base.Architecture)
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
	for layer := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Layers[layer][p]
			if pr == nil {
				continue
			}
			name := model.GGUFTensorName(moduleKey(layer, p) + ".weight")
			b := pr.B
			if s := float32(alpha / float64(pr.Rank)); s != pr.Scale {
				b = slices.Clone(b)
				kernels.Scale(b, pr.Scale/s)
			}
			if h := base.GGUFPermutedHeads(p); h > 0 {
				b = model.PermuteGGUFRows(b, pr.Rank, h)
			}
			ts = append(ts, named{moduleKey(layer, p), []gguf.WriteTensor{
				{Name: name + ".lora_a", Type: kernels.F32, Shape: []int{pr.In, pr.Rank}, Data: f32Bytes(pr.A)},
				{Name: name + ".lora_b", Type: kernels.F32, Shape: []int{pr.Rank, pr.Out}, Data: f32Bytes(b)},
			}})
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

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
