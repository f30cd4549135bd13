package constrain

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// byteVocab is every single byte plus a few multi-byte tokens, and a stop token.
func byteVocab(extra ...string) (*Vocab, int) {
	toks := make([][]byte, 0, 256+len(extra)+1)
	for c := 0; c < 256; c++ {
		toks = append(toks, []byte{byte(c)})
	}
	for _, e := range extra {
		toks = append(toks, []byte(e))
	}
	stop := len(toks)
	toks = append(toks, nil)
	return NewVocab(len(toks), func(id int) ([]byte, bool) { return toks[id], toks[id] != nil }, []int{stop}), stop
}

var extraTokens = []string{`{"`, `":`, `",`, `"}`, `true`, `false`, `null`, `, `, `": "`, `name`, `"name"`, `123`, `.5`, `e+`, `[]`, `{}`, `}]`, `]}`, `\u00`, `\n  `, `  `, "é", "\xe2\x98", `"a`, `ab`, `0,`, `1]`}

// randomRun samples uniformly among allowed tokens until a stop or the budget.
func randomRun(t testing.TB, g *Grammar, v *Vocab, stop, budget int, r *rand.Rand) ([]byte, bool) {
	c, err := New(g, v)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	logits := make([]float32, v.Size())
	for left := budget; left > 0; left-- {
		for i := range logits {
			logits[i] = 0
		}
		c.Mask(logits, left)
		var ok []int
		for id, l := range logits {
			if !math.IsInf(float64(l), -1) {
				ok = append(ok, id)
			}
		}
		if len(ok) == 0 {
			t.Fatalf("no token allowed after %q", out)
		}
		id := ok[r.IntN(len(ok))]
		if r.IntN(4) == 0 && c.Complete() {
			id = stop
		}
		if err := c.Accept(id); err != nil {
			t.Fatalf("after %q: %v", out, err)
		}
		if id == stop {
			return out, true
		}
		out = append(out, v.bytes[id]...)
	}
	if !c.Complete() {
		t.Fatalf("budget %d spent on an incomplete output %q", budget, out)
	}
	return out, false
}

func TestRandomWalks(t *testing.T) {
	v, stop := byteVocab(extraTokens...)
	schemas := []string{
		`{"type":"object","properties":{"name":{"type":"string","maxLength":5},"age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a","b",1,null]},"minItems":1,"maxItems":3}},"required":["name","tags"],"additionalProperties":false}`,
		`{"anyOf":[{"type":"number"},{"type":"array","items":{"type":"boolean"}},{"const":{"x":[1,2]}}]}`,
		`{"type":["string","null"],"minLength":2}`,
		`{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"string"}}}}}`,
		`{"type":"object","additionalProperties":{"type":"integer"}}`,
		`true`,
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, src := range schemas {
		g, err := Compile([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for i := 0; i < 200; i++ {
			budget := g.root.ml + r.IntN(40)
			out, _ := randomRun(t, g, v, stop, budget, r)
			checkValid(t, g, src, out)
		}
	}
	g := AnyObject()
	for i := 0; i < 200; i++ {
		out, _ := randomRun(t, g, v, stop, 2+r.IntN(60), r)
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("json_object output %q: %v", out, err)
		}
	}
}

func checkValid(t testing.TB, g *Grammar, src string, out []byte) {
	t.Helper()
	val, err := parseJSON(out)
	if err != nil {
		t.Fatalf("%s: output %q does not parse: %v", src, out, err)
	}
	if !g.root.items.valid(val) {
		t.Fatalf("%s: output %q does not validate", src, out)
	}
}
