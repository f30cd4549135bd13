package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"roe/kernels"
	"roe/model/safetensors"
)

// Model is a loaded decoder of one of the supported families.
type Model struct {
	Config Config

	embed  matrix // [V, H]
	layers []layer
	norm   []float32 // [H]
	lmHead matrix    // [V, H]; the same storage as embed when tied

	wsMu   sync.Mutex
	wsFree []*workspace // pooled Forward scratch

	fingerprint string // see Fingerprint
	q8          bool   // some products quantize their activations (see ActivationsQ8)

	ropeTabs [numRopeKinds]atomic.Pointer[ropeTable] // grown on demand up to the context length
	ropeMu   sync.Mutex
}

// ropeTable holds cos/sin for positions [0, n), computed in float64 (and
// multiplied by the longrope attention factor where there is one).
type ropeTable struct {
	n        int
	cos, sin []float32 // [n, Rotary()/2]
}

// A rope kind is one set of frequencies: global or local layers (Gemma 3),
// short or long factors (longrope).
const (
	ropeLocal    = 1
	ropeLong     = 2
	numRopeKinds = 4
)

// ropeKind picks the table of a layer; long selects longrope's long factors.
func (c *Config) ropeKind(layer int, long bool) int {
	k := 0
	if c.LocalRopeTheta > 0 && c.LayerWindow(layer) > 0 {
		k |= ropeLocal
	}
	if long && c.Rope.Type == "longrope" {
		k |= ropeLong
	}
	return k
}

// layer holds one transformer block in Hugging Face nn.Linear layout ([out, in]).
type layer struct {
	attnNorm    []float32          // [H] before attention
	postAttn    []float32          // [H] on the attention output (SandwichNorm); nil otherwise
	mlpNorm     []float32          // [H] before the MLP
	postMLP     []float32          // [H] on the MLP output (SandwichNorm); nil otherwise
	qNorm       []float32          // [HeadDim] per query head (QKNorm); nil otherwise
	kNorm       []float32          // [HeadDim] per key head (QKNorm); nil otherwise
	q           matrix             // [NumHeads*HeadDim, H]
	k           matrix             // [NumKVHeads*HeadDim, H]
	v           matrix             // [NumKVHeads*HeadDim, H]
	o           matrix             // [H, NumHeads*HeadDim]
	bias        [NumProj][]float32 // [out] per projection (Config.HasBias); nil where none
	gate        matrix             // [I, H]
	up          matrix             // [I, H]
	down        matrix             // [H, I]
	qkv, gateUp []float32          // float32 fused storage q/k/v and gate/up view (FusedQKV, FusedGateUp); nil otherwise
}

// projections lists the block's seven weight matrices.
func (l *layer) projections() []*matrix {
	return []*matrix{&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}
}

// norm returns the weight of one of the block's norms (nil when absent).
func (l *layer) norm(n Norm) *[]float32 {
	switch n {
	case NormInput:
		return &l.attnNorm
	case NormPostAttn:
		return &l.postAttn
	case NormPreMLP:
		return &l.mlpNorm
	case NormPostMLP:
		return &l.postMLP
	case NormQ:
		return &l.qNorm
	case NormK:
		return &l.kNorm
	}
	return nil
}

// vecParams counts the block's norm and bias weights.
func (l *layer) vecParams() int {
	n := 0
	for _, b := range l.bias {
		n += len(b)
	}
	for x := Norm(0); x < NumNorms; x++ {
		n += len(*l.norm(x))
	}
	return n
}

// Norm names one RMSNorm weight inside a block.
type Norm int

// The norms a block may have; which ones a family has is NormName's answer.
const (
	NormInput    Norm = iota // before attention: input_layernorm
	NormPostAttn             // on the attention output before the residual add (Gemma)
	NormPreMLP               // before the MLP: post_attention_layernorm (Llama), pre_feedforward_layernorm (Gemma)
	NormPostMLP              // on the MLP output before the residual add (Gemma)
	NormQ                    // on each query head before RoPE: self_attn.q_norm
	NormK                    // on each key head before RoPE: self_attn.k_norm
	NumNorms
)

// NormName returns the checkpoint name of one of a block's norm weights, or
// "" when the family has no such norm.
func (c Config) NormName(layer int, n Norm) string {
	p := "model.layers." + strconv.Itoa(layer) + "."
	switch {
	case n == NormInput:
		return p + "input_layernorm.weight"
	case n == NormPreMLP && c.SandwichNorm:
		return p + "pre_feedforward_layernorm.weight"
	case n == NormPreMLP, n == NormPostAttn && c.SandwichNorm:
		return p + "post_attention_layernorm.weight"
	case n == NormPostMLP && c.SandwichNorm:
		return p + "post_feedforward_layernorm.weight"
	case n == NormQ && c.QKNorm:
		return p + "self_attn.q_norm.weight"
	case n == NormK && c.QKNorm:
		return p + "self_attn.k_norm.weight"
	}
	return ""
}

// NormSize is the width of a norm weight: HeadDim for the q/k norms, hidden otherwise.
func (c Config) NormSize(n Norm) int {
	if n == NormQ || n == NormK {
		return c.HeadDim
	}
	return c.HiddenSize
}

// ProjParam returns the checkpoint tensor that holds projection p of a layer
// and the offset, in elements, of p's rows inside it: a tensor of its own at
// offset 0, or a slice of Phi-3's fused qkv_proj or gate_up_proj.
func (c Config) ProjParam(layer int, p Proj) (name string, offset int) {
	pre := "model.layers." + strconv.Itoa(layer) + "."
	H := c.HiddenSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	switch {
	case c.FusedQKV && p <= ProjV:
		return pre + "self_attn.qkv_proj.weight", [...]int{0, qd * H, (qd + kvd) * H}[p]
	case c.FusedGateUp && (p == ProjGate || p == ProjUp):
		return pre + "mlp.gate_up_proj.weight", int(p-ProjGate) * c.IntermediateSize * H
	case p >= ProjGate:
		return pre + "mlp." + p.String() + ".weight", 0
	}
	return pre + "self_attn." + p.String() + ".weight", 0
}

// BiasParam is the checkpoint name of projection p's bias in a layer
// (where Config.HasBias).
func (c Config) BiasParam(layer int, p Proj) string {
	block := "self_attn."
	if p >= ProjGate {
		block = "mlp."
	}
	return "model.layers." + strconv.Itoa(layer) + "." + block + p.String() + ".bias"
}

// TensorSource is where weights come from: a safetensors file or a sharded
// set, or a GGUF file (which also implements QuantizedSource).
type TensorSource interface {
	Info(name string) (safetensors.TensorInfo, bool)
	Float32(name string) ([]float32, error)
}

// QuantizedSource is a TensorSource whose tensors may be quantized blocks
// (Info's DType is then the kernels.QType name, such as "Q4_K").
type QuantizedSource interface {
	TensorSource
	// Quantized returns the tensor's blocks as stored, and at when their
	// rows are not in Hugging Face order: row i is stored row at[i].
	Quantized(name string) (q *kernels.QMatrix, at []int32, err error)
}

// normsFolded is implemented by a TensorSource whose (1 + w) norms already
// hold the one (llama.cpp's Gemma GGUF files).
type normsFolded interface{ NormsFolded() bool }

// Load reads dir/config.json and the safetensors checkpoint in dir.
func Load(dir string) (*Model, error) { return LoadWith(dir, LoadOptions{}) }

// New builds a model from a config and its tensors, checking every dtype and shape first.
func New(cfg Config, src TensorSource) (*Model, error) { return NewWith(cfg, src, LoadOptions{}) }

// tensorWant is one checkpoint tensor and where it goes.
type tensorWant struct {
	name  string
	shape []int
	vec   *[]float32 // a norm or bias: always float32
	mat   *matrix    // a weight matrix: float32, bf16 or quantized
	// A fused matrix is split by rows into parts (rows[i] each); its float32
	// storage, which the parts view, goes to fused.
	parts []*matrix
	rows  []int
	fused *[]float32
	norm  bool // a norm weight, used as (1 + w) under NormPlusOne
}

// tensorWants lists every tensor a model of this config reads.
func (m *Model) tensorWants() []tensorWant {
	cfg := m.Config
	H, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	ws := []tensorWant{
		{name: "model.embed_tokens.weight", shape: []int{V, H}, mat: &m.embed},
		{name: "model.norm.weight", shape: []int{H}, vec: &m.norm, norm: true},
	}
	if !cfg.TieWordEmbeddings {
		ws = append(ws, tensorWant{name: "lm_head.weight", shape: []int{V, H}, mat: &m.lmHead})
	}
	for i := range m.layers {
		l := &m.layers[i]
		// The order is the fingerprint's: Llama's predates the other families.
		norm := func(n Norm) {
			if name := cfg.NormName(i, n); name != "" {
				ws = append(ws, tensorWant{name: name, shape: []int{cfg.NormSize(n)}, vec: l.norm(n), norm: true})
			}
		}
		proj := func(p Proj) {
			name, _ := cfg.ProjParam(i, p)
			out, in := cfg.ProjShape(p)
			ws = append(ws, tensorWant{name: name, shape: []int{out, in}, mat: l.proj(p)})
		}
		norm(NormInput)
		if cfg.FusedQKV {
			name, _ := cfg.ProjParam(i, ProjQ)
			ws = append(ws, tensorWant{name: name, shape: []int{qd + 2*kvd, H},
				parts: []*matrix{&l.q, &l.k, &l.v}, rows: []int{qd, kvd, kvd}, fused: &l.qkv})
		} else {
			proj(ProjQ)
			proj(ProjK)
			proj(ProjV)
		}
		proj(ProjO)
		norm(NormQ)
		norm(NormK)
		norm(NormPostAttn)
		norm(NormPreMLP)
		if cfg.FusedGateUp {
			name, _ := cfg.ProjParam(i, ProjGate)
			ws = append(ws, tensorWant{name: name, shape: []int{2 * I, H},
				parts: []*matrix{&l.gate, &l.up}, rows: []int{I, I}, fused: &l.gateUp})
		} else {
			proj(ProjGate)
			proj(ProjUp)
		}
		proj(ProjDown)
		norm(NormPostMLP)
		for p := Proj(0); p < NumProj; p++ {
			if cfg.HasBias(p) {
				out, _ := cfg.ProjShape(p)
				ws = append(ws, tensorWant{name: cfg.BiasParam(i, p), shape: []int{out}, vec: &l.bias[p]})
			}
		}
	}
	return ws
}

// NewWith is New with options. With bf16 weights each projection is narrowed
// as soon as it is read, so the float32 copy of only one tensor is alive at a
// time. Quantized tensors of a QuantizedSource stay quantized.
func NewWith(cfg Config, src TensorSource, o LoadOptions) (*Model, error) {
	if _, err := ParseWeightFormat(string(o.Weights)); err != nil {
		return nil, err
	}
	if _, err := ParseActivations(string(o.Activations)); err != nil {
		return nil, err
	}
	qsrc, _ := src.(QuantizedSource)
	folded := false
	if f, ok := src.(normsFolded); ok {
		folded = f.NormsFolded()
	}
	H, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	m := &Model{Config: cfg, layers: make([]layer, cfg.NumLayers)}
	ws := m.tensorWants()
	// Check everything before converting anything. The fingerprint leaves
	// out dtypes: a bf16 or quantized copy of a model is the same base for
	// its adapters.
	fp := sha256.New()
	r := cfg.Rope
	fmt.Fprintf(fp, "%s|H%d|I%d|L%d|h%d|kv%d|hd%d|V%d|eps%g|theta%g|rope{Type:%v Factor:%v LowFreqFactor:%v HighFreqFactor:%v OriginalMaxPos:%v}|tie%v|bias%v\n",
		cfg.Architecture, H, I, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, V,
		cfg.RMSNormEps, cfg.RopeTheta, r.Type, r.Factor, r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPos,
		cfg.TieWordEmbeddings, cfg.AttentionBias)
	if f := cfg.blockFeatures(); f != "" {
		fmt.Fprintf(fp, "%s\n", f)
	}
	if r.Type == "rope_freqs" {
		fmt.Fprintf(fp, "rope_freqs %v\n", r.Factors)
	}
	mapped := make([]bool, len(ws)) // kept in the source's mapping (a GGUF's matrices)
	for i, w := range ws {
		info, ok := src.Info(w.name)
		if !ok {
			return nil, fmt.Errorf("%w: missing tensor %q", ErrWeights, w.name)
		}
		switch info.DType {
		case "F32", "BF16", "F16":
			// A GGUF's float matrices stay in its mapping too (exact,
			// never copied), but for float32 ones asked for as bf16.
			mapped[i] = qsrc != nil && w.vec == nil && (info.DType != "F32" || !o.bf16())
		default:
			t, ok := kernels.ParseQType(string(info.DType))
			if !ok || !t.Known() || qsrc == nil || w.vec != nil {
				return nil, fmt.Errorf("%w: tensor %q has dtype %s (want F32, BF16 or F16)", ErrWeights, w.name, info.DType)
			}
			mapped[i] = true
		}
		if !slices.Equal(info.Shape, w.shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the config implies %v", ErrWeights, w.name, info.Shape, w.shape)
		}
		fmt.Fprintf(fp, "%s %v\n", w.name, info.Shape)
	}
	m.fingerprint = hex.EncodeToString(fp.Sum(nil))
	for i, w := range ws {
		if mapped[i] {
			q, at, err := qsrc.Quantized(w.name)
			if err != nil {
				return nil, fmt.Errorf("%w: tensor %q: %v", ErrWeights, w.name, err)
			}
			if w.parts == nil {
				*w.mat = matrix{q: q, perm: newRowPerm(at)}
				continue
			}
			if at != nil { // no source permutes a fused tensor's rows
				return nil, fmt.Errorf("%w: tensor %q: fused rows stored permuted", ErrWeights, w.name)
			}
			rb := len(q.Data) / q.Rows
			r0 := 0
			for j, part := range w.parts {
				*part = matrix{q: &kernels.QMatrix{Type: q.Type, Rows: w.rows[j], Cols: q.Cols, Data: q.Data[r0*rb : (r0+w.rows[j])*rb]}}
				r0 += w.rows[j]
			}
			continue
		}
		v, err := src.Float32(w.name)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrWeights, w.name, err)
		}
		switch {
		case w.vec != nil:
			if w.norm && cfg.NormPlusOne && !folded {
				v = slices.Clone(v)
				for j := range v {
					v[j]++
				}
			}
			*w.vec = v
		case w.parts != nil:
			cols := w.shape[1]
			var h []uint16
			if o.bf16() {
				h = narrow(v)
			} else {
				*w.fused = v
			}
			r0 := 0
			for j, part := range w.parts {
				lo, hi := r0*cols, (r0+w.rows[j])*cols
				if h != nil {
					*part = matrix{h: h[lo:hi:hi]}
				} else {
					*part = f32Matrix(v[lo:hi:hi])
				}
				r0 += w.rows[j]
			}
		case o.bf16() && (w.name != "model.embed_tokens.weight" || cfg.TieWordEmbeddings):
			*w.mat = matrix{h: narrow(v)}
		default:
			*w.mat = f32Matrix(v)
		}
	}
	if cfg.TieWordEmbeddings {
		m.lmHead = m.embed
	}
	m.setActivations(o.Activations)
	return m, nil
}

// blockFeatures describes, for the fingerprint, how a block departs from
// Llama's; "" for the Llama family (whose fingerprints predate it).
func (c Config) blockFeatures() string {
	// o_proj and MLP biases (Llama's attention_bias, mlp_bias) are said
	// only where present, so that no existing fingerprint changes.
	var biases string
	if c.OutputBias || c.MLPBias {
		biases = fmt.Sprintf(" obias %v mlpbias %v", c.OutputBias, c.MLPBias)
	}
	if !c.NormPlusOne && !c.SandwichNorm && !c.QKNorm && c.EmbedScale == 0 && c.QueryPreAttnScalar == 0 &&
		c.AttnSoftcap == 0 && c.FinalSoftcap == 0 && !c.GeGLU && c.RotaryDim == 0 &&
		c.LocalRopeTheta == 0 && !c.FusedQKV && !c.FusedGateUp && c.Rope.Type != "longrope" {
		return biases
	}
	return biases + fmt.Sprintf("plus1 %v sandwich %v qknorm %v embed %g qscalar %g softcap %g/%g geglu %v rot %d local %g fused %v/%v window %d %v longrope %v/%v/%g",
		c.NormPlusOne, c.SandwichNorm, c.QKNorm, c.EmbedScale, c.QueryPreAttnScalar, c.AttnSoftcap, c.FinalSoftcap,
		c.GeGLU, c.RotaryDim, c.LocalRopeTheta, c.FusedQKV, c.FusedGateUp, c.SlidingWindow, c.SlidingLayers,
		c.Rope.ShortFactor, c.Rope.LongFactor, c.Rope.AttnFactor)
}

// ropeFor returns a table of one kind covering at least n positions, growing
// it if needed: a long context need not cost memory until it is used.
func (m *Model) ropeFor(kind, n int) *ropeTable {
	slot := &m.ropeTabs[kind]
	if t := slot.Load(); t != nil && t.n >= n {
		return t
	}
	m.ropeMu.Lock()
	defer m.ropeMu.Unlock()
	if t := slot.Load(); t != nil && t.n >= n {
		return t
	}
	size := n
	if t := slot.Load(); t != nil {
		size = max(n, 2*t.n)
	}
	size = min(max(size, 256), max(n, m.Config.ContextLength()))
	layer := -1 // a global layer
	if kind&ropeLocal != 0 {
		for i := range m.Config.NumLayers {
			if m.Config.LayerWindow(i) > 0 {
				layer = i
				break
			}
		}
	}
	inv, scale := m.Config.RopeFreqs(layer, kind&ropeLong != 0)
	half := len(inv)
	t := &ropeTable{n: size, cos: make([]float32, size*half), sin: make([]float32, size*half)}
	for p := 0; p < size; p++ {
		for i, f := range inv {
			s, c := math.Sincos(float64(p) * f)
			t.cos[p*half+i] = float32(c * scale)
			t.sin[p*half+i] = float32(s * scale)
		}
	}
	slot.Store(t)
	return t
}

// Fingerprint identifies the base model an adapter or embedding was made with:
// a SHA-256 over the config and every tensor's name, dtype and shape (not the
// values, so that re-saving in another file layout keeps it).
func (m *Model) Fingerprint() string { return m.fingerprint }

// NumParams counts the model's distinct parameters.
func (m *Model) NumParams() int {
	n := m.embed.numParams() + len(m.norm)
	if !m.Config.TieWordEmbeddings {
		n += m.lmHead.numParams()
	}
	for i := range m.layers {
		l := &m.layers[i]
		n += l.vecParams()
		for _, w := range l.projections() {
			n += w.numParams()
		}
	}
	return n
}

// ProjShape returns the [out, in] shape of one projection's weight.
func (c Config) ProjShape(p Proj) (out, in int) {
	H, I := c.HiddenSize, c.IntermediateSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	switch p {
	case ProjQ:
		return qd, H
	case ProjK, ProjV:
		return kvd, H
	case ProjO:
		return H, qd
	case ProjGate, ProjUp:
		return I, H
	case ProjDown:
		return H, I
	}
	return 0, 0
}

// Weight returns one projection's weight, [out, in], for in-place merging.
// It is the model's own memory: change it only on a model made by CloneWeights.
// It is nil on a bf16 or quantized model; CloneWeights gives a float32 one.
func (m *Model) Weight(layer int, p Proj) []float32 {
	if w := m.layers[layer].proj(p); w != nil {
		return w.f
	}
	return nil
}

// proj returns the matrix of projection p, nil for an unknown one.
func (l *layer) proj(p Proj) *matrix {
	if p < 0 || p >= NumProj {
		return nil
	}
	return l.projections()[p]
}

// CloneWeights returns a model that shares embeddings and norms with m but owns
// float32 copies of the projection weights, so adapters can be merged into
// it. The copies are float32 even when m is bf16 or quantized (its embeddings
// and LM head stay shared in m's format).
func (m *Model) CloneWeights() *Model {
	c := &Model{Config: m.Config, fingerprint: m.fingerprint, embed: m.embed, norm: m.norm, lmHead: m.lmHead,
		layers: make([]layer, len(m.layers)), q8: m.lmHead.q8} // the copies are float32; the LM head keeps its path
	for i, l := range m.layers {
		l.qkv, l.gateUp = nil, nil
		if m.Config.FusedQKV {
			l.qkv = fuse(&l.q, &l.k, &l.v)
		}
		if m.Config.FusedGateUp {
			l.gateUp = fuse(&l.gate, &l.up)
		}
		for _, w := range l.projections() {
			if !m.fusedView(w, &l) {
				*w = f32Matrix(w.float32s())
			}
		}
		c.layers[i] = l
	}
	return c
}

// fusedView reports whether w is one of the views fuse just made.
func (m *Model) fusedView(w *matrix, l *layer) bool {
	return (m.Config.FusedQKV && (w == &l.q || w == &l.k || w == &l.v)) ||
		(m.Config.FusedGateUp && (w == &l.gate || w == &l.up))
}

// fuse copies parts, as float32, into one buffer (rows in order) and makes
// each part a view of it: the fused tensor of the checkpoint.
func fuse(parts ...*matrix) []float32 {
	n := 0
	for _, p := range parts {
		n += p.numParams()
	}
	buf := make([]float32, 0, n)
	for _, p := range parts {
		lo := len(buf)
		buf = append(buf, p.float32s()...)
		*p = f32Matrix(buf[lo:len(buf):len(buf)])
	}
	return buf
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }

// Param is one named weight of the model, in Hugging Face naming and layout.
type Param struct {
	Name  string
	Shape []int
	Data  []float32 // the model's own memory
	// PlusOne: Data holds 1 + w for the checkpoint's w (a Gemma norm). The
	// gradient is the same; Save writes Data − 1.
	PlusOne bool
}

// Params lists every weight in checkpoint naming and layout (Phi-3's fused
// qkv_proj and gate_up_proj as one tensor each): embeddings first, then each
// layer, then the final norm and (when untied) the LM head. Training writes
// through Data. Under NormPlusOne the norms hold 1 + w (PlusOne).
func (m *Model) Params() []Param {
	c := m.Config
	H, V := c.HiddenSize, c.VocabSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	ps := []Param{{Name: "model.embed_tokens.weight", Shape: []int{V, H}, Data: m.embed.f}}
	for i := range m.layers {
		l := &m.layers[i]
		norm := func(n Norm) {
			if name := c.NormName(i, n); name != "" {
				ps = append(ps, Param{Name: name, Shape: []int{c.NormSize(n)}, Data: *l.norm(n), PlusOne: c.NormPlusOne})
			}
		}
		norm(NormInput)
		if c.FusedQKV {
			name, _ := c.ProjParam(i, ProjQ)
			ps = append(ps, Param{Name: name, Shape: []int{qd + 2*kvd, H}, Data: l.qkv})
		}
		for p := ProjQ; p <= ProjO; p++ {
			if p == ProjO || !c.FusedQKV {
				name, _ := c.ProjParam(i, p)
				out, in := c.ProjShape(p)
				ps = append(ps, Param{Name: name, Shape: []int{out, in}, Data: l.proj(p).f})
			}
		}
		norm(NormQ)
		norm(NormK)
		for p := Proj(0); p < NumProj; p++ {
			if c.HasBias(p) {
				ps = append(ps, Param{Name: c.BiasParam(i, p), Shape: []int{len(l.bias[p])}, Data: l.bias[p]})
			}
		}
		norm(NormPostAttn)
		norm(NormPreMLP)
		if c.FusedGateUp {
			name, _ := c.ProjParam(i, ProjGate)
			ps = append(ps, Param{Name: name, Shape: []int{2 * c.IntermediateSize, H}, Data: l.gateUp})
		}
		for p := ProjGate; p <= ProjDown; p++ {
			if p == ProjDown || !c.FusedGateUp {
				name, _ := c.ProjParam(i, p)
				out, in := c.ProjShape(p)
				ps = append(ps, Param{Name: name, Shape: []int{out, in}, Data: l.proj(p).f})
			}
		}
		norm(NormPostMLP)
	}
	ps = append(ps, Param{Name: "model.norm.weight", Shape: []int{H}, Data: m.norm, PlusOne: c.NormPlusOne})
	if !c.TieWordEmbeddings {
		ps = append(ps, Param{Name: "lm_head.weight", Shape: []int{V, H}, Data: m.lmHead.f})
	}
	return ps
}

// Clone returns a deep float32 copy of the model, for full fine-tuning.
func (m *Model) Clone() *Model {
	c := m.CloneWeights()
	c.embed = f32Matrix(m.embed.float32s())
	c.norm = clone(m.norm)
	if m.Config.TieWordEmbeddings {
		c.lmHead = c.embed
	} else {
		c.lmHead = f32Matrix(m.lmHead.float32s())
	}
	for i := range c.layers {
		l := &c.layers[i]
		for n := Norm(0); n < NumNorms; n++ {
			if v := l.norm(n); *v != nil {
				*v = clone(*v)
			}
		}
		for p, b := range l.bias {
			if b != nil {
				l.bias[p] = clone(b)
			}
		}
	}
	return c
}
