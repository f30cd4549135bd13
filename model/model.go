package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"roe/model/safetensors"
)

// Model is a loaded Llama-family decoder with float32 weights.
type Model struct {
	Config Config

	embed  []float32 // [V, H]
	layers []layer
	norm   []float32 // [H]
	lmHead []float32 // [V, H]; aliases embed when tied

	// With bf16 weights (LoadOptions.Weights), the projections and the LM head
	// live here instead, as bf16 bits, and the f32 fields above are nil
	// (embed too when tied: embedH then aliases lmHeadH).
	embedH  []uint16 // [V, H]
	lmHeadH []uint16 // [V, H]

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
	q        []float32 // [NumHeads*HeadDim, H]
	k        []float32 // [NumKVHeads*HeadDim, H]
	v        []float32 // [NumKVHeads*HeadDim, H]
	o        []float32 // [H, NumHeads*HeadDim]
	qb, kb   []float32 // [NumHeads*HeadDim], [NumKVHeads*HeadDim]; nil without biases
	vb       []float32 // [NumKVHeads*HeadDim]
	mlpNorm  []float32 // [H]
	gate     []float32 // [I, H]
	up       []float32 // [I, H]
	down     []float32 // [H, I]

	// bf16 copies of the projections: set instead of the f32 ones above.
	qh, kh, vh, oh, gateh, uph, downh []uint16
}

// TensorSource is where weights come from: a safetensors file or a sharded set.
type TensorSource interface {
	Info(name string) (safetensors.TensorInfo, bool)
	Float32(name string) ([]float32, error)
}

// Load reads dir/config.json and the safetensors checkpoint in dir.
func Load(dir string) (*Model, error) { return LoadWith(dir, LoadOptions{}) }

// New builds a model from a config and its tensors, checking every dtype and shape first.
func New(cfg Config, src TensorSource) (*Model, error) { return NewWith(cfg, src, LoadOptions{}) }

// NewWith is New with options. With bf16 weights each projection is narrowed
// as soon as it is read, so the float32 copy of only one tensor is alive at a time.
func NewWith(cfg Config, src TensorSource, o LoadOptions) (*Model, error) {
	if _, err := ParseWeightFormat(string(o.Weights)); err != nil {
		return nil, err
	}
	H, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	type want struct {
		name  string
		shape []int
		dst   *[]float32
		h     *[]uint16 // with bf16 weights, where the narrowed tensor goes
	}
	m := &Model{Config: cfg, layers: make([]layer, cfg.NumLayers)}
	ws := []want{
		{"model.embed_tokens.weight", []int{V, H}, &m.embed, nil},
		{"model.norm.weight", []int{H}, &m.norm, nil},
	}
	if !cfg.TieWordEmbeddings {
		ws = append(ws, want{"lm_head.weight", []int{V, H}, &m.lmHead, nil})
	}
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		ws = append(ws,
			want{p + "input_layernorm.weight", []int{H}, &l.attnNorm, nil},
			want{p + "self_attn.q_proj.weight", []int{qd, H}, &l.q, &l.qh},
			want{p + "self_attn.k_proj.weight", []int{kvd, H}, &l.k, &l.kh},
			want{p + "self_attn.v_proj.weight", []int{kvd, H}, &l.v, &l.vh},
			want{p + "self_attn.o_proj.weight", []int{H, qd}, &l.o, &l.oh},
			want{p + "post_attention_layernorm.weight", []int{H}, &l.mlpNorm, nil},
			want{p + "mlp.gate_proj.weight", []int{I, H}, &l.gate, &l.gateh},
			want{p + "mlp.up_proj.weight", []int{I, H}, &l.up, &l.uph},
			want{p + "mlp.down_proj.weight", []int{H, I}, &l.down, &l.downh},
		)
		if cfg.AttentionBias {
			ws = append(ws,
				want{p + "self_attn.q_proj.bias", []int{qd}, &l.qb, nil},
				want{p + "self_attn.k_proj.bias", []int{kvd}, &l.kb, nil},
				want{p + "self_attn.v_proj.bias", []int{kvd}, &l.vb, nil},
			)
		}
	}
	// Check everything before converting anything.
	fp := sha256.New()
	fmt.Fprintf(fp, "%s|H%d|I%d|L%d|h%d|kv%d|hd%d|V%d|eps%g|theta%g|rope%+v|tie%v|bias%v\n",
		cfg.Architecture, H, I, cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, V,
		cfg.RMSNormEps, cfg.RopeTheta, cfg.Rope, cfg.TieWordEmbeddings, cfg.AttentionBias)
	for _, w := range ws {
		info, ok := src.Info(w.name)
		if !ok {
			return nil, fmt.Errorf("%w: missing tensor %q", ErrWeights, w.name)
		}
		switch info.DType {
		case "F32", "BF16", "F16":
		default:
			return nil, fmt.Errorf("%w: tensor %q has dtype %s (want F32, BF16 or F16)", ErrWeights, w.name, info.DType)
		}
		if !slices.Equal(info.Shape, w.shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrWeights, w.name, info.Shape, w.shape)
		}
		fmt.Fprintf(fp, "%s %s %v\n", w.name, info.DType, info.Shape)
	}
	m.fingerprint = hex.EncodeToString(fp.Sum(nil))
	if o.bf16() {
		if cfg.TieWordEmbeddings {
			ws[0].h = &m.embedH
		} else {
			ws[2].h = &m.lmHeadH
		}
	}
	for _, w := range ws {
		v, err := src.Float32(w.name)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrWeights, w.name, err)
		}
		if o.bf16() && w.h != nil {
			*w.h = narrow(v)
		} else {
			*w.dst = v
		}
	}
	if cfg.TieWordEmbeddings {
		m.lmHead, m.lmHeadH = m.embed, m.embedH
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
	n := max(len(m.embed), len(m.embedH)) + len(m.norm)
	if !m.Config.TieWordEmbeddings {
		n += max(len(m.lmHead), len(m.lmHeadH))
	}
	for _, l := range m.layers {
		n += len(l.attnNorm) + len(l.q) + len(l.k) + len(l.v) + len(l.o) + len(l.qb) + len(l.kb) + len(l.vb) +
			len(l.mlpNorm) + len(l.gate) + len(l.up) + len(l.down) +
			len(l.qh) + len(l.kh) + len(l.vh) + len(l.oh) + len(l.gateh) + len(l.uph) + len(l.downh)
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
// It is nil on a bf16 model (WeightsBF16); CloneWeights gives a float32 one.
func (m *Model) Weight(layer int, p Proj) []float32 {
	l := &m.layers[layer]
	switch p {
	case ProjQ:
		return l.q
	case ProjK:
		return l.k
	case ProjV:
		return l.v
	case ProjO:
		return l.o
	case ProjGate:
		return l.gate
	case ProjUp:
		return l.up
	case ProjDown:
		return l.down
	}
	return nil
}

// CloneWeights returns a model that shares embeddings and norms with m but owns
// copies of the projection weights, so adapters can be merged into it. The
// copies are float32 even when m is bf16 (its LM head stays shared bf16).
func (m *Model) CloneWeights() *Model {
	c := &Model{Config: m.Config, fingerprint: m.fingerprint, embed: m.embed, norm: m.norm, lmHead: m.lmHead,
		embedH: m.embedH, lmHeadH: m.lmHeadH, layers: make([]layer, len(m.layers))}
	for i, l := range m.layers {
		if l.qh != nil {
			l.q, l.k, l.v, l.o = widen(l.qh), widen(l.kh), widen(l.vh), widen(l.oh)
			l.gate, l.up, l.down = widen(l.gateh), widen(l.uph), widen(l.downh)
			l.qh, l.kh, l.vh, l.oh, l.gateh, l.uph, l.downh = nil, nil, nil, nil, nil, nil, nil
		} else {
			l.q, l.k, l.v, l.o = clone(l.q), clone(l.k), clone(l.v), clone(l.o)
			l.gate, l.up, l.down = clone(l.gate), clone(l.up), clone(l.down)
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
	ps := []Param{{"model.embed_tokens.weight", []int{V, H}, m.embed}}
	for i, l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ps = append(ps,
			Param{p + "input_layernorm.weight", []int{H}, l.attnNorm},
			Param{p + "self_attn.q_proj.weight", []int{qd, H}, l.q},
			Param{p + "self_attn.k_proj.weight", []int{kvd, H}, l.k},
			Param{p + "self_attn.v_proj.weight", []int{kvd, H}, l.v},
			Param{p + "self_attn.o_proj.weight", []int{H, qd}, l.o},
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
			Param{p + "mlp.gate_proj.weight", []int{I, H}, l.gate},
			Param{p + "mlp.up_proj.weight", []int{I, H}, l.up},
			Param{p + "mlp.down_proj.weight", []int{H, I}, l.down},
		)
	}
	ps = append(ps, Param{"model.norm.weight", []int{H}, m.norm})
	if !c.TieWordEmbeddings {
		ps = append(ps, Param{"lm_head.weight", []int{V, H}, m.lmHead})
	}
	return ps
}

// Clone returns a deep copy of the model, for full fine-tuning.
func (m *Model) Clone() *Model {
	c := m.CloneWeights()
	c.embed = clone(m.embed)
	c.norm = clone(m.norm)
	if m.Config.TieWordEmbeddings {
		c.lmHead = c.embed
	} else {
		c.lmHead = clone(m.lmHead)
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
