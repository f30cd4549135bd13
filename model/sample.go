package model

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// SampleOptions choose how the next token is drawn from the logits.
type SampleOptions struct {
	Temperature float64 // 0 means greedy (argmax)
	TopK        int     // keep the K most likely tokens; 0 keeps all
	TopP        float64 // keep the smallest set whose probability reaches P; 0 or 1 keeps all
	Seed        *uint64 // nil draws a seed from the clock
}

// Sampler draws tokens; it is deterministic for a given seed.
type Sampler struct {
	o     SampleOptions
	rng   *rand.Rand
	cands []cand
}

type cand struct {
	id int
	p  float64
}

// NewSampler returns a sampler for the options.
func NewSampler(o SampleOptions) *Sampler {
	seed := uint64(time.Now().UnixNano())
	if o.Seed != nil {
		seed = *o.Seed
	}
	return &Sampler{o: o, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Argmax returns the index of the largest logit, the first on ties.
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Sample draws one token id from logits: [V].
func (s *Sampler) Sample(logits []float32) int {
	if s.o.Temperature <= 0 {
		return Argmax(logits)
	}
	c := s.cands[:0]
	for i, v := range logits {
		if !math.IsNaN(float64(v)) {
			c = append(c, cand{i, float64(v) / s.o.Temperature})
		}
	}
	if len(c) == 0 {
		return Argmax(logits)
	}
	sort.Slice(c, func(a, b int) bool {
		if c[a].p != c[b].p {
			return c[a].p > c[b].p
		}
		return c[a].id < c[b].id
	})
	if k := s.o.TopK; k > 0 && k < len(c) {
		c = c[:k]
	}
	mx, sum := c[0].p, 0.0
	for i := range c {
		c[i].p = math.Exp(c[i].p - mx)
		sum += c[i].p
	}
	for i := range c {
		c[i].p /= sum
	}
	if p := s.o.TopP; p > 0 && p < 1 {
		cum := 0.0
		for i := range c {
			cum += c[i].p
			if cum >= p {
				c = c[:i+1]
				break
			}
		}
		sum = cum
	} else {
		sum = 1
	}
	s.cands = c
	u := s.rng.Float64() * sum
	for _, x := range c {
		u -= x.p
		if u <= 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// logSoftmaxAt returns log softmax(logits)[id], computed in float64.
func logSoftmaxAt(logits []float32, id int) float64 {
	mx := float64(logits[0])
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return float64(logits[id]) - mx - math.Log(sum)
}
