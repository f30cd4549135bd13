package adapters

// SVD factoring of a merged update into a LoRA pair.
//
// The dense merge methods give a ΔW that is not a product of the inputs' factors,
// and serving it unmerged needs ΔW = B·A. The SVD gives it: ΔW = U·Σ·Vᵀ, stored
// as B = U·√Σ, A = √Σ·Vᵀ, scale 1, cut where the singular values fall to float32
// rounding (the numerical rank: exact for what float32 factors can hold). A
// requested rank below that truncates (Eckart–Young: the best rank-k
// approximation in Frobenius norm), and the same holds for compressing a sum of
// low-rank updates. This runs once per merge (and the Cache keeps the result),
// so it uses gonum in float64, off the hot path.

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// exactSVDMax is the largest min(Out, In) factored by a full SVD; larger dense
// updates use a randomized SVD (a variable so that tests can reach both paths).
var exactSVDMax = 256

// factors is one merged module.
type factors struct {
	A          []float32 // [k, In]
	B          []float32 // [Out, k]
	k          int
	exact      int     // the rank of the exact form (see MergeReport.ExactRank)
	compressed bool    // singular values above rounding were cut
	errSq      float64 // ‖ΔW − B·A‖²_F of the truncation (float64, before rounding to float32)
	normSq     float64 // ‖ΔW‖²_F
}

// eps32 is float32's machine epsilon.
const eps32 = 1.0 / (1 << 23)

// numericalRank counts the singular values (descending) of an [out, in] update
// above σ₀·max(out, in)·eps32, numpy's matrix_rank tolerance for float32: the
// rest is rounding of the float32 inputs, not signal.
func numericalRank(s []float64, out, in int) int {
	if len(s) == 0 || !(s[0] > 0) {
		return 0
	}
	tol := s[0] * float64(max(out, in)) * eps32
	n := 0
	for n < len(s) && s[n] > tol {
		n++
	}
	return n
}

// normSqOf is ‖B·A‖²_F = Σᵢⱼ (BᵀB)ᵢⱼ·(A·Aᵀ)ᵢⱼ without forming B·A, in float64.
//
//	b: [out, k], a: [k, in]
func normSqOf(a, b []float32, k, out, in int) float64 {
	gb, ga := make([]float64, k*k), make([]float64, k*k)
	for o := 0; o < out; o++ {
		row := b[o*k : (o+1)*k]
		for i, x := range row {
			for j, y := range row {
				gb[i*k+j] += float64(x) * float64(y)
			}
		}
	}
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			s := 0.0
			ai, aj := a[i*in:(i+1)*in], a[j*in:(j+1)*in]
			for t := range ai {
				s += float64(ai[t]) * float64(aj[t])
			}
			ga[i*k+j] = s
		}
	}
	t := 0.0
	for i := range gb {
		t += gb[i] * ga[i]
	}
	return max(t, 0)
}

// splitFactors builds B = U·√σ and A = √σ·Vᵀ from the first k singular triplets.
//
//	u: [out, ≥k], v: [in, ≥k], s: [≥k]
func splitFactors(u, v mat.Matrix, s []float64, k, out, in int) (a, b []float32) {
	a, b = make([]float32, k*in), make([]float32, out*k)
	for t := 0; t < k; t++ {
		r := math.Sqrt(math.Max(s[t], 0))
		for o := 0; o < out; o++ {
			b[o*k+t] = float32(u.At(o, t) * r)
		}
		for i := 0; i < in; i++ {
			a[t*in+i] = float32(r * v.At(i, t))
		}
	}
	return a, b
}

func sumSq(s []float64) float64 {
	t := 0.0
	for _, v := range s {
		t += v * v
	}
	return t
}

// refactorDense factors a dense update at its numerical rank, truncated to k
// when 0 < k is smaller.
//
//	d: [out, in]
func refactorDense(d []float32, out, in, k int) (factors, error) {
	m := min(out, in)
	w := make([]float64, len(d))
	normSq := 0.0
	for i, v := range d {
		w[i] = float64(v)
		normSq += w[i] * w[i]
	}
	a := mat.NewDense(out, in, w)
	if k > 0 && m > exactSVDMax && k+oversample < m/2 {
		return randomizedSVD(a, normSq, out, in, k)
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return factors{}, fmt.Errorf("%w: SVD of a [%d %d] update did not converge", ErrMerge, out, in)
	}
	s := svd.Values(nil)
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	nr := numericalRank(s, out, in)
	if k <= 0 || k > nr {
		k = nr
	}
	k = max(1, k) // a zero update still needs a pair
	fa, fb := splitFactors(&u, &v, s, k, out, in)
	return factors{A: fa, B: fb, k: k, exact: nr, compressed: k < nr, errSq: sumSq(s[k:]), normSq: sumSq(s)}, nil
}

// oversample and powerIters set the randomized SVD's accuracy (Halko, Martinsson
// and Tropp 2011, Algorithm 4.4): sketch k+oversample directions, refine twice.
const (
	oversample = 10
	powerIters = 2
)

// randomizedSVD finds the top-k singular triplets of a large dense update from a
// seeded Gaussian sketch. Its error is exact given the sketch: ‖A − Q·B_k‖² =
// ‖A‖² − Σ_{t<k} σ_t² because Q has orthonormal columns.
//
//	a: [out, in]
func randomizedSVD(a *mat.Dense, normSq float64, out, in, k int) (factors, error) {
	l := min(k+oversample, min(out, in))
	rng := rand.New(rand.NewPCG(0x5eed, uint64(out)<<32|uint64(in)))
	omega := mat.NewDense(in, l, nil)
	for i := 0; i < in; i++ {
		for j := 0; j < l; j++ {
			omega.Set(i, j, rng.NormFloat64())
		}
	}
	var y, z mat.Dense
	y.Mul(a, omega) // [out, l]
	q := orthonormalColumns(&y)
	for it := 0; it < powerIters; it++ {
		z.Mul(a.T(), q) // [in, l]
		qz := orthonormalColumns(&z)
		y.Mul(a, qz)
		q = orthonormalColumns(&y)
	}
	var small mat.Dense
	small.Mul(q.T(), a) // [l, in]
	var svd mat.SVD
	if !svd.Factorize(&small, mat.SVDThin) {
		return factors{}, fmt.Errorf("%w: SVD of a [%d %d] sketch did not converge", ErrMerge, l, in)
	}
	s := svd.Values(nil)
	var ub, v, u mat.Dense
	svd.UTo(&ub)
	svd.VTo(&v)
	u.Mul(q, &ub) // [out, l]
	// The sketch sees only l singular values: when they reach rounding within it,
	// that is the numerical rank; otherwise min(out, in) bounds it.
	nr, exact := numericalRank(s, out, in), min(out, in)
	if nr < l {
		exact = nr
	}
	k = max(1, min(k, nr))
	fa, fb := splitFactors(&u, &v, s, k, out, in)
	return factors{A: fa, B: fb, k: k, exact: exact, compressed: k < nr,
		errSq: math.Max(0, normSq-sumSq(s[:k])), normSq: normSq}, nil
}

// orthonormalColumns returns Q with orthonormal columns spanning x's columns
// (modified Gram–Schmidt, twice), dropping dependent columns to zero.
//
//	x: [m, n] → Q: [m, n]
func orthonormalColumns(x *mat.Dense) *mat.Dense {
	m, n := x.Dims()
	cols := make([][]float64, n)
	for j := range cols {
		cols[j] = mat.Col(nil, j, x)
	}
	orthonormalize(cols, nil)
	q := mat.NewDense(m, n, nil)
	for j, c := range cols {
		q.SetCol(j, c)
	}
	return q
}

// orthonormalize turns vectors into an orthonormal set in place (modified
// Gram–Schmidt with re-orthogonalisation) and, when r is not nil, writes the
// triangular factor: original v_j = Σ_{i≤j} r[i][j]·q_i. A vector that depends
// on the earlier ones becomes zero, with a zero row in r, so rank-deficient
// inputs (an expert merged with itself) stay exact.
//
//	vs: n vectors of one length; r: [n][n] or nil
func orthonormalize(vs [][]float64, r [][]float64) {
	for j, w := range vs {
		orig := math.Sqrt(dot64(w, w))
		for pass := 0; pass < 2; pass++ {
			for i := 0; i < j; i++ {
				c := dot64(vs[i], w)
				if c == 0 {
					continue
				}
				for t := range w {
					w[t] -= c * vs[i][t]
				}
				if r != nil {
					r[i][j] += c
				}
			}
		}
		nrm := math.Sqrt(dot64(w, w))
		if nrm == 0 || nrm <= 1e-12*orig {
			clear(w)
			if r != nil {
				r[j][j] = 0
			}
			continue
		}
		for t := range w {
			w[t] /= nrm
		}
		if r != nil {
			r[j][j] = nrm
		}
	}
}

func dot64(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// refactorLowRank factors ΔW = Bc·Ac, a sum of low-rank terms, to rank ≤ k (and
// ≤ its numerical rank) without
// forming ΔW: Bc = Qb·Rb and Acᵀ = Qa·Ra (Gram–Schmidt), so ΔW = Qb·(Rb·Raᵀ)·Qaᵀ
// and only the small R×R core needs an SVD. Cost O((Out+In)·R²) for R = Σ rᵢ.
//
//	bcols: R columns of Bc, each [out]; arows: R rows of Ac, each [in]
func refactorLowRank(bcols, arows [][]float64, out, in, k int) (factors, error) {
	R := len(bcols)
	rb, ra := square(R), square(R)
	orthonormalize(bcols, rb)
	orthonormalize(arows, ra)
	core := mat.NewDense(R, R, nil) // Rb·Raᵀ
	for i := 0; i < R; i++ {
		for j := 0; j < R; j++ {
			s := 0.0
			for t := 0; t < R; t++ {
				s += rb[i][t] * ra[j][t]
			}
			core.Set(i, j, s)
		}
	}
	var svd mat.SVD
	if !svd.Factorize(core, mat.SVDThin) {
		return factors{}, fmt.Errorf("%w: SVD of a %d×%d core did not converge", ErrMerge, R, R)
	}
	s := svd.Values(nil)
	var um, vm mat.Dense
	svd.UTo(&um)
	svd.VTo(&vm)
	nr := numericalRank(s, out, in)
	k = max(1, min(k, out, in, nr))
	qb, qa := mat.NewDense(out, R, nil), mat.NewDense(in, R, nil)
	for j := 0; j < R; j++ {
		qb.SetCol(j, bcols[j])
		qa.SetCol(j, arows[j])
	}
	var u, v mat.Dense
	u.Mul(qb, um.Slice(0, R, 0, k))
	v.Mul(qa, vm.Slice(0, R, 0, k))
	fa, fb := splitFactors(&u, &v, s, k, out, in)
	return factors{A: fa, B: fb, k: k, exact: R, compressed: k < nr, errSq: sumSq(s[k:]), normSq: sumSq(s)}, nil
}

func square(n int) [][]float64 {
	r := make([][]float64, n)
	for i := range r {
		r[i] = make([]float64, n)
	}
	return r
}
