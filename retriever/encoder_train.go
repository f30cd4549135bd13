package retriever

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"roe/kernels"
)

// EncoderExample is one training pair: a text as a user would send it (Query)
// and a text as the library stores it (Key), of the same Class. Keys of other
// classes in the batch are the negatives, except those of the same Space
// (classes with the same answer choices are the same kind of task, so never
// pushed apart).
type EncoderExample struct {
	Query, Key string
	Class      int
	Space      string
}

// EncoderTrainOptions configure TrainEncoder.
type EncoderTrainOptions struct {
	Steps       int     // optimizer steps [2000]
	Batch       int     // pairs a step [64]
	LR          float64 // Adam's [0.01]
	Temperature float64 // of the InfoNCE softmax [0.05]
	Seed        uint64
	// Background texts (a corpus) join every step's keys as negatives of
	// every query: task text is pushed away from plain prose.
	Background    []string
	BackgroundPer int // background keys a step [Batch/2]
	// IDFSamples pairs (and as many background texts) are drawn first to set
	// the features' weights (Encoder.SetIDF) [20000; negative: keep the weights].
	IDFSamples int
	// ProjLR scales the learning rate of the projection [0.1; negative: frozen].
	ProjLR float64
	// Progress, when set, is called every 100 steps with the mean loss since the last call.
	Progress func(step int, loss float64)
}

// encoded is one text through the encoder, kept for the backward pass.
type encoded struct {
	feats []uint32
	W     float32   // sum of the features' weights
	v     []float32 // mean of the feature rows [D]
	u     []float32 // proj · v [D]
	q     []float32 // u / |u| [D]
	norm  float64   // |u|
}

func (e *Encoder) encode(text string, x *encoded) {
	D := e.cfg.Dim
	x.feats = e.Features(text, x.feats[:0])
	if x.v == nil {
		x.v, x.u, x.q = make([]float32, D), make([]float32, D), make([]float32, D)
	}
	x.W = e.meanInto(x.v, x.feats)
	e.project(x.u, x.v)
	x.norm = math.Sqrt(float64(kernels.Dot(x.u, x.u)))
	s := float32(0)
	if x.norm > 0 {
		s = float32(1 / x.norm)
	}
	for i := range D {
		x.q[i] = x.u[i] * s
	}
}

// backward adds ∂L/∂proj to gp and ∂L/∂table rows to gt (touched rows listed
// in rows) given dq = ∂L/∂q.
func (e *Encoder) backward(x *encoded, dq []float32, gp []float32, gt map[uint32][]float32, du, dv []float32) {
	D := e.cfg.Dim
	if x.norm == 0 || x.W == 0 {
		return
	}
	// q = u/|u|: du = (dq − q·(q·dq)) / |u|
	qd := kernels.Dot(x.q, dq)
	for i := range D {
		du[i] = (dq[i] - x.q[i]*qd) / float32(x.norm)
	}
	// u = P v: dP += du ⊗ v, dv = Pᵀ du
	clear(dv)
	for i := range D {
		kernels.Axpy(du[i], x.v, gp[i*D:(i+1)*D])
		kernels.Axpy(du[i], e.proj[i*D:(i+1)*D], dv)
	}
	// v = Σ w_f·row_f / W: each row gets dv·w_f/W
	for _, f := range x.feats {
		if e.weight[f] == 0 {
			continue
		}
		g, ok := gt[f]
		if !ok {
			g = make([]float32, D)
			gt[f] = g
		}
		kernels.Axpy(e.weight[f]/x.W, dv, g)
	}
}

// adam is Adam over a flat parameter slice, updated lazily by row: a row's
// moments decay only on the steps that touch it (as sparse embeddings train).
type adam struct {
	m, v []float32
	t    []int32 // steps seen per row
	dim  int
}

func newAdam(n, dim int) *adam {
	return &adam{m: make([]float32, n), v: make([]float32, n), t: make([]int32, n/dim), dim: dim}
}

func (a *adam) step(w []float32, row int, g []float32, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t[row]++
	t := float64(a.t[row])
	c1, c2 := 1-math.Pow(b1, t), 1-math.Pow(b2, t)
	o := row * a.dim
	for i, gi := range g {
		m := b1*float64(a.m[o+i]) + (1-b1)*float64(gi)
		v := b2*float64(a.v[o+i]) + (1-b2)*float64(gi)*float64(gi)
		a.m[o+i], a.v[o+i] = float32(m), float32(v)
		w[o+i] -= float32(lr * (m / c1) / (math.Sqrt(v/c2) + eps))
	}
}

// batch is one step's work space.
type batch struct {
	qs, ks []encoded
	dQ, dK [][]float32
	S      []float64
	gp     []float32 // ∂L/∂proj [D, D]
	gt     map[uint32][]float32
	du, dv []float32
}

func newBatch(B, K, D int) *batch {
	b := &batch{qs: make([]encoded, B), ks: make([]encoded, K), dQ: make([][]float32, B), dK: make([][]float32, K),
		S: make([]float64, K), gp: make([]float32, D*D), du: make([]float32, D), dv: make([]float32, D)}
	for i := range b.dQ {
		b.dQ[i] = make([]float32, D)
	}
	for j := range b.dK {
		b.dK[j] = make([]float32, D)
	}
	return b
}

// lossAndGrads is the InfoNCE loss of the pairs exs against their keys and
// the background keys, mean over queries, with its gradient in b.gp, b.gt.
func (e *Encoder) lossAndGrads(b *batch, exs []EncoderExample, background []string, temp float64) float64 {
	B, K := len(exs), len(exs)+len(background)
	for i, x := range exs {
		e.encode(x.Query, &b.qs[i])
		e.encode(x.Key, &b.ks[i])
	}
	for j, t := range background {
		e.encode(t, &b.ks[B+j])
	}
	for j := range K {
		clear(b.dK[j])
	}
	S := b.S[:K]
	loss := 0.0
	for i := range B {
		clear(b.dQ[i])
		// Logits over the keys this query is compared with.
		mx := math.Inf(-1)
		for j := range K {
			S[j] = math.Inf(-1)
			if j != i && j < B && (exs[j].Class == exs[i].Class || exs[j].Space == exs[i].Space && exs[i].Space != "") {
				continue
			}
			S[j] = float64(kernels.Dot(b.qs[i].q, b.ks[j].q)) / temp
			mx = math.Max(mx, S[j])
		}
		z := 0.0
		for j := range K {
			if !math.IsInf(S[j], -1) {
				z += math.Exp(S[j] - mx)
			}
		}
		loss += mx + math.Log(z) - S[i]
		// ∂L/∂S_ij = (softmax_ij − [j = i]) / B; S_ij = q_i·k_j / temp.
		for j := range K {
			if math.IsInf(S[j], -1) {
				continue
			}
			g := math.Exp(S[j]-mx) / z
			if j == i {
				g--
			}
			g /= float64(B) * temp
			kernels.Axpy(float32(g), b.ks[j].q, b.dQ[i])
			kernels.Axpy(float32(g), b.qs[i].q, b.dK[j])
		}
	}
	clear(b.gp)
	b.gt = map[uint32][]float32{}
	for i := range B {
		e.backward(&b.qs[i], b.dQ[i], b.gp, b.gt, b.du, b.dv)
	}
	for j := range K {
		e.backward(&b.ks[j], b.dK[j], b.gp, b.gt, b.du, b.dv)
	}
	return loss / float64(B)
}

// TrainEncoder trains e contrastively (InfoNCE with in-batch negatives) on
// pairs drawn by sample, then rounds its weights to bf16 as Save stores them.
// Each step draws Batch pairs; a query's positive is its own key, its
// negatives the batch's other keys of other classes and spaces and the
// background keys.
func TrainEncoder(ctx context.Context, e *Encoder, sample func(r *rand.Rand) EncoderExample, o EncoderTrainOptions) error {
	if sample == nil {
		return errNoPairs
	}
	if o.Steps <= 0 {
		o.Steps = 2000
	}
	if o.Batch <= 1 {
		o.Batch = 64
	}
	if o.LR <= 0 {
		o.LR = 0.01
	}
	if o.Temperature <= 0 {
		o.Temperature = 0.05
	}
	if o.ProjLR == 0 {
		o.ProjLR = 0.1
	}
	nb := 0
	if len(o.Background) > 0 {
		nb = o.BackgroundPer
		if nb <= 0 {
			nb = o.Batch / 2
		}
	}
	D := e.cfg.Dim
	r := rand.New(rand.NewPCG(o.Seed, 0x7a1))
	if o.IDFSamples == 0 {
		o.IDFSamples = 20000
	}
	if o.IDFSamples > 0 {
		var texts []string
		for range o.IDFSamples {
			x := sample(r)
			texts = append(texts, x.Query, x.Key)
			if len(o.Background) > 0 {
				texts = append(texts, o.Background[r.IntN(len(o.Background))])
			}
		}
		e.SetIDF(texts)
	}
	opt := newAdam(len(e.table), D)
	optP := newAdam(len(e.proj), D*D)
	b := newBatch(o.Batch, o.Batch+nb, D)
	exs := make([]EncoderExample, o.Batch)
	bg := make([]string, nb)
	sum, seen := 0.0, 0
	for step := 1; step <= o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range exs {
			exs[i] = sample(r)
		}
		for j := range bg {
			bg[j] = o.Background[r.IntN(len(o.Background))]
		}
		loss := e.lossAndGrads(b, exs, bg, o.Temperature)
		if math.IsNaN(loss) {
			return fmt.Errorf("%w: the loss became NaN at step %d", ErrEmbed, step)
		}
		sum += loss
		seen++
		for f, g := range b.gt {
			opt.step(e.table, int(f), g, o.LR)
		}
		if o.ProjLR >= 0 {
			optP.step(e.proj, 0, b.gp, o.LR*o.ProjLR)
		}
		if o.Progress != nil && step%100 == 0 {
			o.Progress(step, sum/float64(seen))
			sum, seen = 0, 0
		}
	}
	e.roundBF16()
	return nil
}
