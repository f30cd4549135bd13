package serve

import (
	"testing"

	"roe/internal/testmodel"
	"roe/model"
)

// The base model's card says when its activations are quantized (roe serve
// --activations q8), and the system fingerprint changes with it.
func TestModelCardActivations(t *testing.T) {
	const file = "../../shared/golden/gguf/tiny-llama-k256/tiny-llama-k256-Q4_K_M.gguf"
	fps := map[string]bool{}
	for _, act := range []model.Activations{model.ActivationsF32, model.ActivationsQ8} {
		m := testmodel.GGUF(t, file, model.LoadOptions{Activations: act})
		s := &Server{cfg: Config{ModelID: "base", Model: m}}
		card := s.models()[0]
		want := ""
		if act == model.ActivationsQ8 {
			want = "q8"
		}
		if card.Activations != want {
			t.Errorf("%s: roe_activations %q, want %q", act, card.Activations, want)
		}
		fps[systemFingerprint(m)] = true
	}
	if len(fps) != 2 {
		t.Error("the system fingerprint does not tell int8 activations from float32")
	}
}
