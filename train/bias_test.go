package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"roe/adapters"
	"roe/internal/testmodel"
	"roe/model"
)

// A Llama with attention_bias and mlp_bias (biases on all seven
// projections): the trainer's forward gives the serving forward's token
// NLLs with an unmerged adapter, and its gradients (biases included) agree
// with finite differences.
func TestLlamaBiasesGrads(t *testing.T) {
	m := testmodel.Random(t, `{"architectures":["LlamaForCausalLM"],"hidden_size":32,"intermediate_size":48,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":64,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":128,"attention_bias":true,"mlp_bias":true}`, 5).Clone()
	l := adapters.Random(m.Config, 2, 3)
	b := randomTrainBatch(rand.New(rand.NewPCG(9, 10)), m.Config.VocabSize, 11, 7)
	nlls, err := TokenNLLs(m, l, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, toks := range b.Tokens {
		out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: toks, Adapter: l, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.VocabSize
		for p := 0; p+1 < len(toks); p++ {
			row := out[0].Logits[p*V : (p+1)*V]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = max(mx, float64(v))
			}
			s := 0.0
			for _, v := range row {
				s += math.Exp(float64(v) - mx)
			}
			want := mx + math.Log(s) - float64(row[toks[p+1]])
			if b.LossMask[i][p+1] && math.Abs(nlls[i][p]-want) > 1e-4 {
				t.Fatalf("sequence %d, position %d: trainer NLL %v, serving forward %v", i, p, nlls[i][p], want)
			}
		}
	}
	_, g, err := LossAndGrads(m, l, b, true)
	if err != nil {
		t.Fatal(err)
	}
	var cases []fdCase
	params := BaseParams(m)
	for _, k := range SortedKeys(params) {
		if g.Base[k] == nil {
			t.Fatalf("no gradient for %s", k)
		}
		cases = append(cases, fdCase{k, params[k], g.Base[k]})
	}
	lp := LoRAParams(l)
	for _, k := range SortedKeys(lp) {
		cases = append(cases, fdCase{k, lp[k], g.LoRA[k]})
	}
	fdCheck(t, lossFunc(t, m, l, b), cases, 1, 13)
}
