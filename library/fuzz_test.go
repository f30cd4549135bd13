package library

import (
	"bytes"
	"testing"
)

// FuzzReadInstances: any instances.jsonl gives instances or an error naming a line, never a panic.
func FuzzReadInstances(f *testing.F) {
	f.Add([]byte(`{"input":"a","answer_choices":["x","y"],"target":"x"}` + "\n" + `{"input":"b","embedding":[1,2]}`))
	f.Add([]byte("{\"input\":\"\"}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"input":"a","embedding":"oops"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, err := ReadInstances(bytes.NewReader(b), "instances.jsonl")
		if err != nil {
			return
		}
		for _, in := range ins {
			if in.Text == "" {
				t.Fatal("accepted an instance without input")
			}
		}
	})
}
