package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"roe/benchmarks/internal/results"
	"roe/benchmarks/internal/synthvocab"
	"roe/kernels"
	"roe/model"
	"roe/model/gguf"
	"roe/train"
)

var (
	llamaBench = flag.String("llama-bench", "", "llama.cpp's llama-bench binary (built elsewhere, e.g. by LLAMA_CPP=DIR make bench): "+
		"it runs on the same GGUF files in the same run, so the quantized table has same-machine ratios")
	llamaQuoted = flag.String("llama-quoted", "", "without -llama-bench: a PERF.md of llama.cpp figures from another machine (shared/golden/gguf/PERF.md), shown labelled as quoted, never as a goal")
	roeBin      = flag.String("roe-bin", "", "a roe binary: its generate's peak RSS on the Q4_K_M file is measured from outside, next to llama-cli's (run.sh builds one)")
	llamaBuild  = flag.String("llama-build", "", "what the llama-bench binary was built from (e.g. \"b4747 (c392e50)\"), when its own report says unknown")
	ggufTypes   = flag.String("gguf-types", "f32,f16,bf16,q8_0,q4_0,q4_k_m,iq4_xs", "GGUF file types of the side-by-side section (empty skips it)")
	ggufQ8      = flag.Bool("gguf-q8", true, "also measure each quantized file with int8 activations (roe --activations q8, lossy), as engine \""+engineQ8+"\"")
	ggufWide    = flag.String("gguf-wide-types", "q4_k_m,q5_k_m,q3_k_m", "GGUF file types of a second, 256-aligned model (wideShape: rows whole K-quant blocks, as in 7B/8B models, so no Q5_0/Q8_0 fallbacks), side by side the same way (empty skips it)")
	ggufRounds  = flag.Int("gguf-rounds", 5, "decode rounds per GGUF file: each round runs decode 128 once per engine and thread count, the engines taking turns, so the machine's drift hits them alike; tables show the median round and ratios the median of the rounds' ratios")
)

// engineQ8 names roe's rows with int8 activations.
const engineQ8 = "roe --activations q8"

// GGUFRun is one engine on one GGUF file of the random 135M-shape model.
type GGUFRun struct {
	File     string  `json:"file"`   // file type, e.g. q4_k_m
	Engine   string  `json:"engine"` // roe or llama.cpp
	Kernel   string  `json:"kernel"` // what computed it
	Threads  int     `json:"threads"`
	MiB      float64 `json:"file_mib"`
	Prefill  float64 `json:"prefill512_tok_per_s"`
	Decode   float64 `json:"decode128_tok_per_s"`        // the median of DecodeRounds
	Fraction float64 `json:"decode_fraction_of_ceiling"` // decode × weight bytes per token ÷ read bandwidth
	// HugeMiB: of the file's pages this process mapped, those on 2 MiB
	// pages after the decode rounds (roe engines, Linux).
	HugeMiB float64 `json:"file_mib_on_2mib_pages,omitempty"`
	// DecodeRounds are the decode 128 runs, one per round; DecodeRatios (roe
	// rows) each round's roe ÷ llama.cpp, the two measured back to back.
	DecodeRounds []float64 `json:"decode128_rounds,omitempty"`
	DecodeRatios []float64 `json:"decode_ratio_rounds,omitempty"`
}

// decodeRatio is the median of r's per-round decode ratios against
// llama.cpp and their range; ok is false without any.
func (r *GGUFRun) decodeRatio() (med, lo, hi float64, ok bool) {
	if len(r.DecodeRatios) == 0 {
		return 0, 0, 0, false
	}
	return median(r.DecodeRatios), slices.Min(r.DecodeRatios), slices.Max(r.DecodeRatios), true
}

// median of v (not empty), which it leaves as it is.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ggufEngine is one way roe runs a GGUF file in the side-by-side section.
type ggufEngine struct {
	name, kernel string
	m            *model.Model
}

// GGUFSection is the quantized-weights part of the report.
type GGUFSection struct {
	Runs       []GGUFRun  `json:"runs"`
	LoRA       []LoRA     `json:"lora_decode"`                     // unmerged rank-16 adapter over the Q4_K_M file
	PeerLoRA   []PeerLoRA `json:"llama_cpp_lora_decode,omitempty"` // the same adapter in llama-cli
	RSS        []RSS      `json:"rss"`
	Train      []RSS      `json:"lora_training_rss"` // LoRA training over the Q4_K_M file: as stored, and on a float32 copy
	Outside    []RSS      `json:"outside_rss"`       // roe generate and llama-cli on the Q4_K_M file, measured as a parent sees them
	LlamaBuild string     `json:"llama_cpp_build,omitempty"`
	Rounds     int        `json:"decode_rounds"`
	Note       string     `json:"note,omitempty"`
}

// measureGGUF writes the random model as GGUF files of each type with
// roe's own writer and quantizer, loads them back as roe serves a GGUF
// (quantized blocks in the mapping, float32 activations), measures prefill
// 512 and decode 128, and runs llama-bench on the very same files.
func measureGGUF(rep *Report, f32 *model.Model, threads []int, reps int) {
	if *ggufTypes == "" {
		return
	}
	dir, err := os.MkdirTemp("", "roe-perf-gguf-*")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	vocab := synthvocab.GGUF(f32.Config.VocabSize)
	rounds := max(*ggufRounds, 1)
	if *quick {
		rounds = min(rounds, 2)
	}
	sec := &GGUFSection{Rounds: rounds}
	rep.GGUF = sec
	g := ggufBench{rep: rep, sec: sec, dir: dir, threads: threads, reps: reps, rounds: rounds}
	for _, name := range strings.Split(*ggufTypes, ",") {
		g.file(f32, "random-135M", mustFileType(name), "", vocab, true)
	}
	if *ggufWide != "" {
		logf("building the random %s model", wideName)
		wide, err := model.Random(wideShape(), 3)
		if err != nil {
			fatal(err)
		}
		wv := synthvocab.GGUF(wide.Config.VocabSize)
		for _, name := range strings.Split(*ggufWide, ",") {
			g.file(wide, wideName, mustFileType(name), wideName+" ", wv, false)
		}
	}
	if *llamaBench == "" {
		sec.Note = "llama.cpp not measured in this run (no -llama-bench); shared/golden/gguf/PERF.md quotes it on another machine"
		if *llamaQuoted != "" {
			q, err := quotedLlama(*llamaQuoted)
			if err != nil {
				logf("quoted llama.cpp: %v", err)
			}
			for _, r := range q {
				if findGGUF(sec, r.File, "roe", r.Threads) != nil {
					sec.Runs = append(sec.Runs, r)
				}
			}
			sec.Note += "; its rows (engine \"llama.cpp, quoted\") are from there, and their ratios compare two machines"
		}
	}
}

// runLlamaBench runs llama-bench as its users run it (defaults: F16 KV
// cache, mmap, its best CPU kernels for the file's types) on path: prefill
// 512, the best of reps runs as roe's is; decode is measured in rounds
// (llamaDecode).
func runLlamaBench(path, ft string, mib float64, threads []int, reps int) ([]GGUFRun, string, error) {
	ts := make([]string, len(threads))
	for i, t := range threads {
		ts[i] = fmt.Sprint(t)
	}
	rows, err := llamaBenchJSON("-m", path, "-t", strings.Join(ts, ","), "-p", "512", "-n", "0", "-r", fmt.Sprint(max(reps, 2)))
	if err != nil {
		return nil, "", err
	}
	var runs []GGUFRun
	build := ""
	for _, r := range rows {
		g := findRun(runs, r.Threads)
		if g == nil {
			runs = append(runs, GGUFRun{File: ft, Engine: "llama.cpp", Threads: r.Threads, MiB: mib,
				Kernel: fmt.Sprintf("%s %s, ggml CPU (its quantized dot products, KV %s)", r.Backends, r.CPUInfo, r.TypeK)})
			g = &runs[len(runs)-1]
		}
		build = fmt.Sprintf("b%d (%s)", r.BuildNumber, r.BuildCommit)
		if *llamaBuild != "" {
			build = *llamaBuild
		}
		if r.NPrompt > 0 {
			g.Prefill = r.best()
		}
	}
	for _, r := range runs {
		logf("llama.cpp %s %d thread(s): prefill512 %.0f tok/s", ft, r.Threads, r.Prefill)
	}
	return runs, build, nil
}

// llamaDecode runs llama-bench's decode 128 once (after its warm-up run) on t threads.
func llamaDecode(path string, t int) (float64, error) {
	rows, err := llamaBenchJSON("-m", path, "-t", fmt.Sprint(t), "-p", "0", "-n", "128", "-r", "1")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || rows[0].NGen == 0 {
		return 0, fmt.Errorf("llama-bench decode: %d rows", len(rows))
	}
	return rows[0].best(), nil
}

// llamaRow is one row of llama-bench -o json.
type llamaRow struct {
	BuildCommit string    `json:"build_commit"`
	BuildNumber int       `json:"build_number"`
	CPUInfo     string    `json:"cpu_info"`
	Backends    string    `json:"backends"`
	Threads     int       `json:"n_threads"`
	NPrompt     int       `json:"n_prompt"`
	NGen        int       `json:"n_gen"`
	AvgTS       float64   `json:"avg_ts"`
	SamplesTS   []float64 `json:"samples_ts"`
	TypeK       string    `json:"type_k"`
}

// best is the fastest of the row's runs (roe's figures are its best of reps too).
func (r llamaRow) best() float64 {
	if len(r.SamplesTS) == 0 {
		return r.AvgTS
	}
	return slices.Max(r.SamplesTS)
}

func llamaBenchJSON(args ...string) ([]llamaRow, error) {
	cmd := exec.Command(*llamaBench, append(args, "-o", "json")...)
	cmd.Stderr = nil
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var rows []llamaRow
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("llama-bench output: %v", err)
	}
	return rows, nil
}

// findRun is the run of runs on t threads, or nil.
func findRun(runs []GGUFRun, t int) *GGUFRun {
	for i := range runs {
		if runs[i].Threads == t {
			return &runs[i]
		}
	}
	return nil
}

// loadGGUFChild loads a GGUF file as roe serves it, for a measuring child.
func loadGGUFChild(path string) (*model.Model, io.Closer, os.FileInfo) {
	m, f, err := model.LoadGGUF(path, model.LoadOptions{})
	if err != nil {
		fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		fatal(err)
	}
	return m, f, st
}

// childRSSGGUF is childRSS for a GGUF file: load it, decode, report the
// peak against the file size plus the KV cache.
func childRSSGGUF(path string) {
	m, f, st := loadGGUFChild(path)
	defer f.Close()
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	kernels.SetThreads(2)
	cfg := m.Config
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
	r := RSS{Weights: "gguf " + strings.TrimSuffix(filepath.Base(path), ".gguf"), PeakMiB: hwm / 1024,
		WeightsMiB: float64(st.Size()) / (1 << 20), KVMiB: kv / (1 << 20)}
	r.Ratio = r.PeakMiB / (r.WeightsMiB + r.KVMiB)
	r.ExeMiB, r.FileMiB, r.AnonMiB = rssByMapping(path)
	r.Description = "VmHWM over prefill 128 + decode 128 (2 threads) after loading (the file is mmapped: its pages count once touched); weights = the file size; KV reserved for 256 positions up front, as for a request with max_tokens"
	runtime.KeepAlive(m)
	json.NewEncoder(os.Stdout).Encode(r)
}

// mdGGUF writes the quantized-weights table, roe and llama.cpp side by side.
func mdGGUF(p mdPrinter, rep *Report) {
	s := rep.GGUF
	if s == nil {
		return
	}
	p("## GGUF and quantized weights")
	p("")
	p("The random 135M-shape model written by roe's GGUF writer and quantizer (`roe model quantize`), loaded back as `roe serve --model FILE.gguf` loads it: quantized blocks stay in the mapping, activations are float32 (exact: logits equal a float64 forward over the file's dequantized weights). Rows of engine `%s` load the same file with the opt-in int8 activations (decode products of Q8_0, Q4_0, Q5_0, Q4_K and Q6_K weights quantize their input rows to int8 blocks of 32; lossy, as llama.cpp; prefill stays float32). llama.cpp, when measured (%s), runs `llama-bench` with its defaults on the same files in the same run: prefill 512 the best of its repetitions (as roe's), decode 128 once per round (`-p 0 -n 128 -r 1`, after its warm-up run). Decode is measured in %d rounds, every engine and thread count once per round, back to back, so the machine's drift hits them alike: decode columns show each engine's median round, and roe ÷ llama.cpp the median of the rounds' ratios with their range. Fraction: decode tokens/s × weight bytes per token ÷ this run's read ceiling. roe maps the file asking for transparent huge pages (MADV_HUGEPAGE) and its writer writes in aligned 2 MiB pieces, so a file it wrote is cached in 2 MiB folios; the kernel column says how much of the mapping was on 2 MiB pages after the rounds (a file cached in small pages stays on 4 KiB pages, and decodes slower). llama.cpp reads the same files; built for this CPU it may repack weights into its own buffers (its AMX buffer on CPUs with AMX), which this table does not see. Files labelled %s are a second random model whose rows are whole 256-weight blocks (hidden 1024, FFN 2816, 12 layers of 16 query and 4 KV heads, vocabulary 32000, untied; 201M parameters): its K-quant files hold K-quants throughout, as 7B/8B models' do, where the 135M shape's 576-wide rows fall back to Q5_0 and Q8_0.", engineQ8, orDash(s.LlamaBuild), s.Rounds, wideName)
	if s.Note != "" {
		p("")
		p("%s.", s.Note)
	}
	p("")
	p("| file | MiB | engine | threads | prefill 512 tok/s | decode 128 tok/s | decode / ceiling | roe ÷ llama.cpp (prefill, decode) | kernel |")
	p("|---|---:|---|---:|---:|---:|---:|---|---|")
	for _, r := range s.Runs {
		ratio := ""
		if r.Engine == "roe" || r.Engine == engineQ8 {
			if l := findGGUF(s, r.File, "llama.cpp", r.Threads); l != nil && l.Prefill > 0 && l.Decode > 0 {
				ratio = fmt.Sprintf("%.2f×, %.2f×", r.Prefill/l.Prefill, r.Decode/l.Decode)
				if med, lo, hi, ok := r.decodeRatio(); ok {
					ratio = fmt.Sprintf("%.2f×, %.2f× (rounds %.2f–%.2f)", r.Prefill/l.Prefill, med, lo, hi)
				}
			} else if l := findGGUF(s, r.File, quotedEngine, r.Threads); l != nil && l.Prefill > 0 && l.Decode > 0 {
				ratio = fmt.Sprintf("%.2f×, %.2f× (quoted, two machines)", r.Prefill/l.Prefill, r.Decode/l.Decode)
			}
		}
		frac := fmt.Sprintf("%.0f%%", 100*r.Fraction)
		if r.Engine == quotedEngine {
			frac = "–" // another machine's ceiling is not this run's
		}
		kernel := r.Kernel
		if (r.Engine == "roe" || r.Engine == engineQ8) && !math.IsNaN(r.HugeMiB) {
			kernel += fmt.Sprintf("; %.0f of %.0f MiB on 2 MiB pages", r.HugeMiB, r.MiB)
		}
		p("| %s | %.0f | %s | %d | %.0f | %.1f | %s | %s | %s |", r.File, r.MiB, r.Engine, r.Threads, r.Prefill, r.Decode, frac, ratio, kernel)
	}
	for _, l := range s.LoRA {
		p("")
		p("Unmerged LoRA rank 16 on all seven projections over %s, %d thread(s): %.1f → %.1f tok/s (%+.1f%% per decode step); with `--lora-dtype bfloat16` (opt-in, lossy for this float32 adapter) %.1f tok/s (%+.1f%%); the same adapter as the float16 GGUF LoRA llama.cpp runs below, read as it is stored (%s factors, the default) %.1f tok/s (%+.1f%%).", l.Weights, l.Threads, l.Base, l.Unmerged, 100*l.Overhead, l.UnmergedBF16, 100*l.OverheadBF16, l.F16Factors, l.UnmergedF16, 100*l.OverheadF16)
	}
	if len(s.PeerLoRA) > 0 {
		p("")
		p("llama.cpp with the same adapter (written by roe as a GGUF LoRA, in float32 and in float16, its converter's default), `llama-cli -m FILE --lora ADAPTER -n 128 -c 256 -t T --temp 0 --ignore-eos`, with and without `--lora` taking turns; milliseconds per decoded token from its eval time, median of the rounds:")
		p("")
		p("| adapter | threads | without | with --lora | added per decode step | rounds |")
		p("|---|---|---|---|---|---|")
		for _, l := range s.PeerLoRA {
			if l.Error != "" {
				p("| %s | %d | – | – | failed: %s | 0 |", l.Adapter, l.Threads, l.Error)
				continue
			}
			p("| %s | %d | %.2f ms | %.2f ms | %+.1f%% | %d |", l.Adapter, l.Threads, l.BaseMs, l.LoRAMs, 100*l.Overhead, l.Rounds)
		}
	}
	for _, r := range s.RSS {
		p("")
		p("Peak RSS, %s: %.0f MiB against file %.0f MiB + KV %.1f MiB (%.2f×). %s.", r.Weights, r.PeakMiB, r.WeightsMiB, r.KVMiB, r.Ratio, r.Description)
		if r.ExeMiB > 0 {
			p("")
			p("Of the resident pages at the end: the file %.1f MiB, anonymous memory %.1f MiB (the KV cache, activations, the Go heap), and %.1f MiB of this benchmark binary's own code and read-only data: the kernel maps the whole large folio around a touched page of an executable, so a big binary costs pages it never reads. Without the executable's pages: %.2f×.",
				r.FileMiB, r.AnonMiB, r.ExeMiB, (r.PeakMiB-r.ExeMiB)/(r.WeightsMiB+r.KVMiB))
		}
	}
	for _, r := range s.Outside {
		p("")
		p("Peak RSS from outside, %s: %.0f MiB against file %.0f MiB + KV %.1f MiB (%.2f×). %s.", r.Weights, r.PeakMiB, r.WeightsMiB, r.KVMiB, r.Ratio, r.Description)
	}
	for _, r := range s.Train {
		p("")
		p("Peak RSS, %s: %.0f MiB (file %.0f MiB; %.2f× the file). %s.", r.Weights, r.PeakMiB, r.WeightsMiB, r.Ratio, r.Description)
	}
	p("")
}

// childQLoRA trains a rank-16 LoRA on all seven projections for 3 steps of
// 4 × 128 tokens over a GGUF file, as roe train does (QLoRA: the base as
// stored), or, with widen, over a float32 copy of it (how the trainer ran
// before), and prints the peak RSS.
func childQLoRA(path string, widen bool) {
	m, f, st := loadGGUFChild(path)
	defer f.Close()
	kernels.SetThreads(2)
	name, desc := "LoRA training over "+filepath.Base(path)+" as stored (QLoRA)", "roe train's path: the base stays quantized and frozen, widened a panel of rows at a time"
	if widen {
		m = m.Clone()
		name, desc = "LoRA training over a float32 copy of "+filepath.Base(path), "the reference: the same training over the dequantized float32 model"
	}
	cfg := m.Config
	l, err := train.NewLoRA(cfg, 16, 32, train.AllTargets, 1)
	if err != nil {
		fatal(err)
	}
	var seqs []train.Sequence
	for s := range 4 {
		toks := ids(128, cfg.VocabSize)
		for i := range toks {
			toks[i] = (toks[i] + 7*s) % cfg.VocabSize
		}
		mask := make([]bool, len(toks))
		for i := 1; i < len(mask); i++ {
			mask[i] = true
		}
		seqs = append(seqs, train.Sequence{Tokens: toks, LossMask: mask})
	}
	tr, err := train.NewTrainer(m, l, seqs, train.Options{LR: 1e-3, BatchSize: 4, Steps: 3, Seed: 1})
	if err != nil {
		fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		fatal(err)
	}
	r := RSS{Weights: name, PeakMiB: procStatus("VmHWM") / 1024, WeightsMiB: float64(st.Size()) / (1 << 20)}
	r.Ratio = r.PeakMiB / r.WeightsMiB
	r.Description = "VmHWM over loading and 3 steps of batch 4 × 128 tokens, LoRA r=16 on all seven projections, 2 threads; " + desc
	runtime.KeepAlive(m)
	json.NewEncoder(os.Stdout).Encode(r)
}

func findGGUF(s *GGUFSection, file, engine string, t int) *GGUFRun {
	for i := range s.Runs {
		if r := &s.Runs[i]; r.File == file && r.Engine == engine && r.Threads == t {
			return r
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "not in this run"
	}
	return s
}

// ggufGoals are the targets as same-run ratios against llama.cpp.
func ggufGoals(rep *Report) []Goal {
	s := rep.GGUF
	if s == nil {
		return nil
	}
	var g []Goal
	for _, r := range s.Runs {
		if r.Engine != "roe" && r.Engine != engineQ8 {
			continue
		}
		// llama.cpp quantizes activations to int8 too: the q8 rows are the
		// like-for-like decode comparison, the default (exact) rows are shown beside them.
		engine := ""
		if r.Engine == engineQ8 {
			engine = ", `--activations q8`"
		}
		if l := findGGUF(s, r.File, "llama.cpp", r.Threads); l != nil {
			ratio := r.Decode / l.Decode
			if med, _, _, ok := r.decodeRatio(); ok {
				ratio = med
			}
			g = append(g, Goal{fmt.Sprintf("decode %s%s, %d thread(s) ≥ llama.cpp (same run; median of the rounds' ratios)", r.File, engine, r.Threads),
				fmt.Sprintf("%.1f tok/s", l.Decode), fmt.Sprintf("%.1f tok/s", r.Decode), ratio, ratio >= 1})
			if r.Engine == engineQ8 {
				continue // prefill stays float32 with q8 activations
			}
			g = append(g, Goal{fmt.Sprintf("prefill 512 %s, %d thread(s) ≥ llama.cpp (same run)", r.File, r.Threads),
				fmt.Sprintf("%.0f tok/s", l.Prefill), fmt.Sprintf("%.0f tok/s", r.Prefill), r.Prefill / l.Prefill, r.Prefill >= l.Prefill})
		}
		if r.Engine == "roe" && (r.File == "q8_0" || r.File == "q4_k_m") {
			g = append(g, Goal{fmt.Sprintf("decode %s, %d thread(s) ≥ 85%% of the read ceiling", r.File, r.Threads),
				"85%", fmt.Sprintf("%.0f%%", 100*r.Fraction), r.Fraction / 0.85, r.Fraction >= 0.85})
		}
	}
	for _, l := range s.LoRA {
		g = append(g, Goal{fmt.Sprintf("unmerged LoRA r=16 ×7 over %s, %d thread(s): ≤ 10%% on a decode step", l.Weights, l.Threads),
			"≤ +10%", fmt.Sprintf("%+.1f%%", 100*l.Overhead), 1.10 / (1 + l.Overhead), l.Overhead <= 0.10})
		if l.F16Factors != "" {
			g = append(g, Goal{fmt.Sprintf("the same, as the float16 GGUF LoRA llama.cpp runs (%s factors), %d thread(s): ≤ 10%%", l.F16Factors, l.Threads),
				"≤ +10%", fmt.Sprintf("%+.1f%%", 100*l.OverheadF16), 1.10 / (1 + l.OverheadF16), l.OverheadF16 <= 0.10})
		}
	}
	for _, r := range s.RSS {
		g = append(g, Goal{fmt.Sprintf("peak RSS %s ≤ 1.1 × (file + KV)", r.Weights), fmt.Sprintf("%.0f MiB", 1.1*(r.WeightsMiB+r.KVMiB)),
			fmt.Sprintf("%.0f MiB", r.PeakMiB), 1.1 / r.Ratio, r.Ratio <= 1.1})
	}
	for _, r := range s.Outside {
		if strings.HasPrefix(r.Weights, "roe ") {
			g = append(g, Goal{fmt.Sprintf("peak RSS from outside, %s ≤ 1.1 × (file + KV)", r.Weights), fmt.Sprintf("%.0f MiB", 1.1*(r.WeightsMiB+r.KVMiB)),
				fmt.Sprintf("%.0f MiB", r.PeakMiB), 1.1 / r.Ratio, r.Ratio <= 1.1})
		}
	}
	return g
}

// writeGGUFOnly writes the report of a -only gguf run: the ceilings and the
// GGUF section with its goals, as gguf.{json,md}.
func writeGGUFOnly(rep *Report) {
	writeOnly(rep, "gguf", "roe on GGUF files, side by side with llama.cpp", ggufGoals(rep), mdCeilings, mdGGUF)
}

// writeOnly writes the report of a -only run as NAME.{json,md}: its sections
// and goals under a title.
func writeOnly(rep *Report, name, title string, goals []Goal, sections ...func(mdPrinter, *Report)) {
	rep.Goals = goals
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*outDir, name+".json"), append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
	var md strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&md, format+"\n", args...) }
	p("# %s", title)
	p("")
	p("Measured by `go run ./benchmarks/perf -only %s` (`make bench` measures the same section inside perf.md) on %s, %s, kernel path `%s`. %s", name, rep.Date, rep.CPU, rep.Path, results.Markdown(rep.Commit, ""))
	p("")
	for _, section := range append(sections, mdGoals) {
		section(p, rep)
	}
	if err := os.WriteFile(filepath.Join(*outDir, name+".md"), []byte(md.String()), 0o644); err != nil {
		fatal(err)
	}
	fmt.Print(md.String())
}

// outsideRSS runs `roe generate` (with -roe-bin) and llama-cli (next to
// -llama-bench) on a GGUF file under /usr/bin/time, as a user would measure
// them. Both get the same prompt, 128 new tokens at most,
// greedy, 2 threads and a 256-position context.
func outsideRSS(path string, m *model.Model) []RSS {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	file := float64(st.Size()) / (1 << 20)
	cfg := m.Config
	kvF32 := float64(2*cfg.NumLayers*cfg.NumKVHeads*cfg.HeadDim*256*4) / (1 << 20)
	prompt := "Once upon a time, in a small village by the sea, there lived an old fisherman who"
	var out []RSS
	// The kernel's account of a child carries its parent's peak across fork
	// and exec, so the child is started by /usr/bin/time, a small parent.
	timeBin, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		logf("outside rss: no /usr/bin/time (Debian's time package): not measured")
		return nil
	}
	run := func(name string, kv float64, desc string, argv ...string) {
		cmd := exec.Command(timeBin, append([]string{"-f", "maxrss_kb=%M"}, argv...)...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			logf("outside rss %s: %v", name, err)
			return
		}
		i := strings.LastIndex(stderr.String(), "maxrss_kb=")
		if i < 0 {
			logf("outside rss %s: no maxrss in /usr/bin/time's output", name)
			return
		}
		kb, err := strconv.ParseFloat(strings.TrimSpace(stderr.String()[i+len("maxrss_kb="):]), 64)
		if err != nil {
			logf("outside rss %s: %v", name, err)
			return
		}
		r := RSS{Weights: name, PeakMiB: kb / 1024, WeightsMiB: file, KVMiB: kv, Description: desc}
		r.Ratio = r.PeakMiB / (r.WeightsMiB + r.KVMiB)
		logf("outside rss %s: %.0f MiB (%.2f× file + KV)", name, r.PeakMiB, r.Ratio)
		out = append(out, r)
	}
	base := filepath.Base(path)
	if *roeBin != "" {
		run("roe generate "+base, kvF32, "/usr/bin/time %M of `roe generate --model FILE --max-tokens 128 --temperature 0` (GOMAXPROCS=2); KV: float32 for 256 positions",
			*roeBin, "generate", "--model", path, "--prompt", prompt, "--max-tokens", "128", "--temperature", "0")
	}
	if *llamaBench != "" {
		cli := filepath.Join(filepath.Dir(*llamaBench), "llama-cli")
		if _, err := os.Stat(cli); err == nil {
			run("llama-cli "+base, kvF32/2, "/usr/bin/time %M of `llama-cli -m FILE -n 128 -c 256 -t 2 --temp 0 -no-cnv`; KV: f16 (its default) for 256 positions",
				cli, "-m", path, "-p", prompt, "-n", "128", "-c", "256", "-t", "2", "--temp", "0", "-no-cnv", "--no-warmup")
		}
	}
	return out
}

// quotedEngine names llama.cpp rows read from a PERF.md of another machine.
const quotedEngine = "llama.cpp, quoted"

// quotedLlama reads the table of a PERF.md (| weights | file MiB | threads |
// pp128 | pp512 | tg128 |) as runs of the quoted engine.
func quotedLlama(path string) ([]GGUFRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var runs []GGUFRun
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(f) != 6 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		mib, err1 := strconv.ParseFloat(f[1], 64)
		t, err2 := strconv.Atoi(f[2])
		pp, err3 := strconv.ParseFloat(f[4], 64)
		tg, err4 := strconv.ParseFloat(f[5], 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue // the header, the rule or prose
		}
		runs = append(runs, GGUFRun{File: strings.ToLower(f[0]), MiB: mib, Engine: quotedEngine, Threads: t, Prefill: pp, Decode: tg,
			Kernel: "quoted from " + filepath.Base(path) + ": another machine, not this run"})
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: no table of | weights | file MiB | threads | pp128 | pp512 | tg128 |", path)
	}
	return runs, nil
}

// ggufBench holds what every file of the side-by-side section shares.
type ggufBench struct {
	rep          *Report
	sec          *GGUFSection
	dir          string
	threads      []int
	reps, rounds int
}

// wideName and wideShape: the second model of the side-by-side section, a
// Llama whose rows are whole 256-weight blocks (hidden 1024, FFN 2816, 12
// layers, vocabulary 32000, untied; 201M parameters), so its K-quant files
// hold K-quants throughout as 7B/8B models' do, where the 135M shape's
// 576-wide rows fall back to Q5_0 and Q8_0.
const wideName = "wide-201M"

func wideShape() model.Config {
	c, err := model.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":1024,"intermediate_size":2816,
	"num_hidden_layers":12,"num_attention_heads":16,"num_key_value_heads":4,"vocab_size":32000,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":4096,"tie_word_embeddings":false}`))
	if err != nil {
		panic(err) // a constant config
	}
	return c
}

func mustFileType(name string) model.GGUFFileType {
	ft, err := model.ParseGGUFFileType(name)
	if err != nil {
		fatal(err)
	}
	return ft
}

// file writes src as a GGUF of type ft, measures roe (and llama.cpp) on
// it and adds the runs, labelled prefix+type; extras adds the LoRA and
// peak-RSS measurements (the 135M shape's Q4_K_M file).
func (g *ggufBench) file(src *model.Model, name string, ft model.GGUFFileType, prefix string, vocab []gguf.KV, extras bool) {
	rep, sec, dir, threads, reps, rounds := g.rep, g.sec, g.dir, g.threads, g.reps, g.rounds
	label := prefix + ft.Name
	path := filepath.Join(dir, name+"-"+ft.Name+".gguf")
	logf("writing %s", filepath.Base(path))
	if err := model.SaveGGUF(path, src, model.GGUFWriteOptions{FileType: ft, Name: name, Vocab: vocab}); err != nil {
		fatal(err)
	}
	st, _ := os.Stat(path)
	mib := float64(st.Size()) / (1 << 20)
	var lo model.LoadOptions
	kernel := kernels.Path() + ", float32 activations"
	m, f, err := model.LoadGGUF(path, lo)
	if err != nil {
		fatal(err)
	}
	bytes := float64(m.WeightBytes())
	// The engines of this file, each run over every thread count.
	engines := []ggufEngine{{"roe", kernel, m}}
	closers := []io.Closer{f}
	if *ggufQ8 && ft.Base.Quantized() {
		lo.Activations = model.ActivationsQ8
		mq, fq, err := model.LoadGGUF(path, lo)
		if err != nil {
			fatal(err)
		}
		closers = append(closers, fq)
		k := kernels.Path() + ", int8 activations for " + mq.Q8Types() + " (lossy)"
		if n := kernels.Q8Note(); n != "" {
			k += "; " + n
		}
		engines = append(engines, ggufEngine{engineQ8, k, mq})
	}
	var runs []GGUFRun // [engine × thread], then llama.cpp's per thread
	for _, e := range engines {
		for _, t := range threads {
			kernels.SetThreads(t)
			runs = append(runs, GGUFRun{File: label, Engine: e.name, Kernel: e.kernel, Threads: t, MiB: mib, Prefill: prefill(e.m, 512, reps)})
		}
	}
	var llama []GGUFRun
	if *llamaBench != "" {
		runs, build, err := runLlamaBench(path, label, mib, threads, reps)
		if err != nil {
			logf("llama-bench %s: %v", label, err)
		} else {
			llama, sec.LlamaBuild = runs, build
		}
	}
	// Decode rounds: every engine and thread count once per round, in turn.
	for round := range rounds {
		for ti, t := range threads {
			kernels.SetThreads(t)
			for ei, e := range engines {
				r := &runs[ei*len(threads)+ti]
				r.DecodeRounds = append(r.DecodeRounds, decode(e.m, 128, 1))
			}
			if len(llama) == 0 {
				continue
			}
			l := findRun(llama, t)
			d, err := llamaDecode(path, t)
			if err != nil {
				logf("llama-bench %s decode: %v", label, err)
				llama = nil
				continue
			}
			l.DecodeRounds = append(l.DecodeRounds, d)
			for ei := range engines {
				r := &runs[ei*len(threads)+ti]
				r.DecodeRatios = append(r.DecodeRatios, r.DecodeRounds[round]/d)
			}
		}
	}
	huge := fileHugeMiB(path)
	for i := range runs {
		runs[i].HugeMiB = huge
	}
	for _, r := range append(runs, llama...) {
		if len(r.DecodeRounds) > 0 {
			r.Decode = median(r.DecodeRounds)
		}
		r.Fraction = r.Decode * bytes / 1e9 / rep.BandwidthGB[r.Threads]
		sec.Runs = append(sec.Runs, r)
		if med, lo, hi, ok := r.decodeRatio(); ok {
			logf("%s %s %d thread(s): prefill512 %.0f, decode128 %.1f tok/s (%.0f%% of the read ceiling), decode ÷ llama.cpp %.2f (rounds %.2f–%.2f)", r.Engine, label, r.Threads, r.Prefill, r.Decode, 100*r.Fraction, med, lo, hi)
		} else {
			logf("%s %s %d thread(s): prefill512 %.0f, decode128 %.1f tok/s (%.0f%% of the read ceiling)", r.Engine, label, r.Threads, r.Prefill, r.Decode, 100*r.Fraction)
		}
	}
	if extras && ft.Name == "q4_k_m" {
		for _, t := range threads {
			kernels.SetThreads(t)
			l := loraDecode(m, t, reps)
			l.Weights = ft.Name
			sec.LoRA = append(sec.LoRA, l)
			logf("unmerged LoRA r=16 over %s, %d thread(s): %+.1f%% (bfloat16 factors %+.1f%%; float16 GGUF LoRA, %s factors, %+.1f%%)", ft.Name, t, 100*l.Overhead, 100*l.OverheadBF16, l.F16Factors, 100*l.OverheadF16)
		}
		sec.PeerLoRA = peerLoRA(path, m, threads, *ggufRounds)
		if r, err := runRSSChild("gguf:" + path); err != nil {
			logf("rss %s: %v", ft.Name, err)
		} else {
			sec.RSS = append(sec.RSS, r)
		}
		sec.Outside = append(sec.Outside, outsideRSS(path, m)...)
		for _, w := range []string{"qlora:", "lora-f32:"} {
			if r, err := runRSSChild(w + path); err != nil {
				logf("rss %s%s: %v", w, ft.Name, err)
			} else {
				sec.Train = append(sec.Train, r)
				logf("%s: peak RSS %.0f MiB", r.Weights, r.PeakMiB)
			}
		}
	}
	for _, c := range closers {
		c.Close()
	}
	m, engines = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
}
