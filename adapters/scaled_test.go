package adapters

import (
	"math"
	"math/rand/v2"
	"testing"

	"roe/model"
)

// Scaled adds s times the dense update s·B·A of every module, over a few
// rows (decode) and many (prefill), and adds nothing at scale 0.
func TestScaled(t *testing.T) {
	l := Random(testBase, 3, 5)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []float32{0.5, -2, 0} {
		a := Scaled(l, s)
		for _, rows := range []int{1, fewRows + 3} {
			for p := model.Proj(0); p < model.NumProj; p++ {
				pr := l.Pair(0, p)
				x := make([]float32, rows*pr.In)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				y := make([]float32, rows*pr.Out)
				for i := range y {
					y[i] = 1
				}
				a.AddDelta(0, p, x, y, rows)
				d := pr.Delta() // [Out, In]
				for r := 0; r < rows; r++ {
					for o := 0; o < pr.Out; o++ {
						var want float64 = 1
						for i := 0; i < pr.In; i++ {
							want += float64(s) * float64(d[o*pr.In+i]) * float64(x[r*pr.In+i])
						}
						if got := float64(y[r*pr.Out+o]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("s=%g rows=%d proj %d: y[%d,%d] = %g, want %g", s, rows, p, r, o, got, want)
						}
					}
				}
			}
		}
	}
	if Scaled(l, 1) != model.Adapter(l) {
		t.Error("Scaled(l, 1) is not l itself")
	}
}
