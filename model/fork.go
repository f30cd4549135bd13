package model

import (
	"fmt"
	"slices"
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

// clone copies the cache: every layer's filled rows into new buffers of the
// same capacity, and the longrope state.
func (c *Cache) clone() *Cache {
	d := *c
	d.tokens = slices.Clone(c.tokens)
	d.layers = make([]cacheLayer, len(c.layers))
	for l, cl := range c.layers {
		dl := cl
		dl.k = make([][]float32, len(cl.k))
		dl.vt = make([][]float32, len(cl.vt))
		rows := c.n - cl.off // filled rows of this layer
		for h := range cl.k {
			if cl.cap == 0 {
				continue
			}
			k := make([]float32, cl.cap*c.hd)
			copy(k, cl.k[h][:rows*c.hd])
			dl.k[h] = k
			vt := make([]float32, c.hd*cl.cap)
			for j := 0; j < c.hd; j++ {
				copy(vt[j*cl.cap:j*cl.cap+rows], cl.vt[h][j*cl.cap:j*cl.cap+rows])
			}
			dl.vt[h] = vt
		}
		d.layers[l] = dl
	}
	return &d
}
