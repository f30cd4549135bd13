package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"roe/internal/atomicfile"
	"roe/model/safetensors"
)

// JSON returns a Hugging Face config.json for c that ParseConfig reads back
// to c, with torch_dtype set to dtype ("" keeps c.TorchDType).
func (c Config) JSON(dtype string) []byte {
	arch := c.Architecture
	if arch == "" {
		arch = "LlamaForCausalLM"
	}
	fam := supportedArchitectures[arch]
	mt := c.ModelType
	if mt == "" {
		mt = fam.modelType
	}
	if dtype == "" {
		dtype = c.TorchDType
	}
	if dtype == "" {
		dtype = "float32"
	}
	ids := func(v []int) any {
		switch len(v) {
		case 0:
			return nil
		case 1:
			return v[0]
		}
		return v
	}
	var rope any
	switch c.Rope.Type {
	case "linear":
		rope = map[string]any{"rope_type": "linear", "factor": c.Rope.Factor}
	case "llama3":
		rope = map[string]any{"rope_type": "llama3", "factor": c.Rope.Factor, "low_freq_factor": c.Rope.LowFreqFactor,
			"high_freq_factor": c.Rope.HighFreqFactor, "original_max_position_embeddings": c.Rope.OriginalMaxPos}
	}
	m := map[string]any{
		"architectures":           []string{arch},
		"model_type":              mt,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumLayers,
		"num_attention_heads":     c.NumHeads,
		"num_key_value_heads":     c.NumKVHeads,
		"head_dim":                c.HeadDim,
		"hidden_act":              "silu",
		"max_position_embeddings": c.MaxPositions,
		// The float32 epsilon's shortest decimal (1e-05, not 9.99999974738e-06).
		"rms_norm_eps":        json.Number(strconv.FormatFloat(float64(c.RMSNormEps), 'g', -1, 32)),
		"rope_theta":          c.RopeTheta,
		"rope_scaling":        rope,
		"vocab_size":          c.VocabSize,
		"tie_word_embeddings": c.TieWordEmbeddings,
		"attention_bias":      c.AttentionBias,
		"mlp_bias":            c.MLPBias,
		"bos_token_id":        ids(c.BOS),
		"eos_token_id":        ids(c.EOS),
		"torch_dtype":         dtype,
		"initializer_range":   0.02,
		"use_cache":           true,
	}
	if fam.json != nil {
		fam.json(c, m)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // plain values only
	}
	return append(b, '\n')
}

// Save writes the model to dir as a Hugging Face folder: config.json and
// model.safetensors with every weight in HF naming (Params), stored as f32 or
// bf16 (rounded to nearest even). A bf16 model is widened first, so its
// weights are written exactly. Tokenizer files are the caller's.
func (m *Model) Save(dir string, format WeightFormat) error {
	format, err := ParseWeightFormat(string(format))
	if err != nil {
		return err
	}
	if c := m.Config; c.Architecture == "LlamaForCausalLM" && c.AttentionBias != c.OutputBias {
		// A GGUF's Llama may have either (llama.cpp reads each if present).
		return fmt.Errorf("%w: biases on q/k/v %v but on o_proj %v: config.json's attention_bias says both", ErrUnsupported, c.AttentionBias, c.OutputBias)
	}
	if m.Config.Rope.Type == "rope_freqs" {
		return fmt.Errorf("%w: config.json has no rope_scaling for a GGUF's rope_freqs divisors that are not llama3's", ErrUnsupported)
	}
	src := m
	if m.WeightFormat() != WeightsF32 {
		src = m.CloneWeights() // f32 projections
	}
	ps := src.Params()
	ts := make([]safetensors.Tensor, 0, len(ps))
	for _, p := range ps {
		v := p.Data
		if v == nil { // a bf16 or quantized embedding or LM head
			switch p.Name {
			case "model.embed_tokens.weight":
				v = m.embed.float32s()
			case "lm_head.weight":
				v = m.lmHead.float32s()
			}
		}
		if p.PlusOne {
			v = slices.Clone(v)
			for i := range v {
				v[i]--
			}
		}
		if n := shapeLen(p.Shape); len(v) != n {
			return fmt.Errorf("%w: %s has %d values, shape %v needs %d", ErrWeights, p.Name, len(v), p.Shape, n)
		}
		if format == WeightsBF16 {
			ts = append(ts, safetensors.BF16Tensor(p.Name, p.Shape, v))
		} else {
			ts = append(ts, safetensors.F32Tensor(p.Name, p.Shape, v))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), m.Config.JSON(format.TorchDType()))
}

func shapeLen(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
