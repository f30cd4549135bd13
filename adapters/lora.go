package adapters

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"roe/internal/atomicfile"
	"slices"
	"sort"
	"strconv"
	"sync"

	"roe/kernels"
	"roe/model"
	"roe/model/safetensors"
)

// Pair is one module's low-rank update ΔW = Scale·B·A.
type Pair struct {
	A     []float32 // [Rank, In]
	B     []float32 // [Out, Rank]
	Rank  int
	In    int
	Out   int
	Alpha float64
	Scale float32
	bs    []float32 // Scale·B, [Out, Rank], for the unmerged forward over many rows
	bst   []float32 // (Scale·B)ᵀ, [Rank, Out], for the unmerged forward over a few rows

	// With 16-bit decode factors (see SetDecodeDType): A and (Scale·B)ᵀ
	// as bfloat16, or as IEEE half where f16, [Rank, In] and [Rank, Out],
	// read by the few-rows forward instead of A and bst (then nil).
	a16, bst16 []uint16
	f16        bool
}

// LoRA is one expert: a set of low-rank updates over a base model's projections.
type LoRA struct {
	// Config names the modules the adapter holds: on a base with fused
	// modules (Phi-3) their parts, q_proj … up_proj; the PEFT folder names
	// the fused ones (see Save).
	Config Config
	Layers [][model.NumProj]*Pair // [layer][proj]; nil where the module is not adapted

	base model.Config // for the fused modules' names and shapes

	packed bool // pack moved (or rounded) the decode factors: never twice
}

// New returns an empty adapter for a base model; AddPair fills it. Target
// modules may name the base's fused modules (qkv_proj, gate_up_proj on
// Phi-3): the adapter then targets their parts.
func New(base model.Config, c Config) *LoRA {
	return &LoRA{Config: splitConfig(c, base), Layers: make([][model.NumProj]*Pair, base.NumLayers), base: base}
}

// SetPair stores a module's update, computing its scale from rank and alpha.
func (l *LoRA) SetPair(layer int, p model.Proj, pr *Pair) {
	pr.Scale = l.Config.Scale(pr.Rank, pr.Alpha)
	pr.bs = make([]float32, len(pr.B))
	pr.bst = make([]float32, len(pr.B))
	for i, v := range pr.B {
		pr.bs[i] = v * pr.Scale
		if pr.Rank > 0 {
			o, j := i/pr.Rank, i%pr.Rank
			pr.bst[j*pr.Out+o] = v * pr.Scale
		}
	}
	l.Layers[layer][p] = pr
}

// Pair returns a module's update, or nil.
func (l *LoRA) Pair(layer int, p model.Proj) *Pair {
	if layer < 0 || layer >= len(l.Layers) || p < 0 || p >= model.NumProj {
		return nil
	}
	return l.Layers[layer][p]
}

// keyRE matches PEFT tensor names, with or without an adapter name before ".weight".
var keyRE = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.[A-Za-z0-9_-]+)?\.weight$`)

// Load reads a PEFT folder and checks it against the base model's config.
func Load(dir string, base model.Config) (*LoRA, error) {
	cb, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	c, err := ParseConfig(cb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "adapter_config.json"), err)
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	defer f.Close()
	l, err := FromTensors(c, base, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// TensorReader is what FromTensors reads: a safetensors file or an in-memory set.
type TensorReader interface {
	Tensors() []safetensors.TensorInfo
	Float32(name string) ([]float32, error)
}

// FromTensors builds an adapter from PEFT-named tensors, checking every name
// and shape. A fused module of the base (Phi-3's qkv_proj, gate_up_proj)
// becomes its parts, each with lora_A and its rows of lora_B: the same ΔW.
func FromTensors(c Config, base model.Config, src TensorReader) (*LoRA, error) {
	c = splitConfig(c, base)
	src, err := newSplitReader(src, base)
	if err != nil {
		return nil, err
	}
	type half struct{ a, b *safetensors.TensorInfo }
	pairs := map[[2]int]*half{}
	for _, info := range src.Tensors() {
		info := info
		m := keyRE.FindStringSubmatch(info.Name)
		if m == nil {
			return nil, unknownTensor(info.Name)
		}
		layer, err := strconv.Atoi(m[1])
		if err != nil || layer >= base.NumLayers {
			return nil, fmt.Errorf("%w: tensor %q: layer %s, the base model has %d", ErrShape, info.Name, m[1], base.NumLayers)
		}
		p, ok := model.ParseProj(m[3])
		if !ok {
			if err := checkTarget(m[3]); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: tensor %q: the base model has no %s module", ErrUnsupported, info.Name, m[3])
		}
		if (p >= model.ProjGate) != (m[2] == "mlp") {
			return nil, fmt.Errorf("%w: tensor %q: %s is not under %s", ErrTensor, info.Name, m[3], m[2])
		}
		if !c.targets(layer, p) {
			return nil, fmt.Errorf("%w: tensor %q is for a module that target_modules does not name", ErrTensor, info.Name)
		}
		h := pairs[[2]int{layer, int(p)}]
		if h == nil {
			h = &half{}
			pairs[[2]int{layer, int(p)}] = h
		}
		if m[4] == "A" {
			h.a = &info
		} else {
			h.b = &info
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: no lora_A/lora_B tensors", ErrTensor)
	}
	l := New(base, c)
	keys := make([][2]int, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]*16+keys[i][1] < keys[j][0]*16+keys[j][1] })
	for _, k := range keys {
		h := pairs[k]
		layer, p := k[0], model.Proj(k[1])
		if h.a == nil || h.b == nil {
			return nil, fmt.Errorf("%w: %s has only one of lora_A and lora_B", ErrTensor, moduleKey(layer, p))
		}
		out, in := base.ProjShape(p)
		r, alpha := c.rankAlpha(layer, p)
		if want := []int{r, in}; !slices.Equal(h.a.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the base model and rank %d need %v", ErrShape, h.a.Name, h.a.Shape, r, want)
		}
		if want := []int{out, r}; !slices.Equal(h.b.Shape, want) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the base model and rank %d need %v", ErrShape, h.b.Name, h.b.Shape, r, want)
		}
		a, err := src.Float32(h.a.Name)
		if err != nil {
			return nil, err
		}
		b, err := src.Float32(h.b.Name)
		if err != nil {
			return nil, err
		}
		l.SetPair(layer, p, &Pair{A: a, B: b, Rank: r, In: in, Out: out, Alpha: alpha})
	}
	l.pack()
	return l, nil
}

func unknownTensor(name string) error {
	switch {
	case regexp.MustCompile(`lora_magnitude_vector`).MatchString(name):
		return fmt.Errorf("%w: tensor %q is a DoRA magnitude", ErrUnsupported, name)
	case regexp.MustCompile(`lora_embedding_[AB]|embed_tokens|lm_head`).MatchString(name):
		return fmt.Errorf("%w: tensor %q adapts an embedding or the LM head", ErrUnsupported, name)
	case regexp.MustCompile(`lora_[AB]\.bias$`).MatchString(name):
		return fmt.Errorf("%w: tensor %q is a LoRA bias (lora_bias)", ErrUnsupported, name)
	}
	return fmt.Errorf("%w: unknown tensor %q", ErrTensor, name)
}

// Save writes the adapter as a PEFT folder: adapter_config.json and adapter_model.safetensors.
func (l *LoRA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	config, tensors := l.PEFT()
	if err := safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "adapter_config.json"), config)
}

// PEFT returns the adapter as a PEFT folder holds it: adapter_config.json
// and the float32 tensors of adapter_model.safetensors.
func (l *LoRA) PEFT() (config []byte, tensors []safetensors.Tensor) {
	if c, ts, ok := l.fusedFile(); ok {
		return configJSON(c), ts
	}
	return configJSON(l.Config), l.tensors()
}

// tensors lists lora_A and lora_B of every adapted module in PEFT naming.
func (l *LoRA) tensors() []safetensors.Tensor {
	var ts []safetensors.Tensor
	for layer := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Layers[layer][p]
			if pr == nil {
				continue
			}
			key := "base_model.model." + moduleKey(layer, p)
			ts = append(ts,
				safetensors.F32Tensor(key+".lora_A.weight", []int{pr.Rank, pr.In}, pr.A),
				safetensors.F32Tensor(key+".lora_B.weight", []int{pr.Out, pr.Rank}, pr.B))
		}
	}
	return ts
}

// configJSON writes adapter_config.json with the fields PEFT writes.
func configJSON(c Config) []byte {
	var targets any = c.TargetModules
	if c.TargetRegex != "" {
		targets = c.TargetRegex
	}
	rp, ap := c.RankPattern, c.AlphaPattern
	if rp == nil {
		rp = map[string]int{}
	}
	if ap == nil {
		ap = map[string]float64{}
	}
	var layers any
	if c.LayersToChange != nil {
		layers = c.LayersToChange
	}
	m := map[string]any{
		"alpha_pattern": ap, "auto_mapping": nil, "base_model_name_or_path": c.BaseModel, "bias": "none",
		"fan_in_fan_out": c.FanInFanOut, "inference_mode": true, "init_lora_weights": true,
		"layer_replication": nil, "layers_pattern": nil, "layers_to_transform": layers, "loftq_config": map[string]any{},
		"lora_alpha": c.Alpha, "lora_dropout": 0.0, "megatron_config": nil, "megatron_core": "megatron.core",
		"modules_to_save": nil, "peft_type": "LORA", "r": c.R, "rank_pattern": rp, "revision": nil,
		"target_modules": targets, "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": c.UseRSLoRA,
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// AddDelta implements model.Adapter: y += x·Aᵀ·(s·B)ᵀ for the rows of one sequence.
//
//	x: [rows, In], y: [rows, Out]
func (l *LoRA) AddDelta(layer int, p model.Proj, x, y []float32, rows int) {
	pr := l.Pair(layer, p)
	if pr == nil {
		return
	}
	if rows <= fewRows {
		pr.addParts(x, y, rows)
		return
	}
	need := rows*pr.Rank + rows*pr.Out
	bp := scratch.Get().(*[]float32)
	if cap(*bp) < need {
		*bp = make([]float32, need)
	}
	t := (*bp)[:need]
	xa, d := t[:rows*pr.Rank], t[rows*pr.Rank:]
	kernels.MatMulT(xa, x, pr.A, rows, pr.Rank, pr.In)   // [rows, r]
	kernels.MatMulT(d, xa, pr.bs, rows, pr.Out, pr.Rank) // [rows, out]
	kernels.Add(y[:rows*pr.Out], d)
	scratch.Put(bp)
}

// DeltaParts implements model.PartedAdapter.
func (l *LoRA) DeltaParts(layer int, p model.Proj, rows int) int {
	pr := l.Pair(layer, p)
	switch {
	case pr == nil:
		return 0
	case rows > fewRows:
		return 1
	}
	return pr.parts()
}

// AddDeltaPart implements model.PartedAdapter.
func (l *LoRA) AddDeltaPart(layer int, p model.Proj, x, y []float32, rows, k int) {
	pr := l.Pair(layer, p)
	if pr == nil {
		return
	}
	if rows > fewRows {
		l.AddDelta(layer, p, x, y, rows)
		return
	}
	pr.addPart(x, y, rows, k)
}

// deltaParts is how many slices of the rank a decode delta is summed in:
// fixed, so that its bits do not depend on the thread count.
const deltaParts = 2

func (pr *Pair) parts() int { return min(deltaParts, pr.Rank) }

// addPart adds part k of the few-rows delta to y: y_i += Σ_j xa_ij · (s·B)ᵀ_j
// over ranks j in [k·r/n, (k+1)·r/n), as vector updates of y's rows in place
// (no [rows, out] temporary, no short dot products).
func (pr *Pair) addPart(x, y []float32, rows, k int) {
	n := pr.parts()
	r0, r1 := k*pr.Rank/n, (k+1)*pr.Rank/n
	bp := scratch.Get().(*[]float32)
	if cap(*bp) < r1-r0 {
		*bp = make([]float32, r1-r0)
	}
	xa := (*bp)[:r1-r0]
	defer scratch.Put(bp)
	for i := 0; i < rows; i++ {
		yi := y[i*pr.Out : (i+1)*pr.Out]
		pr.project(xa, x[i*pr.In:(i+1)*pr.In], r0, r1)
		switch {
		case pr.f16:
			kernels.AxpyRowsF16(yi, pr.bst16[r0*pr.Out:r1*pr.Out], pr.Out, xa)
		case pr.a16 != nil:
			kernels.AxpyRowsBF16(yi, pr.bst16[r0*pr.Out:r1*pr.Out], pr.Out, xa)
		default:
			kernels.AxpyRows(yi, pr.bst[r0*pr.Out:r1*pr.Out], pr.Out, xa)
		}
	}
}

// addParts adds every part of the few-rows delta to y, part after part,
// with the bits of addPart into zeroed buffers added to y in order (what
// the parts computed on several threads give): one pass over (s·B)ᵀ, each
// part summed in registers.
func (pr *Pair) addParts(x, y []float32, rows int) {
	if pr.parts() != 2 {
		// One part (rank 1): into a zeroed buffer, then added.
		bp := scratch.Get().(*[]float32)
		if cap(*bp) < rows*pr.Out {
			*bp = make([]float32, rows*pr.Out)
		}
		d := (*bp)[:rows*pr.Out]
		clear(d)
		pr.addPart(x, d, rows, 0)
		kernels.Add(y[:len(d)], d)
		scratch.Put(bp)
		return
	}
	bp := scratch.Get().(*[]float32)
	if cap(*bp) < pr.Rank {
		*bp = make([]float32, pr.Rank)
	}
	xa := (*bp)[:pr.Rank]
	defer scratch.Put(bp)
	split := pr.Rank / 2 // part 1's first rank: k·r/n at k = 1, n = 2
	for i := 0; i < rows; i++ {
		yi := y[i*pr.Out : (i+1)*pr.Out]
		xi := x[i*pr.In : (i+1)*pr.In]
		pr.project(xa[:split], xi, 0, split)
		pr.project(xa[split:], xi, split, pr.Rank)
		switch {
		case pr.f16:
			kernels.AxpyRowsSplitF16(yi, pr.bst16, pr.Out, xa, split)
		case pr.a16 != nil:
			kernels.AxpyRowsSplitBF16(yi, pr.bst16, pr.Out, xa, split)
		default:
			kernels.AxpyRowsSplit(yi, pr.bst, pr.Out, xa, split)
		}
	}
}

// project computes xa = x·Aᵀ over ranks [r0, r1) of the decode factors.
//
//	x: [In], xa: [r1-r0]
func (pr *Pair) project(xa, x []float32, r0, r1 int) {
	switch {
	case pr.f16:
		kernels.GemvF16(xa, x, pr.a16[r0*pr.In:r1*pr.In])
	case pr.a16 != nil:
		kernels.GemvBF16(xa, x, pr.a16[r0*pr.In:r1*pr.In])
	default:
		kernels.GemvF32(xa, x, pr.A[r0*pr.In:r1*pr.In])
	}
}

// fewRows: AddDelta over at most this many rows updates y by rank-1 vector
// updates; more rows go through a GEMM and a temporary.
const fewRows = 4

// scratch recycles AddDelta's temporaries across calls and goroutines.
var scratch = sync.Pool{New: func() any { return new([]float32) }}

// Delta returns the dense update s·B·A of one module.
//
//	result: [Out, In]
func (pr *Pair) Delta() []float32 {
	at := make([]float32, pr.In*pr.Rank) // Aᵀ: [In, r]
	for r := 0; r < pr.Rank; r++ {
		for i := 0; i < pr.In; i++ {
			at[i*pr.Rank+r] = pr.A[r*pr.In+i]
		}
	}
	d := make([]float32, pr.Out*pr.In)
	kernels.MatMulT(d, pr.bs, at, pr.Out, pr.In, pr.Rank)
	return d
}

// Merge adds the adapter into m's projection weights (m must own them: see
// model.CloneWeights). Unmerge with sign -1.
func (l *LoRA) Merge(m *model.Model, sign float32) error {
	if len(l.Layers) != m.Config.NumLayers {
		return fmt.Errorf("%w: adapter has %d layers, the model %d", ErrShape, len(l.Layers), m.Config.NumLayers)
	}
	for layer := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			pr := l.Layers[layer][p]
			if pr == nil {
				continue
			}
			kernels.Axpy(sign, pr.Delta(), m.Weight(layer, p))
		}
	}
	return nil
}

// Merged returns a copy of base with the adapter merged into its weights.
func Merged(base *model.Model, l *LoRA) (*model.Model, error) {
	m := base.CloneWeights()
	if err := l.Merge(m, 1); err != nil {
		return nil, err
	}
	return m, nil
}
