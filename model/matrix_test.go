package model

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"roe/kernels"
)

// A quantized matrix kept in GGUF row order with its perm gives, bit for bit,
// what an explicitly un-permuted copy gives: matmul (decode and a prefill
// of more than 8 rows, f32 and q8 activations), product + reorder, row,
// float32s, and Weight's RowsTo and MulT.
func TestPermutedMatrix(t *testing.T) {
	const heads, hd, cols = 3, 8, 256 // [24, 256]
	rows := heads * hd
	rng := rand.New(rand.NewPCG(1, 2))
	for _, qt := range []kernels.QType{kernels.Q8_0, kernels.Q4_0, kernels.Q4_K, kernels.Q6_K} {
		rb, err := kernels.RowBytes(qt, cols)
		if err != nil {
			t.Fatal(err)
		}
		hfData := make([]byte, rows*rb) // Hugging Face row order
		for r := range rows {
			src := make([]float32, cols)
			for i := range src {
				src[i] = float32(rng.NormFloat64())
			}
			if err := kernels.QuantizeRow(qt, hfData[r*rb:(r+1)*rb], src); err != nil {
				t.Fatal(err)
			}
		}
		at := ggufRowOrder(rows, heads)
		stored := make([]byte, len(hfData)) // GGUF row order, as in a file
		for r := range rows {
			copy(stored[int(at[r])*rb:], hfData[r*rb:(r+1)*rb])
		}
		want := matrix{q: &kernels.QMatrix{Type: qt, Rows: rows, Cols: cols, Data: hfData}}
		got := matrix{q: &kernels.QMatrix{Type: qt, Rows: rows, Cols: cols, Data: stored}, perm: newRowPerm(at)}
		if got.perm.cycles == nil {
			t.Fatal("the GGUF row order is the identity")
		}

		for _, R := range []int{1, 13} {
			for _, q8 := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/R=%d/q8=%v", qt, R, q8), func(t *testing.T) {
					want.q8, got.q8 = q8, q8
					x := make([]float32, R*cols)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					yw, yg := make([]float32, R*rows), make([]float32, R*rows)
					want.matmul(yw, x, R, rows, cols)
					got.matmul(yg, x, R, rows, cols)
					if !slices.Equal(yg, yw) {
						t.Error("matmul differs")
					}
					clear(yg)
					kernels.MatMulTGroup(got.product(yg, x, R, rows, cols))
					got.reorder(yg, rows)
					if !slices.Equal(yg, yw) {
						t.Error("product + reorder differs")
					}
					clear(yg)
					Weight{m: got, Rows: rows, Cols: cols}.MulT(yg, x, R)
					if !slices.Equal(yg, yw) {
						t.Error("Weight.MulT differs")
					}
				})
			}
		}
		if !slices.Equal(got.float32s(), want.float32s()) {
			t.Errorf("%v: float32s differs", qt)
		}
		rw, rg := make([]float32, cols), make([]float32, cols)
		for r := range rows {
			want.row(rw, r)
			got.row(rg, r)
			if !slices.Equal(rg, rw) {
				t.Fatalf("%v: row %d differs", qt, r)
			}
		}
		r0, r1 := 5, 19
		dw, dg := make([]float32, (r1-r0)*cols), make([]float32, (r1-r0)*cols)
		Weight{m: want, Rows: rows, Cols: cols}.RowsTo(dw, r0, r1)
		Weight{m: got, Rows: rows, Cols: cols}.RowsTo(dg, r0, r1)
		if !slices.Equal(dg, dw) {
			t.Errorf("%v: RowsTo differs", qt)
		}
	}
}

// Loading a quantized Llama GGUF leaves q and k in the file's mapping, in
// its row order, instead of un-permuted copies on the heap; putting their
// outputs in order allocates nothing per decode step.
func TestGGUFPermutedInMapping(t *testing.T) {
	m, f, err := LoadGGUF(filepath.Join(ggufGoldenDir, "tiny-llama-k256", "tiny-llama-k256-Q4_K_M.gguf"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, l := range m.layers {
		for _, p := range []struct {
			w    matrix
			name string
		}{{l.q, "attn_q"}, {l.k, "attn_k"}} {
			name := fmt.Sprintf("blk.%d.%s.weight", i, p.name)
			data, err := f.Data(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.w.q == nil || p.w.perm == nil {
				t.Fatalf("%s: not a permuted quantized matrix", name)
			}
			if unsafe.SliceData(p.w.q.Data) != unsafe.SliceData(data) || len(p.w.q.Data) != len(data) {
				t.Errorf("%s: blocks are not the file's mapping", name)
			}
		}
	}
	step := decodeLoop(t, m, 1)
	step()
	if a := testing.AllocsPerRun(20, step); a != 0 {
		t.Errorf("%v allocations per decode step", a)
	}
}
