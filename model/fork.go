package model

import (
	"fmt"
	"strings"
)

// Fork returns a sibling of s for another completion of the same prompt,
// with its own sampler and text decoder. Call it after the Forward of s's
// first Step and before s's first Accept: the sibling's cache is a copy of
// the prefilled one, so n completions cost one prefill, and Accept on each
// draws its first token from the same logits. constr is the sibling's own
// constraint, fresh (nil when s has none): a constraint has state, so
// siblings cannot share one.
func (s *Sequence) Fork(dec TextDecoder, o SampleOptions, constr Constraint) (*Sequence, error) {
	if s.scored || s.cache.Len() != len(s.Prompt) {
		return nil, fmt.Errorf("%w: fork a sequence after its prompt's forward and before its first token", ErrInput)
	}
	if (constr == nil) != (s.constr == nil) {
		return nil, fmt.Errorf("%w: a fork has its own constraint exactly when the sequence has one", ErrInput)
	}
	c := *s // every setting, stop strings and log-probability options included
	c.constr, c.masked = constr, nil
	c.cache = s.cache.clone()
	c.sampler = NewSampler(o)
	c.sampler.Prime(s.Prompt)
	c.dec = dec
	c.text = strings.Builder{}
	c.Tokens, c.Logprobs, c.PromptLogprobs = nil, nil, nil
	return &c, nil
}

// clone copies the filled positions of the cache into new buffers of the same capacity.
func (c *Cache) clone() *Cache {
	d := &Cache{n: c.n, cap: c.cap, hd: c.hd, max: c.max}
	d.k = make([][][]float32, len(c.k))
	d.vt = make([][][]float32, len(c.vt))
	for l := range c.k {
		d.k[l] = make([][]float32, len(c.k[l]))
		d.vt[l] = make([][]float32, len(c.vt[l]))
		for h := range c.k[l] {
			if c.cap == 0 {
				continue
			}
			k := make([]float32, c.cap*c.hd)
			copy(k, c.k[l][h][:c.n*c.hd])
			d.k[l][h] = k
			vt := make([]float32, c.hd*c.cap)
			for j := 0; j < c.hd; j++ {
				copy(vt[j*c.cap:j*c.cap+c.n], c.vt[l][h][j*c.cap:j*c.cap+c.n])
			}
			d.vt[l][h] = vt
		}
	}
	return d
}
