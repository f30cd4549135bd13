package constrain

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRefusals(t *testing.T) {
	cases := []struct {
		schema string
		err    error
		names  string
	}{
		{`{"type":"string","pattern":"a+"}`, ErrUnsupported, `"pattern"`},
		{`{"type":"string","format":"date"}`, ErrUnsupported, `"format"`},
		{`{"$ref":"#/$defs/a","$defs":{"a":{}}}`, ErrUnsupported, `"$ref"`},
		{`{"oneOf":[{},{}]}`, ErrUnsupported, `"oneOf"`},
		{`{"allOf":[{}]}`, ErrUnsupported, `"allOf"`},
		{`{"not":{}}`, ErrUnsupported, `"not"`},
		{`{"if":{},"then":{}}`, ErrUnsupported, `"if"`},
		{`{"type":"integer","minimum":3}`, ErrUnsupported, `"minimum"`},
		{`{"type":"object","properties":{"a":{"type":"string","format":"email"}}}`, ErrUnsupported, `/properties/a`},
		{`{"type":"array","uniqueItems":true}`, ErrUnsupported, `"uniqueItems"`},
		{`{"type":"array","items":[{}]}`, ErrUnsupported, `tuples`},
		{`{"type":"object","anyOf":[{}]}`, ErrUnsupported, `anyOf together with "type"`},
		{`{"type":"object","required":["x"]}`, ErrUnsupported, `"x"`},
		{`{"type":"potato"}`, ErrSchema, `"potato"`},
		{`{"type":"string","minLength":-1}`, ErrSchema, `minLength`},
		{`{"type":"string","minLength":5,"maxLength":2}`, ErrUnsatisfiable, `maxLength`},
		{`{"enum":[1,2],"type":"string"}`, ErrUnsatisfiable, `enum`},
		{`false`, ErrUnsatisfiable, `false`},
		{`[1]`, ErrSchema, `object or a boolean`},
		{`{"type":"string"} x`, ErrSchema, `after`},
		{`{"type":"string","type":"number"}`, ErrSchema, `duplicate`},
		{`{`, ErrSchema, ``},
	}
	for _, c := range cases {
		_, err := Compile([]byte(c.schema))
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("%s: got %v, want %v naming %s", c.schema, err, c.err, c.names)
		}
	}
	for _, ok := range []string{`{}`, `true`, `{"title":"x","description":"y","$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{},"additionalProperties":false}`,
		`{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"T"}`, `{"type":"array","uniqueItems":false}`,
		`{"type":"object","properties":{"a":false}}`, `{"enum":[1,"1",{"a":[true]}]}`} {
		if _, err := Compile([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestMinTokens(t *testing.T) {
	v, _ := byteVocab()
	for schema, want := range map[string]int{
		`{"type":"object","properties":{"ab":{"type":"string","minLength":2},"c":{"type":"integer"}},"required":["ab","c"]}`: len(`{"ab":"xx","c":0}`),
		`{"type":"object","properties":{"ab":{"type":"string"},"c":{"type":"integer"}},"required":["c"]}`:                    len(`{"c":0}`),
		`{"type":"array","items":{"enum":["long",1]},"minItems":3}`:                                                          len(`[1,1,1]`),
		`{"type":["null","boolean"]}`:                  4,
		`{"anyOf":[{"const":"abc"},{"type":"array"}]}`: 2,
	} {
		g, err := Compile([]byte(schema))
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(g, v)
		if err != nil {
			t.Fatal(err)
		}
		if c.MinTokens() != want {
			t.Errorf("%s: MinTokens %d, want %d", schema, c.MinTokens(), want)
		}
	}
	c, _ := New(AnyObject(), v)
	if c.MinTokens() != 2 {
		t.Errorf("json_object: MinTokens %d, want 2", c.MinTokens())
	}
}

// With exactly MinTokens to go, every random walk still ends complete and valid.
func TestTightBudget(t *testing.T) {
	v, stop := byteVocab(extraTokens...)
	r := rand.New(rand.NewPCG(5, 5))
	for _, src := range []string{
		`{"type":"object","properties":{"name":{"type":"string","minLength":3},"n":{"type":"array","items":{"type":"number"},"minItems":2}},"required":["name","n"]}`,
		`{"anyOf":[{"const":"abcdefgh"},{"type":"object","properties":{"k":{"enum":["x","yy"]}},"required":["k"]}]}`,
		`{"type":"string","minLength":4,"maxLength":6}`,
	} {
		g, err := Compile([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := New(g, v)
		for i := 0; i < 300; i++ {
			out, _ := randomRun(t, g, v, stop, c.MinTokens()+r.IntN(3), r)
			checkValid(t, g, src, out)
		}
	}
}

func TestWrapped(t *testing.T) {
	v, stop := byteVocab(extraTokens...)
	g, err := CompileWrapped([]byte(`{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`), "<tool_call>\n", "\n</tool_call>")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 50; i++ {
		out, _ := randomRun(t, g, v, stop, 40, r)
		s := string(out)
		if !strings.HasPrefix(s, "<tool_call>\n") || !strings.HasSuffix(s, "\n</tool_call>") {
			t.Fatalf("%q", s)
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(s, "<tool_call>\n"), "\n</tool_call>")
		checkValid(t, g, "wrapped", []byte(inner))
	}
}

func TestVocabMissingBytes(t *testing.T) {
	toks := [][]byte{[]byte("{"), []byte("}"), []byte(`"`), []byte("a")}
	v := NewVocab(len(toks), func(id int) ([]byte, bool) { return toks[id], true }, nil)
	if _, err := New(AnyObject(), v); !errors.Is(err, ErrVocab) {
		t.Fatalf("got %v, want ErrVocab", err)
	}
}

// FuzzCompile: any input compiles or is refused with a sentinel error, and a
// compiled schema's random outputs parse and validate.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{`{}`, `true`, `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
		`{"type":"array","items":{"enum":[1,"x",null]},"minItems":1,"maxItems":2}`, `{"anyOf":[{"type":"integer"},{"const":[1,{"b":2}]}]}`,
		`{"type":["string","null"],"minLength":1,"maxLength":3}`, `{"type":"object","additionalProperties":{"type":"boolean"}}`,
		`{"pattern":"x"}`, `{"type":"string","minLength":1e400}`, `{"enum":[]}`} {
		f.Add([]byte(s), uint64(1))
	}
	v, stop := byteVocab(extraTokens...)
	f.Fuzz(func(t *testing.T, schema []byte, seed uint64) {
		g, err := Compile(schema)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("%s: error without a sentinel: %v", schema, err)
			}
			return
		}
		c, err := New(g, v)
		if err != nil {
			t.Fatal(err)
		}
		if c.MinTokens() > 400 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 0))
		out, _ := randomRun(t, g, v, stop, c.MinTokens()+r.IntN(30), r)
		checkValid(t, g, string(schema), out)
	})
}

func TestIsInteger(t *testing.T) {
	for n, want := range map[string]bool{"1": true, "-0": true, "1.0": true, "1.5": false, "1e2": true, "15e-1": false,
		"150e-2": false, "1500e-2": true, "0.5e1": true, "0.05e1": false, "1e99999999999999999999": true, "1e-99999999999999999999": false,
		"0e-99999999999999999999": true, "2.55E+1": false, "2.50E+1": true} {
		if isInteger(json.Number(n)) != want {
			t.Errorf("isInteger(%s) = %v", n, !want)
		}
	}
}
