package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"roe/adapters"
	"roe/kernels"
	"roe/model"
	"roe/model/safetensors"
	"roe/tasks"
)

// AllTargets are the seven Llama projections, LoRA's default targets here.
var AllTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// DefaultWarmupFrac is Mosbach et al.'s linear warmup over the first 10% of steps.
const DefaultWarmupFrac = 0.1

// Options configure one training run (one phase).
type Options struct {
	// Full trains every base weight (the model is changed in place: pass a
	// clone); otherwise the LoRA adapter's A and B are trained.
	Full bool
	// Rank, Alpha and Targets shape a new adapter (NewLoRA) when a strategy
	// makes one; defaults 8, 2·Rank, AllTargets.
	Rank    int
	Alpha   float64
	Targets []string

	LR          float64 // peak learning rate (default 1e-4)
	WeightDecay float64
	// WarmupFrac is the warmup share of the steps: 0 means DefaultWarmupFrac,
	// a negative value no warmup. The rate then decays linearly to 0.
	WarmupFrac float64
	// NoBiasCorrection turns AdamW's bias correction off (BERT's optimizer;
	// Mosbach et al. show it causes failed runs: keep it on).
	NoBiasCorrection bool
	ClipNorm         float64 // clip the global gradient norm to this (0: no clipping)

	BatchSize int // sequences per micro-batch (default 8)
	GradAccum int // micro-batches per optimizer step (default 1)
	// Steps is the number of optimizer steps; 0 means Epochs passes over the data.
	Steps  int
	Epochs float64 // default 1 (used when Steps is 0)
	// StopAfter ends Run after this many steps in total (0: run to the end),
	// keeping the schedule of the whole run: for budgets and tests.
	StopAfter int
	MaxLen    int // tokens per sequence (default DefaultMaxLen); used when encoding
	// NoEOS leaves EOS off the targets (strategies' encoding). A base model
	// that never saw EOS (llama2.c's TinyStories models) gives it ~23 nats at
	// first, which then dominates a short target's loss.
	NoEOS bool

	Seed uint64

	// LogEvery: per-layer gradient norms are computed every LogEvery steps
	// (default 10) and on the first and last step.
	LogEvery int
	// Progress is called after every optimizer step.
	Progress func(Progress)
	// CheckpointDir, when set, receives a checkpoint every CheckpointEvery
	// steps (0: only at the end of Run).
	CheckpointDir   string
	CheckpointEvery int
	// Resume: strategies load the checkpoint in CheckpointDir, when there is
	// one, before running.
	Resume bool
	// Freeze maps parameter names to masks: entries that are true keep their
	// value (gradient zeroed before clipping, value restored after the
	// optimizer step, so weight decay does not touch them either).
	Freeze map[string][]bool
}

func (o Options) withDefaults() Options {
	if o.Rank <= 0 {
		o.Rank = 8
	}
	if o.Alpha <= 0 {
		o.Alpha = float64(2 * o.Rank)
	}
	if len(o.Targets) == 0 {
		o.Targets = AllTargets
	}
	if o.LR <= 0 {
		o.LR = 1e-4
	}
	if o.WarmupFrac == 0 {
		o.WarmupFrac = DefaultWarmupFrac
	} else if o.WarmupFrac < 0 {
		o.WarmupFrac = 0
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 8
	}
	if o.GradAccum <= 0 {
		o.GradAccum = 1
	}
	if o.Epochs <= 0 {
		o.Epochs = 1
	}
	if o.MaxLen <= 0 {
		o.MaxLen = tasks.DefaultMaxLen
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 10
	}
	return o
}

// Progress is reported after each optimizer step.
type Progress struct {
	Step     int     `json:"step"` // 1-based: steps done
	Total    int     `json:"total"`
	Loss     float64 `json:"loss"` // (weighted) token-mean loss of the step
	LR       float64 `json:"lr"`
	GradNorm float64 `json:"grad_norm"` // before clipping
	// LayerGradNorms is the L2 norm of each block's gradients, on logging
	// steps only (vanishing gradients in early layers show here).
	LayerGradNorms []float64     `json:"layer_grad_norms,omitempty"`
	Tokens         int           `json:"tokens"` // tokens processed so far in this Run
	TokensPerSec   float64       `json:"tokens_per_sec"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	ETA            time.Duration `json:"eta_ns"`
}

// NewLoRA makes a PEFT-initialised adapter: A uniform in ±1/√in (Kaiming
// uniform with a = √5, as PEFT), B zero, so the adapter starts as the base
// model. The same seed gives the same adapter as `roe adapter init`. A
// target may name a fused module of the base (Phi-3's qkv_proj,
// gate_up_proj): each of its parts then gets an A of its own, a rank-r
// update per part (saved as one block-diagonal PEFT module).
func NewLoRA(base model.Config, r int, alpha float64, targets []string, seed uint64) (*adapters.LoRA, error) {
	var projs []model.Proj
	for _, t := range targets {
		ps, ok := adapters.ModuleProjs(base, strings.TrimSpace(t))
		if !ok {
			return nil, fmt.Errorf("train: unknown target module %q", t)
		}
		for _, p := range ps {
			if !slices.Contains(projs, p) {
				projs = append(projs, p)
			}
		}
	}
	names := make([]string, len(projs))
	for i, p := range projs {
		names[i] = p.String()
	}
	rng := rand.New(rand.NewPCG(seed, 0x10a))
	l := adapters.New(base, adapters.Config{R: r, Alpha: alpha, TargetModules: names})
	for layer := 0; layer < base.NumLayers; layer++ {
		for _, p := range projs {
			out, in := base.ProjShape(p)
			a := make([]float32, r*in)
			bound := 1 / math.Sqrt(float64(in))
			for i := range a {
				a[i] = float32((rng.Float64()*2 - 1) * bound)
			}
			l.SetPair(layer, p, &adapters.Pair{A: a, B: make([]float32, out*r), Rank: r, In: in, Out: out, Alpha: alpha})
		}
	}
	return l, nil
}

// Trainer runs optimizer steps over a fixed set of sequences.
//
// The data order is a pure function of the seed: the training stream is the
// concatenation of per-epoch permutations (epoch e shuffled by PCG(seed, e)),
// and micro-batch j is stream positions [j·B, (j+1)·B). So a run is
// deterministic, and resuming needs only the step count.
type Trainer struct {
	Model *model.Model
	LoRA  *adapters.LoRA // nil for full fine-tuning without an adapter
	Opt   Options
	// Losses holds each step's loss (index = step − 1), over resumes too.
	Losses []float64

	seqs      []Sequence
	optimizer *AdamW
	params    map[string][]float32
	step      int
	total     int
	permEpoch int
	perm      []int
	frozen    map[string][]float32 // values of frozen entries (snapshot)
}

// NewTrainer prepares a run. l may be nil only with o.Full.
func NewTrainer(m *model.Model, l *adapters.LoRA, seqs []Sequence, o Options) (*Trainer, error) {
	o = o.withDefaults()
	if l == nil && !o.Full {
		return nil, errors.New("train: LoRA training needs an adapter")
	}
	if len(seqs) == 0 {
		return nil, errors.New("train: no training sequences")
	}
	if o.Full && (m.WeightFormat() != model.WeightsF32 || m.EmbedWeight().Float32() == nil) {
		// LoRA trains over a bf16, quantized or GGUF base as it is stored
		// (frozen, widened a panel at a time); updating the base needs
		// float32 in memory (a GGUF's tensors, F32 ones too, are read in
		// its mapping).
		return nil, fmt.Errorf("train: full fine-tuning needs a float32 model in memory; this one is %s (a GGUF's tensors stay in the file's read-only mapping; LoRA trains on it as it is)", m.WeightFormat())
	}
	t := &Trainer{Model: m, LoRA: l, Opt: o, seqs: seqs, permEpoch: -1}
	t.optimizer = NewAdamW(o.LR, o.WeightDecay)
	t.optimizer.BiasCorrection = !o.NoBiasCorrection
	t.params = map[string][]float32{}
	if l != nil {
		for k, v := range LoRAParams(l) {
			t.params[k] = v
		}
	}
	if o.Full {
		for k, v := range BaseParams(m) {
			t.params[k] = v
		}
		// As Hugging Face's Trainer: no weight decay on norms.
		t.optimizer.NoDecay = func(name string) bool { return strings.Contains(name, "norm") }
	}
	for name, mask := range o.Freeze {
		p, ok := t.params[name]
		if !ok || len(p) != len(mask) {
			return nil, fmt.Errorf("train: freeze mask for %q does not match a parameter", name)
		}
	}
	t.total = o.Steps
	if t.total <= 0 {
		per := o.BatchSize * o.GradAccum
		t.total = max(1, int(math.Ceil(o.Epochs*float64(len(seqs))/float64(per))))
	}
	return t, nil
}

// TotalSteps is the number of optimizer steps of the whole run.
func (t *Trainer) TotalSteps() int { return t.total }

// Step is the number of optimizer steps done.
func (t *Trainer) Step() int { return t.step }

// Optimizer is the run's AdamW.
func (t *Trainer) Optimizer() *AdamW { return t.optimizer }

// streamAt returns the sequence at stream position pos.
func (t *Trainer) streamAt(pos int) Sequence {
	n := len(t.seqs)
	e := pos / n
	if e != t.permEpoch {
		r := rand.New(rand.NewPCG(t.Opt.Seed, 0xe90c0000+uint64(e)))
		t.perm, t.permEpoch = r.Perm(n), e
	}
	return t.seqs[t.perm[pos%n]]
}

func (t *Trainer) microBatch(j int) []Sequence {
	B := t.Opt.BatchSize
	out := make([]Sequence, B)
	for i := range out {
		out[i] = t.streamAt(j*B + i)
	}
	return out
}

// weightedGrads accumulates Σ w·T·grad over sub-batches of equal weight.
type weightedGrads struct {
	sum     map[string][]float32
	den     float64 // Σ w·T
	lossNum float64 // Σ w·T·loss
	tokens  int     // all tokens processed (inputs)
}

// add runs forward and backward over seqs, grouped by weight, so that each
// example's token losses count with its weight:
//
//	objective = Σᵢ wᵢ Σₜ nllᵢₜ / Σᵢ wᵢ·Tᵢ
func (t *Trainer) add(acc *weightedGrads, seqs []Sequence) error {
	groups := map[float64][]Sequence{}
	var ws []float64
	for _, s := range seqs {
		w := s.Weight
		if w == 0 {
			w = 1
		}
		if _, ok := groups[w]; !ok {
			ws = append(ws, w)
		}
		groups[w] = append(groups[w], s)
		acc.tokens += len(s.Tokens)
	}
	sort.Float64s(ws)
	for _, w := range ws {
		b := MakeBatch(groups[w])
		if b.Targets() == 0 {
			continue
		}
		loss, g, err := LossAndGrads(t.Model, t.LoRA, b, t.Opt.Full)
		if err != nil {
			return err
		}
		if acc.sum == nil {
			acc.sum = map[string][]float32{}
		}
		c := w * float64(g.Tokens)
		grads := g.LoRA
		if t.Opt.Full {
			grads = g.All()
		}
		for k, v := range grads {
			s := acc.sum[k]
			if s == nil {
				s = make([]float32, len(v))
				acc.sum[k] = s
			}
			kernels.Axpy(float32(c), v, s)
		}
		acc.den += c
		acc.lossNum += c * loss
	}
	return nil
}

// Run trains to the end (or to Opt.StopAfter) and returns the last step's loss.
func (t *Trainer) Run(ctx context.Context) (float64, error) {
	o := t.Opt
	end := t.total
	if o.StopAfter > 0 && o.StopAfter < end {
		end = o.StopAfter
	}
	if t.frozen == nil && len(o.Freeze) > 0 {
		t.frozen = map[string][]float32{}
		for name, mask := range o.Freeze {
			p := t.params[name]
			snap := make([]float32, len(p))
			for i, f := range mask {
				if f {
					snap[i] = p[i]
				}
			}
			t.frozen[name] = snap
		}
	}
	start := time.Now()
	startStep := t.step
	tokens := 0
	var last float64
	for t.step < end {
		if err := ctx.Err(); err != nil {
			return last, err
		}
		var acc weightedGrads
		for k := 0; k < o.GradAccum; k++ {
			if err := t.add(&acc, t.microBatch(t.step*o.GradAccum+k)); err != nil {
				return last, err
			}
		}
		tokens += acc.tokens
		if acc.den == 0 {
			t.step++
			t.Losses = append(t.Losses, 0)
			continue
		}
		inv := float32(1 / acc.den)
		for _, g := range acc.sum {
			scaleInPlace(g, inv)
		}
		loss := acc.lossNum / acc.den
		for name, mask := range o.Freeze {
			if g := acc.sum[name]; g != nil {
				for i, f := range mask {
					if f {
						g[i] = 0
					}
				}
			}
		}
		lr := LinearWarmupDecay(t.step, t.total, o.WarmupFrac, o.LR)
		var layerNorms []float64
		if t.step%o.LogEvery == 0 || t.step+1 == t.total || t.step == startStep {
			layerNorms = layerGradNorms(acc.sum, t.Model.Config.NumLayers)
		}
		norm := ClipGradNorm(acc.sum, o.ClipNorm)
		if err := t.optimizer.Step(t.params, acc.sum, lr); err != nil {
			return last, err
		}
		for name, snap := range t.frozen {
			p := t.params[name]
			for i, f := range o.Freeze[name] {
				if f {
					p[i] = snap[i]
				}
			}
		}
		t.step++
		last = loss
		t.Losses = append(t.Losses, loss)
		if o.Progress != nil {
			el := time.Since(start)
			done := t.step - startStep
			pr := Progress{Step: t.step, Total: t.total, Loss: loss, LR: lr, GradNorm: norm, LayerGradNorms: layerNorms,
				Tokens: tokens, Elapsed: el}
			if s := el.Seconds(); s > 0 {
				pr.TokensPerSec = float64(tokens) / s
			}
			pr.ETA = time.Duration(float64(el) / float64(done) * float64(end-t.step))
			o.Progress(pr)
		}
		if o.CheckpointDir != "" && o.CheckpointEvery > 0 && t.step%o.CheckpointEvery == 0 && t.step < end {
			if err := t.SaveCheckpoint(o.CheckpointDir); err != nil {
				return last, err
			}
		}
	}
	if t.LoRA != nil {
		SyncLoRA(t.LoRA)
	}
	if o.CheckpointDir != "" {
		if err := t.SaveCheckpoint(o.CheckpointDir); err != nil {
			return last, err
		}
	}
	return last, nil
}

var blockRE = regexp.MustCompile(`\.layers\.(\d+)\.`)

// layerGradNorms is Grads.LayerNorms over a gradient map.
func layerGradNorms(grads map[string][]float32, numLayers int) []float64 {
	ss := make([]float64, numLayers)
	for k, v := range grads {
		sm := blockRE.FindStringSubmatch(k)
		if sm == nil {
			continue
		}
		i, err := strconv.Atoi(sm[1])
		if err != nil || i >= numLayers {
			continue
		}
		ss[i] += sumSquares(v)
	}
	for i := range ss {
		ss[i] = math.Sqrt(ss[i])
	}
	return ss
}

// checkpointState is trainer.json in a checkpoint folder.
type checkpointState struct {
	Step   int       `json:"step"`
	Total  int       `json:"total"`
	Full   bool      `json:"full"`
	Losses []float64 `json:"losses"`
	// RNG: the data stream is PCG(seed, epoch) permutations; its position is
	// Step·GradAccum·BatchSize.
	RNG struct {
		Seed     uint64 `json:"seed"`
		Position int    `json:"position"`
	} `json:"rng"`
	BatchSize int `json:"batch_size"`
	GradAccum int `json:"grad_accum"`
	NumSeqs   int `json:"num_sequences"`
}

// SaveCheckpoint writes the adapter (adapter/, a PEFT folder) or, for full
// fine-tuning, the weights (model.safetensors), the optimizer state
// (optimizer.safetensors) and trainer.json (step, schedule length, data
// stream position, loss history).
func (t *Trainer) SaveCheckpoint(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if t.LoRA != nil {
		SyncLoRA(t.LoRA)
		if err := t.LoRA.Save(filepath.Join(dir, "adapter")); err != nil {
			return err
		}
	}
	if t.Opt.Full {
		var ts []safetensors.Tensor
		for _, p := range t.Model.Params() {
			ts = append(ts, safetensors.F32Tensor(p.Name, p.Shape, p.Data))
		}
		if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
			return err
		}
	}
	if err := safetensors.Write(filepath.Join(dir, "optimizer.safetensors"), t.optimizer.StateTensors(), nil); err != nil {
		return err
	}
	var st checkpointState
	st.Step, st.Total, st.Full, st.Losses = t.step, t.total, t.Opt.Full, t.Losses
	st.RNG.Seed, st.RNG.Position = t.Opt.Seed, t.step*t.Opt.GradAccum*t.Opt.BatchSize
	st.BatchSize, st.GradAccum, st.NumSeqs = t.Opt.BatchSize, t.Opt.GradAccum, len(t.seqs)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "trainer.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "trainer.json"))
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into this
// trainer (same model, data, batch size and seed), so that Run continues
// exactly where the checkpointed run stopped.
func (t *Trainer) LoadCheckpoint(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "trainer.json"))
	if err != nil {
		return err
	}
	var st checkpointState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "trainer.json"), err)
	}
	if st.RNG.Seed != t.Opt.Seed || st.BatchSize != t.Opt.BatchSize || st.GradAccum != t.Opt.GradAccum ||
		st.NumSeqs != len(t.seqs) || st.Full != t.Opt.Full {
		return fmt.Errorf("train: checkpoint %s was made with another seed, batch or data", dir)
	}
	if t.LoRA != nil {
		l, err := adapters.Load(filepath.Join(dir, "adapter"), t.Model.Config)
		if err != nil {
			return err
		}
		src := LoRAParams(l)
		for k, dst := range LoRAParams(t.LoRA) {
			v, ok := src[k]
			if !ok || len(v) != len(dst) {
				return fmt.Errorf("train: checkpoint adapter lacks %s or differs in shape", k)
			}
			copy(dst, v)
		}
		SyncLoRA(t.LoRA)
	}
	if t.Opt.Full {
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			return err
		}
		defer f.Close()
		for _, p := range t.Model.Params() {
			v, err := f.Float32(p.Name)
			if err != nil {
				return err
			}
			if len(v) != len(p.Data) {
				return fmt.Errorf("train: checkpoint %s has another shape", p.Name)
			}
			copy(p.Data, v)
		}
	}
	if err := t.optimizer.LoadStateFile(filepath.Join(dir, "optimizer.safetensors")); err != nil {
		return err
	}
	t.step, t.total, t.Losses = st.Step, st.Total, st.Losses
	return nil
}
