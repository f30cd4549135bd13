package adapters

import (
	"math/rand/v2"

	"roe/model"
)

// Random returns a rank-r adapter on all seven projections of every layer
// with A and B drawn from N(0, 0.02²) (seeded): speed does not depend on the
// values, so benchmarks use it in place of a trained expert.
func Random(base model.Config, r int, seed uint64) *LoRA {
	rng := rand.New(rand.NewPCG(seed, 7))
	l := New(base, Config{R: r, Alpha: float64(2 * r), TargetModules: moduleNames()})
	for layer := 0; layer < base.NumLayers; layer++ {
		for p := model.Proj(0); p < model.NumProj; p++ {
			out, in := base.ProjShape(p)
			a, b := make([]float32, r*in), make([]float32, out*r)
			for i := range a {
				a[i] = float32(rng.NormFloat64() * 0.02)
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64() * 0.02)
			}
			l.SetPair(layer, p, &Pair{A: a, B: b, Rank: r, In: in, Out: out, Alpha: float64(2 * r)})
		}
	}
	l.pack()
	return l
}
