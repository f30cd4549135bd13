package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the subset of a Hugging Face config.json that the Llama-family forward needs.
type Config struct {
	Architecture      string  // LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM
	ModelType         string  // config.json model_type
	HiddenSize        int     // d_model
	IntermediateSize  int     // SwiGLU width
	NumLayers         int     // transformer blocks
	NumHeads          int     // query heads
	NumKVHeads        int     // key/value heads (GQA when < NumHeads)
	HeadDim           int     // per-head width
	VocabSize         int     // rows of the embedding matrix
	RMSNormEps        float32 // RMSNorm epsilon
	RopeTheta         float64 // RoPE base
	Rope              RopeScaling
	MaxPositions      int  // max_position_embeddings
	SlidingWindow     int  // 0 when attention is full
	TieWordEmbeddings bool // lm_head shares the embedding matrix
	AttentionBias     bool // q/k/v projections carry biases (Qwen2)
	BOS               []int
	EOS               []int
	TorchDType        string
}

// RopeScaling is config.json's rope_scaling; Type "" means none.
type RopeScaling struct {
	Type           string  // "", "linear" or "llama3"
	Factor         float64 // frequency divisor
	LowFreqFactor  float64 // llama3 only
	HighFreqFactor float64 // llama3 only
	OriginalMaxPos int     // llama3 only: original_max_position_embeddings
}

// rawConfig mirrors config.json; pointer fields tell absent from zero.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             int             `json:"vocab_size"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	HiddenAct             string          `json:"hidden_act"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
	PretrainingTP         *int            `json:"pretraining_tp"`
}

var supportedArchitectures = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM":   "qwen2",
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates the bytes of a config.json.
func ParseConfig(b []byte) (Config, error) {
	var r rawConfig
	if err := json.Unmarshal(b, &r); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(r.Architectures) != 1 {
		return Config{}, fmt.Errorf("%w: architectures must name exactly one model class, got %q", ErrArchitecture, r.Architectures)
	}
	arch := r.Architectures[0]
	family, ok := supportedArchitectures[arch]
	if !ok {
		return Config{}, fmt.Errorf("%w: %q (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)", ErrArchitecture, arch)
	}
	c := Config{
		Architecture:     arch,
		ModelType:        r.ModelType,
		HiddenSize:       r.HiddenSize,
		IntermediateSize: r.IntermediateSize,
		NumLayers:        r.NumHiddenLayers,
		NumHeads:         r.NumAttentionHeads,
		VocabSize:        r.VocabSize,
		MaxPositions:     r.MaxPositionEmbeddings,
		RMSNormEps:       1e-6,
		RopeTheta:        10000,
		TorchDType:       r.TorchDType,
		AttentionBias:    family == "qwen2",
	}
	pos := map[string]int{
		"hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize,
		"num_hidden_layers": c.NumLayers, "num_attention_heads": c.NumHeads, "vocab_size": c.VocabSize,
	}
	for _, k := range []string{"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"} {
		if pos[k] <= 0 {
			return Config{}, fmt.Errorf("%w: %s must be positive, got %d", ErrConfig, k, pos[k])
		}
	}
	c.NumKVHeads = c.NumHeads
	if r.NumKeyValueHeads != nil {
		c.NumKVHeads = *r.NumKeyValueHeads
	}
	if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
		return Config{}, fmt.Errorf("%w: num_attention_heads %d is not a multiple of num_key_value_heads %d", ErrConfig, c.NumHeads, c.NumKVHeads)
	}
	if r.HeadDim != nil && *r.HeadDim > 0 {
		c.HeadDim = *r.HeadDim
	} else {
		if c.HiddenSize%c.NumHeads != 0 {
			return Config{}, fmt.Errorf("%w: hidden_size %d is not a multiple of num_attention_heads %d", ErrConfig, c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim%2 != 0 {
		return Config{}, fmt.Errorf("%w: head_dim %d must be even for RoPE", ErrConfig, c.HeadDim)
	}
	if r.RMSNormEps != nil {
		if *r.RMSNormEps <= 0 {
			return Config{}, fmt.Errorf("%w: rms_norm_eps must be positive, got %g", ErrConfig, *r.RMSNormEps)
		}
		c.RMSNormEps = float32(*r.RMSNormEps)
	}
	if r.RopeTheta != nil {
		if *r.RopeTheta <= 0 {
			return Config{}, fmt.Errorf("%w: rope_theta must be positive, got %g", ErrConfig, *r.RopeTheta)
		}
		c.RopeTheta = *r.RopeTheta
	}
	if r.HiddenAct != "" && r.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("%w: hidden_act %q (only silu)", ErrUnsupported, r.HiddenAct)
	}
	if r.MLPBias != nil && *r.MLPBias {
		return Config{}, fmt.Errorf("%w: mlp_bias true", ErrUnsupported)
	}
	if r.PartialRotaryFactor != nil && *r.PartialRotaryFactor != 1 {
		return Config{}, fmt.Errorf("%w: partial_rotary_factor %g", ErrUnsupported, *r.PartialRotaryFactor)
	}
	if r.PretrainingTP != nil && *r.PretrainingTP > 1 {
		return Config{}, fmt.Errorf("%w: pretraining_tp %d", ErrUnsupported, *r.PretrainingTP)
	}
	if r.AttentionBias != nil && family != "qwen2" {
		c.AttentionBias = *r.AttentionBias
	}
	// Qwen2 and Mistral default to untied heads, as transformers does.
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}
	// A sliding window only matters past its length: roe caps the context there
	// instead of implementing windowed attention.
	if r.SlidingWindow != nil && *r.SlidingWindow > 0 && (family == "mistral" || (r.UseSlidingWindow != nil && *r.UseSlidingWindow)) {
		c.SlidingWindow = *r.SlidingWindow
	}
	if c.MaxPositions <= 0 {
		c.MaxPositions = 2048
	}
	rs, err := parseRopeScaling(r.RopeScaling)
	if err != nil {
		return Config{}, err
	}
	c.Rope = rs
	if c.BOS, err = parseIDs("bos_token_id", r.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOS, err = parseIDs("eos_token_id", r.EOSTokenID); err != nil {
		return Config{}, err
	}
	return c, nil
}

func parseRopeScaling(b json.RawMessage) (RopeScaling, error) {
	if len(b) == 0 || string(b) == "null" {
		return RopeScaling{}, nil
	}
	var m struct {
		Type           string   `json:"type"`
		RopeType       string   `json:"rope_type"`
		Factor         *float64 `json:"factor"`
		LowFreqFactor  *float64 `json:"low_freq_factor"`
		HighFreqFactor *float64 `json:"high_freq_factor"`
		OriginalMax    *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return RopeScaling{}, fmt.Errorf("%w: rope_scaling: %v", ErrConfig, err)
	}
	t := m.RopeType
	if t == "" {
		t = m.Type
	}
	switch t {
	case "default", "":
		return RopeScaling{}, nil
	case "linear":
		if m.Factor == nil || *m.Factor <= 0 {
			return RopeScaling{}, fmt.Errorf("%w: rope_scaling linear needs a positive factor", ErrConfig)
		}
		return RopeScaling{Type: "linear", Factor: *m.Factor}, nil
	case "llama3":
		if m.Factor == nil || m.LowFreqFactor == nil || m.HighFreqFactor == nil || m.OriginalMax == nil {
			return RopeScaling{}, fmt.Errorf("%w: rope_scaling llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings", ErrConfig)
		}
		if *m.Factor <= 0 || *m.LowFreqFactor <= 0 || *m.HighFreqFactor <= *m.LowFreqFactor || *m.OriginalMax <= 0 {
			return RopeScaling{}, fmt.Errorf("%w: rope_scaling llama3 has invalid factors", ErrConfig)
		}
		return RopeScaling{Type: "llama3", Factor: *m.Factor, LowFreqFactor: *m.LowFreqFactor,
			HighFreqFactor: *m.HighFreqFactor, OriginalMaxPos: *m.OriginalMax}, nil
	default:
		return RopeScaling{}, fmt.Errorf("%w: rope_scaling type %q (supported: default, linear, llama3)", ErrUnsupported, t)
	}
}

func parseIDs(key string, b json.RawMessage) ([]int, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(b, &one) == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return nil, fmt.Errorf("%w: %s must be an integer or a list of integers", ErrConfig, key)
	}
	return many, nil
}

// ContextLength is the longest sequence the model accepts: the position limit,
// or the sliding window when that is shorter.
func (c Config) ContextLength() int {
	if c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPositions {
		return c.SlidingWindow
	}
	return c.MaxPositions
}

// InvFreq returns the RoPE inverse frequencies θ^(-2i/d), with rope_scaling applied.
//
//	result: [HeadDim/2]
func (c Config) InvFreq() []float64 {
	half := c.HeadDim / 2
	f := make([]float64, half)
	for i := range f {
		f[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	switch c.Rope.Type {
	case "linear":
		for i := range f {
			f[i] /= c.Rope.Factor
		}
	case "llama3":
		r := c.Rope
		lowWavelen := float64(r.OriginalMaxPos) / r.LowFreqFactor
		highWavelen := float64(r.OriginalMaxPos) / r.HighFreqFactor
		for i, fr := range f {
			wavelen := 2 * math.Pi / fr
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				f[i] = fr / r.Factor
			default:
				smooth := (float64(r.OriginalMaxPos)/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				f[i] = (1-smooth)*fr/r.Factor + smooth*fr
			}
		}
	}
	return f
}
