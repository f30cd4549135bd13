package model

import (
	"fmt"
	"math"
)

// Gemma 2 (Gemma2ForCausalLM) and Gemma 3 text (Gemma3ForCausalLM):
//
//	x = embed[ids]·√hidden                         (√hidden rounded to float32)
//	h = rmsnorm(x)·(1+w_in)
//	a = softmax(softcap(q kᵀ·query_pre_attn_scalar^−½) + mask) v
//	x = x + rmsnorm(o(a))·(1+w_post_attn)
//	h = rmsnorm(x)·(1+w_pre_ffn)
//	x = x + rmsnorm(down(gelu_tanh(gate(h)) ⊙ up(h)))·(1+w_post_ffn)
//	logits = softcap_final((rmsnorm(x)·(1+w_final)) embedᵀ)
//
// Gemma 2 alternates sliding (even) and global (odd) layers and soft-caps
// attention scores and logits (cap·tanh(s/cap)). Gemma 3 drops the caps, adds
// (1+w) q/k norms before RoPE, and makes layer i sliding unless
// (i+1) % sliding_window_pattern == 0; sliding layers use
// rope_local_base_freq unscaled, global ones rope_theta with rope_scaling.

func init() {
	supportedArchitectures["Gemma2ForCausalLM"] = family{modelType: "gemma2", parse: parseGemma, json: gemmaJSON}
	supportedArchitectures["Gemma3ForCausalLM"] = family{modelType: "gemma3_text", parse: parseGemma, json: gemmaJSON}
}

func parseGemma(r *rawConfig, c *Config) error {
	act := r.HiddenActivation
	if act == "" {
		act = r.HiddenAct
	}
	if err := checkActivation(act, "gelu_pytorch_tanh"); err != nil {
		return err
	}
	if r.AttentionBias != nil && *r.AttentionBias {
		return fmt.Errorf("%w: attention_bias true for Gemma", ErrUnsupported)
	}
	if r.UseBidirectionalAttention != nil && *r.UseBidirectionalAttention {
		return fmt.Errorf("%w: use_bidirectional_attention (an embedding model)", ErrUnsupported)
	}
	if r.TieWordEmbeddings == nil {
		c.TieWordEmbeddings = true // the class default
	}
	c.GeGLU = true
	c.NormPlusOne, c.SandwichNorm = true, true
	c.EmbedScale = float32(math.Sqrt(float64(c.HiddenSize)))
	c.QueryPreAttnScalar = float64(c.HeadDim)
	if r.QueryPreAttnScalar != nil {
		if !(*r.QueryPreAttnScalar > 0) {
			return fmt.Errorf("%w: query_pre_attn_scalar must be positive, got %g", ErrConfig, *r.QueryPreAttnScalar)
		}
		c.QueryPreAttnScalar = *r.QueryPreAttnScalar
	}
	cap := func(key string, v *float64) (float64, error) {
		if v == nil {
			return 0, nil
		}
		if *v < 0 {
			return 0, fmt.Errorf("%w: %s must not be negative, got %g", ErrConfig, key, *v)
		}
		return *v, nil
	}
	var err error
	if c.AttnSoftcap, err = cap("attn_logit_softcapping", r.AttnLogitSoftcapping); err != nil {
		return err
	}
	if c.FinalSoftcap, err = cap("final_logit_softcapping", r.FinalLogitSoftcapping); err != nil {
		return err
	}
	w := 0
	if r.SlidingWindow != nil {
		w = *r.SlidingWindow
	}
	if c.Architecture == "Gemma2ForCausalLM" {
		return parseSliding(r, c, w, func(i int) bool { return i%2 == 0 })
	}
	c.QKNorm = true
	pattern := 6 // transformers' default
	if r.SlidingWindowPattern != nil {
		pattern = *r.SlidingWindowPattern
	} else if r.SlidingWindowPatternInner != nil {
		pattern = *r.SlidingWindowPatternInner
	}
	if pattern <= 0 {
		return fmt.Errorf("%w: sliding_window_pattern must be positive, got %d", ErrConfig, pattern)
	}
	if err := parseSliding(r, c, w, func(i int) bool { return (i+1)%pattern != 0 }); err != nil {
		return err
	}
	c.LocalRopeTheta = 10000
	if r.RopeLocalBaseFreq != nil {
		if !(*r.RopeLocalBaseFreq > 0) {
			return fmt.Errorf("%w: rope_local_base_freq must be positive, got %g", ErrConfig, *r.RopeLocalBaseFreq)
		}
		c.LocalRopeTheta = *r.RopeLocalBaseFreq
	}
	if c.SlidingWindow == 0 {
		c.LocalRopeTheta = 0 // no sliding layer uses it
	}
	return nil
}

func gemmaJSON(c Config, m map[string]any) {
	delete(m, "hidden_act")
	m["hidden_activation"] = "gelu_pytorch_tanh"
	m["query_pre_attn_scalar"] = c.QueryPreAttnScalar
	softcap := func(v float64) any {
		if v == 0 {
			return nil
		}
		return v
	}
	m["attn_logit_softcapping"] = softcap(c.AttnSoftcap)
	m["final_logit_softcapping"] = softcap(c.FinalSoftcap)
	if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
		m["layer_types"] = c.layerTypes()
	} else {
		m["sliding_window"] = nil
	}
	if c.Architecture == "Gemma3ForCausalLM" && c.LocalRopeTheta > 0 {
		m["rope_local_base_freq"] = c.LocalRopeTheta
	}
}
