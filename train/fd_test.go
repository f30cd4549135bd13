package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"roe/adapters"
	"roe/model"
)

// Finite-difference checks. The loss is computed in float32 (with a float64
// final sum), so central differences use a large step h = 5e-3: the float32
// noise of the loss (~1e-6) then costs ~1e-4 in the quotient and the O(h²)
// truncation a few 1e-5 on these tiny models. The tolerance 1e-3 + 1e-2·|g| is
// still far below the size of the gradients checked (the largest coordinate of
// each tensor, plus random ones), so a wrong formula, a missing term or a sign
// error fails. The golden tests check the same code to 1e-6 against float64.

const fdH = 5e-3

type fdCase struct {
	name string
	p    []float32 // the parameter tensor, perturbed in place
	g    []float32 // its analytic gradient
}

// fdCheck perturbs coordinates of each case and compares the central
// difference of loss() with the analytic gradient.
func fdCheck(t *testing.T, loss func() float64, cases []fdCase, randomPer int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	worst := 0.0
	n := 0
	for _, c := range cases {
		idx := []int{argmaxAbs(c.g)}
		for range randomPer {
			idx = append(idx, r.IntN(len(c.p)))
		}
		for _, i := range idx {
			old := c.p[i]
			c.p[i] = old + fdH
			lp := loss()
			c.p[i] = old - fdH
			lm := loss()
			c.p[i] = old
			fd := (lp - lm) / (2 * fdH)
			an := float64(c.g[i])
			d := math.Abs(fd - an)
			worst = max(worst, d)
			n++
			if d > 1e-3+1e-2*math.Abs(an) {
				t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", c.name, i, an, fd)
			}
		}
	}
	t.Logf("%d coordinates, max |analytic − FD| %.3g", n, worst)
}

func argmaxAbs(v []float32) int {
	j := 0
	for i, x := range v {
		if math.Abs(float64(x)) > math.Abs(float64(v[j])) {
			j = i
		}
	}
	return j
}

// randomTrainBatch makes sequences of the given lengths with random ids and a loss
// mask on the second half of each.
func randomTrainBatch(r *rand.Rand, vocab int, lens ...int) Batch {
	var b Batch
	for _, n := range lens {
		toks, mask := make([]int, n), make([]bool, n)
		for i := range toks {
			toks[i] = r.IntN(vocab)
			mask[i] = i >= n/2
		}
		b.Tokens = append(b.Tokens, toks)
		b.LossMask = append(b.LossMask, mask)
	}
	return b
}

func lossFunc(t *testing.T, m *model.Model, l *adapters.LoRA, b Batch) func() float64 {
	return func() float64 {
		v, err := Loss(m, l, b)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestFDLoRA: LoRA gradients of the llama golden model with the golden adapter
// on a batch of three sequences of different lengths.
func TestFDLoRA(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
	r := rand.New(rand.NewPCG(3, 4))
	b := randomTrainBatch(r, m.Config.VocabSize, 17, 5, 30)
	_, g, err := LossAndGrads(m, l, b, false)
	if err != nil {
		t.Fatal(err)
	}
	params := LoRAParams(l)
	var cases []fdCase
	for _, k := range SortedKeys(params) {
		cases = append(cases, fdCase{k, params[k], g.LoRA[k]})
	}
	fdCheck(t, lossFunc(t, m, l, b), cases, 1, 5)
}

// TestFDFullQwen2: full gradients of the Qwen2 variant (q/k/v biases, tied
// embeddings, so the embedding gets both the lookup's and the LM head's
// gradient), with its LoRA adapter applied at the same time.
func TestFDFullQwen2(t *testing.T) {
	m := loadRefModel(t, goldenDir+"/qwen2").Clone()
	l := loadRefLoRA(t, trainDir+"/qwen2", m.Config)
	r := rand.New(rand.NewPCG(7, 8))
	b := randomTrainBatch(r, m.Config.VocabSize, 9, 14)
	_, g, err := LossAndGrads(m, l, b, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Base["lm_head.weight"]; ok {
		t.Fatal("tied model has an lm_head gradient")
	}
	if len(g.LoRA) != 28 {
		t.Fatalf("%d LoRA gradients with full", len(g.LoRA))
	}
	params := BaseParams(m)
	var cases []fdCase
	for _, k := range SortedKeys(params) {
		cases = append(cases, fdCase{k, params[k], g.Base[k]})
	}
	// embedding rows: a token in the input (lookup + LM head) and one that is
	// not (LM head only)
	H := m.Config.HiddenSize
	used := map[int]bool{}
	for _, s := range b.Tokens {
		for _, id := range s {
			used[id] = true
		}
	}
	unused := 0
	for used[unused] {
		unused++
	}
	E, dE := params["model.embed_tokens.weight"], g.Base["model.embed_tokens.weight"]
	in := b.Tokens[0][3]
	cases = append(cases,
		fdCase{"embed row (input token)", E[in*H : (in+1)*H], dE[in*H : (in+1)*H]},
		fdCase{"embed row (unused token)", E[unused*H : (unused+1)*H], dE[unused*H : (unused+1)*H]})
	fdCheck(t, lossFunc(t, m, l, b), cases, 1, 9)
}

// TestFDTiedStories: stories260K (tied, 5 layers, head_dim 8), full gradients
// of the embedding checked by finite differences, plus a few other tensors.
func TestFDTiedStories(t *testing.T) {
	m := loadRefModel(t, storiesDir).Clone()
	if !m.Config.TieWordEmbeddings {
		t.Fatal("stories260K should be tied")
	}
	r := rand.New(rand.NewPCG(11, 12))
	b := randomTrainBatch(r, m.Config.VocabSize, 24, 40)
	_, g, err := LossAndGrads(m, nil, b, true)
	if err != nil {
		t.Fatal(err)
	}
	params := BaseParams(m)
	H := m.Config.HiddenSize
	E, dE := params["model.embed_tokens.weight"], g.Base["model.embed_tokens.weight"]
	in := b.Tokens[1][5]
	cases := []fdCase{{"model.embed_tokens.weight", E, dE},
		{"embed row (input token)", E[in*H : (in+1)*H], dE[in*H : (in+1)*H]}}
	for _, k := range []string{"model.layers.0.self_attn.k_proj.weight", "model.layers.4.mlp.down_proj.weight",
		"model.layers.2.input_layernorm.weight", "model.norm.weight"} {
		cases = append(cases, fdCase{k, params[k], g.Base[k]})
	}
	fdCheck(t, lossFunc(t, m, nil, b), cases, 4, 13)

	// the tied gradient is the sum of the lookup's scatter of d inputs_embeds
	// and the LM head's: removing the scatter leaves rows of unused tokens alone.
	lookup := make([]float32, len(dE))
	for i, s := range b.Tokens {
		embeddingBackward(lookup, g.InputsEmbeds[i], s, H)
	}
	used := map[int]bool{}
	for _, s := range b.Tokens {
		for _, id := range s {
			used[id] = true
		}
	}
	nz := 0
	for v := 0; v < m.Config.VocabSize; v++ {
		for j := 0; j < H; j++ {
			if !used[v] && lookup[v*H+j] != 0 {
				t.Fatal("lookup gradient on an unused row")
			}
			if dE[v*H+j] != 0 {
				nz++
			}
		}
	}
	if nz < m.Config.VocabSize*H/2 {
		t.Errorf("tied embedding gradient has only %d non-zeros: LM-head part missing?", nz)
	}
}
