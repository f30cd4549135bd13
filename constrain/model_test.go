package constrain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"roe/constrain"
	"roe/internal/testmodel"
	"roe/model"
	"roe/model/tokenizer"
)

// randSchema draws a schema from the supported subset.
func randSchema(r *rand.Rand, depth int) map[string]any {
	scalar := depth >= 2
	kinds := []string{"string", "number", "integer", "boolean", "null", "enum", "const", "typelist"}
	if !scalar {
		kinds = append(kinds, "object", "object", "object", "array", "array", "anyOf")
	}
	switch k := kinds[r.IntN(len(kinds))]; k {
	case "string":
		s := map[string]any{"type": "string"}
		if r.IntN(3) == 0 {
			s["minLength"] = r.IntN(4)
		}
		if r.IntN(2) == 0 {
			s["maxLength"] = 4 + r.IntN(12)
		}
		return s
	case "enum":
		vals := []any{"red", "green", "blue", 1, 2.5, true, nil, "a b", "é"}
		r.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		return map[string]any{"enum": vals[:1+r.IntN(4)]}
	case "const":
		return map[string]any{"const": []any{"fixed", 42, false, map[string]any{"k": "v"}}[r.IntN(4)]}
	case "typelist":
		return map[string]any{"type": []any{"string", "null"}, "maxLength": 8}
	case "object":
		names := []string{"name", "age", "ok", "id", "tags", "city", "score"}
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		props := map[string]any{}
		var req []string
		for _, n := range names[:1+r.IntN(3)] {
			props[n] = randSchema(r, depth+1)
			if r.IntN(2) == 0 {
				req = append(req, n)
			}
		}
		s := map[string]any{"type": "object", "properties": props}
		if len(req) > 0 {
			s["required"] = req
		}
		if r.IntN(2) == 0 {
			s["additionalProperties"] = false
		}
		return s
	case "array":
		s := map[string]any{"type": "array", "items": randSchema(r, depth+1)}
		lo := r.IntN(3)
		if lo > 0 {
			s["minItems"] = lo
		}
		if r.IntN(2) == 0 {
			s["maxItems"] = lo + r.IntN(3)
		}
		return s
	case "anyOf":
		return map[string]any{"anyOf": []any{randSchema(r, depth+1), randSchema(r, depth+1)}}
	default:
		return map[string]any{"type": k}
	}
}

// timed measures the mask cost per step.
type timed struct {
	*constrain.Constraint
	steps int
	spent time.Duration
}

func (t *timed) Mask(logits []float32, left int) {
	t0 := time.Now()
	t.Constraint.Mask(logits, left)
	t.spent += time.Since(t0)
	t.steps++
}

func vocabOf(m *model.Model, tok *tokenizer.Tokenizer) *constrain.Vocab {
	return constrain.FromTokenizer(tok, m.Config.VocabSize, m.Config.EOS)
}

// The embedded default model's free output is not JSON; under a random schema
// from the supported subset, 200 sampled generations all parse and validate
// (checked by an independent validator).
func TestGenerateRandomSchemas(t *testing.T) {
	m, tok := testmodel.Default(t)
	prompt := tok.Encode("Once upon a time", true)
	free, err := m.Generate(context.Background(), tok.NewStreamDecoder(true), prompt, model.GenerateOptions{MaxTokens: 60}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid([]byte(strings.TrimSpace(free.Text))) {
		t.Fatalf("the model's free output is JSON already: %q", free.Text)
	}
	v := vocabOf(m, tok)
	r := rand.New(rand.NewPCG(16, 3))
	n, stopped := 0, 0
	var steps int
	var spent time.Duration
	for n < 200 {
		schema := randSchema(r, 0)
		if n%10 == 9 {
			schema = nil // json_object
		}
		src, _ := json.Marshal(schema)
		var g *constrain.Grammar
		if schema == nil {
			g = constrain.AnyObject()
		} else if g, err = constrain.Compile(src); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		c, err := constrain.New(g, v)
		if err != nil {
			t.Fatal(err)
		}
		if c.MinTokens() > 80 {
			continue
		}
		tc := &timed{Constraint: c}
		seed := uint64(n)
		out, err := m.Generate(context.Background(), tok.NewStreamDecoder(true), prompt,
			model.GenerateOptions{MaxTokens: 100, Sample: model.SampleOptions{Temperature: 1, Seed: &seed}, Constraint: tc}, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if schema == nil {
			src = []byte(`{"type":"object"}`)
		}
		if err := validate(src, out.Text); err != nil {
			t.Fatalf("schema %s\noutput %q (%s): %v", src, out.Text, out.FinishReason, err)
		}
		if n < 8 {
			t.Logf("%s\n  -> %s", src, out.Text)
		}
		if out.FinishReason == "stop" {
			stopped++
		}
		steps += tc.steps
		spent += tc.spent
		n++
	}
	t.Logf("%d generations valid (%d ended by the model, %d at max_tokens); mask %.1f µs/step over %d steps",
		n, stopped, n-stopped, float64(spent.Microseconds())/float64(steps), steps)
}

func validate(schema []byte, out string) error {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(schema)))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		return err
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		return fmt.Errorf("validator: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	return sch.Validate(inst)
}

// The same on stories260K, whose SentencePiece vocabulary spells bytes with
// <0xNN> tokens and strips the text's first space.
func TestGenerateStories260K(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	v := vocabOf(m, tok)
	prompt := tok.Encode("Once upon a time", true)
	r := rand.New(rand.NewPCG(260, 1))
	for n := 0; n < 30; {
		src, _ := json.Marshal(randSchema(r, 0))
		g, err := constrain.Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		c, err := constrain.New(g, v)
		if err != nil {
			t.Fatal(err)
		}
		if c.MinTokens() > 80 {
			continue
		}
		seed := uint64(n)
		out, err := m.Generate(context.Background(), tok.NewStreamDecoder(true), prompt,
			model.GenerateOptions{MaxTokens: 100, Sample: model.SampleOptions{Temperature: 1, Seed: &seed}, Constraint: c}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(src, out.Text); err != nil {
			t.Fatalf("schema %s\noutput %q: %v", src, out.Text, err)
		}
		n++
	}
}
