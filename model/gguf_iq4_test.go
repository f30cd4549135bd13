package model

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/kernels"
	"roe/model/gguf"
	"roe/model/safetensors"
)

// randIQ4Rows makes rows of random IQ4_NL or IQ4_XS blocks whose weights
// are about scale in size: random indices, an f16 scale per block (IQ4_XS:
// random six-bit sub-block scales under a super-block scale).
func randIQ4Rows(r *rand.Rand, t kernels.QType, rows, cols int, scale float32) []byte {
	rb, err := kernels.RowBytes(t, cols)
	if err != nil {
		panic(err)
	}
	b := make([]byte, rows*rb)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	d := scale / 64
	if t == kernels.IQ4_XS {
		d /= 16 // sub-block scales d·(ls−32) run to 32·d
	}
	for o := 0; o < len(b); o += t.BlockBytes() {
		h := safetensors.F32ToF16(d * (0.5 + r.Float32()))
		b[o], b[o+1] = byte(h), byte(h>>8)
	}
	return b
}

// TestGGUFIQ4Model: a Llama whose weights are IQ4_XS (256-wide rows) and
// IQ4_NL (the rest, every other layer, and the embeddings), as llama.cpp's
// IQ4_XS, Q3_K and Q2_K files of such models hold them, loads and runs: the
// logits of prefill (dequantized panels) and of decode token by token (the
// fused GEMVs) equal a float32 model of the same dequantized weights.
func TestGGUFIQ4Model(t *testing.T) {
	src, err := Random(wideLlama(2), 11)
	if err != nil {
		t.Fatal(err)
	}
	_, f := writeGGUF(t, src, GGUFWriteOptions{FileType: mustFileType(t, "f32")})
	r := rand.New(rand.NewPCG(3, 4))
	var ts []gguf.WriteTensor
	seen := map[kernels.QType]int{}
	for _, ti := range f.Tensors {
		data, err := f.Data(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		wt := gguf.WriteTensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: data}
		if len(ti.Shape) == 2 {
			wt.Type = kernels.IQ4_XS
			if strings.HasPrefix(ti.Name, "blk.1.") || ti.Name == "token_embd.weight" {
				wt.Type = kernels.IQ4_NL
			}
			wt.Data = randIQ4Rows(r, wt.Type, ti.Rows(), ti.Shape[0], 0.05)
		}
		seen[wt.Type]++
		ts = append(ts, wt)
	}
	path := filepath.Join(t.TempDir(), "iq4.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(out, f.KVs(), ts); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	m, lf, err := LoadGGUF(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	ids := []int{1, 17, 33, 250, 4, 99, 180, 2}
	ref := forwardWhole(t, m.Clone(), ids, nil).Logits
	spread := 0.0
	for _, v := range ref {
		spread = max(spread, math.Abs(float64(v-ref[0])))
	}
	if spread < 0.1 {
		t.Fatalf("logits all within %.3g of each other: the weights say nothing", spread)
	}
	if d := maxAbsDiff(forwardWhole(t, m, ids, nil).Logits, ref); d > tol || math.IsNaN(d) {
		t.Errorf("prefill logits differ from the float32 model's by %.3g", d)
	}
	if d := maxAbsDiff(forwardStepwise(t, m, ids, nil).Logits, ref); d > tol || math.IsNaN(d) {
		t.Errorf("decode logits differ from the float32 model's by %.3g", d)
	}
	if seen[kernels.IQ4_XS] == 0 || seen[kernels.IQ4_NL] == 0 {
		t.Fatalf("tensor types %v", seen)
	}
	t.Logf("tensor types %v; logits spread %.3g", seen, spread)
}
