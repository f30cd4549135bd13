package constrain

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// synthVocab is n tokens shaped like a BPE vocabulary's: all single bytes,
// then words with and without a leading space, digits and punctuation runs.
func synthVocab(n int) *Vocab {
	r := rand.New(rand.NewPCG(uint64(n), 9))
	seen := map[string]bool{}
	var toks [][]byte
	for c := 0; c < 256; c++ {
		toks = append(toks, []byte{byte(c)})
		seen[string(rune(c))] = true
	}
	const letters = "etaoinshrdlucmfwypvbgkqjxz"
	const punct = `{}[]":,. 0123456789-_\n`
	for len(toks) < n-1 {
		var b []byte
		if r.IntN(10) < 7 {
			if r.IntN(2) == 0 {
				b = append(b, ' ')
			}
			for l := 1 + r.IntN(9); l > 0; l-- {
				b = append(b, letters[min(r.IntN(len(letters)), r.IntN(len(letters)))])
			}
		} else {
			for l := 1 + r.IntN(4); l > 0; l-- {
				b = append(b, punct[r.IntN(len(punct))])
			}
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			toks = append(toks, b)
		}
	}
	toks = append(toks, nil) // the stop token
	return NewVocab(len(toks), func(id int) ([]byte, bool) { return toks[id], toks[id] != nil }, []int{len(toks) - 1})
}

// BenchmarkMask: the first mask in a state walks the trie (uncached); later
// ones in the same state are a cache hit.
func BenchmarkMask(b *testing.B) {
	g, err := Compile([]byte(`{"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"enum":["x","y"]}},"n":{"type":"number"}},"required":["name","tags","n"]}`))
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{4096, 50000} {
		v := synthVocab(size)
		for _, st := range []struct{ name, prefix string }{{"start", ``}, {"key", `{`}, {"string", `{"name":"ab`}, {"number", `{"name":"","tags":[],"n":1`}} {
			c, err := New(g, v)
			if err != nil {
				b.Fatal(err)
			}
			for _, ch := range []byte(st.prefix) {
				if err := c.Accept(int(ch)); err != nil {
					b.Fatal(err)
				}
			}
			logits := make([]float32, v.Size())
			b.Run(fmt.Sprintf("V=%d/%s/walk", size, st.name), func(b *testing.B) {
				for b.Loop() {
					computeEntry(v, c.alts)
				}
			})
			c.Mask(logits, 1000) // fills the cache
			b.Run(fmt.Sprintf("V=%d/%s/cached", size, st.name), func(b *testing.B) {
				for b.Loop() {
					c.Mask(logits, 1000)
				}
			})
		}
	}
}
