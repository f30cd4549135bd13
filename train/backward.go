package train

import (
	"math"
	"regexp"
	"sort"
	"strconv"

	"roe/adapters"
	"roe/model"
)

// Trainable says which parameters get gradients.
type Trainable int

const (
	LoRAOnly Trainable = iota // the adapter's A and B; the base model frozen
	Full                      // every base weight (and the adapter's, if any)
)

// Grads are d loss / d parameter for one batch.
type Grads struct {
	// LoRA maps PEFT keys (LoRAKey: "base_model.model.model.layers.N.self_attn.
	// q_proj.lora_A.weight") to gradients shaped like the adapter's tensors.
	LoRA map[string][]float32
	// Base maps Hugging Face parameter names (model.Params) to gradients; nil
	// unless full. A tied model has no lm_head entry: its LM-head gradient is
	// in model.embed_tokens.weight, with the embedding's.
	Base map[string][]float32
	// InputsEmbeds is d loss / d (embedding output), per sequence [T, H].
	InputsEmbeds [][]float32
	// Tokens is the number of target positions, the loss's denominator
	// (to weight batches when accumulating).
	Tokens int

	numLayers int
}

// All returns LoRA and Base gradients in one map (their keys never collide).
func (g *Grads) All() map[string][]float32 {
	out := make(map[string][]float32, len(g.LoRA)+len(g.Base))
	for k, v := range g.LoRA {
		out[k] = v
	}
	for k, v := range g.Base {
		out[k] = v
	}
	return out
}

var layerRE = regexp.MustCompile(`\.layers\.(\d+)\.`)

// LayerNorms returns the L2 norm of each block's gradients (LoRA and base
// together), for logging: vanishing gradients in early layers show up here.
// Embedding, final norm and LM head are not in any block.
func (g *Grads) LayerNorms() []float64 {
	ss := make([]float64, g.numLayers)
	for _, m := range []map[string][]float32{g.LoRA, g.Base} {
		for k, v := range m {
			sm := layerRE.FindStringSubmatch(k)
			if sm == nil {
				continue
			}
			i, err := strconv.Atoi(sm[1])
			if err != nil || i >= len(ss) {
				continue
			}
			ss[i] += sumSquares(v)
		}
	}
	for i := range ss {
		ss[i] = math.Sqrt(ss[i])
	}
	return ss
}

// Norm is the global L2 norm of all gradients.
func (g *Grads) Norm() float64 { return GlobalNorm(g.All()) }

func sumSquares(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}

// LoRAParams returns the adapter's tensors by PEFT key: the adapter's own
// memory, for an optimizer to update in place. After updating, call SyncLoRA
// so that inference (adapters' cached s·B) sees the new values.
func LoRAParams(l *adapters.LoRA) map[string][]float32 {
	out := map[string][]float32{}
	for i := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if pr := l.Pair(i, p); pr != nil {
				out[LoRAKey(i, p, "A")] = pr.A
				out[LoRAKey(i, p, "B")] = pr.B
			}
		}
	}
	return out
}

// SyncLoRA refreshes the adapter's derived state (the scaled B used by
// AddDelta) after its A and B were changed in place. Training itself reads A
// and B directly and does not need it.
func SyncLoRA(l *adapters.LoRA) {
	for i := range l.Layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			if pr := l.Pair(i, p); pr != nil {
				l.SetPair(i, p, pr)
			}
		}
	}
}

// BaseParams returns the model's weights by Hugging Face name (its own memory).
func BaseParams(m *model.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.Params() {
		out[p.Name] = p.Data
	}
	return out
}

// SortedKeys returns a map's keys in order, for deterministic iteration.
func SortedKeys(m map[string][]float32) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// LossAndGrads runs the forward and backward passes over a batch. With l != nil
// the adapter is applied (unmerged) and its A and B get gradients; with full,
// every base weight does too (else the base is frozen and Grads.Base is nil).
// d loss / d inputs_embeds is always returned.
func LossAndGrads(m *model.Model, l *adapters.LoRA, b Batch, full bool) (float64, *Grads, error) {
	a, err := forward(m, l, b, true)
	if err != nil {
		return 0, nil, err
	}
	g := backward(a, full)
	return a.loss, g, nil
}

// backward propagates a.dlogits back through the network.
func backward(a *acts, full bool) *Grads {
	w := a.w
	c := w.cfg
	H, I, hd, V := c.HiddenSize, c.IntermediateSize, c.HeadDim, c.VocabSize
	nh, nkv := c.NumHeads, c.NumKVHeads
	qd, kvd := nh*hd, nkv*hd
	R, N := a.R, len(a.rows)
	g := &Grads{LoRA: map[string][]float32{}, Tokens: N, numLayers: c.NumLayers}
	if full {
		g.Base = map[string][]float32{}
		for name, v := range w.names {
			g.Base[name] = make([]float32, len(v))
		}
	}
	base := func(name string) []float32 {
		if g.Base == nil {
			return nil
		}
		return g.Base[name]
	}
	// per-projection parameter gradients (rows of a fused tensor's on Phi-3)
	lg := make([][model.NumProj]linearGrads, c.NumLayers)
	for li := range w.layers {
		for p := model.Proj(0); p < model.NumProj; p++ {
			lgp := &lg[li][p]
			if g.Base != nil {
				lgp.dW = projSlice(c, g.Base, li, p)
			}
			if _, bias := w.layers[li].proj(p); bias != nil {
				lgp.db = base(layerName(li, p, "bias"))
			}
			if lo := w.layers[li].lora[p]; lo != nil {
				out, in := c.ProjShape(p)
				lgp.dA, lgp.dB = make([]float32, lo.r*in), make([]float32, out*lo.r)
				g.LoRA[LoRAKey(li, p, "A")], g.LoRA[LoRAKey(li, p, "B")] = lgp.dA, lgp.dB
			}
		}
	}
	normGrad := func(li int, n model.Norm) []float32 { return base(c.NormName(li, n)) }

	// LM head and final norm.
	dsel := make([]float32, N*H)
	dL := base("lm_head.weight")
	if c.TieWordEmbeddings {
		dL = base("model.embed_tokens.weight")
	}
	lmHeadBackward(dsel, dL, a.dlogits, a.sel, w.lmHead, N, V, H)
	dxn := make([]float32, R*H)
	for j, r := range a.rows {
		copy(dxn[r*H:(r+1)*H], dsel[j*H:(j+1)*H])
	}
	dx := make([]float32, R*H) // d loss / d residual stream
	rmsnormBackward(dx, base("model.norm.weight"), dxn, a.xL, a.rsF, w.norm, R, H)

	dh := make([]float32, R*I)
	dgt, dup := make([]float32, R*I), make([]float32, R*I)
	datt := make([]float32, R*qd)
	dq, dk, dv := make([]float32, R*qd), make([]float32, R*kvd), make([]float32, R*kvd)
	var dout, dqp, dkp []float32 // d of a sublayer's output before its post-norm; of q, k before their norms
	if c.SandwichNorm {
		dout = make([]float32, R*H)
	}
	if c.QKNorm {
		dqp, dkp = make([]float32, R*qd), make([]float32, R*kvd)
	}
	for li := len(w.layers) - 1; li >= 0; li-- {
		lw, la, gl := &w.layers[li], &a.layers[li], &lg[li]
		// xᵀ of a projection input, when some dW needs it
		inT := func(x []float32, n int, ps ...model.Proj) []float32 {
			for _, p := range ps {
				if gl[p].dW != nil {
					return transposed(x, R, n)
				}
			}
			return nil
		}
		lin := func(dIn []float32, p model.Proj, dy, in, inT []float32) {
			W, _ := lw.proj(p)
			out, nIn := c.ProjShape(p)
			linearBackward(dIn, gl[p], dy, in, inT, W, lw.lora[p], la.xa[p], R, out, nIn)
		}
		// MLP half: out = x2 + [norm](down(h)), h = act(g) ⊙ u, g/u = gate/up(norm(x2))
		dmo := dx
		if lw.postMLP != nil {
			clear(dout)
			rmsnormBackward(dout, normGrad(li, model.NormPostMLP), dx, la.mo, la.rsMO, lw.postMLP, R, H)
			dmo = dout
		}
		clear(dh)
		lin(dh, model.ProjDown, dmo, la.h, inT(la.h, I, model.ProjDown))
		if c.GeGLU {
			gegluBackward(dgt, dup, dh, la.g, la.u)
		} else {
			swigluBackward(dgt, dup, dh, la.g, la.u)
		}
		clear(dxn)
		xn2T := inT(la.xn2, H, model.ProjGate, model.ProjUp)
		lin(dxn, model.ProjGate, dgt, la.xn2, xn2T)
		lin(dxn, model.ProjUp, dup, la.xn2, xn2T)
		rmsnormBackward(dx, normGrad(li, model.NormPreMLP), dxn, la.x2, la.rs2, lw.mlpNorm, R, H)
		// attention half: x2 = x + [norm](o(attn(rope([norm](q(n))), rope([norm](k(n))), v(n)))), n = norm(x)
		dao := dx
		if lw.postAttn != nil {
			clear(dout)
			rmsnormBackward(dout, normGrad(li, model.NormPostAttn), dx, la.ao, la.rsAO, lw.postAttn, R, H)
			dao = dout
		}
		clear(datt)
		lin(datt, model.ProjO, dao, la.att, inT(la.att, qd, model.ProjO))
		attentionBackward(dq, dk, dv, datt, la.q, la.k, la.v, a.seqs, layerAttn(c, li))
		ropeBackward(dq, a.pos, nh, hd, a.ropes[li])
		ropeBackward(dk, a.pos, nkv, hd, a.ropes[li])
		dqIn, dkIn := dq, dk
		if lw.qNorm != nil {
			clear(dqp)
			clear(dkp)
			rmsnormBackward(dqp, normGrad(li, model.NormQ), dq, la.qp, la.qrs, lw.qNorm, R*nh, hd)
			rmsnormBackward(dkp, normGrad(li, model.NormK), dk, la.kp, la.krs, lw.kNorm, R*nkv, hd)
			dqIn, dkIn = dqp, dkp
		}
		clear(dxn)
		xn1T := inT(la.xn1, H, model.ProjQ, model.ProjK, model.ProjV)
		lin(dxn, model.ProjQ, dqIn, la.xn1, xn1T)
		lin(dxn, model.ProjK, dkIn, la.xn1, xn1T)
		lin(dxn, model.ProjV, dv, la.xn1, xn1T)
		rmsnormBackward(dx, normGrad(li, model.NormInput), dxn, la.x, la.rs1, lw.attnNorm, R, H)
	}
	// dx is d loss / d (scaled embedding); inputs_embeds come before the scale.
	if c.EmbedScale != 0 {
		scaleInPlace(dx, c.EmbedScale)
	}
	if full {
		embeddingBackward(g.Base["model.embed_tokens.weight"], dx, a.ids, H)
	}
	for _, s := range a.seqs {
		g.InputsEmbeds = append(g.InputsEmbeds, dx[s.r0*H:(s.r0+s.T)*H:(s.r0+s.T)*H])
	}
	return g
}

// GlobalNorm is the L2 norm of all tensors together.
func GlobalNorm(grads map[string][]float32) float64 {
	var s float64
	for _, k := range SortedKeys(grads) {
		s += sumSquares(grads[k])
	}
	return math.Sqrt(s)
}
