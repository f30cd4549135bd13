package model

import (
	"reflect"
	"strings"
	"testing"
)

// Config.JSON is read back by ParseConfig to the same config.
func TestConfigJSONRoundTrip(t *testing.T) {
	base := smallShape()
	base.BOS, base.EOS = []int{0}, []int{1, 7}
	llama3 := base
	llama3.Rope = RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 256}
	linear := base
	linear.Rope = RopeScaling{Type: "linear", Factor: 2}
	untied := base
	untied.TieWordEmbeddings, untied.RMSNormEps, untied.RopeTheta, untied.HeadDim = false, 1e-6, 500000, 48
	qwen, err := ParseConfig([]byte(strings.Replace(llamaConfig, "LlamaForCausalLM", "Qwen2ForCausalLM", 1)))
	if err != nil {
		t.Fatal(err)
	}
	mistral, err := ParseConfig([]byte(strings.Replace(llamaConfig, "LlamaForCausalLM", "MistralForCausalLM", 1)))
	if err != nil {
		t.Fatal(err)
	}
	mistral.SlidingWindow = 128
	for i, c := range []Config{base, llama3, linear, untied, qwen, mistral} {
		b := c.JSON("bfloat16")
		got, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("%d: %v\n%s", i, err, b)
		}
		want := c
		want.TorchDType = "bfloat16"
		if want.ModelType == "" {
			want.ModelType = supportedArchitectures[c.Architecture].modelType
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d: round trip\n got  %+v\n want %+v", i, got, want)
		}
	}
	if s := string(base.JSON("")); !strings.Contains(s, `"rms_norm_eps": 1e-05`) || !strings.Contains(s, `"torch_dtype": "float32"`) {
		t.Errorf("config.json:\n%s", s)
	}
}

// Random → Save → LoadWith gives the same logits (f32) or close ones (bf16).
func TestSaveLoad(t *testing.T) {
	untied := smallShape()
	untied.TieWordEmbeddings = false
	untied.BOS, untied.EOS = []int{1}, []int{2}
	qwen, err := ParseConfig([]byte(strings.Replace(llamaConfig, "LlamaForCausalLM", "Qwen2ForCausalLM", 1)))
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 5, 77, 300, 12, 9, 250, 3}
	for name, c := range map[string]Config{"tied": smallShape(), "untied": untied, "qwen2": qwen} {
		t.Run(name, func(t *testing.T) {
			m, err := Random(c, 3)
			if err != nil {
				t.Fatal(err)
			}
			want := forwardWhole(t, m, ids, nil).Logits
			scale := 0.0
			for _, v := range want {
				scale = max(scale, float64(v), -float64(v))
			}
			for _, f := range []WeightFormat{WeightsF32, WeightsBF16} {
				dir := t.TempDir()
				if err := m.Save(dir, f); err != nil {
					t.Fatal(err)
				}
				got, err := LoadWith(dir, LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.NumParams() != m.NumParams() || got.Config.TieWordEmbeddings != c.TieWordEmbeddings {
					t.Errorf("%s: %d params (want %d)", f, got.NumParams(), m.NumParams())
				}
				d := maxAbsDiff(forwardWhole(t, got, ids, nil).Logits, want)
				switch {
				case f == WeightsF32 && d != 0:
					t.Errorf("f32: logits differ by %g", d)
				case f == WeightsBF16 && d > bf16Tol*scale:
					t.Errorf("bf16: logits differ by %g (max |logit| %g)", d, scale)
				}
				if f == WeightsBF16 {
					t.Logf("bf16 max |Δlogit| %.3g, max |logit| %.3g", d, scale)
					// A bf16 model saves its own values exactly.
					h, err := LoadWith(dir, LoadOptions{Weights: WeightsBF16})
					if err != nil {
						t.Fatal(err)
					}
					dir2 := t.TempDir()
					if err := h.Save(dir2, WeightsBF16); err != nil {
						t.Fatal(err)
					}
					h2, err := LoadWith(dir2, LoadOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if d := maxAbsDiff(forwardWhole(t, h2, ids, nil).Logits, forwardWhole(t, got, ids, nil).Logits); d != 0 {
						t.Errorf("bf16 model re-saved: logits differ by %g", d)
					}
				}
			}
		})
	}
}
