package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const llamaConfig = `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":320,"rms_norm_eps":1e-5}`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(llamaConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadDim != 16 || c.NumKVHeads != 2 || c.RopeTheta != 10000 || c.TieWordEmbeddings || c.AttentionBias {
		t.Errorf("defaults wrong: %+v", c)
	}
	q, err := ParseConfig([]byte(strings.Replace(llamaConfig, "LlamaForCausalLM", "Qwen2ForCausalLM", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !q.AttentionBias {
		t.Error("Qwen2 must have q/k/v biases")
	}
}

func TestParseConfigRefusals(t *testing.T) {
	with := func(extra string) string { return strings.TrimSuffix(llamaConfig, "}") + "," + extra + "}" }
	cases := []struct {
		name, json string
		want       error
		mention    string
	}{
		{"malformed", `{"architectures":`, ErrConfig, ""},
		{"unknown architecture", strings.Replace(llamaConfig, "LlamaForCausalLM", "GPT2LMHeadModel", 1), ErrArchitecture, "GPT2LMHeadModel"},
		{"no architecture", `{"hidden_size":64}`, ErrArchitecture, ""},
		{"rope yarn", with(`"rope_scaling":{"rope_type":"yarn","factor":4}`), ErrUnsupported, "yarn"},
		{"rope dynamic", with(`"rope_scaling":{"type":"dynamic","factor":2}`), ErrUnsupported, "dynamic"},
		{"llama3 incomplete", with(`"rope_scaling":{"rope_type":"llama3","factor":8}`), ErrConfig, "llama3"},
		{"gelu", with(`"hidden_act":"gelu"`), ErrUnsupported, "gelu"},
		{"mlp bias outside Llama", strings.Replace(with(`"mlp_bias":true`), "LlamaForCausalLM", "MistralForCausalLM", 1), ErrUnsupported, "mlp_bias"},
		{"bad gqa", strings.Replace(llamaConfig, `"num_key_value_heads":2`, `"num_key_value_heads":3`, 1), ErrConfig, "num_key_value_heads"},
		{"zero layers", strings.Replace(llamaConfig, `"num_hidden_layers":2`, `"num_hidden_layers":0`, 1), ErrConfig, "num_hidden_layers"},
		{"odd head dim", with(`"head_dim":15`), ErrConfig, "head_dim"},
		{"partial rotary", with(`"partial_rotary_factor":0.5`), ErrUnsupported, "partial_rotary_factor"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.mention)
		}
	}
}

// A sliding window no longer caps the context: the windowed layers look back
// at most the window instead.
func TestSlidingWindowKeepsContext(t *testing.T) {
	c, err := ParseConfig([]byte(strings.Replace(strings.TrimSuffix(llamaConfig, "}")+`,"sliding_window":128,"max_position_embeddings":4096}`, "LlamaForCausalLM", "MistralForCausalLM", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.ContextLength() != 4096 || c.LayerWindow(0) != 128 || c.LayerWindow(1) != 128 {
		t.Errorf("context %d, windows %d %d; want 4096 and 128 on every layer", c.ContextLength(), c.LayerWindow(0), c.LayerWindow(1))
	}
}

// The llama3 scaling keeps high frequencies, divides low ones by factor, and
// interpolates between (transformers' _compute_llama3_parameters).
func TestLlama3RopeScaling(t *testing.T) {
	c, err := ParseConfig([]byte(strings.TrimSuffix(llamaConfig, "}") + `,"head_dim":128,"rope_theta":500000,
	"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}`))
	if err != nil {
		t.Fatal(err)
	}
	plain := c
	plain.Rope = RopeScaling{}
	got, base := c.InvFreq(), plain.InvFreq()
	for i := range got {
		wl := 2 * math.Pi / base[i]
		switch {
		case wl < 8192/4.0:
			if got[i] != base[i] {
				t.Fatalf("high frequency %d changed", i)
			}
		case wl > 8192:
			if math.Abs(got[i]-base[i]/8) > 1e-18 {
				t.Fatalf("low frequency %d not divided by 8", i)
			}
		default:
			if !(got[i] < base[i] && got[i] > base[i]/8) {
				t.Fatalf("medium frequency %d not interpolated: %g vs %g", i, got[i], base[i])
			}
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(llamaConfig))
	f.Add([]byte(`{"architectures":["Qwen2ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":4,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}`))
	f.Add([]byte(`{"architectures":["MistralForCausalLM"],"head_dim":-2,"num_key_value_heads":0}`))
	for _, name := range []string{"qwen3", "gemma2", "gemma3", "phi3"} {
		if b, err := os.ReadFile(filepath.Join("../../shared/golden/arch", name, "config.json")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 || c.ContextLength() <= 0 ||
			c.Rotary() <= 0 || c.Rotary()%2 != 0 || c.Rotary() > c.HeadDim {
			t.Fatalf("accepted an inconsistent config: %+v", c)
		}
		_ = c.InvFreq()
		for l := 0; l < min(c.NumLayers, 8); l++ {
			_, _ = c.RopeFreqs(l, true)
			_, _ = c.RopeFreqs(l, false)
			_ = c.LayerWindow(l)
		}
		_ = c.JSON("")
	})
}
