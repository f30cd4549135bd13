package library

import (
	"bytes"
	"testing"
)

// FuzzReadInstances: any instances.jsonl gives instances (with sane
// embeddings of one length) or an error naming a line, never a panic.
func FuzzReadInstances(f *testing.F) {
	f.Add([]byte(`{"input":"a","answer_choices":["x","y"],"target":"x"}` + "\n" + `{"input":"b","embedding":[1,2]}`))
	f.Add([]byte("{\"input\":\"\"}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"input":"a","embedding":"oops"}`))
	f.Add([]byte(`{"input":"a","embedding":[3e38,3e38]}`))
	f.Add([]byte(`{"input":"a","embedding":[1e39]}`))
	f.Add([]byte(`{"input":"a","embedding":[0,0,0]}`))
	f.Add([]byte(`{"input":"a","embedding":[1,2]}` + "\n" + `{"input":"b","embedding":[1,2,3]}`))
	f.Add([]byte(`{"input":"a","embedding":[1e-30,-9999]}` + "\n" + `{"input":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, err := ReadInstances(bytes.NewReader(b), "instances.jsonl")
		if err != nil {
			return
		}
		dim := -1
		for _, in := range ins {
			if in.Text == "" {
				t.Fatal("accepted an instance without input")
			}
			if len(in.Embedding) == 0 {
				continue
			}
			if err := checkEmbedding(in.Embedding); err != nil {
				t.Fatalf("accepted a bad embedding: %v", err)
			}
			if dim >= 0 && len(in.Embedding) != dim {
				t.Fatalf("accepted embeddings of %d and %d dimensions", dim, len(in.Embedding))
			}
			dim = len(in.Embedding)
		}
	})
}
