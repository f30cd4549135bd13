package model

import (
	"encoding/json"
	"fmt"
	"math"
)

// Phi-3 (Phi3ForCausalLM, also Phi-3.5-mini and Phi-4-mini) is the Llama
// block with fused projections and partial, long-context RoPE:
//
//	qkv = qkv_proj(n₁) = [q | k | v] rows;  gu = gate_up_proj(n₂) = [gate | up] rows
//	RoPE on the first int(head_dim·partial_rotary_factor) dims of each head only
//	longrope: inv_freqᵢ = 1/(extᵢ·θ^(2i/d)), ext = long_factor when the sequence
//	  is longer than original_max_position_embeddings, else short_factor;
//	  cos and sin times attention_factor = √(1 + ln(max/orig)/ln(orig))
//	sliding_window on every layer
//
// roe splits the fused weights into q, k, v and gate, up views of the same
// memory at load (FusedQKV, FusedGateUp), so the forward, the adapters and
// training see the seven projections every family has.

func init() {
	supportedArchitectures["Phi3ForCausalLM"] = family{modelType: "phi3", parse: parsePhi3, json: phi3JSON}
}

func parsePhi3(r *rawConfig, c *Config) error {
	if err := checkActivation(r.HiddenAct, "silu"); err != nil {
		return err
	}
	if r.AttentionBias != nil && *r.AttentionBias {
		return fmt.Errorf("%w: attention_bias true for Phi-3", ErrUnsupported)
	}
	c.FusedQKV, c.FusedGateUp = true, true
	if f := r.PartialRotaryFactor; f != nil && *f != 1 {
		d := int(float64(c.HeadDim) * *f)
		if !(*f > 0 && *f < 1) || d <= 0 || d%2 != 0 {
			return fmt.Errorf("%w: partial_rotary_factor %g gives %d rotary dims of %d (must be even and positive)", ErrUnsupported, *f, d, c.HeadDim)
		}
		c.RotaryDim = d
	}
	w := 0
	if r.SlidingWindow != nil {
		w = *r.SlidingWindow
	}
	if err := parseSliding(r, c, w, func(int) bool { return true }); err != nil {
		return err
	}
	rs, err := parseLongRope(r, c)
	if err != nil {
		return err
	}
	c.Rope = rs
	return nil
}

// parseLongRope reads a longrope rope_scaling (transformers'
// _compute_longrope_parameters); other kinds are left to parseRopeScaling.
func parseLongRope(r *rawConfig, c *Config) (RopeScaling, error) {
	if len(r.RopeScaling) == 0 || string(r.RopeScaling) == "null" {
		return RopeScaling{}, nil
	}
	var m struct {
		Type        string    `json:"type"`
		RopeType    string    `json:"rope_type"`
		Short       []float64 `json:"short_factor"`
		Long        []float64 `json:"long_factor"`
		AttnFactor  *float64  `json:"attention_factor"`
		Factor      *float64  `json:"factor"`
		OriginalMax *int      `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(r.RopeScaling, &m); err != nil {
		return RopeScaling{}, fmt.Errorf("%w: rope_scaling: %v", ErrConfig, err)
	}
	t := m.RopeType
	if t == "" {
		t = m.Type
	}
	if t != "longrope" && t != "su" {
		return RopeScaling{}, nil
	}
	half := c.Rotary() / 2
	if len(m.Short) != half || len(m.Long) != half {
		return RopeScaling{}, fmt.Errorf("%w: longrope needs %d short and long factors (rotary dims / 2), got %d and %d", ErrConfig, half, len(m.Short), len(m.Long))
	}
	for _, f := range append(append([]float64(nil), m.Short...), m.Long...) {
		if !(f > 0) || math.IsInf(f, 0) {
			return RopeScaling{}, fmt.Errorf("%w: longrope factor %g must be positive", ErrConfig, f)
		}
	}
	rs := RopeScaling{Type: "longrope", ShortFactor: m.Short, LongFactor: m.Long}
	factor := 1.0
	switch {
	case r.OriginalMaxPositions != nil:
		rs.OriginalMaxPos = *r.OriginalMaxPositions
		if rs.OriginalMaxPos > 0 {
			factor = float64(c.MaxPositions) / float64(rs.OriginalMaxPos)
		}
	default:
		rs.OriginalMaxPos = c.MaxPositions
		if m.OriginalMax != nil {
			rs.OriginalMaxPos = *m.OriginalMax
		}
		if m.Factor != nil {
			factor = *m.Factor
		}
	}
	if rs.OriginalMaxPos <= 0 {
		return RopeScaling{}, fmt.Errorf("%w: longrope original_max_position_embeddings must be positive", ErrConfig)
	}
	switch {
	case m.AttnFactor != nil:
		if !(*m.AttnFactor > 0) {
			return RopeScaling{}, fmt.Errorf("%w: longrope attention_factor must be positive", ErrConfig)
		}
		rs.AttnFactor = *m.AttnFactor
	case factor <= 1 || rs.OriginalMaxPos <= 1:
		rs.AttnFactor = 1
	default:
		rs.AttnFactor = math.Sqrt(1 + math.Log(factor)/math.Log(float64(rs.OriginalMaxPos)))
	}
	return rs, nil
}

func phi3JSON(c Config, m map[string]any) {
	delete(m, "head_dim")
	delete(m, "attention_bias")
	if c.RotaryDim > 0 {
		m["partial_rotary_factor"] = float64(c.RotaryDim) / float64(c.HeadDim)
	}
	if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
	} else {
		m["sliding_window"] = nil
	}
	if c.Rope.Type == "longrope" {
		m["original_max_position_embeddings"] = c.Rope.OriginalMaxPos
		m["rope_scaling"] = map[string]any{"type": "longrope", "short_factor": c.Rope.ShortFactor,
			"long_factor": c.Rope.LongFactor, "attention_factor": c.Rope.AttnFactor}
	}
}
