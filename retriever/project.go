package retriever

import (
	"fmt"
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
	norm     Normalization
	imean    []float32 // [dim] the index's mean (center-l2), for queries
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
// the principal plane of the placed rows: a sample stands for the library,
// and memory stays [maxPoints, dim] however large the index.
func (ix *Index) Project(maxPoints int) (*Projection, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if err := ix.check(); err != nil {
		return nil, err
	}
	N, d := ix.rows(), ix.dim
	p := &Projection{norm: ix.norm, Mean: make([]float32, d)}
	if N == 0 {
		p.Axes = [2][]float32{make([]float32, d), make([]float32, d)}
		return p, nil
	}
	ix.prepare()
	if ix.norm == CenterL2 {
		p.imean = append([]float32(nil), ix.mean...)
	}
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
		p.normalize(x, ix.scale(r))
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
	return p, nil
}

// scale is row r's normalisation factor; the caller holds mu, prepared.
func (ix *Index) scale(r int) float32 {
	if ix.norm == Raw {
		return 1
	}
	return ix.inv[r]
}

// normalize turns a row in place into the search's view of it, given its
// scale s (1/‖x−μ‖, 1/‖x‖ or 1).
func (p *Projection) normalize(x []float32, s float32) {
	if p.imean != nil {
		kernels.Axpy(-1, p.imean, x)
	}
	kernels.Scale(x, s)
}

// Place puts a query embedding on the plane, normalised as a search
// normalises queries.
func (p *Projection) Place(q []float32) (x, y float32, err error) {
	if len(q) != len(p.Mean) {
		return 0, 0, fmt.Errorf("%w: a query of %d values for an index of %d", ErrDim, len(q), len(p.Mean))
	}
	v := append([]float32(nil), q...)
	s := float32(1)
	if p.norm != Raw {
		c := v
		if p.imean != nil {
			c = append([]float32(nil), v...)
			kernels.Axpy(-1, p.imean, c)
		}
		if ss := kernels.Dot(c, c); ss > 0 {
			s = float32(1 / math.Sqrt(float64(ss)))
		} else {
			s = 0
		}
	}
	p.normalize(v, s)
	kernels.Axpy(-1, p.Mean, v)
	return kernels.Dot(v, p.Axes[0]), kernels.Dot(v, p.Axes[1]), nil
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
	xv := make([]float32, N)
	var lambda [2]float64
	for it := 0; it < projectIters; it++ {
		var W [2][]float32
		for i := range V {
			W[i] = make([]float32, d)
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
		V = W
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
