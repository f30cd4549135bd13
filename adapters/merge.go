package adapters

// Composing experts: several LoRA adapters become one new adapter.
//
// Retrieval-of-Experts merges the top-k experts of a request by a uniform average
// of their parameter deltas; CPI-FT fuses experts by keeping each one's core
// parameters and interpolating the rest. The other methods are the usual ones of
// mergekit and PEFT's add_weighted_adapter. Every method works per module
// (layer, projection) on the updates ΔWᵢ = sᵢ·Bᵢ·Aᵢ, [Out, In], of the experts
// (zero where an expert lacks the module), and the result is again a LoRA with
// scale 1.
//
// By default the result is exact. A weighted sum of updates (linear,
// task-arithmetic, cat, slerp) is exactly the stacked factors, rank Σ rᵢ; a dense
// result (ties, dare-*, magnitude-prune, cpi) is its SVD cut only at float32
// rounding (svd.go). MergeOptions.Rank asks for compression by truncated SVD, and
// the MergeReport then says that it happened and what it lost.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"

	"roe/kernels"
	"roe/model"
)

// Method names a way to compose several experts into one adapter.
type Method string

// The merge methods.
const (
	// MethodLinear is the weighted average Σ wᵢ·ΔWᵢ, weights normalised to sum 1
	// (uniform: the Retrieval-of-Experts merge). A single expert has nothing to be
	// averaged with, so its weight scales it (0.5 halves its update). Stored
	// exactly as cat's factors with the normalised weights.
	MethodLinear Method = "linear"
	// MethodParamAverage averages the A's and the (scaled) B's separately, as the
	// Retrieval-of-Experts code averaged adapter parameters. It is exact but is not
	// the average of the updates: mean(B)·mean(A) = (1/n²)·Σᵢ Σⱼ Bᵢ·Aⱼ carries the
	// cross terms Bᵢ·Aⱼ (i ≠ j) and shrinks each expert's own term to 1/n² (linear
	// gives 1/n). It needs equal ranks.
	MethodParamAverage Method = "param-average"
	// MethodTaskArithmetic is Σ λᵢ·ΔWᵢ; negative λ subtracts an expert. Stored
	// exactly as cat's factors.
	MethodTaskArithmetic Method = "task-arithmetic"
	// MethodCat stacks the factors: A = vstack(Aᵢ), B = hstack(λᵢ·sᵢ·Bᵢ), rank Σ rᵢ
	// (experts with λᵢ = 0 left out); exactly Σ λᵢ·ΔWᵢ. linear, task-arithmetic
	// and slerp are stored this way too.
	MethodCat Method = "cat"
	// MethodTIES trims each ΔWᵢ to its top Density fraction by magnitude, elects a
	// sign per entry (sign of Σ λᵢ·trimmedᵢ, + on ties) and takes the λ-weighted
	// mean of the experts that agree with it (Yadav et al. 2023, as mergekit).
	//
	// TIES, dare-*, magnitude-prune and cpi edit entries of the dense ΔW, which
	// leaves no low-rank form: the exact result is its SVD at its numerical rank,
	// usually min(Out, In). That costs a full SVD per module at merge time and, when
	// served unmerged, about one more base projection per step; set Rank to trade
	// exactness for size (the randomized SVD then handles large modules).
	MethodTIES Method = "ties"
	// MethodDARELinear drops each entry with probability 1−Density, rescales the
	// rest by 1/Density, and sums Σ λᵢ·ΔWᵢ (Yu et al. 2023, mergekit dare_linear).
	MethodDARELinear Method = "dare-linear"
	// MethodDARETIES drops and rescales as DARE, then elects signs as TIES and sums
	// the agreeing λᵢ·ΔWᵢ without dividing (mergekit's dare_ties default).
	MethodDARETIES Method = "dare-ties"
	// MethodMagnitudePrune keeps each ΔWᵢ's top Density fraction by magnitude and
	// sums Σ λᵢ·ΔWᵢ (PEFT's magnitude_prune).
	MethodMagnitudePrune Method = "magnitude-prune"
	// MethodSLERP interpolates two experts' flattened ΔW on the sphere with T
	// (mergekit): c₀·ΔW₀ + c₁·ΔW₁ per module, stored exactly as cat's factors.
	MethodSLERP Method = "slerp"
	// MethodCPI is the fusion step of CPI-FT: each expert keeps its core entries
	// (its top CoreFraction of |ΔW| in the module), the rest are SLERP-ed or averaged.
	MethodCPI Method = "cpi"
)

// Methods lists every merge method.
func Methods() []Method {
	return []Method{MethodLinear, MethodParamAverage, MethodTaskArithmetic, MethodCat, MethodTIES,
		MethodDARELinear, MethodDARETIES, MethodMagnitudePrune, MethodSLERP, MethodCPI}
}

// Defaults of MergeOptions' zero values.
const (
	// DefaultTIESDensity is the TIES paper's top-20% (ties, magnitude-prune).
	DefaultTIESDensity = 0.2
	// DefaultDAREDensity keeps half the entries, as mergekit's DARE examples.
	DefaultDAREDensity = 0.5
	// DefaultT is the SLERP midpoint.
	DefaultT = 0.5
	// DefaultCoreFraction is CPI-FT's p = 1%.
	DefaultCoreFraction = 0.01
)

// MergeOptions selects a merge method and its parameters; zero values take defaults.
type MergeOptions struct {
	Method Method
	// Weights has one entry per expert. nil means uniform 1/n for linear,
	// param-average and cpi's average (which normalise any weights to sum 1, but
	// linear keeps a single expert's weight as its scale), and
	// 1 for task-arithmetic, cat, ties, dare-*, magnitude-prune (not normalised).
	// slerp takes T instead and refuses weights.
	Weights []float64
	// Density is the fraction of entries kept, in (0, 1]: ties and magnitude-prune
	// keep the largest |ΔW| (default 0.2), dare keeps a random subset (default 0.5).
	Density float64
	// T is slerp's position in [0, 1] (also cpi's SLERP fill); 0 means the default
	// 0.5, so ask for the first expert's end with a tiny T, or use linear weights.
	T float64
	// Seed seeds dare's drop masks; each (expert, layer, projection) draws its own
	// stream from it, so a merge is reproducible.
	Seed uint64
	// Rank caps the rank of each module of the result; 0 means no cap, the exact
	// result (see Method). A module whose exact rank is above Rank is compressed
	// by truncated SVD, which the MergeReport records. param-average ignores it.
	Rank int
	// CoreFraction is cpi's p: the top p of |ΔW| entries of each expert's module are
	// its core (per module, so every projection keeps some core). Default 0.01.
	CoreFraction float64
	// CoreFill fills cpi's non-core entries: "slerp" (two experts only) or
	// "average" (weighted by Weights). Default slerp for two experts, else average.
	CoreFill string
}

// MergeReport says what a merge produced and how much compressing it lost.
type MergeReport struct {
	Method Method
	Rank   int // the largest rank of the result's modules
	// ExactRank is the largest rank at which the modules are exact: Σ rᵢ for the
	// weighted sums, the numerical rank for dense results (min(Out, In), an upper
	// bound, for a module compressed by the randomized SVD).
	ExactRank int
	// Compressed says some module was truncated below its numerical rank, so
	// the result is not the method's exact update.
	Compressed bool
	// RelFrobError is ‖ΔW − ΔŴ‖_F / ‖ΔW‖_F over all modules together (exact ΔW
	// against the stored ΔŴ, float64 before rounding the factors to float32): 0
	// for the stacked factors, rounding level (≲1e-6) for other uncompressed results.
	RelFrobError float64
	// MaxModuleRelError is the largest per-module relative error.
	MaxModuleRelError float64
}

// normalized validates o for n experts and fills its defaults; fields a method
// does not use are zeroed, so equal merges have equal options (the Cache's key).
func (o MergeOptions) normalized(n int) (MergeOptions, error) {
	bad := func(format string, a ...any) (MergeOptions, error) {
		return MergeOptions{}, fmt.Errorf("%w: %s: %s", ErrMerge, o.Method, fmt.Sprintf(format, a...))
	}
	known := false
	for _, m := range Methods() {
		known = known || m == o.Method
	}
	if !known {
		return MergeOptions{}, fmt.Errorf("%w: unknown method %q (want one of %v)", ErrMerge, o.Method, Methods())
	}
	if n < 1 {
		return bad("no experts")
	}
	if o.Method == MethodSLERP && n != 2 {
		return bad("needs exactly 2 experts, got %d", n)
	}
	if o.Weights != nil && len(o.Weights) != n {
		return bad("%d weights for %d experts", len(o.Weights), n)
	}
	for i, w := range o.Weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return bad("weight %d is %g", i, w)
		}
	}
	if o.Density < 0 || o.Density > 1 || math.IsNaN(o.Density) {
		return bad("density %g is not in (0, 1]", o.Density)
	}
	if o.T < 0 || o.T > 1 || math.IsNaN(o.T) {
		return bad("t %g is not in [0, 1]", o.T)
	}
	if o.Rank < 0 {
		return bad("rank %d is not ≥ 1 (0 = exact)", o.Rank)
	}
	if o.CoreFraction < 0 || o.CoreFraction > 1 || math.IsNaN(o.CoreFraction) {
		return bad("core fraction %g is not in (0, 1]", o.CoreFraction)
	}
	if o.CoreFill != "" && o.CoreFill != "slerp" && o.CoreFill != "average" {
		return bad("core fill %q (want slerp or average)", o.CoreFill)
	}
	r := MergeOptions{Method: o.Method, Rank: o.Rank}
	switch o.Method {
	case MethodLinear, MethodParamAverage, MethodCPI:
		w, err := normalizedWeights(o.Weights, n)
		if err != nil {
			return bad("%v", err)
		}
		if o.Method == MethodLinear && n == 1 && o.Weights != nil {
			w[0] = o.Weights[0] // a lone expert's weight is its scale (positive, checked above)
		}
		r.Weights = w
	case MethodSLERP:
		if o.Weights != nil {
			return bad("takes T, not weights")
		}
	default:
		r.Weights = append([]float64(nil), o.Weights...)
		if o.Weights == nil {
			r.Weights = make([]float64, n)
			for i := range r.Weights {
				r.Weights[i] = 1
			}
		}
	}
	switch o.Method {
	case MethodTIES, MethodMagnitudePrune:
		r.Density = cmp0(o.Density, DefaultTIESDensity)
	case MethodDARELinear, MethodDARETIES:
		r.Density = cmp0(o.Density, DefaultDAREDensity)
		r.Seed = o.Seed
	case MethodSLERP:
		r.T = cmp0(o.T, DefaultT)
	case MethodCPI:
		r.CoreFraction = cmp0(o.CoreFraction, DefaultCoreFraction)
		r.CoreFill = o.CoreFill
		if r.CoreFill == "" {
			r.CoreFill = "average"
			if n == 2 {
				r.CoreFill = "slerp"
			}
		}
		if r.CoreFill == "slerp" {
			if n != 2 {
				return bad("slerp core fill needs exactly 2 experts, got %d", n)
			}
			r.T = cmp0(o.T, DefaultT)
		}
	}
	if o.Method == MethodParamAverage || (o.Method == MethodCat && o.Rank == 0) {
		r.Rank = 0
	}
	return r, nil
}

func cmp0(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// normalizedWeights returns w scaled to sum 1 (uniform when nil).
func normalizedWeights(w []float64, n int) ([]float64, error) {
	out := make([]float64, n)
	if w == nil {
		for i := range out {
			out[i] = 1 / float64(n)
		}
		return out, nil
	}
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	if !(sum > 0) {
		return nil, fmt.Errorf("weights %v must have a positive sum (task-arithmetic takes any weights)", w)
	}
	for i, v := range w {
		out[i] = v / sum
	}
	return out, nil
}

// module is one (layer, projection) across the experts.
type module struct {
	layer   int
	proj    model.Proj
	out, in int
	pairs   []*Pair // per expert; nil where the expert lacks the module
}

func (m *module) name() string { return moduleKey(m.layer, m.proj) }

// dense returns expert i's update s·B·A, or zeros.
//
//	result: [out, in]
func (m *module) dense(i int) []float32 {
	d := make([]float32, m.out*m.in)
	pr := m.pairs[i]
	if pr == nil {
		return d
	}
	bs := make([]float32, len(pr.B)) // s·B: [out, r]
	for j, v := range pr.B {
		bs[j] = v * pr.Scale
	}
	at := make([]float32, pr.In*pr.Rank) // Aᵀ: [in, r]
	for r := 0; r < pr.Rank; r++ {
		for i := 0; i < pr.In; i++ {
			at[i*pr.Rank+r] = pr.A[r*pr.In+i]
		}
	}
	kernels.MatMulT(d, bs, at, m.out, m.in, pr.Rank)
	return d
}

// maxRank is the largest rank among the experts that have the module.
func (m *module) maxRank() int {
	r := 0
	for _, pr := range m.pairs {
		if pr != nil {
			r = max(r, pr.Rank)
		}
	}
	return r
}

// modules checks the experts against each other and lists the modules any of them adapts.
func modules(experts []*LoRA) ([]*module, error) {
	for i, e := range experts {
		if e == nil {
			return nil, fmt.Errorf("%w: expert %d is nil", ErrMerge, i)
		}
		if len(e.Layers) != len(experts[0].Layers) {
			return nil, fmt.Errorf("%w: expert %d has %d layers, expert 0 has %d", ErrMerge, i, len(e.Layers), len(experts[0].Layers))
		}
	}
	var out []*module
	for layer := range experts[0].Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			var m *module
			for i, e := range experts {
				pr := e.Layers[layer][p]
				if pr == nil {
					continue
				}
				if pr.Rank < 1 || len(pr.A) != pr.Rank*pr.In || len(pr.B) != pr.Out*pr.Rank {
					return nil, fmt.Errorf("%w: expert %d, %s: A has %d values and B %d for rank %d, [%d %d]",
						ErrMerge, i, moduleKey(layer, p), len(pr.A), len(pr.B), pr.Rank, pr.Out, pr.In)
				}
				if m == nil {
					m = &module{layer: layer, proj: p, out: pr.Out, in: pr.In, pairs: make([]*Pair, len(experts))}
				} else if pr.Out != m.out || pr.In != m.in {
					return nil, fmt.Errorf("%w: %s is [%d %d] in expert %d but [%d %d] in an earlier one",
						ErrMerge, m.name(), pr.Out, pr.In, i, m.out, m.in)
				}
				m.pairs[i] = pr
			}
			if m != nil {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the experts adapt no module", ErrMerge)
	}
	return out, nil
}

// Merge composes experts (all for the same base model) into a new adapter with
// the method and options of o; see Method for what each computes.
func Merge(experts []*LoRA, o MergeOptions) (*LoRA, MergeReport, error) {
	o, err := o.normalized(len(experts))
	if err != nil {
		return nil, MergeReport{}, err
	}
	mods, err := modules(experts)
	if err != nil {
		return nil, MergeReport{}, fmt.Errorf("%s: %w", o.Method, err)
	}
	results := make([]factors, len(mods))
	errs := make([]error, len(mods))
	// Modules are independent and the SVDs single-threaded: one worker per CPU.
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(mods)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i], errs[i] = mergeModule(mods[i], o)
			}
		}()
	}
	for i := range mods {
		next <- i
	}
	close(next)
	wg.Wait()

	base := experts[0].base // for Save's fused modules (Phi-3)
	base.NumLayers = len(experts[0].Layers)
	res := New(base, Config{BaseModel: experts[0].Config.BaseModel})
	rep := MergeReport{Method: o.Method}
	errSq, normSq := 0.0, 0.0
	for i, m := range mods {
		if errs[i] != nil {
			return nil, MergeReport{}, fmt.Errorf("%s: %s: %w", o.Method, m.name(), errs[i])
		}
		f := results[i]
		// Alpha = rank makes SetPair's scale exactly 1 (UseRSLoRA is false).
		res.SetPair(m.layer, m.proj, &Pair{A: f.A, B: f.B, Rank: f.k, In: m.in, Out: m.out, Alpha: float64(f.k)})
		rep.Rank = max(rep.Rank, f.k)
		rep.ExactRank = max(rep.ExactRank, f.exact)
		rep.Compressed = rep.Compressed || f.compressed
		errSq += f.errSq
		normSq += f.normSq
		if f.normSq > 0 {
			rep.MaxModuleRelError = max(rep.MaxModuleRelError, math.Sqrt(f.errSq/f.normSq))
		}
	}
	if normSq > 0 {
		rep.RelFrobError = math.Sqrt(errSq / normSq)
	}
	res.Config = describe(res, res.Config.BaseModel)
	res.pack()
	return res, rep, nil
}

// describe writes the Config that makes Save/Load and PEFT reproduce l's pairs,
// each with alpha = rank (scale 1): r is the most common rank, modules with other
// ranks go to rank_pattern and alpha_pattern under their full module names.
func describe(l *LoRA, baseModel string) Config {
	count := map[int]int{}
	projs := map[model.Proj]bool{}
	var layers []int
	for layer := range l.Layers {
		has := false
		for p, pr := range l.Layers[layer] {
			if pr != nil {
				count[pr.Rank]++
				projs[model.Proj(p)] = true
				has = true
			}
		}
		if has {
			layers = append(layers, layer)
		}
	}
	r := 0
	for k, n := range count {
		if n > count[r] || (n == count[r] && k > r) {
			r = k
		}
	}
	c := Config{BaseModel: baseModel, R: r, Alpha: float64(r)}
	for p := model.Proj(0); p < model.NumProj; p++ {
		if projs[p] {
			c.TargetModules = append(c.TargetModules, p.String())
		}
	}
	sort.Strings(c.TargetModules)
	if len(layers) < len(l.Layers) {
		c.LayersToChange = layers
	}
	for layer := range l.Layers {
		for p, pr := range l.Layers[layer] {
			if pr != nil && pr.Rank != r {
				if c.RankPattern == nil {
					c.RankPattern, c.AlphaPattern = map[string]int{}, map[string]float64{}
				}
				key := moduleKey(layer, model.Proj(p))
				c.RankPattern[key] = pr.Rank
				c.AlphaPattern[key] = float64(pr.Rank)
			}
		}
	}
	return c
}

// mergeModule merges one module with o's method.
func mergeModule(m *module, o MergeOptions) (factors, error) {
	n := len(m.pairs)
	switch o.Method {
	case MethodLinear, MethodTaskArithmetic, MethodCat:
		return sumOfUpdates(m, o.Weights, o.Rank)
	case MethodSLERP:
		c0, c1 := slerpCoefficients(m.dense(0), m.dense(1), o.T)
		return sumOfUpdates(m, []float64{c0, c1}, o.Rank)
	case MethodParamAverage:
		return paramAverage(m, o.Weights)
	}
	deltas := make([][]float32, n)
	for i := range deltas {
		deltas[i] = m.dense(i)
	}
	var d []float32
	switch o.Method {
	case MethodTIES:
		for i := range deltas {
			trim(deltas[i], o.Density)
		}
		d = tiesCombine(deltas, o.Weights, true)
	case MethodMagnitudePrune:
		for i := range deltas {
			trim(deltas[i], o.Density)
		}
		d = weightedSum(deltas, o.Weights)
	case MethodDARELinear, MethodDARETIES:
		for i := range deltas {
			dare(deltas[i], o.Density, o.Seed, i, m.layer, m.proj)
		}
		if o.Method == MethodDARELinear {
			d = weightedSum(deltas, o.Weights)
		} else {
			d = tiesCombine(deltas, o.Weights, false)
		}
	case MethodCPI:
		d = cpiFuse(m, deltas, o)
	default:
		return factors{}, fmt.Errorf("%w: method %q", ErrMerge, o.Method)
	}
	return refactorDense(d, m.out, m.in, o.Rank)
}

// sumOfUpdates is Σ cᵢ·ΔWᵢ: the stacked factors (exact, rank Σ rᵢ over the cᵢ ≠ 0),
// or their truncated SVD when 0 < rank < Σ rᵢ.
func sumOfUpdates(m *module, c []float64, rank int) (factors, error) {
	R := 0
	for i, pr := range m.pairs {
		if pr != nil && c[i] != 0 {
			R += pr.Rank
		}
	}
	if rank > 0 && rank < R {
		return lowRank(m, c, rank)
	}
	return cat(m, c), nil
}

// lowRank re-factors Σ cᵢ·sᵢ·Bᵢ·Aᵢ through the stacked factors, never forming ΔW.
func lowRank(m *module, c []float64, k int) (factors, error) {
	var bcols, arows [][]float64
	for i, pr := range m.pairs {
		if pr == nil || c[i] == 0 {
			continue
		}
		f := c[i] * float64(pr.Scale)
		for r := 0; r < pr.Rank; r++ {
			col := make([]float64, m.out)
			for o := range col {
				col[o] = f * float64(pr.B[o*pr.Rank+r])
			}
			row := make([]float64, m.in)
			for j := range row {
				row[j] = float64(pr.A[r*pr.In+j])
			}
			bcols, arows = append(bcols, col), append(arows, row)
		}
	}
	return refactorLowRank(bcols, arows, m.out, m.in, k)
}

// cat stacks the factors: A = vstack(Aᵢ) [Σr, in], B = hstack(λᵢ·sᵢ·Bᵢ) [out, Σr],
// leaving out experts with λᵢ = 0 (all zero: a zero update of rank 1).
func cat(m *module, w []float64) factors {
	R := 0
	for i, pr := range m.pairs {
		if pr != nil && w[i] != 0 {
			R += pr.Rank
		}
	}
	if R == 0 {
		return factors{A: make([]float32, m.in), B: make([]float32, m.out), k: 1}
	}
	a, b := make([]float32, 0, R*m.in), make([]float32, m.out*R)
	off := 0
	for i, pr := range m.pairs {
		if pr == nil || w[i] == 0 {
			continue
		}
		a = append(a, pr.A...)
		f := float32(w[i]) * pr.Scale
		for o := 0; o < m.out; o++ {
			for r := 0; r < pr.Rank; r++ {
				b[o*R+off+r] = f * pr.B[o*pr.Rank+r]
			}
		}
		off += pr.Rank
	}
	return factors{A: a, B: b, k: R, exact: R, normSq: normSqOf(a, b, R, m.out, m.in)}
}

// paramAverage averages A and s·B separately with weights w (missing modules count
// as zero factors); exact, so no error to report.
func paramAverage(m *module, w []float64) (factors, error) {
	r := m.maxRank()
	a, b := make([]float32, r*m.in), make([]float32, m.out*r)
	for i, pr := range m.pairs {
		if pr == nil {
			continue
		}
		if pr.Rank != r {
			return factors{}, fmt.Errorf("%w: param-average needs equal ranks, %s has rank %d in expert %d and %d in another",
				ErrMerge, m.name(), pr.Rank, i, r)
		}
		kernels.Axpy(float32(w[i]), pr.A, a)
		kernels.Axpy(float32(w[i])*pr.Scale, pr.B, b)
	}
	return factors{A: a, B: b, k: r, exact: r, normSq: normSqOf(a, b, r, m.out, m.in)}, nil
}

// weightedSum is Σ wᵢ·dᵢ.
func weightedSum(ds [][]float32, w []float64) []float32 {
	out := make([]float32, len(ds[0]))
	for i, d := range ds {
		kernels.Axpy(float32(w[i]), d, out)
	}
	return out
}

// tiesCombine is mergekit's sign consensus: xᵢ = wᵢ·dᵢ, elected sign + where
// Σ xᵢ ≥ 0 else −, sum of the xᵢ with that sign; normalize divides by the sum of
// the agreeing experts' weights (TIES's disjoint mean).
func tiesCombine(ds [][]float32, w []float64, normalize bool) []float32 {
	out := make([]float32, len(ds[0]))
	for e := range out {
		sum := 0.0
		for i, d := range ds {
			sum += w[i] * float64(d[e])
		}
		pos := sum >= 0
		mixed, div := 0.0, 0.0
		for i, d := range ds {
			x := w[i] * float64(d[e])
			if (pos && x > 0) || (!pos && x < 0) {
				mixed += x
				div += w[i]
			}
		}
		if normalize && math.Abs(div) >= 1e-8 {
			mixed /= div
		}
		out[e] = float32(mixed)
	}
	return out
}

// keepCount is how many of n entries a density keeps (at least one).
func keepCount(n int, density float64) int {
	return max(1, min(n, int(density*float64(n))))
}

// topThreshold returns the k-th largest |d| (entries at or above it are kept).
func topThreshold(d []float32, k int) float32 {
	abs := make([]float32, len(d))
	for i, v := range d {
		abs[i] = float32(math.Abs(float64(v)))
	}
	return kthLargest(abs, k)
}

// trim zeroes all but the top density fraction of d by magnitude (ties at the
// threshold are kept).
func trim(d []float32, density float64) {
	k := keepCount(len(d), density)
	if k >= len(d) {
		return
	}
	thr := topThreshold(d, k)
	for i, v := range d {
		if float32(math.Abs(float64(v))) < thr {
			d[i] = 0
		}
	}
}

// kthLargest returns the k-th largest value (k from 1) by quickselect, reordering a.
func kthLargest(a []float32, k int) float32 {
	lo, hi, target := 0, len(a)-1, k-1
	for lo < hi {
		x, y, z := a[lo], a[lo+(hi-lo)/2], a[hi]
		p := max(min(x, y), min(max(x, y), z)) // median of three
		i, j := lo, hi
		for i <= j {
			for a[i] > p {
				i++
			}
			for a[j] < p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return a[target]
		}
	}
	return a[target]
}

// dare drops each entry with probability 1−density and rescales the survivors by
// 1/density. The stream is seeded by (seed, expert, layer, projection), so each
// expert and module is independent and every merge reproducible.
func dare(d []float32, density float64, seed uint64, expert, layer int, p model.Proj) {
	if density >= 1 {
		return
	}
	stream := uint64(expert)<<40 | uint64(layer)<<8 | uint64(p)
	rng := rand.New(rand.NewPCG(seed, stream^0x9e3779b97f4a7c15))
	scale := float32(1 / density)
	for i := range d {
		if rng.Float64() < density {
			d[i] *= scale
		} else {
			d[i] = 0
		}
	}
}

// slerpCoefficients returns (c0, c1) with slerp(v0, v1, t) = c0·v0 + c1·v1, as
// mergekit: the angle comes from the normalised vectors, nearly colinear ones
// (|cos| > 0.9995) interpolate linearly.
func slerpCoefficients(v0, v1 []float32, t float64) (float64, float64) {
	n0, n1, dot := 0.0, 0.0, 0.0
	for i := range v0 {
		a, b := float64(v0[i]), float64(v1[i])
		n0 += a * a
		n1 += b * b
		dot += a * b
	}
	const eps = 1e-8
	n0, n1 = math.Max(math.Sqrt(n0), eps), math.Max(math.Sqrt(n1), eps)
	cos := dot / (n0 * n1)
	if math.Abs(cos) > 0.9995 {
		return 1 - t, t
	}
	theta := math.Acos(cos)
	sin := math.Sin(theta)
	return math.Sin((1-t)*theta) / sin, math.Sin(t*theta) / sin
}

// cpiFuse is CPI-FT's fusion for one module: expert i's core is its top
// CoreFraction of |ΔWᵢ| (non-zero entries only); a core entry takes the mean of
// the claiming experts' values; the others take the SLERP of the whole-module
// deltas (two experts) or the weighted average.
func cpiFuse(m *module, ds [][]float32, o MergeOptions) []float32 {
	n := len(ds[0])
	claims := make([]int32, n)
	sum := make([]float64, n)
	k := keepCount(n, o.CoreFraction)
	for i, d := range ds {
		if m.pairs[i] == nil {
			continue
		}
		thr := topThreshold(d, k)
		for e, v := range d {
			if v != 0 && float32(math.Abs(float64(v))) >= thr {
				claims[e]++
				sum[e] += float64(v)
			}
		}
	}
	var fill []float32
	if o.CoreFill == "slerp" {
		c0, c1 := slerpCoefficients(ds[0], ds[1], o.T)
		fill = weightedSum(ds, []float64{c0, c1})
	} else {
		fill = weightedSum(ds, o.Weights)
	}
	for e := range fill {
		if claims[e] > 0 {
			fill[e] = float32(sum[e] / float64(claims[e]))
		}
	}
	return fill
}
