package model

import "roe/kernels"

// matrix is one weight matrix [rows, cols] in Hugging Face nn.Linear layout
// ([out, in]), held in exactly one storage format: float32 (f), bf16 bits
// (h) or quantized blocks (q, as read from a GGUF file and never widened as
// a whole).
type matrix struct {
	f []float32
	h []uint16
	q *kernels.QMatrix
	// perm, when set, says q's rows are stored out of Hugging Face order
	// (Llama q/k left in a GGUF file's mapping); row, matmul and reorder
	// give Hugging Face order.
	perm *rowPerm
	// q8: products with q quantize their activations (ActivationsQ8).
	q8 bool
}

// rowPerm maps Hugging Face rows to stored rows: row i is stored as at[i].
type rowPerm struct {
	at     []int32 // [rows]
	cycles []int32 // the first row of each cycle of at (fixed points left out)
}

// newRowPerm returns the rowPerm of at, nil for nil.
func newRowPerm(at []int32) *rowPerm {
	if at == nil {
		return nil
	}
	p := &rowPerm{at: at}
	seen := make([]bool, len(at))
	for i := range at {
		if seen[i] || int(at[i]) == i {
			continue
		}
		p.cycles = append(p.cycles, int32(i))
		for j := i; !seen[j]; j = int(at[j]) {
			seen[j] = true
		}
	}
	return p
}

// storedRow is the stored row holding Hugging Face row i.
func (w matrix) storedRow(i int) int {
	if w.perm == nil {
		return i
	}
	return int(w.perm.at[i])
}

// reorder puts a product's outputs, computed over the stored rows, in
// Hugging Face order in place: y[r, i] = y[r, at[i]], one cycle at a time
// with one saved value, so decode allocates nothing.
//
//	y: [R, nOut]
func (w matrix) reorder(y []float32, nOut int) {
	if w.perm == nil {
		return
	}
	at := w.perm.at
	for r := 0; r+nOut <= len(y); r += nOut {
		row := y[r : r+nOut]
		for _, c := range w.perm.cycles {
			i, first := c, row[c]
			for at[i] != c {
				row[i] = row[at[i]]
				i = at[i]
			}
			row[i] = first
		}
	}
}

func f32Matrix(v []float32) matrix { return matrix{f: v} }

// empty reports whether no weight is set (an optional tensor).
func (w matrix) empty() bool { return w.f == nil && w.h == nil && w.q == nil }

// format names the storage for reports: "f32", "bf16" or the quantized type.
func (w matrix) format() string {
	switch {
	case w.q != nil:
		return w.q.Type.String()
	case w.h != nil:
		return string(WeightsBF16)
	}
	return string(WeightsF32)
}

// numParams counts the matrix's weights.
func (w matrix) numParams() int {
	if w.q != nil {
		return w.q.Rows * w.q.Cols
	}
	return max(len(w.f), len(w.h))
}

// bytes is the matrix's size in memory.
func (w matrix) bytes() int {
	if w.q != nil {
		return len(w.q.Data)
	}
	return 4*len(w.f) + 2*len(w.h)
}

// product is y = in·Wᵀ for kernels.MatMulTGroup, with y's columns in
// stored row order: call reorder after the group.
//
//	in: [R, nIn], y: [R, nOut]
func (w matrix) product(y, in []float32, R, nOut, nIn int) kernels.Product {
	return kernels.Product{Dst: y, X: in, W: w.f, WH: w.h, Q: w.q, M: R, N: nOut, K: nIn, Q8: w.q8}
}

// matmul runs y = in·Wᵀ.
//
//	in: [R, nIn], y: [R, nOut]
func (w matrix) matmul(y, in []float32, R, nOut, nIn int) {
	switch {
	case w.q8:
		kernels.MatMulTQ8(y, in, *w.q, R)
	case w.q != nil:
		kernels.MatMulTQ(y, in, *w.q, R)
	case w.h != nil:
		kernels.MatMulTBF16(y, in, w.h, R, nOut, nIn)
	default:
		kernels.MatMulT(y, in, w.f, R, nOut, nIn)
	}
	w.reorder(y[:R*nOut], nOut)
}

// row writes row i into dst: [cols].
func (w matrix) row(dst []float32, i int) {
	n := len(dst)
	switch {
	case w.q != nil:
		rb := len(w.q.Data) / w.q.Rows
		// The matrix was checked at load, so the row cannot be malformed.
		s := w.storedRow(i)
		_ = kernels.DequantizeRow(w.q.Type, dst, w.q.Data[s*rb:(s+1)*rb])
	case w.h != nil:
		kernels.WidenBF16(dst, w.h[i*n:(i+1)*n])
	default:
		copy(dst, w.f[i*n:(i+1)*n])
	}
}

// float32s returns the weights as a new float32 slice: [rows*cols].
func (w matrix) float32s() []float32 {
	switch {
	case w.q != nil:
		v := make([]float32, w.q.Rows*w.q.Cols)
		for i := 0; i < w.q.Rows; i++ {
			w.row(v[i*w.q.Cols:(i+1)*w.q.Cols], i)
		}
		return v
	case w.h != nil:
		return widen(w.h)
	}
	return clone(w.f)
}

// toBF16 narrows a float32 matrix; others are returned as they are.
func (w matrix) toBF16() matrix {
	if w.f == nil {
		return w
	}
	return matrix{h: narrow(w.f)}
}
