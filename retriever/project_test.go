package retriever

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// Project's axes are the top eigenvectors of the normalised rows'
// covariance (checked against gonum's symmetric eigensolver), and a query
// equal to a row lands where the row does.
func TestProject(t *testing.T) {
	for _, norm := range []Normalization{Raw, L2, CenterL2} {
		const d, n = 6, 40
		r := rand.New(rand.NewPCG(3, 4))
		ix := NewIndex(d, norm)
		var all [][]float32
		for e, name := range []string{"a", "b"} {
			var embs [][]float32
			var texts []string
			for i := range n {
				v := make([]float32, d)
				for j := range v {
					v[j] = float32(r.NormFloat64()) * []float32{3, 1.5, 0.5, 0.3, 0.2, 0.1}[j]
				}
				v[2] += float32(4 * e) // the experts apart along axis 2
				embs = append(embs, v)
				texts = append(texts, name+string(rune('0'+i%10)))
			}
			all = append(all, embs...)
			if err := ix.Add(name, embs, texts); err != nil {
				t.Fatal(err)
			}
		}
		probe := []int{0, 7, n + 3}
		var qs [][]float32
		for _, i := range probe {
			qs = append(qs, all[i])
		}
		p, err := ix.Project(0, qs)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Points) != 2*n || p.Points[0].Expert != "a" || p.Points[n].Expert != "b" || p.Points[1].Text != "a1" {
			t.Fatalf("%s: points %+v", norm, p.Points[:2])
		}
		// The reference: the normalised rows' covariance, eigendecomposed.
		ix.mu.RLock()
		X := mat.NewDense(2*n, d, nil)
		for i := range 2 * n {
			x := append([]float32(nil), ix.data[i*d:(i+1)*d]...)
			ix.normalizeRow(x, i)
			for j := range d {
				X.Set(i, j, float64(x[j]-p.Mean[j]))
			}
		}
		ix.mu.RUnlock()
		var C mat.SymDense
		C.SymOuterK(1/float64(2*n), X.T())
		var eig mat.EigenSym
		if !eig.Factorize(&C, true) {
			t.Fatal("eigen")
		}
		vals := eig.Values(nil) // ascending
		var vecs mat.Dense
		eig.VectorsTo(&vecs)
		var trace float64
		for _, v := range vals {
			trace += v
		}
		for k := range 2 {
			col := d - 1 - k
			var dot float64
			for j := range d {
				dot += vecs.At(j, col) * float64(p.Axes[k][j])
			}
			if math.Abs(math.Abs(dot)-1) > 1e-3 {
				t.Errorf("%s: axis %d is off the eigenvector by |cos| %.5f", norm, k, math.Abs(dot))
			}
			if want := vals[col] / trace; math.Abs(p.Variance[k]-want) > 1e-3 {
				t.Errorf("%s: variance share %d = %.4f, want %.4f", norm, k, p.Variance[k], want)
			}
		}
		for k, i := range probe {
			x, y := p.Queries[k].X, p.Queries[k].Y
			if math.Abs(float64(x-p.Points[i].X)) > 1e-4 || math.Abs(float64(y-p.Points[i].Y)) > 1e-4 {
				t.Errorf("%s: row %d placed at (%v, %v), the map has (%v, %v)", norm, i, x, y, p.Points[i].X, p.Points[i].Y)
			}
		}
		if _, err := ix.Project(0, [][]float32{make([]float32, d+1)}); err == nil {
			t.Errorf("%s: a query of the wrong length placed", norm)
		}
		// A sample: every second row.
		if p, err := ix.Project(n, nil); err != nil || len(p.Points) != n || p.Points[1].Text != "a2" || p.Points[n/2].Expert != "b" {
			t.Errorf("%s: sample of %d: %d points, %v", norm, n, len(p.Points), err)
		}
	}
	if p, err := NewIndex(4, L2).Project(10, [][]float32{{1, 0, 0, 0}}); err != nil || len(p.Points) != 0 || len(p.Queries) != 1 {
		t.Errorf("empty index: %+v %v", p, err)
	}
}
