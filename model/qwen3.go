package model

import "fmt"

// Qwen3 (Qwen3ForCausalLM) is the Llama block with two changes: each query
// and key head is RMS-normed (a plain weight, per head) before RoPE, and
// head_dim is set explicitly rather than hidden/heads. No biases.
//
//	q = rope(rmsnorm_head(q(n₁))·w_q_norm),  k = rope(rmsnorm_head(k(n₁))·w_k_norm)
//	attention scale 1/√head_dim

func init() {
	supportedArchitectures["Qwen3ForCausalLM"] = family{modelType: "qwen3", parse: parseQwen3, json: llamaJSON}
}

func parseQwen3(r *rawConfig, c *Config) error {
	if err := checkActivation(r.HiddenAct, "silu"); err != nil {
		return err
	}
	if r.AttentionBias != nil && *r.AttentionBias {
		return fmt.Errorf("%w: attention_bias true for Qwen3 (biases on q, k, v and o)", ErrUnsupported)
	}
	c.QKNorm = true
	return parseQwenSliding(r, c)
}
