package model

import (
	"fmt"
	"math"

	"roe/model/gguf"
)

// What a GGUF file of each family leaves to the reader: llama.cpp derives
// these from the architecture (and, for Gemma's attention scale, from the
// layer count that names the model size) rather than storing them, so roe
// derives them the same way, to the values the Hugging Face config has.
//
//	qwen3:  q/k RMS norms per head, no biases.
//	gemma2: (1 + w) norms (stored with the one added), sandwich norms,
//	        √hidden embedding scale, GELU-tanh gate, tied head, even layers
//	        sliding, attention and final soft-caps from the keys, attention
//	        scale 1/√(hidden/heads) for the 27B (46 layers), 1/√head_dim otherwise.
//	gemma3: as gemma2 without soft-caps, plus (1 + w) q/k norms; layer i
//	        slides unless (i+1) % 6 == 0, sliding layers use RoPE base 10000
//	        unscaled; the 27B (62 layers) scales by 1/√(hidden/heads).
//	phi3:   fused q/k/v (attn_qkv) and gate/up (ffn_up); its longrope is
//	        ggufLongRope's, its partial rotary rope.dimension_count.
func ggufFamily(f *gguf.File, p string, c *Config) error {
	err := ggufFamilyRules(c, func(key string) (float64, error) {
		v, err := f.OptFloat(p+key, 0)
		if err != nil || v < 0 || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%w: %s%s must be a non-negative number", ErrConfig, p, key)
		}
		return v, nil
	})
	if err != nil {
		return err
	}
	return ggufSlidingKeys(f, p, c)
}

// ggufSlidingKeys applies what newer converters write instead of leaving it
// to the reader: attention.sliding_window_pattern, a flag per layer (true:
// sliding) or a period n (layer i slides unless i % n == n−1, llama.cpp's
// set_swa_pattern), and rope.freq_base_swa, the sliding layers' RoPE base.
func ggufSlidingKeys(f *gguf.File, p string, c *Config) error {
	if v, ok := f.Get(p + "attention.sliding_window_pattern"); ok {
		layers := make([]bool, c.NumLayers)
		if flags, ok := v.Bools(); ok && len(flags) == c.NumLayers {
			copy(layers, flags)
		} else if n, ok := v.Uint(); ok && n <= uint64(c.NumLayers)+1 {
			for i := range layers {
				layers[i] = n == 0 || uint64(i)%n < n-1
			}
		} else {
			return fmt.Errorf("%w: %sattention.sliding_window_pattern must be %d flags or a period", ErrConfig, p, c.NumLayers)
		}
		setSliding(c, c.SlidingWindow, layers)
		if c.SlidingWindow == 0 {
			c.LocalRopeTheta = 0
		}
	}
	if _, ok := f.Get(p + "rope.freq_base_swa"); ok && c.SlidingWindow > 0 {
		b, err := f.Float(p + "rope.freq_base_swa")
		if err != nil || !(b > 0) || math.IsInf(b, 0) {
			return fmt.Errorf("%w: %srope.freq_base_swa must be positive", ErrConfig, p)
		}
		c.LocalRopeTheta = b
	}
	return nil
}

// ggufFamilyRules sets c's family fields from c.ModelType (the GGUF
// architecture) and the size fields; softcap reads a soft-cap key.
func ggufFamilyRules(c *Config, softcap func(key string) (float64, error)) error {
	switch c.ModelType {
	case "qwen3":
		c.QKNorm = true
	case "phi3":
		c.FusedQKV, c.FusedGateUp = true, true
	case "gemma2", "gemma3":
		c.ModelType = map[string]string{"gemma2": "gemma2", "gemma3": "gemma3_text"}[c.ModelType]
		c.GeGLU, c.NormPlusOne, c.SandwichNorm = true, true, true
		c.EmbedScale = float32(math.Sqrt(float64(c.HiddenSize)))
		c.QueryPreAttnScalar = float64(c.HeadDim)
		if c.NumLayers == map[string]int{"gemma2": 46, "gemma3_text": 62}[c.ModelType] {
			c.QueryPreAttnScalar = float64(c.HiddenSize / c.NumHeads)
		}
		if c.ModelType == "gemma2" {
			for _, k := range []struct {
				key string
				dst *float64
			}{{"attn_logit_softcapping", &c.AttnSoftcap}, {"final_logit_softcapping", &c.FinalSoftcap}} {
				v, err := softcap(k.key)
				if err != nil {
					return err
				}
				*k.dst = v
			}
		} else {
			c.QKNorm = true
		}
		if c.SlidingWindow == 0 {
			return fmt.Errorf("%w: a GGUF %s model needs attention.sliding_window", ErrConfig, c.ModelType)
		}
		layers := make([]bool, c.NumLayers)
		for i := range layers {
			if c.ModelType == "gemma2" {
				layers[i] = i%2 == 0
			} else {
				layers[i] = (i+1)%6 != 0
			}
		}
		setSliding(c, c.SlidingWindow, layers)
		if c.ModelType == "gemma3_text" {
			c.LocalRopeTheta = 10000
		}
	}
	return nil
}

// ggufConfigWritable refuses a config whose GGUF file would read back as
// another model: a family field llama.cpp derives (see ggufFamilyRules)
// that c does not have the derived value of, such as a Gemma 3 with
// sliding_window_pattern 3 or Gemma's query_pre_attn_scalar off the rule.
func ggufConfigWritable(c Config) error {
	d, err := ggufDerived(c)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"q/k norms", d.QKNorm, c.QKNorm}, {"GELU gate", d.GeGLU, c.GeGLU}, {"(1 + w) norms", d.NormPlusOne, c.NormPlusOne},
		{"sandwich norms", d.SandwichNorm, c.SandwichNorm}, {"embedding scale", d.EmbedScale, c.EmbedScale},
		{"query_pre_attn_scalar", d.QueryPreAttnScalar, c.QueryPreAttnScalar}, {"attention soft-cap", d.AttnSoftcap, c.AttnSoftcap},
		{"final soft-cap", d.FinalSoftcap, c.FinalSoftcap}, {"rope_local_base_freq", d.LocalRopeTheta, c.LocalRopeTheta},
		{"sliding layers", fmt.Sprint(d.layerTypes()), fmt.Sprint(c.layerTypes())},
		{"fused projections", [2]bool{d.FusedQKV, d.FusedGateUp}, [2]bool{c.FusedQKV, c.FusedGateUp}},
	} {
		if f.got != f.want {
			return fmt.Errorf("%w: a GGUF %s model has %s %v (llama.cpp derives it), this one %v", ErrUnsupported, c.GGUFArchitecture(), f.name, f.got, f.want)
		}
	}
	return nil
}

// ggufDerived returns c with the family fields a GGUF file of it reads back
// with (ggufFamilyRules, the soft-caps kept): c itself when c is writable.
func ggufDerived(c Config) (Config, error) {
	d := c
	d.ModelType = c.GGUFArchitecture()
	d.QKNorm, d.GeGLU, d.NormPlusOne, d.SandwichNorm = false, false, false, false
	d.EmbedScale, d.QueryPreAttnScalar, d.LocalRopeTheta, d.SlidingLayers = 0, 0, 0, nil
	d.FusedQKV, d.FusedGateUp = false, false
	err := ggufFamilyRules(&d, func(key string) (float64, error) {
		return map[string]float64{"attn_logit_softcapping": c.AttnSoftcap, "final_logit_softcapping": c.FinalSoftcap}[key], nil
	})
	d.ModelType = c.ModelType
	return d, err
}
