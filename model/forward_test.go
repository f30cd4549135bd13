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

// A reserved cache is allocated once, at the reserved size, and gives the
// logits of a cache that doubles as it grows; past the reservation it grows.
func TestCacheReserve(t *testing.T) {
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":96,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":128}`, 7)
	c := m.Config
	plain, res := m.NewCache(), m.NewCache()
	res.Reserve(40)
	step := func(cache *model.Cache, toks []int) []float32 {
		out, err := m.Forward([]model.Step{{Cache: cache, Tokens: toks}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Logits
	}
	prompt := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3}
	for n := 0; n < 45; n++ {
		toks := []int{(n * 7) % 50}
		if n == 0 {
			toks = prompt
		}
		a, b := step(plain, toks), step(res, toks)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("position %d: logit %d differs: %v vs %v", res.Len(), i, a[i], b[i])
			}
		}
		if res.Len() <= 40 && res.Bytes() != c.KVBytes(40, false) {
			t.Fatalf("at %d positions the reserved cache holds %d bytes, want %d (40 positions)", res.Len(), res.Bytes(), c.KVBytes(40, false))
		}
	}
	if res.Bytes() <= c.KVBytes(40, false) {
		t.Errorf("past the reservation the cache did not grow: %d bytes", res.Bytes())
	}
}
