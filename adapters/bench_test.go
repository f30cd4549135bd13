package adapters

import (
	"slices"
	"testing"
	"time"

	"roe/model"
)

// benchAdapter returns a rank-r adapter on all seven projections with random A and B.
func benchAdapter(base model.Config, r int, seed uint64) *LoRA { return Random(base, r, seed) }

// BenchmarkAdapterDecode measures decode on the SmolLM2-135M shape after a
// 128-token prompt: base, one unmerged rank-16 adapter on all seven projections,
// the same adapter merged, and a batch of 8 sequences with 8 different adapters
// against a batch of 8 with none and a batch of 8 sharing one adapter. The variants run interleaved in one loop, and
// the ratios (of median steps) are reported next to tokens/s.
func BenchmarkAdapterDecode(b *testing.B) {
	cfg := model.SmolLM2Shape()
	base, err := model.Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	one := benchAdapter(cfg, 16, 1)
	merged, err := Merged(base, one)
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 128)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % cfg.VocabSize
	}
	type variant struct {
		name  string
		m     *model.Model
		ads   []model.Adapter // one per sequence
		cache []*model.Cache
		d     []time.Duration // per step
	}
	eight := make([]model.Adapter, 8)
	for i := range eight {
		eight[i] = benchAdapter(cfg, 16, uint64(10+i))
	}
	vs := []*variant{
		{name: "base", m: base, ads: []model.Adapter{nil}},
		{name: "unmerged", m: base, ads: []model.Adapter{one}},
		{name: "merged", m: merged, ads: []model.Adapter{nil}},
		{name: "batch8-base", m: base, ads: make([]model.Adapter, 8)},
		{name: "batch8-1adapter", m: base, ads: []model.Adapter{one, one, one, one, one, one, one, one}},
		{name: "batch8-8adapters", m: base, ads: eight},
	}
	for _, v := range vs {
		var steps []model.Step
		for _, a := range v.ads {
			c := v.m.NewCache()
			v.cache = append(v.cache, c)
			steps = append(steps, model.Step{Cache: c, Tokens: prompt, Adapter: a})
		}
		if _, err := v.m.Forward(steps); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range vs {
			steps := make([]model.Step, len(v.ads))
			for j, a := range v.ads {
				v.cache[j].Truncate(len(prompt))
				steps[j] = model.Step{Cache: v.cache[j], Tokens: []int{42}, Adapter: a}
			}
			t0 := time.Now()
			if _, err := v.m.Forward(steps); err != nil {
				b.Fatal(err)
			}
			v.d = append(v.d, time.Since(t0))
		}
	}
	// Rates from each variant's median step: a stall of a few ms on a
	// shared machine would otherwise land on whichever variant was running.
	rate := map[string]float64{}
	for _, v := range vs {
		slices.Sort(v.d)
		rate[v.name] = float64(len(v.ads)) / v.d[len(v.d)/2].Seconds()
		b.ReportMetric(rate[v.name], v.name+"-tok/s")
	}
	b.ReportMetric(100*(rate["base"]/rate["unmerged"]-1), "unmerged-overhead-%")
	b.ReportMetric(100*(rate["base"]/rate["merged"]-1), "merged-overhead-%")
	b.ReportMetric(100*(rate["batch8-base"]/rate["batch8-8adapters"]-1), "batch8-overhead-%")
	b.ReportMetric(100*rate["batch8-8adapters"]/rate["batch8-1adapter"], "8adapters-vs-1adapter-%")
}
