package s3sync

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"roe/library"
	"roe/model/safetensors"
)

func testExpert() *library.Expert {
	return &library.Expert{
		Manifest: library.Manifest{ID: "0123456789abcdef0123456789abcdef", Name: "rte/x", Kind: library.KindPrompt,
			BaseFingerprint: "fp", Embedder: "e", NumInstances: 2, Dim: 3, NumTensors: 1, AdapterBytes: 8,
			Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		AdapterConfig: []byte(`{"peft_type":"LORA","r":1}`),
		Tensors:       []safetensors.Tensor{safetensors.F32Tensor("a", []int{1, 2}, []float32{1.5, -2})},
		Instances: []library.Instance{
			{Text: "one", AnswerChoices: []string{"yes", "no"}, Target: "yes", Embedding: []float32{1, 2, 3}},
			{Text: "two", Embedding: []float32{-1, 0.5, 7}},
		},
	}
}

func TestObjectRoundTrip(t *testing.T) {
	e := testExpert()
	b, err := encodeExpert(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeExpert("k", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
	}
	for _, n := range []int{0, 5, len(objectMagic) + 3, len(b) - 1} {
		if _, err := decodeExpert("k", b[:n]); !errors.Is(err, library.ErrCorrupt) {
			t.Errorf("truncated to %d: %v, want ErrCorrupt", n, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string][2]string{"s3://b": {"b", ""}, "s3://b/p/q/": {"b", "p/q"}} {
		b, p, err := ParseURL(in)
		if err != nil || b != want[0] || p != want[1] {
			t.Errorf("ParseURL(%q) = %q, %q, %v", in, b, p, err)
		}
	}
	for _, in := range []string{"", "s3://", "/tmp/x", "http://b/p"} {
		if _, _, err := ParseURL(in); !errors.Is(err, library.ErrInvalid) {
			t.Errorf("ParseURL(%q): %v, want ErrInvalid", in, err)
		}
	}
}

func FuzzDecodeExpert(f *testing.F) {
	b, _ := encodeExpert(testExpert())
	f.Add(b)
	f.Add([]byte(objectMagic + "\x02\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeExpert("k", b)
		if err != nil {
			if !errors.Is(err, library.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if _, err := encodeExpert(e); err != nil && !errors.Is(err, library.ErrInvalid) {
			t.Fatal(err)
		}
	})
}
