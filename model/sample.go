package model

import (
	"math"
	"math/rand/v2"
	"roe/kernels"
	"sort"
	"sync"
)

// SampleOptions choose how the next token is drawn from the logits.
//
// The order is that of vLLM and transformers: logit_bias, repetition,
// frequency and presence penalties adjust the logits; greedy takes their
// argmax; otherwise temperature scales them, top-k keeps the K largest,
// min-p drops tokens less likely than MinP times the most likely one, and
// top-p keeps the smallest set that reaches P.
type SampleOptions struct {
	Temperature float64 // 0 means greedy (argmax)
	TopK        int     // keep the K most likely tokens; 0 keeps all
	TopP        float64 // keep the smallest set whose probability reaches P; 0 or 1 keeps all
	MinP        float64 // keep tokens at least MinP × the most likely one's probability; 0 keeps all
	Seed        *uint64 // nil draws a random seed

	// FrequencyPenalty is subtracted from a token's logit once for every
	// time it was generated; PresencePenalty once if it was generated at all
	// (OpenAI's definitions; the prompt does not count).
	FrequencyPenalty, PresencePenalty float64
	// RepetitionPenalty divides the positive logits and multiplies the
	// negative ones of every token in the prompt or the output (CTRL's
	// penalty, as in transformers and vLLM); 0 or 1 is off.
	RepetitionPenalty float64
	LogitBias         map[int]float32 // added to the logits of these ids
}

// adjusts reports whether the options change the logits before sampling.
func (o *SampleOptions) adjusts() bool {
	return o.FrequencyPenalty != 0 || o.PresencePenalty != 0 || (o.RepetitionPenalty != 0 && o.RepetitionPenalty != 1) || len(o.LogitBias) > 0
}

// Sampler draws tokens; it is deterministic for a given seed. It keeps the
// counts of the tokens seen (Prime, Observe) that the penalties need.
type Sampler struct {
	o      SampleOptions
	rng    *rand.Rand
	cands  []cand
	buf    []float32    // adjusted logits
	counts map[int]int  // generated token → times
	seen   map[int]bool // prompt ∪ generated tokens (repetition penalty)
}

type cand struct {
	id int
	p  float64
}

// NewSampler returns a sampler for the options.
func NewSampler(o SampleOptions) *Sampler {
	seed := rand.Uint64()
	if o.Seed != nil {
		seed = *o.Seed
	}
	s := &Sampler{o: o, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	if o.adjusts() {
		s.counts, s.seen = map[int]int{}, map[int]bool{}
	}
	return s
}

// Prime records the prompt's tokens, which the repetition penalty counts.
func (s *Sampler) Prime(prompt []int) {
	if s.seen == nil {
		return
	}
	for _, id := range prompt {
		s.seen[id] = true
	}
}

// Observe records a generated token.
func (s *Sampler) Observe(id int) {
	if s.counts == nil {
		return
	}
	s.counts[id]++
	s.seen[id] = true
}

// adjust returns the logits with bias and penalties applied (a copy: the
// caller's logits stay the model's, for log-probabilities).
func (s *Sampler) adjust(logits []float32) []float32 {
	if s.counts == nil {
		return logits
	}
	if cap(s.buf) < len(logits) {
		s.buf = make([]float32, len(logits))
	}
	b := s.buf[:len(logits)]
	copy(b, logits)
	for id, v := range s.o.LogitBias {
		if id >= 0 && id < len(b) {
			b[id] += v
		}
	}
	if r := float32(s.o.RepetitionPenalty); r > 0 && r != 1 {
		for id := range s.seen {
			if id < 0 || id >= len(b) {
				continue
			}
			if b[id] > 0 {
				b[id] /= r
			} else {
				b[id] *= r
			}
		}
	}
	if s.o.FrequencyPenalty != 0 || s.o.PresencePenalty != 0 {
		for id, n := range s.counts {
			if id >= 0 && id < len(b) {
				b[id] -= float32(s.o.FrequencyPenalty*float64(n) + s.o.PresencePenalty)
			}
		}
	}
	return b
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
	logits = s.adjust(logits)
	if s.o.Temperature <= 0 {
		return Argmax(logits)
	}
	c := s.cands[:0]
	for i, v := range logits {
		if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), -1) {
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
	sum = 1
	if mp := s.o.MinP; mp > 0 {
		// c is sorted, c[0] the most likely: cut where the ratio falls below.
		keep := len(c)
		for i := range c {
			if c[i].p < mp*c[0].p {
				keep = i
				break
			}
		}
		c = c[:keep]
		sum = 0
		for i := range c {
			sum += c[i].p
		}
	}
	if p := s.o.TopP; p > 0 && p < 1 {
		cum := 0.0
		for i := range c {
			cum += c[i].p
			if cum >= p*sum {
				c = c[:i+1]
				break
			}
		}
		sum = 0
		for i := range c {
			sum += c[i].p
		}
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

// logSoftmaxAt returns log softmax(logits)[id].
func logSoftmaxAt(logits []float32, id int) float64 {
	return float64(logits[id]) - logSumExp(logits)
}

// logSumExp is log Σ exp(logits): one vectorised pass (kernels.LogSumExp),
// the exponentials in pooled scratch.
func logSumExp(logits []float32) float64 {
	p := lseScratch.Get().(*[]float32)
	if cap(*p) < len(logits) {
		*p = make([]float32, len(logits))
	}
	v := kernels.LogSumExp(logits, (*p)[:len(logits)])
	lseScratch.Put(p)
	return v
}

var lseScratch = sync.Pool{New: func() any { return new([]float32) }}
