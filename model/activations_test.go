package model

import (
	"path/filepath"
	"strings"
	"testing"
)

// With ActivationsQ8, the quantized golden GGUF files decode (token by
// token through the KV cache, so every product has one row and takes the
// int8 kernels) to logits within 0.5 of llama.cpp's own (which quantizes
// activations too: shared/golden/gguf/README.md suggests 0.5 for such an
// implementation, and llama.cpp itself differs from the exact reference by
// up to 0.26 on these files) and within 0.5 of the exact reference; they do
// differ from the exact path (the option took effect), and the default path
// stays exact.
func TestGGUFGoldenLogitsQ8(t *testing.T) {
	const tolQ8 = 0.5
	for _, folder := range []string{"tiny-llama", "tiny-qwen2", "tiny-llama-k256"} {
		g := readGGUFGolden(t, folder)
		for _, f := range g.Files {
			if !strings.Contains(f.File, "-Q") {
				continue // float files: no quantized products
			}
			t.Run(f.File, func(t *testing.T) {
				path := filepath.Join(ggufGoldenDir, folder, f.File)
				m, file, err := LoadGGUF(path, LoadOptions{Activations: ActivationsQ8})
				if err != nil {
					t.Fatal(err)
				}
				defer file.Close()
				exact, file2, err := LoadGGUF(path, LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer file2.Close()
				if exact.Activations() != ActivationsF32 {
					t.Fatalf("default activations %s", exact.Activations())
				}
				if m.Activations() != ActivationsQ8 {
					t.Fatalf("activations %s with ActivationsQ8 (types %v)", m.Activations(), m.WeightFormat())
				}
				lg := openGolden(t, filepath.Join(ggufGoldenDir, folder, f.LogitsFile))
				var worstLlama, worstRef, llamaRef, worstExact float64
				for _, name := range []string{"seq0", "seq1", "seq2", "seq3"} {
					if _, ok := lg.Info(name + ".llamacpp_logits"); !ok {
						continue
					}
					ids := ints(t, lg, name+".input_ids")
					if len(ids) > 64 {
						ids = ids[:64] // seq2: 200 tokens; 64 keep the test short
					}
					n := len(ids) * exact.Config.VocabSize
					ref := floats(t, lg, name+".logits")[:n]
					llama := floats(t, lg, name+".llamacpp_logits")[:n]
					got := forwardStepwise(t, m, ids, nil).Logits
					ex := forwardStepwise(t, exact, ids, nil).Logits
					dl, dr, de := maxAbsDiff(got, llama), maxAbsDiff(got, ref), maxAbsDiff(ex, ref)
					worstLlama, worstRef, worstExact = max(worstLlama, dl), max(worstRef, dr), max(worstExact, de)
					llamaRef = max(llamaRef, maxAbsDiff(llama, ref))
					if dl > tolQ8 || dr > tolQ8 {
						t.Errorf("%s: q8 logits differ from llama.cpp's by %.3g, from the exact reference by %.3g (tol %g)", name, dl, dr, tolQ8)
					}
					if de > tol {
						t.Errorf("%s: the default (exact) path differs from the reference by %.3g", name, de)
					}
				}
				if worstRef < 1e-4 {
					t.Errorf("q8 logits equal the exact ones (Δ %.3g): int8 activations did not run", worstRef)
				}
				t.Logf("%s (q8 for %s): max |Δ| q8 vs llama.cpp %.3f, q8 vs exact reference %.3f; llama.cpp vs reference %.3f; exact path vs reference %.2g",
					f.File, m.Q8Types(), worstLlama, worstRef, llamaRef, worstExact)
			})
		}
	}
}

func TestParseActivations(t *testing.T) {
	for s, want := range map[string]Activations{"": ActivationsF32, "f32": ActivationsF32, "Q8": ActivationsQ8, "int8": ActivationsQ8} {
		if a, err := ParseActivations(s); err != nil || a != want {
			t.Errorf("ParseActivations(%q) = %q, %v", s, a, err)
		}
	}
	if _, err := ParseActivations("q4"); err == nil {
		t.Error("q4: no error")
	}
	// A float model has nothing to quantize: the option reports f32.
	m := randomModel(t, smallShape())
	m.setActivations(ActivationsQ8)
	if m.Activations() != ActivationsF32 || m.Q8Types() != "" {
		t.Errorf("float model with q8: %s %q", m.Activations(), m.Q8Types())
	}
}
