package train

import (
	"fmt"
	"math"
	"strings"

	"roe/kernels"
	"roe/model/safetensors"
)

// AdamW is torch.optim.AdamW (amsgrad off): decoupled weight decay applied to
// the old parameter value, then the Adam update, with ε added after the bias
// correction of sqrt(v). State is kept per named tensor.
//
//	p ← p·(1 − lr·λ)
//	m ← β₁·m + (1−β₁)·g          v ← β₂·v + (1−β₂)·g²
//	BiasCorrection: p ← p − lr/(1−β₁ᵗ) · m / (sqrt(v)/sqrt(1−β₂ᵗ) + ε)
//	otherwise:      p ← p − lr · m / (sqrt(v) + ε)   (BERT's AdamWeightDecay)
//
// m and v are stored in float32 (as torch does for float32 parameters); each
// element's update is computed in float64.
type AdamW struct {
	LR             float64 // peak learning rate, for the caller's schedule; Step takes the step's rate
	Beta1, Beta2   float64
	Eps            float64
	WeightDecay    float64
	BiasCorrection bool
	// NoDecay, when set, exempts tensors from weight decay (e.g. norms, biases).
	NoDecay func(name string) bool

	m, v map[string][]float32
	t    map[string]int
}

// NewAdamW returns AdamW with torch's defaults (β 0.9/0.999, ε 1e-8) and bias
// correction on.
func NewAdamW(lr, weightDecay float64) *AdamW {
	return &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, BiasCorrection: true}
}

func (o *AdamW) init() {
	if o.m == nil {
		o.m, o.v, o.t = map[string][]float32{}, map[string][]float32{}, map[string]int{}
	}
}

// Step updates every parameter that has a gradient, in place, at rate lr.
// A parameter without a gradient is left alone (as torch skips grad None).
func (o *AdamW) Step(params, grads map[string][]float32, lr float64) error {
	o.init()
	for _, name := range SortedKeys(grads) {
		g := grads[name]
		p, ok := params[name]
		if !ok {
			return fmt.Errorf("train: AdamW: gradient for unknown parameter %q", name)
		}
		if len(p) != len(g) {
			return fmt.Errorf("train: AdamW: %q has %d values and a gradient of %d", name, len(p), len(g))
		}
		m, v := o.m[name], o.v[name]
		if m == nil {
			m, v = make([]float32, len(p)), make([]float32, len(p))
			o.m[name], o.v[name] = m, v
		} else if len(m) != len(p) {
			return fmt.Errorf("train: AdamW: %q has %d values, its state %d", name, len(p), len(m))
		}
		o.t[name]++
		t := float64(o.t[name])
		b1, b2, eps := o.Beta1, o.Beta2, o.Eps
		decay := 1 - lr*o.WeightDecay
		if o.NoDecay != nil && o.NoDecay(name) {
			decay = 1
		}
		stepSize, bc2 := lr, 1.0
		if o.BiasCorrection {
			stepSize = lr / (1 - math.Pow(b1, t))
			bc2 = math.Sqrt(1 - math.Pow(b2, t))
		}
		body := func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi := float64(g[i])
				mi := b1*float64(m[i]) + (1-b1)*gi
				vi := b2*float64(v[i]) + (1-b2)*gi*gi
				m[i], v[i] = float32(mi), float32(vi)
				pi := float64(p[i]) * decay
				p[i] = float32(pi - stepSize*mi/(math.Sqrt(vi)/bc2+eps))
			}
		}
		if len(p) < 1<<15 {
			body(0, len(p))
		} else {
			kernels.Parallel(len(p), body)
		}
	}
	return nil
}

// Steps returns the step count of a tensor (0 before its first update).
func (o *AdamW) Steps(name string) int { return o.t[name] }

// State exports the optimizer state for a checkpoint, torch-style names:
// "<name>.exp_avg" (m), "<name>.exp_avg_sq" (v) and "<name>.step" (one value,
// the step count; exact in float32 up to 2²⁴). The slices are copies.
func (o *AdamW) State() map[string][]float32 {
	out := map[string][]float32{}
	for name, m := range o.m {
		out[name+".exp_avg"] = append([]float32(nil), m...)
		out[name+".exp_avg_sq"] = append([]float32(nil), o.v[name]...)
		out[name+".step"] = []float32{float32(o.t[name])}
	}
	return out
}

// LoadState restores what State exported (replacing any current state).
func (o *AdamW) LoadState(s map[string][]float32) error {
	o.m, o.v, o.t = map[string][]float32{}, map[string][]float32{}, map[string]int{}
	for k, val := range s {
		name, ok := strings.CutSuffix(k, ".exp_avg")
		if !ok {
			continue
		}
		v, okv := s[name+".exp_avg_sq"]
		st, oks := s[name+".step"]
		if !okv || !oks || len(st) != 1 || len(v) != len(val) {
			return fmt.Errorf("train: AdamW state for %q is incomplete", name)
		}
		o.m[name] = append([]float32(nil), val...)
		o.v[name] = append([]float32(nil), v...)
		o.t[name] = int(st[0])
	}
	for k := range s {
		if !strings.HasSuffix(k, ".exp_avg") && !strings.HasSuffix(k, ".exp_avg_sq") && !strings.HasSuffix(k, ".step") {
			return fmt.Errorf("train: AdamW state: unknown entry %q", k)
		}
	}
	return nil
}

// StateTensors is State as 1-D F32 safetensors tensors, sorted by name, for
// safetensors.Write.
func (o *AdamW) StateTensors() []safetensors.Tensor {
	s := o.State()
	var ts []safetensors.Tensor
	for _, k := range SortedKeys(s) {
		ts = append(ts, safetensors.F32Tensor(k, []int{len(s[k])}, s[k]))
	}
	return ts
}

// LoadStateFile restores the state from a file written with StateTensors.
func (o *AdamW) LoadStateFile(path string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := map[string][]float32{}
	for _, info := range f.Tensors() {
		v, err := f.Float32(info.Name)
		if err != nil {
			return err
		}
		s[info.Name] = v
	}
	return o.LoadState(s)
}

// ClipGradNorm scales all gradients so that their global L2 norm is at most
// maxNorm (torch.nn.utils.clip_grad_norm_: factor maxNorm/(norm+1e-6) when
// below 1). It returns the norm before clipping; maxNorm ≤ 0 only measures.
func ClipGradNorm(grads map[string][]float32, maxNorm float64) float64 {
	n := GlobalNorm(grads)
	if maxNorm > 0 {
		if c := maxNorm / (n + 1e-6); c < 1 {
			for _, g := range grads {
				scaleInPlace(g, float32(c))
			}
		}
	}
	return n
}

// Accumulator sums gradients over micro-batches so that the result equals the
// gradient of one big batch: each micro-batch's (token-mean) loss and
// gradients are weighted by its number of target tokens.
type Accumulator struct {
	sum     map[string][]float32
	tokens  int
	lossSum float64
}

// Add folds in one micro-batch.
func (a *Accumulator) Add(loss float64, g *Grads) {
	if a.sum == nil {
		a.sum = map[string][]float32{}
	}
	w := float32(g.Tokens)
	for k, v := range g.All() {
		s := a.sum[k]
		if s == nil {
			s = make([]float32, len(v))
			a.sum[k] = s
		}
		kernels.Axpy(w, v, s)
	}
	a.tokens += g.Tokens
	a.lossSum += loss * float64(g.Tokens)
}

// Tokens is the number of target tokens folded in so far.
func (a *Accumulator) Tokens() int { return a.tokens }

// Result returns the token-mean loss and gradients over everything added, and
// resets the accumulator.
func (a *Accumulator) Result() (float64, map[string][]float32) {
	if a.tokens == 0 {
		return 0, nil
	}
	inv := float32(1 / float64(a.tokens))
	for _, s := range a.sum {
		scaleInPlace(s, inv)
	}
	loss, out := a.lossSum/float64(a.tokens), a.sum
	*a = Accumulator{}
	return loss, out
}
