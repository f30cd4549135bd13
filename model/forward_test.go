package model_test

import (
	"errors"
	"math"
	"testing"

	"roe/internal/testmodel"
	"roe/model"
)

// LogitsFrom returns the very rows AllLogits returns from that token on, and
// LogLikelihood (which uses it) equals the sum over AllLogits rows.
func TestLogitsFrom(t *testing.T) {
	m, _ := testmodel.Stories260K(t)
	toks := []int{1, 403, 407, 261, 378, 136, 365, 289, 4}
	V := m.Config.VocabSize
	all, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: toks, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []int{1, 4, len(toks) - 1} {
		out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: toks, AllLogits: true, LogitsFrom: from},
			{Cache: m.NewCache(), Tokens: toks[:3]}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out[0].Logits) != (len(toks)-from)*V || len(out[1].Logits) != V {
			t.Fatalf("from %d: %d and %d logits", from, len(out[0].Logits), len(out[1].Logits))
		}
		for i, v := range out[0].Logits {
			if w := all[0].Logits[from*V+i]; math.Abs(float64(v-w)) > 1e-5 {
				t.Fatalf("from %d: logit %d is %v, want %v", from, i, v, w)
			}
		}
	}
	prompt, cont := toks[:5], toks[5:]
	got, err := m.LogLikelihood(prompt, cont, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	for tpos := len(prompt) - 1; tpos < len(toks)-1; tpos++ {
		row := all[0].Logits[tpos*V : (tpos+1)*V]
		want += model.LogprobOf(row, toks[tpos+1], 0).Logprob
	}
	if math.Abs(got-want) > 1e-4 {
		t.Errorf("LogLikelihood %v, want %v", got, want)
	}
	for _, s := range []model.Step{
		{Cache: m.NewCache(), Tokens: toks, LogitsFrom: 2},
		{Cache: m.NewCache(), Tokens: toks, AllLogits: true, LogitsFrom: len(toks)},
		{Cache: m.NewCache(), Tokens: toks, AllLogits: true, LogitsFrom: -1},
	} {
		if _, err := m.Forward([]model.Step{s}); !errors.Is(err, model.ErrInput) {
			t.Errorf("LogitsFrom %d (AllLogits %v): err %v, want ErrInput", s.LogitsFrom, s.AllLogits, err)
		}
	}
}
