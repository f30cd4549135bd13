package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"

	"roe/adapters"
	"roe/kernels"
	"roe/model"
)

// PeerLoRA is llama.cpp's cost for the same unmerged adapter as roe's LoRA
// rows: llama-cli decoding with and without --lora, the two taking turns.
type PeerLoRA struct {
	Adapter  string  `json:"adapter"` // the GGUF LoRA's tensor type
	Threads  int     `json:"threads"`
	BaseMs   float64 `json:"base_ms_per_token"` // median over rounds
	LoRAMs   float64 `json:"lora_ms_per_token"`
	Overhead float64 `json:"overhead"` // LoRAMs / BaseMs − 1
	Rounds   int     `json:"rounds"`
	Error    string  `json:"error,omitempty"` // why llama-cli gave no timing
}

// evalTime is llama-cli's decode timing line (not its "prompt eval time").
var evalTime = regexp.MustCompile(`(?m)^llama_perf_context_print:\s+eval time =\s+([0-9.]+) ms /\s+([0-9]+) runs`)

// peerLoRA writes roe's benchmark adapter (adapters.Random rank 16 on all
// seven projections, as loraDecode) as a llama.cpp GGUF LoRA in float32 and
// in float16 (llama.cpp's converter's default outtype) next to path, and
// times llama-cli's decode of 128 tokens on path with and without it.
func peerLoRA(path string, m *model.Model, threads []int, rounds int) []PeerLoRA {
	if *llamaBench == "" {
		return nil
	}
	cli := filepath.Join(filepath.Dir(*llamaBench), "llama-cli")
	if _, err := os.Stat(cli); err != nil {
		logf("llama.cpp LoRA: %v", err)
		return nil
	}
	f32 := filepath.Join(filepath.Dir(path), "lora-r16-f32.gguf")
	f16 := filepath.Join(filepath.Dir(path), "lora-r16-f16.gguf")
	if err := writePeerLoRA(adapters.Random(m.Config, 16, 1), m.Config, f32, f16); err != nil {
		logf("llama.cpp LoRA: %v", err)
		return nil
	}
	perToken := func(t int, lora string) (float64, error) {
		args := []string{"-m", path, "-p", "Once upon a time", "-n", "128", "-c", "256", "-t", strconv.Itoa(t), "--temp", "0", "-no-cnv", "--ignore-eos"}
		if lora != "" {
			args = append(args, "--lora", lora)
		}
		out, err := exec.Command(cli, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("llama-cli: %v", err)
		}
		mt := evalTime.FindSubmatch(out)
		if mt == nil {
			return 0, fmt.Errorf("llama-cli printed no eval time")
		}
		ms, _ := strconv.ParseFloat(string(mt[1]), 64)
		n, _ := strconv.Atoi(string(mt[2]))
		return ms / float64(max(n, 1)), nil
	}
	var res []PeerLoRA
	for _, t := range threads {
		for _, a := range []struct{ name, file string }{{"F32", f32}, {"F16", f16}} {
			var base, with []float64
			for range rounds {
				b, err := perToken(t, "")
				if err == nil {
					var l float64
					if l, err = perToken(t, a.file); err == nil {
						base, with = append(base, b), append(with, l)
					}
				}
				if err != nil {
					logf("llama.cpp LoRA %s, %d thread(s): %v", a.name, t, err)
					if len(base) == 0 {
						res = append(res, PeerLoRA{Adapter: a.name, Threads: t, Error: err.Error()})
					}
					break
				}
			}
			if len(base) == 0 {
				continue
			}
			p := PeerLoRA{Adapter: a.name, Threads: t, BaseMs: median(base), LoRAMs: median(with), Rounds: len(base)}
			p.Overhead = p.LoRAMs/p.BaseMs - 1
			logf("llama.cpp LoRA %s, %d thread(s): %.2f → %.2f ms per token (%+.1f%%)", a.name, t, p.BaseMs, p.LoRAMs, 100*p.Overhead)
			res = append(res, p)
		}
	}
	return res
}

// writePeerLoRA writes l as a GGUF LoRA in float32 (f32) and the same
// tensors rounded to IEEE halves (f16, as llama.cpp's converter writes by
// default).
func writePeerLoRA(l *adapters.LoRA, cfg model.Config, f32, f16 string) error {
	for _, o := range []struct {
		path string
		t    kernels.QType
	}{{f32, kernels.F32}, {f16, kernels.F16}} {
		var b bytes.Buffer
		if err := l.WriteGGUFAs(&b, cfg, o.t); err != nil {
			return err
		}
		if err := os.WriteFile(o.path, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
