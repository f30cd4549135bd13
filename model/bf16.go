package model

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"roe/kernels"
	"roe/model/safetensors"
)

// WeightFormat is how a model keeps its projection and LM-head weights in memory.
type WeightFormat string

// The in-memory weight formats.
const (
	// WeightsF32 keeps every weight as float32 (the default): exact, and what
	// training, merging (Weight) and Params need.
	WeightsF32 WeightFormat = "f32"
	// WeightsBF16 keeps the seven projections of every block and the LM head
	// (with a tied LM head, the embedding table too) as bfloat16, widened to
	// float32 inside the GEMM kernels: half the memory and half the bytes per
	// decoded token. Norms and biases stay float32; activations, the KV cache
	// and all sums are float32. Such a model is for inference: Weight and
	// Params return nil Data for the bf16 tensors; CloneWeights (and Clone)
	// widen the projections back to float32.
	WeightsBF16 WeightFormat = "bf16"
)

// ParseWeightFormat accepts "f32" (or "", "fp32", "float32") and "bf16" (or "bfloat16").
func ParseWeightFormat(s string) (WeightFormat, error) {
	switch strings.ToLower(s) {
	case "", "f32", "fp32", "float32":
		return WeightsF32, nil
	case "bf16", "bfloat16":
		return WeightsBF16, nil
	}
	return "", fmt.Errorf("%w: weight format %q (want f32 or bf16)", ErrInput, s)
}

// TorchDType is config.json's torch_dtype for weights saved in this format.
func (f WeightFormat) TorchDType() string {
	if f == WeightsBF16 {
		return "bfloat16"
	}
	return "float32"
}

// LoadOptions choose how a checkpoint is held in memory.
type LoadOptions struct {
	Weights WeightFormat // "" means WeightsF32
	// Activations: "" means ActivationsF32 (exact); ActivationsQ8 is the
	// opt-in, lossy int8 path for quantized weights.
	Activations Activations
}

func (o LoadOptions) bf16() bool { return o.Weights == WeightsBF16 }

// LoadWith is Load with options.
func LoadWith(dir string, o LoadOptions) (*Model, error) {
	if _, err := ParseWeightFormat(string(o.Weights)); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	defer set.Close()
	if err := checkTensorNames(cfg, set.Tensors()); err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Clean(dir), err)
	}
	m, err := NewWith(cfg, set, o)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Clean(dir), err)
	}
	return m, nil
}

// checkTensorNames refuses a checkpoint holding a tensor a model of cfg does
// not read: a bias its config does not declare (an o_proj.bias under
// attention_bias false, say) left unread would change every logit without a
// word. Tolerated, as transformers
// tolerates them: rotary inv_freq buffers (recomputed from the config) and
// lm_head.weight beside tied embeddings (the tie replaces it).
func checkTensorNames(cfg Config, infos []safetensors.TensorInfo) error {
	known := cfg.wantNames(func(hf string) string { return hf })
	for _, t := range infos {
		switch {
		case known[t.Name], strings.HasSuffix(t.Name, ".rotary_emb.inv_freq"),
			t.Name == "lm_head.weight" && cfg.TieWordEmbeddings:
		default:
			return fmt.Errorf("%w: tensor %q is not one a %s reads (part of the model's math roe would skip)", ErrUnsupported, t.Name, cfg.Architecture)
		}
	}
	return nil
}

// LoadFSWith is LoadFS with options.
func LoadFSWith(fsys fs.FS, o LoadOptions) (*Model, error) {
	m, err := LoadFS(fsys)
	if err != nil || !o.bf16() {
		return m, err
	}
	return m.WithBF16(), nil
}

// WeightFormat reports how the model keeps its projection weights: f32,
// bf16, or a quantized type name such as "Q4_K" (the first block's query
// projection; a quantized file mixes types, see WeightFormats).
func (m *Model) WeightFormat() WeightFormat {
	if len(m.layers) > 0 {
		return WeightFormat(m.layers[0].q.format())
	}
	return WeightFormat(m.lmHead.format())
}

// WeightBytes is the size of the model's weights in memory.
func (m *Model) WeightBytes() int {
	n := m.embed.bytes() + 4*len(m.norm)
	if !m.Config.TieWordEmbeddings {
		n += m.lmHead.bytes()
	}
	for i := range m.layers {
		l := &m.layers[i]
		n += 4 * l.vecParams()
		for _, w := range l.projections() {
			n += w.bytes()
		}
	}
	return n
}

func narrow(v []float32) []uint16 {
	h := make([]uint16, len(v))
	kernels.NarrowBF16(h, v)
	return h
}

func widen(h []uint16) []float32 {
	v := make([]float32, len(h))
	kernels.WidenBF16(v, h)
	return v
}

// WithBF16 returns a model that shares m's config, norms and biases but holds
// bf16 copies of the float32 projections and LM head (see WeightsBF16); m is
// unchanged. Quantized matrices stay as they are.
func (m *Model) WithBF16() *Model {
	c := &Model{Config: m.Config, fingerprint: m.fingerprint, q8: m.q8, embed: m.embed, norm: m.norm, layers: make([]layer, len(m.layers))}
	c.lmHead = m.lmHead.toBF16()
	if m.Config.TieWordEmbeddings {
		c.embed = c.lmHead
	}
	for i, l := range m.layers {
		for _, w := range l.projections() {
			*w = w.toBF16()
		}
		l.qkv, l.gateUp = nil, nil // the fused float32 storage is m's
		c.layers[i] = l
	}
	return c
}
