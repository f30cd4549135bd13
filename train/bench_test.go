package train

import (
	"math/rand/v2"
	"testing"

	"roe/adapters"
	"roe/model"
)

// randomLoRA returns a rank-r adapter on all 7 projections with small random A
// and B (B non-zero so every product is real work).
func randomLoRA(c model.Config, r int, seed uint64) *adapters.LoRA {
	rng := rand.New(rand.NewPCG(seed, 2))
	cfg := adapters.Config{R: r, Alpha: float64(2 * r), TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
	l := adapters.New(c, cfg)
	for i := 0; i < c.NumLayers; i++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			out, in := c.ProjShape(p)
			pr := &adapters.Pair{A: make([]float32, r*in), B: make([]float32, out*r), Rank: r, In: in, Out: out, Alpha: float64(2 * r)}
			for j := range pr.A {
				pr.A[j] = float32(rng.NormFloat64() * 0.02)
			}
			for j := range pr.B {
				pr.B[j] = float32(rng.NormFloat64() * 0.001)
			}
			l.SetPair(i, p, pr)
		}
	}
	return l
}

// benchTrainStep measures one LoRA training step: forward, backward and AdamW.
func benchTrainStep(b *testing.B, m *model.Model, nseq, T int) {
	l := randomLoRA(m.Config, 16, 1)
	r := rand.New(rand.NewPCG(5, 6))
	lens := make([]int, nseq)
	for i := range lens {
		lens[i] = T
	}
	batch := randomTrainBatch(r, m.Config.VocabSize, lens...)
	o := NewAdamW(1e-4, 0.01)
	params := LoRAParams(l)
	b.ResetTimer()
	for range b.N {
		_, g, err := LossAndGrads(m, l, batch, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Step(params, g.LoRA, 1e-4); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(nseq*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkLoRATrainStepStories(b *testing.B) {
	m := loadRefModel(b, storiesDir)
	benchTrainStep(b, m, 8, 64)
}

func BenchmarkLoRATrainStepSmolLM2(b *testing.B) {
	m, err := model.Random(model.SmolLM2Shape(), 1)
	if err != nil {
		b.Fatal(err)
	}
	benchTrainStep(b, m, 4, 128)
}
