package model

import "fmt"

// The Llama family: LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM
// share one block,
//
//	x = x + o(attn(rope(q(n₁)), rope(k(n₁)), v(n₁))),  n₁ = rmsnorm(x)·w_in
//	x = x + down(silu(gate(n₂)) ⊙ up(n₂)),             n₂ = rmsnorm(x)·w_post
//
// and differ only in details: Qwen2's q/k/v biases, Mistral's sliding window
// on every layer, Qwen2's on the layers from max_window_layers on.

func init() {
	supportedArchitectures["LlamaForCausalLM"] = family{modelType: "llama", parse: parseLlama, json: llamaJSON}
	supportedArchitectures["MistralForCausalLM"] = family{modelType: "mistral", parse: parseLlama, json: llamaJSON}
	supportedArchitectures["Qwen2ForCausalLM"] = family{modelType: "qwen2", parse: parseLlama, json: llamaJSON}
}

func parseLlama(r *rawConfig, c *Config) error {
	if err := checkActivation(r.HiddenAct, "silu"); err != nil {
		return err
	}
	switch c.Architecture {
	case "Qwen2ForCausalLM":
		c.AttentionBias = true // always, whatever attention_bias says
		return parseQwenSliding(r, c)
	case "MistralForCausalLM":
		if r.AttentionBias != nil {
			c.AttentionBias = *r.AttentionBias
		}
		w := 0
		if r.SlidingWindow != nil {
			w = *r.SlidingWindow
		}
		return parseSliding(r, c, w, func(int) bool { return true })
	}
	// transformers' Llama: attention_bias on q, k, v and o; mlp_bias on
	// gate, up and down.
	if r.AttentionBias != nil {
		c.AttentionBias, c.OutputBias = *r.AttentionBias, *r.AttentionBias
	}
	if r.MLPBias != nil {
		c.MLPBias = *r.MLPBias
	}
	return nil
}

// parseQwenSliding reads Qwen2's and Qwen3's window: with use_sliding_window,
// layers max_window_layers and later slide (transformers' layer_types rule).
func parseQwenSliding(r *rawConfig, c *Config) error {
	if r.UseSlidingWindow == nil || !*r.UseSlidingWindow || r.SlidingWindow == nil {
		return nil
	}
	from := 28 // transformers' default
	if r.MaxWindowLayers != nil {
		from = *r.MaxWindowLayers
	}
	if from < 0 {
		return fmt.Errorf("%w: max_window_layers %d is negative", ErrConfig, from)
	}
	return parseSliding(r, c, *r.SlidingWindow, func(i int) bool { return i >= from })
}

// llamaJSON writes the window keys of the Llama family and Qwen3.
func llamaJSON(c Config, m map[string]any) {
	switch {
	case c.SlidingWindow > 0:
		m["sliding_window"] = c.SlidingWindow
		m["use_sliding_window"] = true
		m["max_window_layers"] = 0
		m["layer_types"] = c.layerTypes()
	case c.Architecture != "LlamaForCausalLM":
		m["sliding_window"] = nil // Mistral's default is a 4096 window
		m["use_sliding_window"] = false
	}
}
