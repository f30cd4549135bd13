package library

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"roe/model"
	"roe/model/safetensors"
)

// shape describes a synthetic adapter: q_proj and v_proj of every layer, square.
type shape struct{ layers, hidden, rank, inst, dim int }

var small = shape{layers: 2, hidden: 32, rank: 4, inst: 10, dim: 16}

// baseConfig is a model config that the synthetic adapters of s fit.
func baseConfig(t testing.TB, s shape) model.Config {
	t.Helper()
	c, err := model.ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"hidden_size":%d,"intermediate_size":%d,
	"num_hidden_layers":%d,"num_attention_heads":4,"num_key_value_heads":4,"vocab_size":100,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":128}`, s.hidden, 2*s.hidden, s.layers))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func seedOf(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// synth builds a deterministic expert from its name: the same name gives
// the same bytes, so a checker can regenerate what must have been stored.
func synth(name string, s shape) *Expert {
	r := rand.New(rand.NewPCG(seedOf(name), 1))
	vec := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale)
		}
		return v
	}
	var ts []safetensors.Tensor
	for l := 0; l < s.layers; l++ {
		for _, p := range []string{"q_proj", "v_proj"} {
			key := fmt.Sprintf("base_model.model.model.layers.%d.self_attn.%s", l, p)
			ts = append(ts,
				safetensors.F32Tensor(key+".lora_A.weight", []int{s.rank, s.hidden}, vec(s.rank*s.hidden, 0.1)),
				safetensors.F32Tensor(key+".lora_B.weight", []int{s.hidden, s.rank}, vec(s.hidden*s.rank, 0.1)))
		}
	}
	ins := make([]Instance, s.inst)
	for i := range ins {
		ins[i] = Instance{
			Text:          fmt.Sprintf("Answer Choices: yes ||| no, Instance: %s #%d <&>", name, i),
			AnswerChoices: []string{"yes", "no"},
			Embedding:     vec(s.dim, 1),
		}
		if i%3 != 0 {
			ins[i].Target = []string{"yes", "no"}[i%2]
		}
	}
	return &Expert{
		Manifest: Manifest{Name: name, Kind: KindPrompt, Dataset: "rte", Template: "gpt3", Prompt: "gpt3-style",
			Description: "synthetic " + name, BaseFingerprint: "fp-test", Embedder: "test/mean-last",
			Training: Training{DataSize: 1000, Steps: 50, Seeds: []int64{1, 2}, Metrics: map[string]float64{"acc": 0.75}, Notes: "n"}},
		AdapterConfig: fmt.Appendf(nil, `{"peft_type":"LORA","r":%d,"lora_alpha":%d,"target_modules":["q_proj","v_proj"],"bias":"none"}`, s.rank, 2*s.rank),
		Tensors:       ts,
		Instances:     ins,
	}
}

func openMem(t testing.TB, opts ...func(Options) Options) *Library {
	t.Helper()
	o := DefaultOptions("").WithInMemory(true)
	for _, f := range opts {
		o = f(o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func openDir(t testing.TB, dir string) *Library {
	t.Helper()
	l, err := Open(DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sameExpert fails unless got holds exactly want's data (and manifest, when man).
func sameExpert(t testing.TB, got, want *Expert, man bool) {
	t.Helper()
	if man && !reflect.DeepEqual(got.Manifest, want.Manifest) {
		t.Fatalf("manifest\n got %+v\nwant %+v", got.Manifest, want.Manifest)
	}
	if !bytes.Equal(got.AdapterConfig, want.AdapterConfig) {
		t.Fatalf("adapter config %s, want %s", got.AdapterConfig, want.AdapterConfig)
	}
	if err := checkTensors(got.Tensors, want.Tensors); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Instances, want.Instances) {
		t.Fatalf("instances differ: got %d, want %d", len(got.Instances), len(want.Instances))
	}
}

func checkTensors(got, want []safetensors.Tensor) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d tensors, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			return fmt.Errorf("tensor %d: got %s %s %v (%d bytes), want %s %s %v (%d bytes) or data differs",
				i, g.Name, g.DType, g.Shape, len(g.Data), w.Name, w.DType, w.Shape, len(w.Data))
		}
	}
	return nil
}

// dataIDs lists the distinct ids under d/.
func dataIDs(t testing.TB, l *Library) map[string]int {
	t.Helper()
	ids := map[string]int{}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixData)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id, _, _ := strings.Cut(strings.TrimPrefix(string(it.Item().Key()), prefixData), "/")
			ids[id]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
