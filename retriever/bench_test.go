package retriever

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"roe/kernels"
)

// BenchmarkSearch times exact MIPS over N random rows; the benchmarks/mips
// program is the full comparison (sizes up to 1M, FAISS, bandwidth).
func BenchmarkSearch(b *testing.B) {
	for _, c := range []struct{ n, dim, q int }{{100_000, 576, 1}, {100_000, 576, 32}, {100_000, 64, 1}, {100_000, 64, 32}} {
		b.Run(fmt.Sprintf("n%d_d%d_q%d", c.n, c.dim, c.q), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			ix := NewIndex(c.dim, Raw)
			for e := 0; e*100 < c.n; e++ {
				_ = ix.Add(fmt.Sprint(e), randVecs(rng, 100, c.dim, 0), nil)
			}
			qs := randVecs(rng, c.q, c.dim, 0)
			_, _ = ix.Search(qs, 10)
			b.SetBytes(int64(c.n * c.dim * 4))
			b.ResetTimer()
			for range b.N {
				_, _ = ix.Search(qs, 10)
			}
		})
	}
}

// BenchmarkMatMulTBlock times the kernel alone on one block's shape.
func BenchmarkMatMulTBlock(b *testing.B) {
	for _, c := range []struct{ q, n, dim int }{{32, 4128, 576}, {1, 4128, 576}, {32, 4128, 64}} {
		b.Run(fmt.Sprintf("q%d_n%d_d%d", c.q, c.n, c.dim), func(b *testing.B) {
			x := make([]float32, c.q*c.dim)
			w := make([]float32, c.n*c.dim)
			for i := range w {
				w[i] = float32(i%7) - 3
			}
			dst := make([]float32, c.q*c.n)
			b.ReportMetric(0, "ns/op")
			b.ResetTimer()
			for range b.N {
				kernels.MatMulT(dst, x, w, c.q, c.n, c.dim)
			}
			b.ReportMetric(2*float64(c.q*c.n*c.dim)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAdd times loading 100k rows as 1000 experts of 100.
func BenchmarkAdd(b *testing.B) {
	for _, dim := range []int{64, 576} {
		b.Run(fmt.Sprintf("d%d", dim), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			sets := make([][][]float32, 1000)
			for i := range sets {
				sets[i] = randVecs(rng, 100, dim, 0)
			}
			b.SetBytes(int64(100_000 * dim * 4))
			b.ResetTimer()
			for range b.N {
				ix := NewIndex(dim, CenterL2)
				for e, s := range sets {
					_ = ix.Add(fmt.Sprint(e), s, nil)
				}
				_, _ = ix.Search(sets[0][:1], 1) // includes the lazy rebuild
			}
		})
	}
}
