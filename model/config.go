package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Config is the subset of a Hugging Face config.json that the decoder forward
// needs. Its first fields are the Llama shape; the family fields after them
// (set by the family files: llama.go, qwen3.go, gemma.go, phi3.go) say how a
// block departs from Llama's, and their zero values are Llama's.
type Config struct {
	Architecture      string  // the config.json class, e.g. LlamaForCausalLM
	ModelType         string  // config.json model_type
	HiddenSize        int     // d_model
	IntermediateSize  int     // MLP width
	NumLayers         int     // transformer blocks
	NumHeads          int     // query heads
	NumKVHeads        int     // key/value heads (GQA when < NumHeads)
	HeadDim           int     // per-head width
	VocabSize         int     // rows of the embedding matrix
	RMSNormEps        float32 // RMSNorm epsilon
	RopeTheta         float64 // RoPE base
	Rope              RopeScaling
	MaxPositions      int  // max_position_embeddings
	SlidingWindow     int  // 0 when attention is full; see LayerWindow
	TieWordEmbeddings bool // lm_head shares the embedding matrix
	AttentionBias     bool // q/k/v projections carry biases (Qwen2; Llama's attention_bias)
	OutputBias        bool // o_proj carries a bias (Llama's attention_bias)
	MLPBias           bool // gate/up/down carry biases (Llama's mlp_bias)
	BOS               []int
	EOS               []int
	TorchDType        string

	// SlidingLayers says which blocks use SlidingWindow; nil means all of them.
	SlidingLayers []bool
	// NormPlusOne: RMSNorm weights w are used as (1 + w) (Gemma). The model
	// stores them with the one added, so every forward sees a plain scale.
	NormPlusOne bool
	// SandwichNorm: attention and MLP outputs are normed before the residual
	// add (Gemma 2/3: post_attention_layernorm, post_feedforward_layernorm).
	SandwichNorm bool
	// QKNorm: each query and key head is RMS-normed before RoPE (Qwen3, Gemma 3).
	QKNorm bool
	// EmbedScale multiplies the embeddings (Gemma: √hidden in float32); 0 means 1.
	EmbedScale float32
	// QueryPreAttnScalar makes the attention scale its −½ power (Gemma); 0
	// means HeadDim.
	QueryPreAttnScalar float64
	// AttnSoftcap and FinalSoftcap turn attention scores and logits s into
	// cap·tanh(s/cap) (Gemma 2); 0 means none.
	AttnSoftcap, FinalSoftcap float64
	// GeGLU: the MLP is down(gelu_tanh(gate)·up) (Gemma) instead of SwiGLU's
	// down(silu(gate)·up).
	GeGLU bool
	// RotaryDim is how many leading dimensions of each head RoPE rotates
	// (partial_rotary_factor, Phi-3); 0 means HeadDim.
	RotaryDim int
	// LocalRopeTheta is the RoPE base of sliding layers, which then ignore
	// Rope (Gemma 3); 0 means every layer uses RopeTheta and Rope.
	LocalRopeTheta float64
	// FusedQKV and FusedGateUp: the checkpoint stores qkv_proj and
	// gate_up_proj (Phi-3); the model splits them into views at load.
	FusedQKV, FusedGateUp bool
}

// RopeScaling is config.json's rope_scaling; Type "" means none.
type RopeScaling struct {
	Type           string  // "", "linear", "llama3" or "longrope"
	Factor         float64 // frequency divisor
	LowFreqFactor  float64 // llama3 only
	HighFreqFactor float64 // llama3 only
	OriginalMaxPos int     // llama3, longrope: original_max_position_embeddings
	// longrope only: per-frequency divisors for sequences up to OriginalMaxPos
	// (Short) and beyond (Long), and the factor on cos and sin.
	ShortFactor, LongFactor []float64
	AttnFactor              float64
	// "rope_freqs" only: per-frequency divisors as a GGUF file stores them
	// (its rope_freqs tensor) when they are not llama3's of any parameters.
	Factors []float64
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
	RopeParameters        json.RawMessage `json:"rope_parameters"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	OriginalMaxPositions  *int            `json:"original_max_position_embeddings"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	MaxWindowLayers       *int            `json:"max_window_layers"`
	LayerTypes            []string        `json:"layer_types"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	HiddenAct             string          `json:"hidden_act"`
	HiddenActivation      string          `json:"hidden_activation"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
	PretrainingTP         *int            `json:"pretraining_tp"`

	// Gemma
	QueryPreAttnScalar        *float64 `json:"query_pre_attn_scalar"`
	AttnLogitSoftcapping      *float64 `json:"attn_logit_softcapping"`
	FinalLogitSoftcapping     *float64 `json:"final_logit_softcapping"`
	SlidingWindowPattern      *int     `json:"sliding_window_pattern"`
	SlidingWindowPatternInner *int     `json:"_sliding_window_pattern"`
	RopeLocalBaseFreq         *float64 `json:"rope_local_base_freq"`
	UseBidirectionalAttention *bool    `json:"use_bidirectional_attention"`
}

// family is what one model family adds to the common config parsing; the
// family files fill in supportedArchitectures.
type family struct {
	modelType string
	// parse reads the family's own keys into c (after the common ones).
	parse func(r *rawConfig, c *Config) error
	// json adds the family's own keys to a config.json being written.
	json func(c Config, m map[string]any)
}

// supportedArchitectures maps each config.json class roe runs to its family.
var supportedArchitectures = map[string]family{}

// architectureNames lists the supported classes, sorted, for error messages.
func architectureNames() string {
	names := make([]string, 0, len(supportedArchitectures))
	for n := range supportedArchitectures {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
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
	// generate() in transformers stops at generation_config.json's
	// eos_token_id (a chat model's end-of-turn ids: Phi-3's <|end|>,
	// Gemma's <end_of_turn>), which config.json may leave out.
	gpath := filepath.Join(dir, "generation_config.json")
	if g, err := os.ReadFile(gpath); err == nil {
		var r struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if err := json.Unmarshal(g, &r); err != nil {
			return Config{}, fmt.Errorf("%s: %w: %v", gpath, ErrConfig, err)
		}
		ids, err := parseIDs("eos_token_id", r.EOS)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", gpath, err)
		}
		for _, id := range ids {
			if id < 0 || id >= c.VocabSize {
				return Config{}, fmt.Errorf("%s: %w: eos_token_id %d is not a token id", gpath, ErrConfig, id)
			}
		}
		c.EOS = appendNew(c.EOS, ids...)
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
	fam, ok := supportedArchitectures[arch]
	if !ok {
		return Config{}, fmt.Errorf("%w: %q (supported: %s)", ErrArchitecture, arch, architectureNames())
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
	if c.NumLayers > 1<<12 {
		return Config{}, fmt.Errorf("%w: num_hidden_layers %d is out of range", ErrConfig, c.NumLayers)
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
	if c.HeadDim > 1<<16 {
		return Config{}, fmt.Errorf("%w: head_dim %d is out of range", ErrConfig, c.HeadDim)
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
	} else if len(r.RopeParameters) > 0 && string(r.RopeParameters) != "null" {
		return Config{}, fmt.Errorf("%w: rope_parameters without rope_theta (a transformers v5 config.json; save it with transformers 4.x)", ErrUnsupported)
	}
	if r.MLPBias != nil && *r.MLPBias && c.Architecture != "LlamaForCausalLM" {
		return Config{}, fmt.Errorf("%w: mlp_bias true (%s has no MLP biases)", ErrUnsupported, c.Architecture)
	}
	if r.PretrainingTP != nil && *r.PretrainingTP > 1 {
		return Config{}, fmt.Errorf("%w: pretraining_tp %d", ErrUnsupported, *r.PretrainingTP)
	}
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}
	if c.MaxPositions <= 0 {
		c.MaxPositions = 2048
	}
	if err := fam.parse(&r, &c); err != nil {
		return Config{}, err
	}
	if c.ModelType == "" {
		c.ModelType = fam.modelType
	}
	if r.PartialRotaryFactor != nil && *r.PartialRotaryFactor != 1 && c.RotaryDim == 0 {
		return Config{}, fmt.Errorf("%w: partial_rotary_factor %g", ErrUnsupported, *r.PartialRotaryFactor)
	}
	if c.RotaryDim == c.HeadDim {
		c.RotaryDim = 0
	}
	if c.Rope.Type == "" {
		rs, err := parseRopeScaling(r.RopeScaling)
		if err != nil {
			return Config{}, err
		}
		c.Rope = rs
	}
	var err error
	if c.BOS, err = parseIDs("bos_token_id", r.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOS, err = parseIDs("eos_token_id", r.EOSTokenID); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkActivation accepts the activation names one family uses.
func checkActivation(name string, ok ...string) error {
	if name == "" || slices.Contains(ok, name) {
		return nil
	}
	return fmt.Errorf("%w: hidden activation %q (this family runs with %s)", ErrUnsupported, name, strings.Join(ok, " or "))
}

// parseSliding sets SlidingWindow and SlidingLayers from the window and a
// per-layer rule, or from layer_types when the config lists them (newer
// transformers write both). The stored form is canonical: no window when no
// layer slides, nil SlidingLayers when all do.
func parseSliding(r *rawConfig, c *Config, window int, sliding func(layer int) bool) error {
	c.SlidingWindow, c.SlidingLayers = 0, nil
	if window <= 0 {
		return nil
	}
	layers := make([]bool, c.NumLayers)
	if r.LayerTypes != nil {
		if len(r.LayerTypes) != c.NumLayers {
			return fmt.Errorf("%w: layer_types has %d entries for %d layers", ErrConfig, len(r.LayerTypes), c.NumLayers)
		}
		for i, t := range r.LayerTypes {
			switch t {
			case "sliding_attention":
				layers[i] = true
			case "full_attention":
			default:
				return fmt.Errorf("%w: layer_types entry %q (supported: sliding_attention, full_attention)", ErrUnsupported, t)
			}
		}
	} else {
		for i := range layers {
			layers[i] = sliding(i)
		}
	}
	setSliding(c, window, layers)
	return nil
}

// setSliding sets c's window and which layers slide, in the config's
// normal form: no window when no layer slides, no per-layer flags when all
// do.
func setSliding(c *Config, window int, layers []bool) {
	any, all := false, true
	for _, s := range layers {
		any, all = any || s, all && s
	}
	c.SlidingWindow, c.SlidingLayers = 0, nil
	if !any {
		return
	}
	c.SlidingWindow = window
	if !all {
		c.SlidingLayers = layers
	}
}

// LayerWindow is block i's attention window: 0 for global attention;
// otherwise query position p sees key position j iff j ≤ p and p − j < window.
func (c Config) LayerWindow(i int) int {
	if c.SlidingWindow <= 0 || (c.SlidingLayers != nil && (i < 0 || i >= len(c.SlidingLayers) || !c.SlidingLayers[i])) {
		return 0
	}
	return c.SlidingWindow
}

// layerTypes lists layer_types as transformers writes it.
func (c Config) layerTypes() []string {
	out := make([]string, c.NumLayers)
	for i := range out {
		out[i] = "full_attention"
		if c.LayerWindow(i) > 0 {
			out[i] = "sliding_attention"
		}
	}
	return out
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

// ContextLength is the longest sequence the model accepts: the position
// limit. Sliding windows do not shorten it: those layers look back at most
// the window and their caches keep only that much.
func (c Config) ContextLength() int { return c.MaxPositions }

// Rotary is how many leading dimensions of each head RoPE rotates.
func (c Config) Rotary() int {
	if c.RotaryDim > 0 {
		return c.RotaryDim
	}
	return c.HeadDim
}

// InvFreq returns the RoPE inverse frequencies θ^(-2i/d) of the global
// layers, d the rotary dimensions, with rope_scaling applied (longrope: the
// short factors).
//
//	result: [Rotary()/2]
func (c Config) InvFreq() []float64 {
	f, _ := c.RopeFreqs(-1, false)
	return f
}

// RopeFreqs returns layer's RoPE inverse frequencies and the factor cos and
// sin are multiplied by (longrope's attention factor; 1 otherwise). long picks
// longrope's long factors, used when a sequence runs past
// Rope.OriginalMaxPos. Sliding layers of a model with LocalRopeTheta use
// that base, unscaled (Gemma 3); layer −1 means a global one.
//
//	inv: [Rotary()/2]
func (c Config) RopeFreqs(layer int, long bool) (inv []float64, scale float64) {
	d := c.Rotary()
	theta, rs := c.RopeTheta, c.Rope
	if c.LocalRopeTheta > 0 && layer >= 0 && c.LayerWindow(layer) > 0 {
		theta, rs = c.LocalRopeTheta, RopeScaling{}
	}
	f := make([]float64, d/2)
	for i := range f {
		f[i] = 1 / math.Pow(theta, float64(2*i)/float64(d))
	}
	scale = 1
	switch rs.Type {
	case "linear":
		for i := range f {
			f[i] /= rs.Factor
		}
	case "llama3":
		lowWavelen := float64(rs.OriginalMaxPos) / rs.LowFreqFactor
		highWavelen := float64(rs.OriginalMaxPos) / rs.HighFreqFactor
		for i, fr := range f {
			wavelen := 2 * math.Pi / fr
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				f[i] = fr / rs.Factor
			default:
				smooth := (float64(rs.OriginalMaxPos)/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				f[i] = (1-smooth)*fr/rs.Factor + smooth*fr
			}
		}
	case "rope_freqs":
		for i := range f {
			f[i] /= rs.Factors[i]
		}
	case "longrope":
		ext := rs.ShortFactor
		if long {
			ext = rs.LongFactor
		}
		for i := range f {
			f[i] /= ext[i]
		}
		scale = rs.AttnFactor
	}
	return f, scale
}

// LongRope reports whether a sequence of n positions uses longrope's long
// factors (transformers decides from the sequence length).
func (c Config) LongRope(n int) bool {
	return c.Rope.Type == "longrope" && n > c.Rope.OriginalMaxPos
}

// AttnScale is the factor on q·k: 1/√HeadDim, or query_pre_attn_scalar^−½ (Gemma).
func (c Config) AttnScale() float64 {
	if c.QueryPreAttnScalar > 0 {
		return 1 / math.Sqrt(c.QueryPreAttnScalar)
	}
	return 1 / math.Sqrt(float64(c.HeadDim))
}

// HasBias reports whether projection p carries a bias.
func (c Config) HasBias(p Proj) bool {
	switch p {
	case ProjQ, ProjK, ProjV:
		return c.AttentionBias
	case ProjO:
		return c.OutputBias
	case ProjGate, ProjUp, ProjDown:
		return c.MLPBias
	}
	return false
}
