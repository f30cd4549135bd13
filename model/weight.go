package model

// Weight is a read-only view of one of the model's weight matrices
// [Rows, Cols] ([out, in]) in its stored format: float32, bf16 or quantized
// blocks. It lets code outside the package multiply by a frozen base
// without widening it as a whole (the trainer on a bf16 or GGUF base).
type Weight struct {
	m          matrix
	Rows, Cols int
}

// ProjWeight returns a layer's projection p.
func (m *Model) ProjWeight(layer int, p Proj) Weight {
	out, in := m.Config.ProjShape(p)
	return Weight{m: *m.layers[layer].proj(p), Rows: out, Cols: in}
}

// EmbedWeight returns the token embedding table [vocab, hidden].
func (m *Model) EmbedWeight() Weight {
	return Weight{m: m.embed, Rows: m.Config.VocabSize, Cols: m.Config.HiddenSize}
}

// LMHeadWeight returns the output projection [vocab, hidden] (the embedding
// table when tied).
func (m *Model) LMHeadWeight() Weight {
	return Weight{m: m.lmHead, Rows: m.Config.VocabSize, Cols: m.Config.HiddenSize}
}

// Format names the storage: "f32", "bf16" or the quantized type.
func (w Weight) Format() string { return w.m.format() }

// Float32 returns the weights when they are stored as float32 (shared, not
// copied: [Rows*Cols]); nil otherwise.
func (w Weight) Float32() []float32 { return w.m.f }

// MulT computes y = x·Wᵀ on the stored format.
//
//	x: [R, Cols], y: [R, Rows] (overwritten)
func (w Weight) MulT(y, x []float32, R int) { w.m.matmul(y, x, R, w.Rows, w.Cols) }

// RowsTo writes rows [r0, r1) as float32 into dst: [(r1−r0)·Cols].
func (w Weight) RowsTo(dst []float32, r0, r1 int) {
	if w.m.f != nil {
		copy(dst, w.m.f[r0*w.Cols:r1*w.Cols])
		return
	}
	for i := r0; i < r1; i++ {
		w.m.row(dst[(i-r0)*w.Cols:(i-r0+1)*w.Cols], i)
	}
}
