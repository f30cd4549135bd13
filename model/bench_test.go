package model

import (
	"fmt"
	"testing"

	"roe/kernels"
)

func randomModel(tb testing.TB, c Config) *Model {
	tb.Helper()
	m, err := Random(c, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func benchTokens(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i*7919 + 13) % 49152
	}
	return ids
}

// BenchmarkPrefill reports prefill tokens/s on the SmolLM2-135M shape.
func BenchmarkPrefill(b *testing.B) {
	m := randomModel(b, SmolLM2Shape())
	for _, n := range []int{128, 512} {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("tokens=%d/threads=%d", n, th), func(b *testing.B) {
				defer kernels.SetThreads(kernels.Threads())
				kernels.SetThreads(th)
				ids := benchTokens(n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

// BenchmarkDecode reports decode tokens/s after a 128-token prompt on the
// SmolLM2-135M shape, with float32 and bf16 weights, and allocations per step.
func BenchmarkDecode(b *testing.B) {
	f32 := randomModel(b, SmolLM2Shape())
	for _, m := range []*Model{f32, f32.WithBF16()} {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("weights=%s/ctx=128/threads=%d", m.WeightFormat(), th), func(b *testing.B) {
				defer kernels.SetThreads(kernels.Threads())
				kernels.SetThreads(th)
				c := m.NewCache()
				if _, err := m.Forward([]Step{{Cache: c, Tokens: benchTokens(128)}}); err != nil {
					b.Fatal(err)
				}
				out := make([]Output, 1)
				steps := make([]Step, 1)
				tok := []int{42}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					c.Truncate(128)
					steps[0] = Step{Cache: c, Tokens: tok}
					if err := m.ForwardInto(steps, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}
