package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"roe/kernels"
	"roe/model/safetensors"
)

// Model is a loaded Llama-family decoder.
type Model struct {
	Config Config

	embed  matrix // [V, H]
	layers []layer
	norm   []float32 // [H]
	lmHead matrix    // [V, H]; the same storage as embed when tied

	wsMu   sync.Mutex
	wsFree []*workspace // pooled Forward scratch

	fingerprint string // see Fingerprint

	ropeTab atomic.Pointer[ropeTable] // grown on demand up to the context length
	ropeMu  sync.Mutex
}

// ropeTable holds cos/sin for positions [0, n), computed in float64.
type ropeTable struct {
	n        int
	cos, sin []float32 // [n, HeadDim/2]
}

// layer holds one transformer block in Hugging Face nn.Linear layout ([out, in]).
type layer struct {
	attnNorm []float32 // [H]
	q        matrix    // [NumHeads*HeadDim, H]
	k        matrix    // [NumKVHeads*HeadDim, H]
	v        matrix    // [NumKVHeads*HeadDim, H]
	o        matrix    // [H, NumHeads*HeadDim]
	qb, kb   []float32 // [NumHeads*HeadDim], [NumKVHeads*HeadDim]; nil without biases
	vb       []float32 // [NumKVHeads*HeadDim]
	mlpNorm  []float32 // [H]
	gate     matrix    // [I, H]
	up       matrix    // [I, H]
	down     matrix    // [H, I]
}

// projections lists the block's seven weight matrices.
func (l *layer) projections() []*matrix {
	return []*matrix{&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}
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
	// Quantized returns the tensor's blocks in Hugging Face row order.
	Quantized(name string) (*kernels.QMatrix, error)
}

// Load reads dir/config.json and the safetensors checkpoint in dir.
func Load(dir string) (*Model, error) { return LoadWith(dir, LoadOptions{}) }

// New builds a model from a config and its tensors, checking every dtype and shape first.
func New(cfg Config, src TensorSource) (*Model, error) { return NewWith(cfg, src, LoadOptions{}) }

// NewWith is New with options. With bf16 weights each projection is narrowed
// as soon as it is read, so the float32 copy of only one tensor is alive at a
// time. Quantized tensors of a QuantizedSource stay quantized.
func NewWith(cfg Config, src TensorSource, o LoadOptions) (*Model, error) {
	if _, err := ParseWeightFormat(string(o.Weights)); err != nil {
		return nil, err
	}
	qsrc, _ := src.(QuantizedSource)
	H, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	type want struct {
		name  string
		shape []int
		vec   *[]float32 // a norm or bias: always float32
		mat   *matrix    // a weight matrix: float32, bf16 or quantized
	}
	m := &Model{Config: cfg, layers: make([]layer, cfg.NumLayers)}
	ws := []want{
		{"model.embed_tokens.weight", []int{V, H}, nil, &m.embed},
		{"model.norm.weight", []int{H}, &m.norm, nil},
	}
	if !cfg.TieWordEmbeddings {
		ws = append(ws, want{"lm_head.weight", []int{V, H}, nil, &m.lmHead})
	}
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		ws = append(ws,
			want{p + "input_layernorm.weight", []int{H}, &l.attnNorm, nil},
			want{p + "self_attn.q_proj.weight", []int{qd, H}, nil, &l.q},
			want{p + "self_attn.k_proj.weight", []int{kvd, H}, nil, &l.k},
			want{p + "self_attn.v_proj.weight", []int{kvd, H}, nil, &l.v},
			want{p + "self_attn.o_proj.weight", []int{H, qd}, nil, &l.o},
			want{p + "post_attention_layernorm.weight", []int{H}, &l.mlpNorm, nil},
			want{p + "mlp.gate_proj.weight", []int{I, H}, nil, &l.gate},
			want{p + "mlp.up_proj.weight", []int{I, H}, nil, &l.up},
			want{p + "mlp.down_proj.weight", []int{H, I}, nil, &l.down},
		)
		if cfg.AttentionBias {
			ws = append(ws,
				want{p + "self_attn.q_proj.bias", []int{qd}, &l.qb, nil},
				want{p + "self_attn.k_proj.bias", []int{kvd}, &l.kb, nil},
				want{p + "self_attn.v_proj.bias", []int{kvd}, &l.vb, nil},
			)
		}
	}
	// Check everything before converting anything. The fingerprint leaves
	// out dtypes: a bf16 or quantized copy of a model is the same base for
	// its adapters.
	fp := sha256.New()
	fmt.Fprintf(fp, "%s|H%d|I%d|L%d|h%d|kv%d|hd%d|V%d|eps%g|theta%g|rope%+v|tie%v|bias%v\n",
		cfg.Architecture, H, I, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, V,
		cfg.RMSNormEps, cfg.RopeTheta, cfg.Rope, cfg.TieWordEmbeddings, cfg.AttentionBias)
	quantized := make([]bool, len(ws))
	for i, w := range ws {
		info, ok := src.Info(w.name)
		if !ok {
			return nil, fmt.Errorf("%w: missing tensor %q", ErrWeights, w.name)
		}
		switch info.DType {
		case "F32", "BF16", "F16":
		default:
			t, ok := kernels.ParseQType(string(info.DType))
			if !ok || !t.Known() || qsrc == nil || w.mat == nil {
				return nil, fmt.Errorf("%w: tensor %q has dtype %s (want F32, BF16 or F16)", ErrWeights, w.name, info.DType)
			}
			quantized[i] = true
		}
		if !slices.Equal(info.Shape, w.shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, the config implies %v", ErrWeights, w.name, info.Shape, w.shape)
		}
		fmt.Fprintf(fp, "%s %v\n", w.name, info.Shape)
	}
	m.fingerprint = hex.EncodeToString(fp.Sum(nil))
	for i, w := range ws {
		if quantized[i] {
			q, err := qsrc.Quantized(w.name)
			if err != nil {
				return nil, fmt.Errorf("%w: tensor %q: %v", ErrWeights, w.name, err)
			}
			*w.mat = matrix{q: q}
			continue
		}
		v, err := src.Float32(w.name)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrWeights, w.name, err)
		}
		switch {
		case w.vec != nil:
			*w.vec = v
		case o.bf16() && (w.name != "model.embed_tokens.weight" || cfg.TieWordEmbeddings):
			*w.mat = matrix{h: narrow(v)}
		default:
			*w.mat = f32Matrix(v)
		}
	}
	if cfg.TieWordEmbeddings {
		m.lmHead = m.embed
	}
	return m, nil
}

// ropeFor returns a table covering at least n positions, growing it if needed:
// a long context need not cost memory until it is used.
func (m *Model) ropeFor(n int) *ropeTable {
	if t := m.ropeTab.Load(); t != nil && t.n >= n {
		return t
	}
	m.ropeMu.Lock()
	defer m.ropeMu.Unlock()
	if t := m.ropeTab.Load(); t != nil && t.n >= n {
		return t
	}
	size := n
	if t := m.ropeTab.Load(); t != nil {
		size = max(n, 2*t.n)
	}
	size = min(max(size, 256), m.Config.ContextLength())
	inv := m.Config.InvFreq()
	half := len(inv)
	t := &ropeTable{n: size, cos: make([]float32, size*half), sin: make([]float32, size*half)}
	for p := 0; p < size; p++ {
		for i, f := range inv {
			s, c := math.Sincos(float64(p) * f)
			t.cos[p*half+i] = float32(c)
			t.sin[p*half+i] = float32(s)
		}
	}
	m.ropeTab.Store(t)
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
		n += len(l.attnNorm) + len(l.qb) + len(l.kb) + len(l.vb) + len(l.mlpNorm)
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
		layers: make([]layer, len(m.layers))}
	for i, l := range m.layers {
		for _, w := range l.projections() {
			*w = f32Matrix(w.float32s())
		}
		c.layers[i] = l
	}
	return c
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }

// Param is one named weight of the model, in Hugging Face naming and layout.
type Param struct {
	Name  string
	Shape []int
	Data  []float32 // the model's own memory
}

// Params lists every weight, embeddings first, then each layer, then the final
// norm and (when untied) the LM head. Training writes through Data.
func (m *Model) Params() []Param {
	c := m.Config
	H, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	ps := []Param{{"model.embed_tokens.weight", []int{V, H}, m.embed.f}}
	for i, l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ps = append(ps,
			Param{p + "input_layernorm.weight", []int{H}, l.attnNorm},
			Param{p + "self_attn.q_proj.weight", []int{qd, H}, l.q.f},
			Param{p + "self_attn.k_proj.weight", []int{kvd, H}, l.k.f},
			Param{p + "self_attn.v_proj.weight", []int{kvd, H}, l.v.f},
			Param{p + "self_attn.o_proj.weight", []int{H, qd}, l.o.f},
		)
		if c.AttentionBias {
			ps = append(ps,
				Param{p + "self_attn.q_proj.bias", []int{qd}, l.qb},
				Param{p + "self_attn.k_proj.bias", []int{kvd}, l.kb},
				Param{p + "self_attn.v_proj.bias", []int{kvd}, l.vb},
			)
		}
		ps = append(ps,
			Param{p + "post_attention_layernorm.weight", []int{H}, l.mlpNorm},
			Param{p + "mlp.gate_proj.weight", []int{I, H}, l.gate.f},
			Param{p + "mlp.up_proj.weight", []int{I, H}, l.up.f},
			Param{p + "mlp.down_proj.weight", []int{H, I}, l.down.f},
		)
	}
	ps = append(ps, Param{"model.norm.weight", []int{H}, m.norm})
	if !c.TieWordEmbeddings {
		ps = append(ps, Param{"lm_head.weight", []int{V, H}, m.lmHead.f})
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
		l.attnNorm, l.mlpNorm = clone(l.attnNorm), clone(l.mlpNorm)
		if l.qb != nil {
			l.qb, l.kb, l.vb = clone(l.qb), clone(l.kb), clone(l.vb)
		}
	}
	return c
}
