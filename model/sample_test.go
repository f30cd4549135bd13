package model

import (
	"math"
	"testing"
)

func u64(v uint64) *uint64 { return &v }

// Penalties and bias change the logits the sampler draws from, never the
// caller's logits (which log-probabilities are computed from).
func TestSamplerAdjust(t *testing.T) {
	logits := []float32{2, 1, -1, 0.5}
	cases := []struct {
		name   string
		o      SampleOptions
		prompt []int
		gen    []int
		want   []float32
	}{
		{"bias", SampleOptions{LogitBias: map[int]float32{1: 5, 0: -100}}, nil, nil, []float32{-98, 6, -1, 0.5}},
		{"frequency", SampleOptions{FrequencyPenalty: 0.5}, []int{1}, []int{0, 0, 3}, []float32{1, 1, -1, 0}},
		{"presence", SampleOptions{PresencePenalty: 0.5}, []int{1}, []int{0, 0, 3}, []float32{1.5, 1, -1, 0}},
		{"repetition counts the prompt", SampleOptions{RepetitionPenalty: 2}, []int{1, 2}, []int{0}, []float32{1, 0.5, -2, 0.5}},
		{"negative penalties encourage", SampleOptions{PresencePenalty: -1}, nil, []int{2}, []float32{2, 1, 0, 0.5}},
	}
	for _, c := range cases {
		s := NewSampler(c.o)
		s.Prime(c.prompt)
		for _, id := range c.gen {
			s.Observe(id)
		}
		in := append([]float32(nil), logits...)
		got := s.adjust(in)
		for i := range got {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
		for i := range in {
			if in[i] != logits[i] {
				t.Errorf("%s: the caller's logits changed", c.name)
			}
		}
	}
	// Greedy follows the adjusted logits.
	s := NewSampler(SampleOptions{LogitBias: map[int]float32{2: 10}})
	if got := s.Sample(logits); got != 2 {
		t.Errorf("greedy with bias: %d", got)
	}
}

// min_p keeps only tokens at least MinP times as likely as the best one.
func TestSamplerMinP(t *testing.T) {
	// probabilities ∝ e^0, e^-1, e^-5: ratios 1, 0.37, 0.0067
	logits := []float32{0, -1, -5}
	counts := map[int]int{}
	s := NewSampler(SampleOptions{Temperature: 1, MinP: 0.1, Seed: u64(1)})
	for range 2000 {
		counts[s.Sample(logits)]++
	}
	if counts[2] != 0 || counts[1] == 0 || counts[0] <= counts[1] {
		t.Errorf("min_p 0.1: %v", counts)
	}
	s = NewSampler(SampleOptions{Temperature: 1, MinP: 0.5, Seed: u64(1)})
	for range 200 {
		if id := s.Sample(logits); id != 0 {
			t.Fatalf("min_p 0.5 drew %d", id)
		}
	}
}

// The same seed draws the same tokens; different seeds differ.
func TestSamplerSeed(t *testing.T) {
	logits := make([]float32, 50)
	draw := func(seed uint64) []int {
		s := NewSampler(SampleOptions{Temperature: 1, Seed: u64(seed)})
		var out []int
		for range 20 {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs: %v %v", a, b)
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("different seeds drew the same tokens")
	}
}

func TestLogprobOf(t *testing.T) {
	logits := []float32{1, 3, 2, 3, -1}
	lp := LogprobOf(logits, 2, 3)
	if d := lp.Logprob - logSoftmaxAt(logits, 2); math.Abs(d) > 1e-12 {
		t.Errorf("logprob %v", lp.Logprob)
	}
	if len(lp.Top) != 3 || lp.Top[0].ID != 1 || lp.Top[1].ID != 3 || lp.Top[2].ID != 2 {
		t.Errorf("top %v", lp.Top)
	}
	var sum float64
	for i := range logits {
		sum += math.Exp(LogprobOf(logits, i, 0).Logprob)
	}
	if math.Abs(sum-1) > 1e-6 { // the normaliser is summed in float32
		t.Errorf("probabilities sum to %v", sum)
	}
	if got := LogprobOf(logits, 0, 100); len(got.Top) != len(logits) {
		t.Errorf("top beyond V: %d", len(got.Top))
	}
}
