// Package train is roe's training core: a decoder forward pass that keeps
// its activations, the backward pass of every part of it (LoRA and full
// fine-tuning), the causal-LM loss, AdamW and the learning-rate schedule.
//
// It runs every family package model runs, reading the same description
// (model.Config's family fields: norms, q/k norms, embedding scale,
// attention scale, soft-capping and windows, GeGLU, partial and per-layer
// RoPE, longrope, Phi-3's fused tensors through model.Config.ProjParam). It
// is a second implementation of the forward, kept because it stores
// activations for the backward and differs in layout (whole sequences, no
// KV cache); both are held to the same float64 goldens.
//
// Everything is float32 with float64 reductions where cheap (loss, softmax
// statistics, norms), and the heavy products run on roe/kernels.
package train

import (
	"errors"
	"fmt"

	"roe/adapters"
	"roe/kernels"
	"roe/model"
)

// ErrBatch reports a malformed batch.
var ErrBatch = errors.New("train: bad batch")

// Batch is a set of token sequences with the positions that count in the loss.
//
// Each sequence has its own length: there is no padding. Positions start at 0
// in every sequence and attention is causal inside the sequence, so a batch
// right-padded with an attention mask (the Hugging Face layout) is the same as
// its rows truncated to their real lengths (see FromPadded): pads only come
// after the real tokens, so no counted position can see them.
type Batch struct {
	Tokens [][]int
	// LossMask[i][t] is true where token t of sequence i is a target, predicted
	// from the logits at t−1. LossMask[i][0] is ignored (nothing predicts it).
	LossMask [][]bool
}

// FromPadded builds a Batch from a right-padded [B, T] layout: each row is cut
// to its attention-mask length (positions with attention_mask 0 are absent).
// Left padding (a 0 before a 1) is refused: positions would differ.
//
//	ids, attention, lossMask: [B][T]
func FromPadded(ids, attention, lossMask [][]int) (Batch, error) {
	if len(attention) != len(ids) || len(lossMask) != len(ids) {
		return Batch{}, fmt.Errorf("%w: %d rows of ids, %d of attention mask, %d of loss mask", ErrBatch, len(ids), len(attention), len(lossMask))
	}
	var b Batch
	for i, row := range ids {
		if len(attention[i]) != len(row) || len(lossMask[i]) != len(row) {
			return Batch{}, fmt.Errorf("%w: row %d: masks and ids differ in length", ErrBatch, i)
		}
		n := 0
		for n < len(row) && attention[i][n] != 0 {
			n++
		}
		for t := n; t < len(row); t++ {
			if attention[i][t] != 0 {
				return Batch{}, fmt.Errorf("%w: row %d is not right-padded", ErrBatch, i)
			}
		}
		toks := append([]int(nil), row[:n]...)
		mask := make([]bool, n)
		for t := range mask {
			mask[t] = lossMask[i][t] != 0
		}
		b.Tokens = append(b.Tokens, toks)
		b.LossMask = append(b.LossMask, mask)
	}
	return b, nil
}

// Targets counts the positions that enter the loss (its denominator).
func (b Batch) Targets() int {
	n := 0
	for _, m := range b.LossMask {
		for t := 1; t < len(m); t++ {
			if m[t] {
				n++
			}
		}
	}
	return n
}

// ---------------------------------------------------------------- weights

// layerWeights are one block's tensors, in Hugging Face layout ([out, in]).
// Norms hold the values the forward multiplies by (Gemma's 1 + w, see
// model.Param.PlusOne). Under model.Config.FusedQKV and FusedGateUp q/k/v
// and gate/up are row ranges of the fused checkpoint tensors.
// Projections are read through model.Weight in the model's own format: a
// bf16 or quantized base stays as it is (frozen), dequantized on the fly.
type layerWeights struct {
	q, k, v, o, gate, up, down      model.Weight
	attnNorm, mlpNorm               []float32
	bias                            [model.NumProj][]float32 // nil where the projection has none
	postAttn, postMLP, qNorm, kNorm []float32                // nil where the family has none
	lora                            [model.NumProj]*loraParams
}

// proj returns a projection's weight and bias.
func (lw *layerWeights) proj(p model.Proj) (w model.Weight, b []float32) {
	ws := [model.NumProj]*model.Weight{&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down}
	return *ws[p], lw.bias[p]
}

// norm returns the weight of one of the block's norms.
func (lw *layerWeights) norm(n model.Norm) *[]float32 {
	switch n {
	case model.NormInput:
		return &lw.attnNorm
	case model.NormPostAttn:
		return &lw.postAttn
	case model.NormPreMLP:
		return &lw.mlpNorm
	case model.NormPostMLP:
		return &lw.postMLP
	case model.NormQ:
		return &lw.qNorm
	}
	return &lw.kNorm
}

type weights struct {
	cfg    model.Config
	embed  model.Weight // [V, H]
	norm   []float32    // [H]
	lmHead model.Weight // [V, H]; the embedding when tied
	layers []layerWeights
	names  map[string][]float32 // HF name → float32 tensor (absent: stored otherwise)
}

// projSlice is the part of a checkpoint tensor that holds projection p:
// the whole tensor, or its rows in a fused one.
func projSlice(c model.Config, names map[string][]float32, layer int, p model.Proj) []float32 {
	name, off := c.ProjParam(layer, p)
	v := names[name]
	if v == nil {
		return nil
	}
	out, in := c.ProjShape(p)
	return v[off : off+out*in : off+out*in]
}

// layerName is the Hugging Face parameter name of a projection's weight in
// the Llama layout (LoRA keys use it for every family).
func layerName(layer int, p model.Proj, what string) string {
	block := "self_attn"
	if p >= model.ProjGate {
		block = "mlp"
	}
	return fmt.Sprintf("model.layers.%d.%s.%s.%s", layer, block, p, what)
}

// LoRAKey is the PEFT tensor name of a module's lora_A or lora_B ("A" or "B").
// On Phi-3 the adapter's modules are the parts of the fused ones (q_proj …
// up_proj), as package adapters holds them.
func LoRAKey(layer int, p model.Proj, ab string) string {
	return "base_model.model." + layerName(layer, p, "lora_"+ab+".weight")
}

func loadWeights(m *model.Model, l *adapters.LoRA) (*weights, error) {
	c := m.Config
	w := &weights{cfg: c, names: map[string][]float32{}, layers: make([]layerWeights, c.NumLayers)}
	for _, p := range m.Params() {
		w.names[p.Name] = p.Data
	}
	get := func(n string) []float32 { return w.names[n] }
	w.embed, w.norm, w.lmHead = m.EmbedWeight(), get("model.norm.weight"), m.LMHeadWeight()
	for i := range w.layers {
		lw := &w.layers[i]
		for n := model.Norm(0); n < model.NumNorms; n++ {
			if name := c.NormName(i, n); name != "" {
				*lw.norm(n) = get(name)
			}
		}
		lw.q, lw.k, lw.v = m.ProjWeight(i, model.ProjQ), m.ProjWeight(i, model.ProjK), m.ProjWeight(i, model.ProjV)
		lw.o = m.ProjWeight(i, model.ProjO)
		lw.gate, lw.up, lw.down = m.ProjWeight(i, model.ProjGate), m.ProjWeight(i, model.ProjUp), m.ProjWeight(i, model.ProjDown)
		for p := model.Proj(0); p < model.NumProj; p++ {
			if c.HasBias(p) {
				lw.bias[p] = get(c.BiasParam(i, p))
			}
		}
	}
	if l != nil {
		if len(l.Layers) != c.NumLayers {
			return nil, fmt.Errorf("train: adapter has %d layers, the model %d", len(l.Layers), c.NumLayers)
		}
		for i := range w.layers {
			for p := model.Proj(0); p < model.NumProj; p++ {
				pr := l.Pair(i, p)
				if pr == nil {
					continue
				}
				out, in := c.ProjShape(p)
				if pr.In != in || pr.Out != out || len(pr.A) != pr.Rank*in || len(pr.B) != out*pr.Rank {
					return nil, fmt.Errorf("train: adapter layer %d %s has shape A %d×%d B %d×%d, the model needs in %d out %d",
						i, p, pr.Rank, pr.In, pr.Out, pr.Rank, in, out)
				}
				w.layers[i].lora[p] = &loraParams{A: pr.A, B: pr.B, r: pr.Rank, scale: pr.Scale}
			}
		}
	}
	return w, nil
}

// ---------------------------------------------------------------- activations

// layerActs are what one block's backward needs. R rows, H hidden, I FFN width.
type layerActs struct {
	x       []float32                // [R, H] block input (residual stream)
	rs1     []float32                // [R] input_layernorm 1/rms
	xn1     []float32                // [R, H] normed input of q, k, v
	qp, kp  []float32                // [R, nh·hd], [R, nkv·hd] q, k before their norms (QKNorm only)
	qrs     []float32                // [R·nh] q-norm 1/rms (QKNorm only)
	krs     []float32                // [R·nkv]
	q       []float32                // [R, nh·hd] after RoPE
	k, v    []float32                // [R, nkv·hd] (k after RoPE)
	att     []float32                // [R, nh·hd] attention output, input of o_proj
	ao      []float32                // [R, H] o_proj output (SandwichNorm only: the post-attention norm's input)
	rsAO    []float32                // [R]
	x2      []float32                // [R, H] residual after attention
	rs2     []float32                // [R]
	xn2     []float32                // [R, H] normed input of gate, up
	g, u, h []float32                // [R, I] gate, up, act(gate)⊙up (input of down_proj)
	mo      []float32                // [R, H] down_proj output (SandwichNorm only)
	rsMO    []float32                // [R]
	xa      [model.NumProj][]float32 // [R, r] x·Aᵀ of each LoRA module
}

// acts is a forward pass over a batch, kept for the backward.
type acts struct {
	w      *weights
	seqs   []seqSpan
	ids    []int // [R]
	pos    []int // [R]
	R      int
	layers []layerActs
	xL     []float32    // [R, H] last block's output
	rsF    []float32    // [R]
	xnF    []float32    // [R, H] final-norm output
	ropes  []*ropeTable // per layer (layers of one kind share a table)

	// loss
	rows    []int     // [N] rows whose logits are counted
	targets []int     // [N] the token each predicts
	sel     []float32 // [N, H] xnF at those rows
	dlogits []float32 // [N, V] d loss / d logits
	capT    []float32 // [N, V] tanh(z/cap) of the logits z (FinalSoftcap only)
	nll     []float64 // [N] −log p(target)
	loss    float64
}

// layout checks a batch against the model and lays out its rows.
func layout(c model.Config, b Batch) (seqs []seqSpan, ids, pos []int, err error) {
	if len(b.Tokens) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no sequences", ErrBatch)
	}
	if len(b.LossMask) != len(b.Tokens) {
		return nil, nil, nil, fmt.Errorf("%w: %d sequences, %d loss masks", ErrBatch, len(b.Tokens), len(b.LossMask))
	}
	ctx := c.ContextLength()
	for i, toks := range b.Tokens {
		if len(toks) == 0 {
			return nil, nil, nil, fmt.Errorf("%w: sequence %d is empty", ErrBatch, i)
		}
		if len(b.LossMask[i]) != len(toks) {
			return nil, nil, nil, fmt.Errorf("%w: sequence %d has %d tokens and %d mask entries", ErrBatch, i, len(toks), len(b.LossMask[i]))
		}
		if len(toks) > ctx {
			return nil, nil, nil, fmt.Errorf("%w: sequence %d has %d tokens, the model allows %d", ErrBatch, i, len(toks), ctx)
		}
		seqs = append(seqs, seqSpan{r0: len(ids), T: len(toks)})
		for t, id := range toks {
			if id < 0 || id >= c.VocabSize {
				return nil, nil, nil, fmt.Errorf("%w: sequence %d: token id %d outside vocabulary [0, %d)", ErrBatch, i, id, c.VocabSize)
			}
			ids = append(ids, id)
			pos = append(pos, t)
		}
	}
	if b.Targets() == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no target positions in the loss mask", ErrBatch)
	}
	return seqs, ids, pos, nil
}

// attnSpec is how one layer attends.
type attnSpec struct {
	nh, nkv, hd int
	scale       float32 // on q·k
	softcap     float32 // 0: none
	window      int     // 0: global
}

func layerAttn(c model.Config, layer int) attnSpec {
	return attnSpec{nh: c.NumHeads, nkv: c.NumKVHeads, hd: c.HeadDim, scale: float32(c.AttnScale()),
		softcap: float32(c.AttnSoftcap), window: c.LayerWindow(layer)}
}

// forward runs the model over the batch and computes the loss and d loss /
// d logits. keep=false reuses one block's buffers (loss only, no backward).
func forward(m *model.Model, l *adapters.LoRA, b Batch, keep bool) (*acts, error) {
	w, err := loadWeights(m, l)
	if err != nil {
		return nil, err
	}
	c := m.Config
	seqs, ids, pos, err := layout(c, b)
	if err != nil {
		return nil, err
	}
	H, I, hd := c.HiddenSize, c.IntermediateSize, c.HeadDim
	nh, nkv := c.NumHeads, c.NumKVHeads
	qd, kvd := nh*hd, nkv*hd
	R := len(ids)
	maxT := 0
	for _, s := range seqs {
		maxT = max(maxT, s.T)
	}
	a := &acts{w: w, seqs: seqs, ids: ids, pos: pos, R: R, layers: make([]layerActs, c.NumLayers),
		ropes: ropeTables(c, maxT)}

	x := make([]float32, R*H)
	embeddingForward(x, w.embed, ids, H)
	if c.EmbedScale != 0 {
		scaleInPlace(x, c.EmbedScale)
	}
	var buf layerActs
	alloc := func(la *layerActs, lw *layerWeights) {
		la.rs1, la.xn1 = make([]float32, R), make([]float32, R*H)
		la.q, la.k, la.v, la.att = make([]float32, R*qd), make([]float32, R*kvd), make([]float32, R*kvd), make([]float32, R*qd)
		la.x2, la.rs2, la.xn2 = make([]float32, R*H), make([]float32, R), make([]float32, R*H)
		la.g, la.u, la.h = make([]float32, R*I), make([]float32, R*I), make([]float32, R*I)
		if lw.qNorm != nil {
			la.qp, la.kp, la.qrs, la.krs = make([]float32, R*qd), make([]float32, R*kvd), make([]float32, R*nh), make([]float32, R*nkv)
		}
		if lw.postAttn != nil {
			la.ao, la.rsAO, la.mo, la.rsMO = make([]float32, R*H), make([]float32, R), make([]float32, R*H), make([]float32, R)
		}
		for p, lo := range lw.lora {
			if lo != nil {
				la.xa[p] = make([]float32, R*lo.r)
			}
		}
	}
	proj := make([]float32, R*H)
	for li := range w.layers {
		lw := &w.layers[li]
		la := &a.layers[li]
		if keep {
			alloc(la, lw)
		} else {
			if buf.xn1 == nil {
				alloc(&buf, lw)
			}
			for p, lo := range lw.lora { // adapters may differ in rank per layer
				if lo != nil && len(buf.xa[p]) < R*lo.r {
					buf.xa[p] = make([]float32, R*lo.r)
				}
			}
			*la = buf
		}
		la.x = x
		lin := func(p model.Proj, y, in []float32, out, nIn int) {
			W, bias := lw.proj(p)
			lo := lw.lora[p]
			var xa []float32
			if lo != nil {
				xa = la.xa[p][:R*lo.r]
			}
			linearForward(y, in, W, bias, lo, xa, R, out, nIn)
		}
		// attention half: x2 = x + [norm](o(attn(rope([norm](q(n))), rope([norm](k(n))), v(n)))), n = norm(x)
		rmsnormForward(la.xn1, la.rs1, x, lw.attnNorm, R, H, c.RMSNormEps)
		if lw.qNorm != nil {
			lin(model.ProjQ, la.qp, la.xn1, qd, H)
			lin(model.ProjK, la.kp, la.xn1, kvd, H)
			rmsnormForward(la.q, la.qrs, la.qp, lw.qNorm, R*nh, hd, c.RMSNormEps)
			rmsnormForward(la.k, la.krs, la.kp, lw.kNorm, R*nkv, hd, c.RMSNormEps)
		} else {
			lin(model.ProjQ, la.q, la.xn1, qd, H)
			lin(model.ProjK, la.k, la.xn1, kvd, H)
		}
		lin(model.ProjV, la.v, la.xn1, kvd, H)
		ropeForward(la.q, pos, nh, hd, a.ropes[li])
		ropeForward(la.k, pos, nkv, hd, a.ropes[li])
		attentionForward(la.att, la.q, la.k, la.v, seqs, layerAttn(c, li))
		if lw.postAttn != nil {
			lin(model.ProjO, la.ao, la.att, H, qd)
			rmsnormForward(proj, la.rsAO, la.ao, lw.postAttn, R, H, c.RMSNormEps)
		} else {
			lin(model.ProjO, proj, la.att, H, qd)
		}
		copy(la.x2, x)
		kernels.Add(la.x2, proj)
		// MLP half: out = x2 + [norm](down(act(gate(n)) ⊙ up(n))), n = norm(x2)
		rmsnormForward(la.xn2, la.rs2, la.x2, lw.mlpNorm, R, H, c.RMSNormEps)
		lin(model.ProjGate, la.g, la.xn2, I, H)
		lin(model.ProjUp, la.u, la.xn2, I, H)
		if c.GeGLU {
			gegluForward(la.h, la.g, la.u)
		} else {
			swigluForward(la.h, la.g, la.u)
		}
		if lw.postMLP != nil {
			lin(model.ProjDown, la.mo, la.h, H, I)
			rmsnormForward(proj, la.rsMO, la.mo, lw.postMLP, R, H, c.RMSNormEps)
		} else {
			lin(model.ProjDown, proj, la.h, H, I)
		}
		next := x // loss only: the block input is not needed any more
		if keep {
			next = make([]float32, R*H)
		}
		copy(next, la.x2)
		kernels.Add(next, proj)
		x = next
	}
	a.xL = x
	a.rsF, a.xnF = make([]float32, R), make([]float32, R*H)
	rmsnormForward(a.xnF, a.rsF, x, w.norm, R, H, c.RMSNormEps)

	// LM head on the counted rows only, then the loss.
	for i, s := range seqs {
		for t := 0; t+1 < s.T; t++ {
			if b.LossMask[i][t+1] {
				a.rows = append(a.rows, s.r0+t)
				a.targets = append(a.targets, b.Tokens[i][t+1])
			}
		}
	}
	N, V := len(a.rows), c.VocabSize
	a.sel = make([]float32, N*H)
	for j, r := range a.rows {
		copy(a.sel[j*H:(j+1)*H], a.xnF[r*H:(r+1)*H])
	}
	a.dlogits = make([]float32, N*V)
	lmHeadForward(a.dlogits, a.sel, w.lmHead, N, V, H)
	if c.FinalSoftcap > 0 {
		a.capT = softcapForward(a.dlogits, float32(c.FinalSoftcap))
	}
	a.loss, a.nll = crossEntropyForwardBackward(a.dlogits, a.targets, N, V)
	if a.capT != nil {
		softcapBackward(a.dlogits, a.capT)
	}
	return a, nil
}

// ropeTables returns each layer's RoPE table for positions below n: the
// layer's frequencies (a local base on Gemma 3's sliding layers) and, for
// longrope, the long factors when the batch's longest sequence is past the
// original context (transformers decides per forward from the longest
// position).
func ropeTables(c model.Config, n int) []*ropeTable {
	long := c.LongRope(n)
	byKey := map[string]*ropeTable{}
	out := make([]*ropeTable, c.NumLayers)
	for i := range out {
		inv, scale := c.RopeFreqs(i, long)
		key := fmt.Sprint(inv, scale)
		if byKey[key] == nil {
			byKey[key] = newRopeTable(inv, scale, n)
		}
		out[i] = byKey[key]
	}
	return out
}

// Loss runs the forward pass only and returns the batch's loss: the mean, over
// all target positions of all sequences together, of −log p(target).
func Loss(m *model.Model, l *adapters.LoRA, b Batch) (float64, error) {
	a, err := forward(m, l, b, false)
	if err != nil {
		return 0, err
	}
	return a.loss, nil
}

// TokenNLLs returns, per sequence, −log p(token t+1 | tokens ≤ t) for t in
// [0, T−1), 0 where token t+1 is not a target (the layout of the golden
// token_nll_* tensors).
func TokenNLLs(m *model.Model, l *adapters.LoRA, b Batch) ([][]float64, error) {
	a, err := forward(m, l, b, false)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(a.seqs))
	seqOf := make([]int, a.R)
	for i, s := range a.seqs {
		out[i] = make([]float64, max(0, s.T-1))
		for t := 0; t < s.T; t++ {
			seqOf[s.r0+t] = i
		}
	}
	for j, r := range a.rows {
		i := seqOf[r]
		out[i][r-a.seqs[i].r0] = a.nll[j]
	}
	return out, nil
}
