// Command perf measures roe's inference speed against the machine's own
// ceilings, all in one run: streaming read bandwidth and FP32 peak (1 and 2
// threads), GEMM on the layer shapes, prefill 128/512 and decode 128 at 1 and
// 2 threads with float32 and bf16 weights on a random model of SmolLM2-135M's
// shape and on the embedded stories260K, batched decode (1, 8, 32 sequences),
// unmerged per-sequence LoRA on decode, every SIMD kernel set side by side,
// allocations per decode step, peak RSS, CPU profiles of a decode step and a
// prefill, and optionally the same model in PyTorch (-torch, set by run.sh).
//
//	go run ./benchmarks/perf [-out benchmarks/results] [-quick]
//
// It writes perf.json, perf.md and two PNG plots into -out.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"roe/adapters"
	"roe/benchmarks/internal/results"
	"roe/internal/hugepage"
	"roe/kernels"
	"roe/model"
	"roe/models"
)

var (
	outDir   = flag.String("out", "benchmarks/results", "where perf.json, perf.md and the plots go")
	torchCmd = flag.String("torch", "", "shell command running torch_perf.py (run.sh sets it); empty skips PyTorch")
	quick    = flag.Bool("quick", false, "fewer repetitions and a 256 MiB bandwidth buffer (a smoke run)")
	only     = flag.String("only", "", "gguf: only the ceilings and the GGUF section, written to gguf.{json,md}; scoring: only the scoring section, to scoring.{json,md} (shorter runs)")
	rssChild = flag.String("rss-child", "", "internal: measure peak RSS for weights f32|bf16|gguf:FILE and print JSON")
)

// Quoted reference figures (measured 2026-11-24 by others on this machine
// kind, from the issue; not measured by this program).
var quoted = map[string]map[string][2]float64{ // name → metric → {1 thread, 2 threads} tok/s
	"llama.cpp b4747 F32":  {"prefill128": {551, 863}, "prefill512": {478, 769}, "decode128": {63, 97}},
	"llama.cpp b4747 BF16": {"prefill128": {990, 1266}, "prefill512": {737, 1019}, "decode128": {125, 155}},
	"PyTorch+OpenBLAS F32": {"prefill128": {787, 1114}, "prefill512": {577, 875}, "decode128": {26, 39}},
}

type Run struct {
	Model    string  `json:"model"`
	Weights  string  `json:"weights"`
	Threads  int     `json:"threads"`
	Metric   string  `json:"metric"` // prefill128, prefill512, decode128
	TokPerS  float64 `json:"tok_per_s"`
	GBPerS   float64 `json:"weight_gb_per_s,omitempty"` // decode: weight bytes streamed per second
	Fraction float64 `json:"fraction_of_ceiling"`       // decode: of bandwidth; prefill: of FP32 peak
}

type GEMM struct {
	M, N, K  int
	Threads  int
	Weights  string
	GFLOPS   float64 // default kernels (packed prefill GEMM where the CPU has it)
	Fraction float64
	// The same product with the packed GEMM switched off (the dot-style
	// tiles of before), measured alongside.
	GFLOPSTiles   float64 `json:"gflops_tiles"`
	FractionTiles float64 `json:"fraction_tiles"`
}

// Sync is the worker pool's synchronisation cost: one Parallel dispatch of
// trivial work, and how many dispatches one decode step makes.
type Sync struct {
	DispatchNs     map[int]float64    `json:"dispatch_ns"`         // threads → ns per Parallel(2 items, no work)
	StepDispatches map[string]float64 `json:"dispatches_per_step"` // weights → pool dispatches per decode step (2 threads)
	StepMs         map[string]float64 `json:"step_ms"`             // weights → decode step time (2 threads)
}

type Batch struct {
	Weights string  `json:"weights"`
	Threads int     `json:"threads"`
	Batch   int     `json:"batch"`
	TokPerS float64 `json:"tok_per_s"`
}

// LoRA is unmerged per-sequence adapter cost on decode (rank 16, all seven
// projections of every layer), the variants measured interleaved.
type LoRA struct {
	Weights  string  `json:"weights"`
	Threads  int     `json:"threads"`
	Base     float64 `json:"base_tok_per_s"`     // 1 sequence, no adapter
	Unmerged float64 `json:"unmerged_tok_per_s"` // 1 sequence, one unmerged adapter
	Overhead float64 `json:"unmerged_overhead"`  // step time ratio − 1
	// The same adapter with --lora-dtype bfloat16 (opt-in, lossy for a
	// float32 adapter): its decode factors rounded to bfloat16.
	UnmergedBF16 float64 `json:"unmerged_bf16_tok_per_s"`
	OverheadBF16 float64 `json:"unmerged_bf16_overhead"`
	// The same adapter as a float16 GGUF LoRA (the file llama.cpp runs),
	// read by default as float16 where its values survive (F16Factors).
	UnmergedF16 float64 `json:"unmerged_f16_gguf_tok_per_s"`
	OverheadF16 float64 `json:"unmerged_f16_gguf_overhead"`
	F16Factors  string  `json:"unmerged_f16_gguf_factors"`
	Batch8Base  float64 `json:"batch8_base_tok_per_s"`           // 8 sequences, no adapter
	Batch8One   float64 `json:"batch8_one_adapter_tok_per_s"`    // 8 sequences, one shared adapter
	Batch8Eight float64 `json:"batch8_eight_adapters_tok_per_s"` // 8 sequences, 8 different adapters
	EightVsOne  float64 `json:"eight_vs_one"`                    // Batch8Eight / Batch8One
}

// PathRun is one kernel set on the random 135M-shape model at 2 threads.
type PathRun struct {
	Path       string  `json:"path"`
	Weights    string  `json:"weights"`
	Prefill512 float64 `json:"prefill512_tok_per_s"`
	Decode     float64 `json:"decode64_tok_per_s"`
}

type RSS struct {
	Weights     string  `json:"weights"`
	PeakMiB     float64 `json:"peak_rss_mib"`
	WeightsMiB  float64 `json:"weights_mib"`
	KVMiB       float64 `json:"kv_cache_mib"`
	Ratio       float64 `json:"ratio"`
	Description string  `json:"description"`
	// Where the pages are at the end (Linux smaps; in-process runs only):
	// the executable's own, the weights file's, and anonymous memory.
	ExeMiB  float64 `json:"exe_mib,omitempty"`
	FileMiB float64 `json:"file_mib,omitempty"`
	AnonMiB float64 `json:"anon_mib,omitempty"`
}

// smapsArea is one mapped area of /proc/self/smaps: its file (or "",
// "[heap]", ...), its file offset, and its kB fields ("Rss", ...).
type smapsArea struct {
	name, offset string
	kb           map[string]float64
}

// readSmaps parses this process's /proc/self/smaps (Linux only).
func readSmaps() ([]smapsArea, error) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	var areas []smapsArea
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			a := smapsArea{offset: f[2], kb: map[string]float64{}}
			if len(f) >= 6 {
				a.name = f[5]
			}
			areas = append(areas, a)
		case len(f) >= 2 && strings.HasSuffix(f[0], ":") && len(areas) > 0:
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				areas[len(areas)-1].kb[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	return areas, nil
}

// realPath is path made absolute with its links resolved, as smaps names it.
func realPath(path string) string {
	path, _ = filepath.Abs(path)
	path, _ = filepath.EvalSymlinks(path)
	return path
}

// rssByMapping sums the resident pages of this process's mappings of its
// own executable, of the file at path, and of anonymous memory (MiB).
func rssByMapping(path string) (exe, file, anon float64) {
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	path = realPath(path)
	areas, err := readSmaps()
	if err != nil {
		return math.NaN(), math.NaN(), math.NaN()
	}
	for _, a := range areas {
		mib := a.kb["Rss"] / 1024
		switch a.name {
		case self:
			exe += mib
		case path:
			file += mib
		case "", "[heap]", "[stack]":
			anon += mib
		}
	}
	return exe, file, anon
}

// fileHugeMiB is how much of each of this process's mappings of the file at
// path the kernel maps 2 MiB at a time (smaps FilePmdMapped, MiB, averaged
// over the mappings; NaN where smaps cannot be read).
func fileHugeMiB(path string) float64 {
	path = realPath(path)
	areas, err := readSmaps()
	if err != nil {
		return math.NaN()
	}
	sum, maps := 0.0, 0
	for _, a := range areas {
		if a.name != path {
			continue
		}
		if strings.Trim(a.offset, "0") == "" {
			maps++ // a mapping's first area starts at offset 0
		}
		sum += a.kb["FilePmdMapped"] / 1024
	}
	return sum / float64(max(maps, 1))
}

type Report struct {
	Commit           string                        `json:"commit"`
	Date             string                        `json:"date"`
	CPU              string                        `json:"cpu"`
	Path             string                        `json:"kernel_path"`
	GOMAXPROCS       int                           `json:"gomaxprocs"`
	BandwidthGB      map[int]float64               `json:"read_bandwidth_gb_per_s"` // threads → the ceiling used: max of the two below
	BandwidthDRAM    map[int]float64               `json:"read_bandwidth_1gib_gb_per_s"`
	BandwidthWeights map[int]float64               `json:"read_bandwidth_weight_sized_gb_per_s"`
	BandwidthRows    map[int]float64               `json:"read_bandwidth_1gib_rows_gb_per_s"`
	PeakGFLOPS       map[int]float64               `json:"fp32_peak_gflops"` // threads →
	GEMM             []GEMM                        `json:"gemm"`
	Runs             []Run                         `json:"runs"`
	Batches          []Batch                       `json:"batched_decode"`
	LoRA             []LoRA                        `json:"lora_decode"`
	Paths            []PathRun                     `json:"kernel_sets"`
	Allocs           map[string]float64            `json:"allocs_per_decode_step"`
	RSS              []RSS                         `json:"rss"`
	Torch            map[string]map[string]float64 `json:"torch,omitempty"` // threads → metric → tok/s
	TorchInfo        string                        `json:"torch_info,omitempty"`
	Goals            []Goal                        `json:"goals"`
	PrefillTiles     []Run                         `json:"prefill_tiles"` // prefill with the packed GEMM switched off
	Sync             Sync                          `json:"sync"`
	Profiles         map[string]string             `json:"profiles"`
	Routing          *RoutingCost                  `json:"routing_cost,omitempty"`
	Scoring          []ScoringRun                  `json:"scoring,omitempty"`
	GGUF             *GGUFSection                  `json:"gguf,omitempty"`
	Families         []FamilyRun                   `json:"families"`
}

type Goal struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  string  `json:"value"`
	Ratio  float64 `json:"ratio"` // value / target (≥ 1 is met)
	Met    bool    `json:"met"`
}

func main() {
	flag.Parse()
	if path, ok := strings.CutPrefix(*rssChild, "gguf:"); ok {
		childRSSGGUF(path)
		return
	}
	if path, ok := strings.CutPrefix(*rssChild, "qlora:"); ok {
		childQLoRA(path, false)
		return
	}
	if path, ok := strings.CutPrefix(*rssChild, "lora-f32:"); ok {
		childQLoRA(path, true)
		return
	}
	if *rssChild != "" {
		childRSS(*rssChild)
		return
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		fatal(err)
	}
	rep := &Report{Commit: results.Commit(), Date: time.Now().UTC().Format(time.RFC3339), CPU: cpuName(), Path: kernels.Path(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), BandwidthGB: map[int]float64{}, PeakGFLOPS: map[int]float64{},
		BandwidthDRAM: map[int]float64{}, BandwidthWeights: map[int]float64{}, BandwidthRows: map[int]float64{},
		Allocs: map[string]float64{}, Profiles: map[string]string{}}
	threads := []int{1, 2}
	logf("kernels: %s, GOMAXPROCS %d, %s", rep.Path, rep.GOMAXPROCS, rep.CPU)

	// Ceilings, measured first (the model is not in memory yet).
	measureCeilings(rep, threads)
	rep.GEMM = gemms(rep)

	cfg := model.SmolLM2Shape()
	logf("building the random %s-shape model", "SmolLM2-135M")
	f32, err := model.Random(cfg, 1)
	if err != nil {
		fatal(err)
	}
	if *only == "gguf" {
		measureGGUF(rep, f32, threads, 3)
		writeGGUFOnly(rep)
		return
	}
	if *only == "scoring" {
		measureScoring(rep, f32, threads, 5)
		writeScoringOnly(rep)
		return
	}
	bf := f32.WithBF16()
	stories, err := model.LoadFS(models.Stories260K())
	if err != nil {
		fatal(err)
	}
	big := []namedModel{{"random-135M", f32}, {"random-135M", bf}}
	small := []namedModel{{"stories260K", stories}, {"stories260K", stories.WithBF16()}}
	reps := 3
	if *quick {
		reps = 1
	}
	for _, nm := range append(big, small...) {
		for _, t := range threads {
			measureModel(rep, nm, t, reps)
		}
	}
	measureBatched(rep, big, threads)
	measureLoRA(rep, big, threads, reps)
	measureKernelSets(rep, big, reps)
	measureAllocs(rep, big)
	rep.Sync = syncCost([]*model.Model{f32, bf})
	measureProfiles(rep, f32)
	measureScoring(rep, f32, threads, reps)
	measureGGUF(rep, f32, threads, reps)
	f32, bf, big = nil, nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	measureFamilies(rep, threads, reps)
	measureRSS(rep)
	measureTorch(rep, threads, reps)
	measureRouting(rep, reps)
	rep.Goals = goals(rep)
	writeJSON(rep)
	writeMD(rep)
	if err := plots(rep); err != nil {
		logf("plots: %v", err)
	}
	logf("wrote %s", filepath.Join(*outDir, "perf.{json,md}"))
}

// namedModel is a model under test and the name the report gives it.
type namedModel struct {
	name string
	m    *model.Model
}

// measureCeilings measures read bandwidth three ways and the FP32 peak, at
// each thread count: a 1 GiB buffer (beyond any cache: DRAM) one stream at a
// time; a buffer the size of the f32 model's weights swept again and again,
// as decode does (on a CPU with a last-level cache near that size, part of it
// may stay cached); and the 1 GiB buffer read many rows at once (more misses
// in flight). The ceiling is the largest: the strictest bound.
func measureCeilings(rep *Report, threads []int) {
	bigBuf, weights := 1<<28, int(model.SmolLM2Shape().NumParamsHint())
	if *quick {
		bigBuf, weights = 1<<26, 1<<24
	}
	for _, t := range threads {
		rep.BandwidthDRAM[t] = bandwidth(t, bigBuf, false)
		rep.BandwidthWeights[t] = bandwidth(t, weights, false)
		rep.BandwidthRows[t] = bandwidth(t, bigBuf, true)
		rep.BandwidthGB[t] = max(rep.BandwidthDRAM[t], rep.BandwidthWeights[t], rep.BandwidthRows[t])
		rep.PeakGFLOPS[t] = peak(t)
		logf("ceilings, %d thread(s): read %.1f GB/s (1 GiB), %.1f GB/s (weight-sized), %.1f GB/s (1 GiB, rows at once), FP32 peak %.0f GFLOP/s",
			t, rep.BandwidthDRAM[t], rep.BandwidthWeights[t], rep.BandwidthRows[t], rep.PeakGFLOPS[t])
	}
}

// measureModel measures prefill 128/512 and decode 128 of one model at t
// threads (random-135M on AVX-512: prefill also with the packed GEMM off).
func measureModel(rep *Report, nm namedModel, t, reps int) {
	kernels.SetThreads(t)
	bytes := weightBytes(nm.m)
	for _, n := range []int{128, 512} {
		if n > nm.m.Config.ContextLength() {
			continue
		}
		tps := prefill(nm.m, n, reps)
		flops := 2 * float64(nm.m.NumParams()) * float64(n)
		rep.Runs = append(rep.Runs, Run{nm.name, string(nm.m.WeightFormat()), t, fmt.Sprintf("prefill%d", n), tps, 0,
			tps * flops / float64(n) / 1e9 / rep.PeakGFLOPS[t]})
	}
	if nm.name == "random-135M" && kernels.Path() == "avx512" {
		measurePackedOff(rep, nm, t, reps)
	}
	tps := decode(nm.m, 128, reps)
	gb := tps * bytes / 1e9
	rep.Runs = append(rep.Runs, Run{nm.name, string(nm.m.WeightFormat()), t, "decode128", tps, gb, gb / rep.BandwidthGB[t]})
	last := rep.Runs[len(rep.Runs)-3:]
	logf("%s %s %d thread(s): prefill128 %.0f, prefill512 %.0f, decode128 %.1f tok/s (%.1f GB/s)",
		nm.name, nm.m.WeightFormat(), t, last[0].TokPerS, last[1].TokPerS, tps, gb)
}

// measurePackedOff is the before/after in the same run: prefill with the
// packed GEMM off.
func measurePackedOff(rep *Report, nm namedModel, t, reps int) {
	kernels.SetPackedGEMM(false)
	for _, n := range []int{128, 512} {
		tps := prefill(nm.m, n, reps)
		flops := 2 * float64(nm.m.NumParams()) * float64(n)
		rep.PrefillTiles = append(rep.PrefillTiles, Run{nm.name, string(nm.m.WeightFormat()), t, fmt.Sprintf("prefill%d", n), tps, 0,
			tps * flops / float64(n) / 1e9 / rep.PeakGFLOPS[t]})
	}
	kernels.SetPackedGEMM(true)
	last := rep.PrefillTiles[len(rep.PrefillTiles)-2:]
	logf("%s %s %d thread(s), packed GEMM off: prefill128 %.0f, prefill512 %.0f tok/s",
		nm.name, nm.m.WeightFormat(), t, last[0].TokPerS, last[1].TokPerS)
}

// measureBatched measures batched decode of 1, 8 and 32 sequences.
func measureBatched(rep *Report, big []namedModel, threads []int) {
	for _, nm := range big {
		for _, t := range threads {
			kernels.SetThreads(t)
			for _, b := range []int{1, 8, 32} {
				tps := batched(nm.m, b, 64, 16)
				rep.Batches = append(rep.Batches, Batch{string(nm.m.WeightFormat()), t, b, tps})
				logf("batched decode %s, %d thread(s), %d sequences: %.1f tok/s", nm.m.WeightFormat(), t, b, tps)
			}
		}
	}
}

// measureLoRA measures unmerged LoRA on decode.
func measureLoRA(rep *Report, big []namedModel, threads []int, reps int) {
	for _, nm := range big {
		for _, t := range threads {
			kernels.SetThreads(t)
			l := loraDecode(nm.m, t, reps)
			rep.LoRA = append(rep.LoRA, l)
			logf("lora %s, %d thread(s): unmerged +%.1f%%, 8 adapters / 1 adapter = %.2f", l.Weights, t, 100*l.Overhead, l.EightVsOne)
		}
	}
}

// measureKernelSets measures every SIMD kernel set this build and CPU have
// (the archsimd ones need GOEXPERIMENT=simd, which run.sh sets), 2 threads,
// and goes back to the default set.
func measureKernelSets(rep *Report, big []namedModel, reps int) {
	kernels.SetThreads(2)
	def := kernels.Path()
	for _, p := range kernels.Paths() {
		if p == "go" {
			continue // portable Go: correct, not a speed contender
		}
		if err := kernels.UsePath(p); err != nil {
			fatal(err)
		}
		for _, nm := range big {
			r := PathRun{Path: p, Weights: string(nm.m.WeightFormat()), Prefill512: prefill(nm.m, 512, reps), Decode: decode(nm.m, 64, 1)}
			rep.Paths = append(rep.Paths, r)
			logf("kernel set %s, %s, 2 threads: prefill512 %.0f, decode64 %.1f tok/s", p, r.Weights, r.Prefill512, r.Decode)
		}
	}
	if err := kernels.UsePath(def); err != nil {
		fatal(err)
	}
}

// measureAllocs counts allocations per steady-state decode step, 2 threads.
func measureAllocs(rep *Report, big []namedModel) {
	kernels.SetThreads(2)
	for _, nm := range big {
		for _, b := range []int{1, 8} {
			step := decodeStep(nm.m, b, 32)
			step()
			rep.Allocs[fmt.Sprintf("%s/batch=%d", nm.m.WeightFormat(), b)] = testing.AllocsPerRun(10, step)
		}
	}
}

// measureProfiles takes CPU profiles of decode steps and a prefill of f32.
func measureProfiles(rep *Report, f32 *model.Model) {
	rep.Profiles["decode"] = profile(filepath.Join(*outDir, "decode.pprof"), func() {
		step := decodeStep(f32, 1, 128)
		for range 60 {
			step()
		}
	})
	rep.Profiles["prefill512"] = profile(filepath.Join(*outDir, "prefill.pprof"), func() { prefill(f32, 512, 2) })
}

// measureRSS measures peak RSS, each weight format in a fresh process.
func measureRSS(rep *Report) {
	for _, w := range []string{"f32", "bf16"} {
		if r, err := runRSSChild(w); err != nil {
			logf("rss %s: %v", w, err)
		} else {
			rep.RSS = append(rep.RSS, r)
		}
	}
}

// measureTorch runs the same model in PyTorch (with -torch).
func measureTorch(rep *Report, threads []int, reps int) {
	if *torchCmd == "" {
		return
	}
	rep.Torch = map[string]map[string]float64{}
	for _, t := range threads {
		res, info, err := runTorch(t, reps)
		if err != nil {
			logf("pytorch, %d thread(s): %v", t, err)
			continue
		}
		rep.Torch[strconv.Itoa(t)] = res
		rep.TorchInfo = info
		logf("pytorch %d thread(s): %v", t, res)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "perf: "+format+"\n", args...) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "perf:", err)
	os.Exit(1)
}

func cpuName() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// bandwidth streams a buffer of n float32s on t goroutines, each over its own
// contiguous part; best of 5 sweeps. With rows, each goroutine reads its part
// as a matrix of 4096-float rows, several rows at a time (the single-thread
// GEMV kernel, MatMulT with m = 1: as many concurrent streams as a decode
// step has); otherwise with the dot kernel over 16 KB pieces, one stream at a
// time.
func bandwidth(t, n int, rows bool) float64 {
	buf := hugepage.Buf[float32](n) // as roe's weight mappings ask
	for i := range buf {
		buf[i] = 1
	}
	prev := kernels.Threads()
	kernels.SetThreads(1) // each goroutine reads alone; no pool
	defer kernels.SetThreads(prev)
	best := 0.0
	var sink float32
	for range 5 {
		done := make(chan float32, t)
		start := time.Now()
		for g := 0; g < t; g++ {
			part := buf[g*n/t : (g+1)*n/t]
			go func() {
				const k, piece = 4096, 4096
				var s float32
				if rows {
					x, y := make([]float32, k), make([]float32, 96)
					for r := 0; r+96*k <= len(part); r += 96 * k {
						kernels.MatMulT(y, x, part[r:r+96*k], 1, 96, k)
						s += y[0]
					}
				} else {
					for off := 0; off < len(part); off += piece {
						c := part[off:min(len(part), off+piece)]
						s += kernels.Dot(c, c)
					}
				}
				done <- s
			}()
		}
		for range t {
			sink += <-done
		}
		best = max(best, float64(4*n)/time.Since(start).Seconds()/1e9)
	}
	_ = sink
	buf = nil
	runtime.GC()
	debug.FreeOSMemory()
	return best
}

// peak times the FMA probe on t goroutines for about half a second each
// (long enough for the clock to settle); best of 3.
func peak(t int) float64 {
	best := 0.0
	dur := 500 * time.Millisecond
	if *quick {
		dur /= 4
	}
	for range 3 {
		done := make(chan int64, t)
		start := time.Now()
		for range t {
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var flops int64
				for s := time.Now(); time.Since(s) < dur; {
					flops += kernels.FMALoop(1 << 20)
				}
				done <- flops
			}()
		}
		var flops int64
		for range t {
			flops += <-done
		}
		best = max(best, float64(flops)/time.Since(start).Seconds()/1e9)
	}
	return best
}

func gemms(rep *Report) []GEMM {
	var out []GEMM
	for _, s := range [][3]int{{512, 1536, 576}, {512, 576, 1536}, {512, 576, 576}, {512, 192, 576}, {128, 1536, 576}} {
		m, n, k := s[0], s[1], s[2]
		x, w := make([]float32, m*k), make([]float32, n*k)
		for i := range x {
			x[i] = float32(i%7) * 0.1
		}
		for i := range w {
			w[i] = float32(i%5) * 0.1
		}
		wb := make([]uint16, len(w))
		kernels.NarrowBF16(wb, w)
		dst := make([]float32, m*n)
		for _, t := range []int{1, 2} {
			kernels.SetThreads(t)
			for _, wf := range []string{"f32", "bf16"} {
				f := func() {
					if wf == "f32" {
						kernels.MatMulT(dst, x, w, m, n, k)
					} else {
						kernels.MatMulTBF16(dst, x, wb, m, n, k)
					}
				}
				measure := func(packed bool) float64 {
					defer kernels.SetPackedGEMM(kernels.SetPackedGEMM(packed))
					f()
					best := 0.0
					for range 5 {
						start := time.Now()
						reps := 0
						for time.Since(start) < 100*time.Millisecond {
							f()
							reps++
						}
						best = max(best, 2*float64(m*n*k)*float64(reps)/time.Since(start).Seconds()/1e9)
					}
					return best
				}
				// Alternate the two so drifting machine load hits both alike.
				var best, tiles float64
				for range 2 {
					tiles = max(tiles, measure(false))
					best = max(best, measure(true))
				}
				pk := rep.PeakGFLOPS[t]
				out = append(out, GEMM{m, n, k, t, wf, best, best / pk, tiles, tiles / pk})
				logf("GEMM %dx%dx%d %s %d thread(s): %.0f GFLOP/s (%.0f%% of peak); packed off %.0f (%.0f%%)",
					m, n, k, wf, t, best, 100*best/pk, tiles, 100*tiles/pk)
			}
		}
	}
	return out
}

// noop is the trivial work of a synchronisation probe.
func noop(lo, hi int) {}

// syncCost measures one Parallel dispatch of trivial work (two items, so two
// threads each take one) and counts the pool dispatches of a decode step.
func syncCost(models []*model.Model) Sync {
	s := Sync{DispatchNs: map[int]float64{}, StepDispatches: map[string]float64{}, StepMs: map[string]float64{}}
	for _, t := range []int{1, 2} {
		kernels.SetThreads(t)
		best := math.Inf(1)
		for range 5 {
			const n = 20000
			start := time.Now()
			for range n {
				kernels.Parallel(2, noop)
			}
			best = min(best, float64(time.Since(start).Nanoseconds())/n)
		}
		s.DispatchNs[t] = best
		logf("sync: Parallel dispatch, %d thread(s): %.0f ns", t, best)
	}
	kernels.SetThreads(2)
	for _, m := range models {
		w := string(m.WeightFormat())
		step := decodeStep(m, 1, 128)
		step()
		const steps = 20
		d0 := kernels.ParallelDispatches()
		start := time.Now()
		for range steps {
			step()
		}
		s.StepMs[w] = float64(time.Since(start).Nanoseconds()) / steps / 1e6
		s.StepDispatches[w] = float64(kernels.ParallelDispatches()-d0) / steps
		logf("sync: decode step %s: %.0f dispatches, %.2f ms", w, s.StepDispatches[w], s.StepMs[w])
	}
	return s
}

func weightBytes(m *model.Model) float64 { return float64(m.WeightBytes()) }

func ids(n, vocab int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = (i*7919 + 13) % vocab
	}
	return v
}

// prefill returns the best tokens/s of reps prefills of n tokens into a fresh cache.
func prefill(m *model.Model, n, reps int) float64 {
	toks := ids(n, m.Config.VocabSize)
	out := make([]model.Output, 1)
	best := 0.0
	for range reps {
		c := m.NewCache()
		start := time.Now()
		if err := m.ForwardInto([]model.Step{{Cache: c, Tokens: toks}}, out); err != nil {
			fatal(err)
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best
}

// decode returns the best tokens/s of generating n tokens (greedy) after a
// one-token prompt, like llama-bench's tg128.
func decode(m *model.Model, n, reps int) float64 {
	out := make([]model.Output, 1)
	best := 0.0
	for range reps {
		c := m.NewCache()
		tok := []int{1}
		if err := m.ForwardInto([]model.Step{{Cache: c, Tokens: tok}}, out); err != nil {
			fatal(err)
		}
		start := time.Now()
		for range n {
			tok[0] = model.Argmax(out[0].Logits)
			if err := m.ForwardInto([]model.Step{{Cache: c, Tokens: tok}}, out); err != nil {
				fatal(err)
			}
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best
}

// decodeStep prefills b sequences with ctx tokens each and returns one decode
// step over all of them that rewinds the caches first (steady state).
func decodeStep(m *model.Model, b, ctx int) func() {
	return adapterStep(m, make([]model.Adapter, b), ctx)
}

// loraDecode times decode steps (after a 64-token prompt each) for one
// sequence without and with an unmerged rank-16 adapter, and for 8 sequences
// with no adapter, one shared adapter and 8 different adapters. The variants
// take turns step by step, so drift in the machine's speed hits all alike.
func loraDecode(m *model.Model, t, reps int) LoRA {
	cfg := m.Config
	one := adapters.Random(cfg, 16, 1)
	if err := adapters.SetDecodeDType("bfloat16"); err != nil {
		panic(err)
	}
	oneBF16 := adapters.Random(cfg, 16, 1)
	if err := adapters.SetDecodeDType(adapters.DecodeAuto); err != nil {
		panic(err)
	}
	eight := make([]model.Adapter, 8)
	for i := range eight {
		eight[i] = adapters.Random(cfg, 16, uint64(10+i))
	}
	shared := make([]model.Adapter, 8)
	for i := range shared {
		shared[i] = one
	}
	// The same adapter as the float16 GGUF LoRA llama.cpp reads (peerlora.go).
	dir, err := os.MkdirTemp("", "roe-perf-lora-*")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	f16Path := filepath.Join(dir, "lora-r16-f16.gguf")
	if err := writePeerLoRA(adapters.Random(cfg, 16, 1), cfg, filepath.Join(dir, "lora-r16-f32.gguf"), f16Path); err != nil {
		fatal(err)
	}
	oneF16, err := adapters.LoadGGUF(f16Path, cfg)
	if err != nil {
		fatal(err)
	}
	variants := [][]model.Adapter{{nil}, {one}, make([]model.Adapter, 8), shared, eight, {oneBF16}, {oneF16}}
	steps := make([]func(), len(variants))
	for i, ads := range variants {
		steps[i] = adapterStep(m, ads, 64)
		steps[i]()
	}
	// The median step of each variant: on a shared machine a single stall
	// of a few ms would otherwise land on whichever variant was running.
	rounds := 20 * reps
	d := make([][]time.Duration, len(variants))
	for range rounds {
		for i, f := range steps {
			start := time.Now()
			f()
			d[i] = append(d[i], time.Since(start))
		}
	}
	med := make([]float64, len(variants))
	for i := range d {
		slices.Sort(d[i])
		med[i] = d[i][len(d[i])/2].Seconds()
	}
	rate := func(i int) float64 { return float64(len(variants[i])) / med[i] }
	return LoRA{Weights: string(m.WeightFormat()), Threads: t, Base: rate(0), Unmerged: rate(1),
		Overhead: med[1]/med[0] - 1, Batch8Base: rate(2), Batch8One: rate(3), Batch8Eight: rate(4),
		EightVsOne: rate(4) / rate(3), UnmergedBF16: rate(5), OverheadBF16: med[5]/med[0] - 1,
		UnmergedF16: rate(6), OverheadF16: med[6]/med[0] - 1, F16Factors: oneF16.DecodeFactors()}
}

// adapterStep is decodeStep with one adapter per sequence (nil: none): it
// prefills len(ads) sequences with ctx tokens each and returns one decode step
// over all of them that rewinds the caches first.
func adapterStep(m *model.Model, ads []model.Adapter, ctx int) func() {
	b := len(ads)
	caches := make([]*model.Cache, b)
	steps := make([]model.Step, b)
	for i := range caches {
		caches[i] = m.NewCache()
		steps[i] = model.Step{Cache: caches[i], Tokens: ids(ctx, m.Config.VocabSize), Adapter: ads[i]}
	}
	if _, err := m.Forward(steps); err != nil {
		fatal(err)
	}
	out := make([]model.Output, b)
	toks := make([][]int, b)
	for i := range toks {
		toks[i] = []int{(i*31 + 5) % m.Config.VocabSize}
	}
	return func() {
		for i, c := range caches {
			c.Truncate(ctx)
			steps[i] = model.Step{Cache: c, Tokens: toks[i], Adapter: ads[i]}
		}
		if err := m.ForwardInto(steps, out); err != nil {
			fatal(err)
		}
	}
}

// batched returns total tokens/s of b sequences decoding together for steps
// steps after a ctx-token prompt each.
func batched(m *model.Model, b, ctx, steps int) float64 {
	caches := make([]*model.Cache, b)
	st := make([]model.Step, b)
	for i := range caches {
		caches[i] = m.NewCache()
		st[i] = model.Step{Cache: caches[i], Tokens: ids(ctx, m.Config.VocabSize)}
	}
	out := make([]model.Output, b)
	if err := m.ForwardInto(st, out); err != nil {
		fatal(err)
	}
	toks := make([][]int, b)
	for i := range toks {
		toks[i] = []int{0}
	}
	start := time.Now()
	for range steps {
		for i := range st {
			toks[i][0] = model.Argmax(out[i].Logits)
			st[i] = model.Step{Cache: caches[i], Tokens: toks[i]}
		}
		if err := m.ForwardInto(st, out); err != nil {
			fatal(err)
		}
	}
	return float64(b*steps) / time.Since(start).Seconds()
}

// profile CPU-profiles f into path and returns the top of `go tool pprof -top`.
func profile(path string, f func()) string {
	pf, err := os.Create(path)
	if err != nil {
		return err.Error()
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return err.Error()
	}
	f()
	pprof.StopCPUProfile()
	pf.Close()
	exe, _ := os.Executable()
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=18", exe, path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("pprof: %v: %s", err, out)
	}
	// Keep the table, not the header.
	s := string(out)
	if i := strings.Index(s, "      flat"); i >= 0 {
		s = s[i:]
	}
	return s
}

// childRSS runs in a fresh process: build the model in the given format,
// return the transient load memory to the OS, reset the peak-RSS counter,
// prefill 128 + decode 128 tokens on 2 threads, and print the peak.
func childRSS(w string) {
	cfg := model.SmolLM2Shape()
	m, err := model.Random(cfg, 1)
	if err != nil {
		fatal(err)
	}
	if w == "bf16" {
		m = m.WithBF16()
	}
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM (Linux)
	kernels.SetThreads(2)
	c := m.NewCache()
	c.Reserve(256) // prompt + max_tokens, as roe allocates a request's KV
	out := make([]model.Output, 1)
	if err := m.ForwardInto([]model.Step{{Cache: c, Tokens: ids(128, cfg.VocabSize)}}, out); err != nil {
		fatal(err)
	}
	tok := []int{0}
	for range 128 {
		tok[0] = model.Argmax(out[0].Logits)
		if err := m.ForwardInto([]model.Step{{Cache: c, Tokens: tok}}, out); err != nil {
			fatal(err)
		}
	}
	hwm := procStatus("VmHWM")
	kv := float64(2*cfg.NumLayers*cfg.NumKVHeads*cfg.HeadDim*c.Len()) * 4
	r := RSS{Weights: w, PeakMiB: hwm / 1024, WeightsMiB: weightBytes(m) / (1 << 20), KVMiB: kv / (1 << 20)}
	r.Ratio = r.PeakMiB / (r.WeightsMiB + r.KVMiB)
	r.Description = "VmHWM over prefill 128 + decode 128 (2 threads), reset after the model is built; KV = 256 positions, reserved up front as for a request with max_tokens"
	runtime.KeepAlive(m)
	json.NewEncoder(os.Stdout).Encode(r)
}

func procStatus(key string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			f, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return f
		}
	}
	return math.NaN()
}

func runRSSChild(w string) (RSS, error) {
	exe, err := os.Executable()
	if err != nil {
		return RSS{}, err
	}
	out, err := exec.Command(exe, "-rss-child", w).Output()
	if err != nil {
		return RSS{}, err
	}
	var r RSS
	err = json.Unmarshal(out, &r)
	return r, err
}

func runTorch(t, reps int) (map[string]float64, string, error) {
	cmd := exec.Command("bash", "-c", fmt.Sprintf("OMP_NUM_THREADS=%d %s --threads %d --reps %d", t, *torchCmd, t, reps))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", err
	}
	var r struct {
		Torch   string                        `json:"torch"`
		BLAS    any                           `json:"blas"`
		Core    string                        `json:"blas_core"`
		Results map[string]map[string]float64 `json:"results"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, "", fmt.Errorf("%v: %s", err, out)
	}
	return r.Results[strconv.Itoa(t)], fmt.Sprintf("torch %s, %v, OpenBLAS core %s", r.Torch, r.BLAS, r.Core), nil
}

func find(rep *Report, mdl, w string, t int, metric string) float64 {
	for _, r := range rep.Runs {
		if r.Model == mdl && r.Weights == w && r.Threads == t && r.Metric == metric {
			return r.TokPerS
		}
	}
	return math.NaN()
}

func goals(rep *Report) []Goal {
	var g []Goal
	add := func(name, target, value string, ratio float64) {
		g = append(g, Goal{name, target, value, ratio, ratio >= 1})
	}
	f32Bytes := 4 * float64(model.SmolLM2Shape().NumParamsHint())
	for _, t := range []int{1, 2} {
		ceil := rep.BandwidthGB[t] * 1e9 / f32Bytes
		v := find(rep, "random-135M", "f32", t, "decode128")
		add(fmt.Sprintf("decode F32, %d thread(s) ≥ 85%% of bandwidth ceiling", t),
			fmt.Sprintf("%.1f tok/s (0.85 × %.1f GB/s ÷ %.0f MB)", 0.85*ceil, rep.BandwidthGB[t], f32Bytes/1e6),
			fmt.Sprintf("%.1f tok/s", v), v/(0.85*ceil))
	}
	// llama.cpp is judged only where this run measured it (ggufGoals: F32,
	// BF16 and the quantized files side by side); a figure quoted from
	// another machine is never a goal met.
	if tr := rep.Torch["2"]; tr != nil {
		v := find(rep, "random-135M", "f32", 2, "prefill512")
		add("prefill 512 F32, 2 threads ≥ PyTorch+OpenBLAS (same run)", fmt.Sprintf("%.0f tok/s", tr["prefill512"]),
			fmt.Sprintf("%.0f tok/s", v), v/tr["prefill512"])
	}
	for _, x := range rep.GEMM {
		if x.Weights != "f32" {
			continue
		}
		add(fmt.Sprintf("GEMM %d×%d×%d F32, %d thread(s) ≥ 70%% of FP32 peak", x.M, x.N, x.K, x.Threads),
			fmt.Sprintf("%.0f GFLOP/s (0.7 × %.0f)", 0.7*rep.PeakGFLOPS[x.Threads], rep.PeakGFLOPS[x.Threads]),
			fmt.Sprintf("%.0f GFLOP/s", x.GFLOPS), x.GFLOPS/(0.7*rep.PeakGFLOPS[x.Threads]))
	}
	for _, l := range rep.LoRA {
		add(fmt.Sprintf("unmerged LoRA r=16 ×7 projections, %s, %d thread(s): ≤ 10%% on a decode step", l.Weights, l.Threads),
			"≤ +10%", fmt.Sprintf("%+.1f%%", 100*l.Overhead), 1.10/(1+l.Overhead))
		add(fmt.Sprintf("8 sequences on 8 adapters ≥ 80%% of 8 on one, %s, %d thread(s)", l.Weights, l.Threads),
			"≥ 80%", fmt.Sprintf("%.0f%% (%.1f vs %.1f tok/s)", 100*l.EightVsOne, l.Batch8Eight, l.Batch8One), l.EightVsOne/0.80)
	}
	worst := 0.0
	for _, a := range rep.Allocs {
		worst = max(worst, a)
	}
	r := 1.0
	if worst > 0 {
		r = 0
	}
	add("allocation-free decode step (testing.AllocsPerRun)", "0 allocs", fmt.Sprintf("%g allocs (worst)", worst), r)
	for _, x := range rep.RSS {
		add(fmt.Sprintf("peak RSS %s ≤ 1.15 × (weights + KV)", x.Weights), fmt.Sprintf("%.0f MiB", 1.15*(x.WeightsMiB+x.KVMiB)),
			fmt.Sprintf("%.0f MiB", x.PeakMiB), 1.15/x.Ratio)
	}
	if rg, ok := routingGoal(rep); ok {
		g = append(g, rg)
	}
	g = append(g, scoringGoals(rep)...)
	return append(g, ggufGoals(rep)...)
}

func writeJSON(rep *Report) {
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*outDir, "perf.json"), append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
}

func writeMD(rep *Report) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# roe performance")
	p("")
	p("Measured by `make bench` (benchmarks/perf) on %s, %s, kernel path `%s`, GOMAXPROCS %d. %s", rep.Date, rep.CPU, rep.Path, rep.GOMAXPROCS, results.Markdown(rep.Commit, ""))
	p("All numbers in the tables below come from this one run unless marked as quoted.")
	p("")
	for _, section := range []func(mdPrinter, *Report){
		mdCeilings, mdModels, mdFamilies, mdTorch, mdQuoted, mdBatched,
		mdLoRA, mdKernelSets, mdGEMM, mdPrefillTiles, mdSync,
		mdGGUF, mdMemory, mdRouting, mdScoring, mdGoals, mdProfiles,
	} {
		section(p, rep)
	}
	if err := os.WriteFile(filepath.Join(*outDir, "perf.md"), []byte(b.String()), 0o644); err != nil {
		fatal(err)
	}
	fmt.Print(b.String())
}

// mdPrinter prints a line of perf.md.
type mdPrinter func(format string, args ...any)

// mdCeilings writes the section on the read bandwidth and FP32 peak of this run.
func mdCeilings(p mdPrinter, rep *Report) {
	p("## Ceilings (this run)")
	p("")
	p("Read bandwidth, each thread over its own part: the dot kernel one 16 KB piece at a time over a 1 GiB buffer, the same over a buffer the size of the f32 weights (%.0f MB) swept repeatedly like decode, and the 1 GiB buffer read as 4096-float rows by the one-thread GEMV kernel (several rows in flight at once, like a decode step); the buffers ask for transparent huge pages, as roe's weight mappings do. The ceiling used below is the largest of the three.", 4*float64(model.SmolLM2Shape().NumParamsHint())/1e6)
	p("")
	p("| threads | read, 1 GiB | read, weight-sized | read, 1 GiB, rows at once | read ceiling used | FP32 peak (FMA loop) |")
	p("|---|---|---|---|---|---|")
	for _, t := range []int{1, 2} {
		p("| %d | %.1f GB/s | %.1f GB/s | %.1f GB/s | %.1f GB/s | %.0f GFLOP/s |", t, rep.BandwidthDRAM[t], rep.BandwidthWeights[t], rep.BandwidthRows[t], rep.BandwidthGB[t], rep.PeakGFLOPS[t])
	}
	p("")
}

// mdModels writes the section on prefill and decode speed of each model, weight format and thread count.
func mdModels(p mdPrinter, rep *Report) {
	p("## Models (tokens/s)")
	p("")
	p("Random weights with SmolLM2-135M's shape (%d parameters), and the embedded stories260K. decode128 = 128 greedy tokens after a 1-token prompt; prefill = one forward over N tokens into a fresh cache; best of the repetitions. Decode fraction = weight bytes streamed per second ÷ read bandwidth; prefill fraction = 2·params·tokens/s ÷ FP32 peak.", model.SmolLM2Shape().NumParamsHint())
	p("")
	p("| model | weights | threads | prefill128 | prefill512 | decode128 | decode GB/s | decode %% of BW | prefill512 %% of peak |")
	p("|---|---|---|---|---|---|---|---|---|")
	type key struct {
		m, w string
		t    int
	}
	seen := map[key]bool{}
	for _, r := range rep.Runs {
		k := key{r.Model, r.Weights, r.Threads}
		if seen[k] {
			continue
		}
		seen[k] = true
		get := func(metric string) (Run, bool) {
			for _, x := range rep.Runs {
				if x.Model == k.m && x.Weights == k.w && x.Threads == k.t && x.Metric == metric {
					return x, true
				}
			}
			return Run{}, false
		}
		p128, _ := get("prefill128")
		p512, ok512 := get("prefill512")
		d, _ := get("decode128")
		s512, f512 := "–", "–"
		if ok512 {
			s512, f512 = fmt.Sprintf("%.0f", p512.TokPerS), fmt.Sprintf("%.0f%%", 100*p512.Fraction)
		}
		p("| %s | %s | %d | %.0f | %s | %.1f | %.1f | %.0f%% | %s |", k.m, k.w, k.t, p128.TokPerS, s512, d.TokPerS, d.GBPerS, 100*d.Fraction, f512)
	}
	p("")
}

// mdTorch writes the section on PyTorch on the same model shape, in the same run (with -torch).
func mdTorch(p mdPrinter, rep *Report) {
	if len(rep.Torch) == 0 {
		return
	}
	p("### PyTorch, same model shape, same run")
	p("")
	p("%s; OpenMP OpenBLAS; torch.set_num_threads and OMP_NUM_THREADS = threads.", rep.TorchInfo)
	p("")
	p("| threads | metric | PyTorch tok/s | roe F32 tok/s | roe/PyTorch | roe BF16 tok/s | roe BF16/PyTorch |")
	p("|---|---|---|---|---|---|---|")
	for _, t := range []int{1, 2} {
		tr := rep.Torch[strconv.Itoa(t)]
		for _, mt := range []string{"prefill128", "prefill512", "decode128"} {
			if tr == nil {
				continue
			}
			a, bb := find(rep, "random-135M", "f32", t, mt), find(rep, "random-135M", "bf16", t, mt)
			p("| %d | %s | %.1f | %.1f | %.2f | %.1f | %.2f |", t, mt, tr[mt], a, a/tr[mt], bb, bb/tr[mt])
		}
	}
	p("")
}

// mdQuoted writes the section on other engines' figures quoted from elsewhere.
func mdQuoted(p mdPrinter, rep *Report) {
	p("### Quoted reference figures (measured 2026-11-24 by others on another machine; not by this run, not comparable, never judged as a goal)")
	p("")
	p("| engine | prefill128 1/2 thr | prefill512 1/2 thr | decode128 1/2 thr |")
	p("|---|---|---|---|")
	names := make([]string, 0, len(quoted))
	for n := range quoted {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		q := quoted[n]
		p("| %s | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f |", n, q["prefill128"][0], q["prefill128"][1], q["prefill512"][0], q["prefill512"][1], q["decode128"][0], q["decode128"][1])
	}
	p("")
	p("The same source quoted ceilings of 42–44 GB/s (1 thread) and 76–79 GB/s (2 threads) and ~285 GFLOP/s per core; compare with this run's own ceilings above.")
	p("")
}

// mdBatched writes the section on batched decode.
func mdBatched(p mdPrinter, rep *Report) {
	p("## Batched decode (random-135M, 64-token prompts, 16 steps)")
	p("")
	p("| weights | threads | sequences | total tok/s | vs 1 sequence |")
	p("|---|---|---|---|---|")
	for _, x := range rep.Batches {
		base := 0.0
		for _, y := range rep.Batches {
			if y.Weights == x.Weights && y.Threads == x.Threads && y.Batch == 1 {
				base = y.TokPerS
			}
		}
		p("| %s | %d | %d | %.1f | %.2f× |", x.Weights, x.Threads, x.Batch, x.TokPerS, x.TokPerS/base)
	}
	p("")
}

// mdLoRA writes the section on unmerged per-sequence LoRA on decode.
func mdLoRA(p mdPrinter, rep *Report) {
	p("## Unmerged LoRA on decode (random-135M, rank 16 on all 7 projections of every layer, 64-token prompts)")
	p("")
	p("Per-sequence adapters stay unmerged: each sequence's rows get x·Aᵀ·(s·B)ᵀ added after the base GEMM. The five variants take turns step by step in one loop; tokens/s are from each variant's median step.")
	p("")
	p("| weights | threads | base tok/s | unmerged tok/s | overhead | 8 seq, no adapter | 8 seq, 1 adapter | 8 seq, 8 adapters | 8 adapters / 1 adapter |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, x := range rep.LoRA {
		p("| %s | %d | %.1f | %.1f | %+.1f%% | %.1f | %.1f | %.1f | %.0f%% |", x.Weights, x.Threads, x.Base, x.Unmerged, 100*x.Overhead,
			x.Batch8Base, x.Batch8One, x.Batch8Eight, 100*x.EightVsOne)
	}
	p("")
}

// mdKernelSets writes the section on every SIMD kernel set against the default.
func mdKernelSets(p mdPrinter, rep *Report) {
	p("## Kernel sets (random-135M, 2 threads)")
	p("")
	p("Each SIMD kernel set this build can run, switched with kernels.UsePath in this run; `%s` is the default. The archsimd sets are the same kernels written with Go 1.26's simd/archsimd intrinsics (built with GOEXPERIMENT=simd) instead of generated assembly; they have no packed prefill GEMM and no prefetch.", rep.Path)
	p("")
	p("| kernel set | weights | prefill512 tok/s | decode64 tok/s | prefill vs default | decode vs default |")
	p("|---|---|---|---|---|---|")
	for _, x := range rep.Paths {
		var d PathRun
		for _, y := range rep.Paths {
			if y.Path == rep.Path && y.Weights == x.Weights {
				d = y
			}
		}
		p("| %s | %s | %.0f | %.1f | %.2f× | %.2f× |", x.Path, x.Weights, x.Prefill512, x.Decode, x.Prefill512/d.Prefill512, x.Decode/d.Decode)
	}
	if len(rep.Paths) == 0 {
		p("(none: this CPU has no SIMD kernel set)")
	}
	p("")
}

// mdGEMM writes the section on GEMM on the layer shapes, packed and tiles.
func mdGEMM(p mdPrinter, rep *Report) {
	p("## GEMM (MatMulT, layer shapes)")
	p("")
	p("Packed = the default kernels (the packed 8×48 broadcast-FMA GEMM for blocks of ≥ 32 rows on AVX-512); tiles = the same call with it switched off (the 4×6 dot-style tiles used before), measured alternately in this run.")
	p("")
	p("| m×n×k | weights | threads | GFLOP/s packed | %% of FP32 peak | GFLOP/s tiles | %% of peak (tiles) | packed/tiles |")
	p("|---|---|---|---|---|---|---|---|")
	for _, x := range rep.GEMM {
		p("| %d×%d×%d | %s | %d | %.0f | %.0f%% | %.0f | %.0f%% | %.2f× |", x.M, x.N, x.K, x.Weights, x.Threads, x.GFLOPS, 100*x.Fraction,
			x.GFLOPSTiles, 100*x.FractionTiles, x.GFLOPS/x.GFLOPSTiles)
	}
	p("")
}

// mdPrefillTiles writes the section on prefill with and without the packed GEMM.
func mdPrefillTiles(p mdPrinter, rep *Report) {
	if len(rep.PrefillTiles) > 0 {
		p("### Prefill with and without the packed GEMM (random-135M, same run)")
		p("")
		p("| weights | threads | metric | packed tok/s | tiles tok/s | packed/tiles | packed/PyTorch | tiles/PyTorch |")
		p("|---|---|---|---|---|---|---|---|")
		for _, x := range rep.PrefillTiles {
			v := find(rep, x.Model, x.Weights, x.Threads, x.Metric)
			pt, tt := "–", "–"
			if tr := rep.Torch[strconv.Itoa(x.Threads)]; tr != nil && tr[x.Metric] > 0 {
				pt, tt = fmt.Sprintf("%.2f", v/tr[x.Metric]), fmt.Sprintf("%.2f", x.TokPerS/tr[x.Metric])
			}
			p("| %s | %d | %s | %.0f | %.0f | %.2f× | %s | %s |", x.Weights, x.Threads, x.Metric, v, x.TokPerS, v/x.TokPerS, pt, tt)
		}
		p("")
	}
}

// mdSync writes the section on the cost of a pool dispatch and its share of a decode step.
func mdSync(p mdPrinter, rep *Report) {
	if len(rep.Sync.DispatchNs) > 0 {
		p("## Synchronisation cost")
		p("")
		p("One `kernels.Parallel` dispatch of trivial work (2 items, best mean over 20000 calls): %.0f ns at 1 thread (runs on the caller), %.0f ns at 2 threads (a pool worker takes one item).",
			rep.Sync.DispatchNs[1], rep.Sync.DispatchNs[2])
		p("")
		p("| weights | pool dispatches per decode step (1 sequence, ctx 128, 2 threads) | × dispatch cost | decode step | share of the step |")
		p("|---|---|---|---|---|")
		for _, w := range []string{"f32", "bf16"} {
			d, ms := rep.Sync.StepDispatches[w], rep.Sync.StepMs[w]
			if ms == 0 {
				continue
			}
			c := d * rep.Sync.DispatchNs[2] / 1e6
			p("| %s | %.0f | %.3f ms | %.2f ms | %.1f%% |", w, d, c, ms, 100*c/ms)
		}
		p("")
		p("The dispatch cost is an idle round trip (publish the job, a spinning worker claims it, the caller waits for its chunk); in a real step the wait also absorbs load imbalance, which this does not count.")
		p("")
	}
}

// mdMemory writes the section on allocations per decode step and peak RSS.
func mdMemory(p mdPrinter, rep *Report) {
	p("## Memory")
	p("")
	keys := make([]string, 0, len(rep.Allocs))
	for k := range rep.Allocs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p("- allocations per steady-state decode step (%s, testing.AllocsPerRun): %g", k, rep.Allocs[k])
	}
	for _, x := range rep.RSS {
		p("- peak RSS, %s: %.0f MiB = %.2f × (weights %.0f MiB + KV %.1f MiB). %s.", x.Weights, x.PeakMiB, x.Ratio, x.WeightsMiB, x.KVMiB, x.Description)
	}
	p("")
}

// mdGoals writes the section on the performance goals, met or not.
func mdGoals(p mdPrinter, rep *Report) {
	p("## Goals")
	p("")
	p("| goal | target | this run | ratio | met |")
	p("|---|---|---|---|---|")
	for _, x := range rep.Goals {
		met := "no"
		if x.Met {
			met = "yes"
		}
		p("| %s | %s | %s | %.2f | %s |", x.Name, x.Target, x.Value, x.Ratio, met)
	}
	p("")
}

// mdProfiles writes the section on the CPU profiles of decode and prefill.
func mdProfiles(p mdPrinter, rep *Report) {
	p("## Where the time goes (pprof, random-135M F32, 2 threads)")
	p("")
	p("### 60 decode steps at context 128 (1 sequence)")
	p("")
	p("```\n%s```", rep.Profiles["decode"])
	p("")
	p("### prefill of 512 tokens (×2)")
	p("")
	p("```\n%s```", rep.Profiles["prefill512"])
	p("")
	p("Plots: tokens_vs_threads.png, tokens_vs_batch.png. Profiles: decode.pprof, prefill.pprof (`go tool pprof -top` needs the binary; the tables above are from this run).")
}
