package retriever

import (
	"math"
	"math/rand/v2"

	"roe/kernels"
)

// A Projection is the index seen from above: the plane of the two principal
// axes of its rows, normalised as the search sees them (centred and scaled
// under center-l2, scaled under l2). It places the library's instances, and
// queries beside them, on a map.
type Projection struct {
	Mean     []float32    // [dim] mean of the normalised rows
	Axes     [2][]float32 // [2][dim] unit principal axes, the first the widest
	Variance [2]float64   // share of the rows' total variance along each axis
	Points   []Point      // the rows placed (all of them, or an even sample)
	Queries  []Point      // the queries placed, in order (X and Y only)
}

// Point is one placed vector: an instance (Expert, Text) or a query.
type Point struct {
	Expert string  `json:"expert,omitempty"`
	Text   string  `json:"text"`
	X      float32 `json:"x"`
	Y      float32 `json:"y"`
}

// projectIters bounds the subspace iterations of Project.
const projectIters = 200

// Project places at most maxPoints rows of the index (every
// ⌈N/maxPoints⌉-th row when there are more; maxPoints ≤ 0 places all) on
// the principal plane of the placed rows, and the queries beside them,
// normalised as a search normalises queries: a sample stands for the
// library, and memory stays [maxPoints, dim] however large the index.
func (ix *Index) Project(maxPoints int, queries [][]float32) (*Projection, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if err := ix.check(); err != nil {
		return nil, err
	}
	if err := ix.checkVectors("query", queries); err != nil {
		return nil, err
	}
	N, d := ix.rows(), ix.dim
	p := &Projection{Mean: make([]float32, d), Queries: make([]Point, len(queries))}
	if N == 0 {
		p.Axes = [2][]float32{make([]float32, d), make([]float32, d)}
		return p, nil
	}
	ix.prepare()
	step := 1
	if maxPoints > 0 && N > maxPoints {
		step = (N + maxPoints - 1) / maxPoints
	}
	// X: [n, d] the placed rows as the search sees them, centred on their mean.
	n := (N + step - 1) / step
	X := make([]float32, n*d)
	for i := range n {
		r, x := i*step, X[i*d:(i+1)*d]
		copy(x, ix.data[r*d:(r+1)*d])
		ix.normalizeRow(x, r)
		kernels.Axpy(1, x, p.Mean)
	}
	kernels.Scale(p.Mean, 1/float32(n))
	var total float64
	for i := range n {
		x := X[i*d : (i+1)*d]
		kernels.Axpy(-1, p.Mean, x)
		total += float64(kernels.Dot(x, x))
	}
	lambda := principalPlane(X, n, d, &p.Axes)
	for i := range 2 {
		if total > 0 {
			p.Variance[i] = lambda[i] * float64(n) / total
		}
	}
	for _, e := range ix.experts {
		for r := (e.start + step - 1) / step * step; r < e.start+e.n; r += step {
			x := X[r/step*d : (r/step+1)*d]
			p.Points = append(p.Points, Point{Expert: e.name, Text: e.texts[r-e.start], X: kernels.Dot(x, p.Axes[0]), Y: kernels.Dot(x, p.Axes[1])})
		}
	}
	qm, _ := ix.normalizeQueries(queries)
	for i := range queries {
		v := qm[i*d : (i+1)*d]
		kernels.Axpy(-1, p.Mean, v)
		p.Queries[i].X, p.Queries[i].Y = kernels.Dot(v, p.Axes[0]), kernels.Dot(v, p.Axes[1])
	}
	return p, nil
}

// normalizeRow turns a copy of row r in place into the search's view of it:
// centred on the index's mean (center-l2) and scaled. The caller holds mu,
// prepared.
func (ix *Index) normalizeRow(x []float32, r int) {
	switch ix.norm {
	case Raw:
		return
	case CenterL2:
		kernels.Axpy(-1, ix.mean, x)
	}
	kernels.Scale(x, ix.inv[r])
}

// principalPlane sets axes to the top two eigenvectors of XᵀX (X: [N, d],
// centred) by subspace iteration, and returns their eigenvalues over N.
func principalPlane(X []float32, N, d int, axes *[2][]float32) [2]float64 {
	r := rand.New(rand.NewPCG(1, 2))
	V := [2][]float32{make([]float32, d), make([]float32, d)}
	for i := range V {
		for j := range V[i] {
			V[i][j] = float32(r.NormFloat64())
		}
	}
	orthonormalize(&V)
	W := [2][]float32{make([]float32, d), make([]float32, d)}
	xv := make([]float32, N)
	var lambda [2]float64
	for it := 0; it < projectIters; it++ {
		for i := range V {
			clear(W[i])
			for n := range N { // W = Xᵀ(X v)
				xv[n] = kernels.Dot(X[n*d:(n+1)*d], V[i])
			}
			for n := range N {
				kernels.Axpy(xv[n], X[n*d:(n+1)*d], W[i])
			}
			lambda[i] = float64(kernels.Dot(W[i], V[i])) / float64(N)
		}
		orthonormalize(&W)
		delta := 2 - math.Abs(float64(kernels.Dot(W[0], V[0]))) - math.Abs(float64(kernels.Dot(W[1], V[1])))
		V, W = W, V
		if delta < 1e-7 {
			break
		}
	}
	if lambda[1] > lambda[0] {
		V[0], V[1], lambda[0], lambda[1] = V[1], V[0], lambda[1], lambda[0]
	}
	// A fixed sign, so maps of the same library look alike.
	for i := range V {
		var s float32
		for _, x := range V[i] {
			s += x
		}
		if s < 0 {
			kernels.Scale(V[i], -1)
		}
	}
	*axes = V
	return lambda
}

// orthonormalize makes the pair orthonormal (Gram–Schmidt); a vector that
// vanishes is left zero.
func orthonormalize(V *[2][]float32) {
	unit := func(v []float32) {
		if n := math.Sqrt(float64(kernels.Dot(v, v))); n > 0 {
			kernels.Scale(v, float32(1/n))
		}
	}
	unit(V[0])
	kernels.Axpy(-kernels.Dot(V[0], V[1]), V[0], V[1])
	unit(V[1])
}
