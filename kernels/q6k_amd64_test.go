//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// The AVX-512 BW Q6_K GEMV gives the bits of the AVX-512 F one it replaces
// where the CPU has BW (TestQGEMV checks the one installed against the
// reference; this keeps the other one checked too).
func TestQ6KBWSameBits(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512VL || !cpu.X86.HasAVX512BW {
		t.Skip("no AVX-512 BW")
	}
	r := rand.New(rand.NewPCG(61, 62))
	bw, f := qgemvAsm(Q6_K, qgemvQ6_KBWAVX512), qgemvAsm(Q6_K, qgemvQ6_KAVX512)
	for iter := 0; iter < 50; iter++ {
		rows, nb := 1+r.IntN(7), 1+r.IntN(5)
		k := nb * 256
		rb := mustRowBytes(Q6_K, k) + r.IntN(3)*5
		w := make([]byte, rows*rb)
		for j := 0; j < rows; j++ {
			copy(w[j*rb:], randQRow(r, Q6_K, k, 1))
		}
		x := randVec(r, k, 1)
		xs := make([]float32, xsLen(k))
		xSums(xs, x)
		a, b := make([]float32, rows), make([]float32, rows)
		bw(a, x, xs, w, rb)
		f(b, x, xs, w, rb)
		for j := range a {
			if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
				t.Fatalf("rows=%d nb=%d: row %d: BW %v, F %v", rows, nb, j, a[j], b[j])
			}
		}
	}
}
