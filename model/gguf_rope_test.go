package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

// ropeTestConfig is a small Llama whose head size (64) puts several
// frequencies in llama3's interpolated band for the scalings below.
func ropeTestConfig(rs RopeScaling) Config {
	return Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenSize: 128, IntermediateSize: 192,
		NumLayers: 2, NumHeads: 2, NumKVHeads: 1, HeadDim: 64, VocabSize: 96, RMSNormEps: 1e-5,
		RopeTheta: 500000, MaxPositions: 256, Rope: rs}
}

// TestGGUFRopeFreqs: a Llama 3 rope_scaling is written as llama.cpp's
// converter writes it (a rope_freqs tensor of per-frequency divisors) and
// read back to the same parameters, so the GGUF model keeps the source's
// fingerprint and logits; divisors no llama3 parameters give are kept as
// they are.
func TestGGUFRopeFreqs(t *testing.T) {
	ids := []int{1, 17, 33, 50, 4, 90, 60, 2, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}
	for _, tc := range []struct {
		name string
		rs   RopeScaling
		want RopeScaling // what the GGUF reads back as
	}{
		// Llama 3.1 and 3.2's own parameters, scaled to the test's short
		// context (only the ratios and the band matter).
		{"llama3.1", RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}, RopeScaling{}},
		{"llama3.2", RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}, RopeScaling{}},
		{"short", RopeScaling{Type: "llama3", Factor: 4, LowFreqFactor: 1, HighFreqFactor: 2.5, OriginalMaxPos: 96}, RopeScaling{}},
		// low_freq_factor 2: the same divisors as (orig/2, 1, high/2).
		{"low2", RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 2, HighFreqFactor: 8, OriginalMaxPos: 8192},
			RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 4096}},
		{"factors", RopeScaling{Type: "rope_freqs", Factors: ropeTestFactors(32)}, RopeScaling{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.Type == "" {
				tc.want = tc.rs
			}
			src, err := Random(ropeTestConfig(tc.rs), 3)
			if err != nil {
				t.Fatal(err)
			}
			path, f := writeGGUF(t, src, GGUFWriteOptions{})
			ti, ok := f.Tensor(ropeFreqsTensor)
			if !ok || ti.Type.String() != "F32" || !reflect.DeepEqual(ti.Shape, []int{32}) || f.Tensors[0].Name != ropeFreqsTensor {
				t.Fatalf("rope_freqs tensor: %+v %v (first tensor %s)", ti, ok, f.Tensors[0].Name)
			}
			m, lf, err := LoadGGUF(path, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			if !reflect.DeepEqual(m.Config.Rope, tc.want) {
				t.Errorf("rope read back as %+v, want %+v", m.Config.Rope, tc.want)
			}
			if tc.want.Type == tc.rs.Type && reflect.DeepEqual(tc.want, tc.rs) && tc.rs.Type == "llama3" && m.Fingerprint() != src.Fingerprint() {
				t.Errorf("fingerprint %.12s, source %.12s", m.Fingerprint(), src.Fingerprint())
			}
			got, want := forwardWhole(t, m, ids, nil).Logits, forwardWhole(t, src, ids, nil).Logits
			if d := maxAbsDiff(got, want); d > 1e-5 {
				t.Errorf("logits differ from the source's by %.3g", d)
			}
			// The frequencies the forward pass rotates by: the source's, and
			// not the unscaled ones (a rope that ignored the tensor).
			inv, src0 := m.Config.InvFreq(), src.Config.InvFreq()
			plain := ropeTestConfig(RopeScaling{}).InvFreq()
			same := true
			for i := range inv {
				if math.Abs(inv[i]-src0[i]) > 1e-6*src0[i] {
					t.Errorf("inverse frequency %d: %g, source %g", i, inv[i], src0[i])
				}
				same = same && inv[i] == plain[i]
			}
			if same {
				t.Error("the GGUF model rotates by the unscaled frequencies")
			}
		})
	}
}

// ropeTestFactors are divisors that no llama3 parameters give.
func ropeTestFactors(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(float32(1 + 0.37*math.Sin(float64(i))*math.Sin(float64(i))))
	}
	return out
}

// TestGGUFRopeFreqsRefused: rope_freqs of the wrong length or with a
// divisor that is not a positive number is refused by name, config.json
// cannot hold bare divisors, and only Llama GGUFs carry them.
func TestGGUFRopeFreqsRefused(t *testing.T) {
	src, err := Random(ropeTestConfig(RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}), 3)
	if err != nil {
		t.Fatal(err)
	}
	path, f := writeGGUF(t, src, GGUFWriteOptions{})
	ti, _ := f.Tensor(ropeFreqsTensor)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{0, -1, float32(math.NaN()), float32(math.Inf(1))} {
		b := bytes.Clone(raw)
		binary.LittleEndian.PutUint32(b[int(f.DataOffset)+int(ti.Offset)+8:], math.Float32bits(bad))
		p := t.TempDir() + "/bad.gguf"
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, lf, err := LoadGGUF(p, LoadOptions{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "rope_freqs.weight[2]") {
			if lf != nil {
				lf.Close()
			}
			t.Errorf("divisor %g: %v", bad, err)
		}
	}
	bare, err := Random(ropeTestConfig(RopeScaling{Type: "rope_freqs", Factors: ropeTestFactors(32)}), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.Save(t.TempDir(), WeightsF32); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "rope_freqs") {
		t.Errorf("Save with bare divisors: %v", err)
	}
	q := ropeTestConfig(RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192})
	q.Architecture, q.ModelType, q.AttentionBias = "Qwen2ForCausalLM", "qwen2", true
	qm, err := Random(q, 3)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteGGUF(&buf, qm, GGUFWriteOptions{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "llama3") || buf.Len() != 0 {
		t.Errorf("qwen2 with llama3 rope: %v (%d bytes written)", err, buf.Len())
	}
}
