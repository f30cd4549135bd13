package library

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestEmbeddingChecks: Add refuses embeddings that would break routing or
// merges (a client's 3e38 made every routing score 0), names the instance,
// and stores nothing.
func TestEmbeddingChecks(t *testing.T) {
	l := openMem(t, func(o Options) Options { return o.WithEmbedder("test/mean-last", small.dim) })
	if _, err := l.Add(synth("keep", small)); err != nil {
		t.Fatal(err)
	}
	before, _ := l.List()
	beforeIDs := dataIDs(t, l)
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	cases := []struct {
		name string
		mod  func(e *Expert)
		want string
	}{
		{"wrong dim for the embedder", func(e *Expert) {
			for i := range e.Instances {
				e.Instances[i].Embedding = e.Instances[i].Embedding[:3]
			}
		}, "3-dim embeddings, but embedder test/mean-last makes 16-dim"},
		{"dims differ", func(e *Expert) { e.Instances[4].Embedding = append(e.Instances[4].Embedding, 1) }, "instance 4 has a 17-dim"},
		{"nan", func(e *Expert) { e.Instances[2].Embedding[5] = nan }, "instance 2: embedding element 5 is NaN"},
		{"inf", func(e *Expert) { e.Instances[3].Embedding[0] = inf }, "instance 3: embedding element 0 is -Inf"},
		{"3e38", func(e *Expert) {
			for j := range e.Instances[7].Embedding {
				e.Instances[7].Embedding[j] = 3e38
			}
		}, "instance 7: embedding element 0 is 3e+38, outside ±10000"},
		{"just over the bound", func(e *Expert) { e.Instances[1].Embedding[9] = -1.0001e4 }, "instance 1: embedding element 9"},
		{"zero vector", func(e *Expert) { clear(e.Instances[6].Embedding) }, "instance 6: embedding is all zeros"},
		{"tiny", func(e *Expert) {
			for j := range e.Instances[0].Embedding {
				e.Instances[0].Embedding[j] = 1e-30
			}
		}, "instance 0: embedding has norm 4e-30"},
	}
	for _, c := range cases {
		e := synth("bad", small)
		c.mod(e)
		_, err := l.Add(e)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalid containing %q", c.name, err, c.want)
		}
		after, _ := l.List()
		if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(dataIDs(t, l), beforeIDs) {
			t.Errorf("%s: the Add changed the library", c.name)
			l.Remove(e.Name)
		}
	}
	// Sane values, large and small, are kept exactly.
	e := synth("ok", small)
	e.Instances[0].Embedding[0], e.Instances[1].Embedding[1] = 9999, -1e-20
	if _, err := l.Add(e); err != nil {
		t.Fatal(err)
	}
	if ins, err := l.Instances("ok"); err != nil || ins[0].Embedding[0] != 9999 || ins[1].Embedding[1] != -1e-20 {
		t.Fatalf("Instances: %v", err)
	}
	// Another embedder's embeddings may have another dimension.
	o := synth("other", shape{layers: 2, hidden: 32, rank: 4, inst: 3, dim: 8})
	o.Embedder = "other/mean"
	if _, err := l.Add(o); err != nil {
		t.Fatal(err)
	}
}

// TestReadInstancesEmbeddings: bad embeddings in instances.jsonl are
// refused with their line, before anything reaches Add.
func TestReadInstancesEmbeddings(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"input":"a","embedding":[1,2]}` + "\n\n" + `{"input":"b","embedding":[1,2,3]}`, "instances.jsonl:3: 3-dim embedding, line 1 has 2"},
		{`{"input":"a","embedding":[3e38,1]}`, "instances.jsonl:1: embedding element 0 is 3e+38"},
		{`{"input":"a","embedding":[1e39,1]}`, "instances.jsonl:1"},
		{`{"input":"a"}` + "\n" + `{"input":"b","embedding":[0,0,0]}`, "instances.jsonl:2: embedding is all zeros"},
	} {
		_, err := ReadInstances(strings.NewReader(c.in), "instances.jsonl")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want ErrInvalid containing %q", c.in, err, c.want)
		}
	}
	ins, err := ReadInstances(strings.NewReader(`{"input":"a","embedding":[1,-2]}`+"\n"+`{"input":"b"}`), "instances.jsonl")
	if err != nil || len(ins) != 2 || !reflect.DeepEqual(ins[0].Embedding, []float32{1, -2}) {
		t.Fatalf("valid file: %v %+v", err, ins)
	}
}
