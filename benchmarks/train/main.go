// Command train measures roe's LoRA training throughput (forward, backward and
// AdamW over a fixed batch) on stories260K and on a random SmolLM2-135M-shaped
// model, and writes the weights, adapter and batch it used so that
// torch_bench.py can time PyTorch on exactly the same step:
//
//	go run ./benchmarks/train -write DIR -json DIR/roe.json
package main

import (
	"encoding/json"
	"flag"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"roe/benchmarks/internal/results"
	"roe/kernels"
	"roe/model"
	"roe/model/safetensors"
	"roe/models"
	"roe/train"
)

type result struct {
	Name      string    `json:"name"`
	Seqs      int       `json:"seqs"`
	SeqLen    int       `json:"seq_len"`
	Rank      int       `json:"rank"`
	Alpha     float64   `json:"alpha"`
	LR        float64   `json:"lr"`
	WD        float64   `json:"weight_decay"`
	Steps     int       `json:"steps"`
	BestSec   float64   `json:"best_step_s"`
	MedianSec float64   `json:"median_step_s"`
	TokPerSec float64   `json:"tokens_per_s"` // from the best step
	Losses    []float64 `json:"losses"`       // the first steps' losses, to check torch computes the same
	Dir       string    `json:"dir"`
	Params    int       `json:"trainable_params"`
}

func main() {
	write := flag.String("write", "", "folder for weights, adapters and batches")
	out := flag.String("json", "", "results file")
	minTime := flag.Float64("time", 10, "seconds of timed steps per model (at least 5 steps)")
	flag.Parse()
	if *write == "" || *out == "" {
		log.Fatal("need -write DIR and -json FILE")
	}
	commit := results.Commit()
	stories, err := model.LoadFS(models.Stories260K())
	if err != nil {
		log.Fatal(err)
	}
	smol, err := model.Random(model.SmolLM2Shape(), 1)
	if err != nil {
		log.Fatal(err)
	}
	var res []result
	for _, c := range []struct {
		name    string
		m       *model.Model
		seqs, T int
	}{{"stories260K", stories, 8, 64}, {"smollm2-135m-shape", smol, 4, 128}} {
		r, err := bench(c.name, c.m, c.seqs, c.T, filepath.Join(*write, c.name), *minTime)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("%s: %.0f tokens/s (best step %.1f ms)", c.name, r.TokPerSec, r.BestSec*1000)
		res = append(res, r)
	}
	b, _ := json.MarshalIndent(map[string]any{"commit": commit, "go": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0),
		"kernels": kernels.Path(), "results": res}, "", "  ")
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func bench(name string, m *model.Model, nseq, T int, dir string, minTime float64) (result, error) {
	const rank, lr, wd = 16, 1e-4, 0.01
	alpha := float64(2 * rank)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	// Weights and config for torch.
	var ts []safetensors.Tensor
	for _, p := range m.Params() {
		ts = append(ts, safetensors.F32Tensor(p.Name, p.Shape, p.Data))
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		return result{}, err
	}
	cb, _ := json.Marshal(m.Config)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cb, 0o644); err != nil {
		return result{}, err
	}
	// A rank-16 adapter on all 7 projections: PEFT init for A, small random B
	// (non-zero so that every product is real work).
	l, err := train.NewLoRA(m.Config, rank, alpha, train.AllTargets, 1)
	if err != nil {
		return result{}, err
	}
	rng := rand.New(rand.NewPCG(2, 3))
	for k, v := range train.LoRAParams(l) {
		if k[len(k)-len("lora_B.weight"):] == "lora_B.weight" {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 1e-3)
			}
		}
	}
	train.SyncLoRA(l)
	if err := l.Save(filepath.Join(dir, "adapter")); err != nil {
		return result{}, err
	}
	// The batch: random tokens after BOS, every position counted.
	var batch train.Batch
	for i := 0; i < nseq; i++ {
		toks := make([]int, T)
		mask := make([]bool, T)
		toks[0] = 1
		for t := 1; t < T; t++ {
			toks[t] = 3 + rng.IntN(m.Config.VocabSize-3)
			mask[t] = true
		}
		batch.Tokens = append(batch.Tokens, toks)
		batch.LossMask = append(batch.LossMask, mask)
	}
	bb, _ := json.Marshal(batch.Tokens)
	if err := os.WriteFile(filepath.Join(dir, "batch.json"), bb, 0o644); err != nil {
		return result{}, err
	}
	params := train.LoRAParams(l)
	n := 0
	for _, v := range params {
		n += len(v)
	}
	opt := train.NewAdamW(lr, wd)
	step := func() (float64, error) {
		loss, g, err := train.LossAndGrads(m, l, batch, false)
		if err != nil {
			return 0, err
		}
		return loss, opt.Step(params, g.LoRA, lr)
	}
	r := result{Name: name, Seqs: nseq, SeqLen: T, Rank: rank, Alpha: alpha, LR: lr, WD: wd, Dir: dir, Params: n}
	// Losses of the first 3 steps (torch must match), then warm timing.
	for i := 0; i < 3; i++ {
		loss, err := step()
		if err != nil {
			return r, err
		}
		r.Losses = append(r.Losses, loss)
	}
	var times []float64
	start := time.Now()
	for len(times) < 5 || time.Since(start).Seconds() < minTime {
		t0 := time.Now()
		if _, err := step(); err != nil {
			return r, err
		}
		times = append(times, time.Since(t0).Seconds())
		if len(times) >= 2000 {
			break
		}
	}
	best, med := stats(times)
	r.Steps, r.BestSec, r.MedianSec = len(times), best, med
	r.TokPerSec = float64(nseq*T) / best
	return r, nil
}

func stats(v []float64) (best, median float64) {
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[0], s[len(s)/2]
}
