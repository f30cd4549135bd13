package main

import (
	"runtime"
	"runtime/debug"

	"roe/kernels"
	"roe/model"
)

// FamilyRun is one random model with the shape of a published checkpoint of
// another family: speed, and the KV cache at 4k context with and without
// the sliding windows.
type FamilyRun struct {
	Model      string  `json:"model"`
	Params     int     `json:"params"`
	Threads    int     `json:"threads"`
	Prefill128 float64 `json:"prefill128_tok_per_s"`
	Prefill512 float64 `json:"prefill512_tok_per_s"`
	Decode128  float64 `json:"decode128_tok_per_s"`
	KV4kMiB    float64 `json:"kv_cache_4k_mib"`      // with the sliding layers keeping their window
	KV4kFull   float64 `json:"kv_cache_4k_full_mib"` // if every layer kept every position
}

// familyShapes are the models the families section runs, beside SmolLM2's shape.
var familyShapes = []struct {
	name  string
	shape func() model.Config
}{
	{"Gemma-3-270M", model.Gemma3_270MShape},
	{"Qwen3-0.6B", model.Qwen3_06BShape},
}

// measureFamilies builds each family model in turn (f32), times prefill and
// decode at each thread count, and reports its KV memory at 4096 positions.
func measureFamilies(rep *Report, threads []int, reps int) {
	for _, f := range familyShapes {
		cfg := f.shape()
		logf("building the random %s-shape model", f.name)
		m, err := model.Random(cfg, 1)
		if err != nil {
			fatal(err)
		}
		for _, t := range threads {
			kernels.SetThreads(t)
			r := FamilyRun{Model: f.name, Params: m.NumParams(), Threads: t,
				Prefill128: prefill(m, 128, reps), Prefill512: prefill(m, 512, reps), Decode128: decode(m, 128, reps),
				KV4kMiB: float64(cfg.KVBytes(4096, false)) / (1 << 20), KV4kFull: float64(cfg.KVBytes(4096, true)) / (1 << 20)}
			logf("%s %d thread(s): prefill128 %.0f, prefill512 %.0f, decode128 %.1f tok/s; KV at 4k %.0f MiB (%.0f without windows)",
				f.name, t, r.Prefill128, r.Prefill512, r.Decode128, r.KV4kMiB, r.KV4kFull)
			rep.Families = append(rep.Families, r)
		}
		m = nil
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// mdFamilies writes the section on the other families' shapes.
func mdFamilies(p mdPrinter, rep *Report) {
	if len(rep.Families) == 0 {
		return
	}
	p("## Other families (tokens/s, f32)")
	p("")
	p("Random weights with the shapes of Gemma 3 270M (18 layers, 5 of each 6 with a 512-token sliding window, vocabulary 262144) and Qwen3-0.6B (28 layers, q/k norms, vocabulary 151936), measured as the models above. KV at 4k: the cache of one 4096-position sequence, float32, with the sliding layers keeping their window (+63 rows), and as it would be if every layer kept every position.")
	p("")
	p("| model | params | threads | prefill128 | prefill512 | decode128 | KV at 4k | KV at 4k, no windows |")
	p("|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Families {
		p("| %s | %.0fM | %d | %.0f | %.0f | %.1f | %.0f MiB | %.0f MiB |", r.Model, float64(r.Params)/1e6, r.Threads,
			r.Prefill128, r.Prefill512, r.Decode128, r.KV4kMiB, r.KV4kFull)
	}
	p("")
}
