package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roe/model"
)

const storiesTokenizer = "../../models/stories260K"

// pretrainCorpus writes a small TinyStories-like text file.
func pretrainCorpus(t *testing.T) string {
	t.Helper()
	names := []string{"Tom", "Lily", "Sam", "Mia"}
	things := []string{"a red ball", "a big dog", "a little cat", "a blue car"}
	var b strings.Builder
	for i := range 160 {
		fmt.Fprintf(&b, "Once upon a time, %s had %s.\n%s played with it every day and was happy.\n\n",
			names[i%4], things[(i/4)%4], names[i%4])
	}
	p := filepath.Join(t.TempDir(), "stories.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tinyPretrain are the flags of a model small enough for a unit test.
var tinyPretrain = []string{"--hidden", "32", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "64",
	"--seq-len", "32", "--batch", "8", "--lr", "1e-2", "--val-frac", "0.05"}

func pretrain(t *testing.T, args ...string) (pretrainSummary, string) {
	t.Helper()
	var log bytes.Buffer
	old := pretrainLog
	pretrainLog = &log
	defer func() { pretrainLog = old }()
	out, errs, code := roe(t, "", append([]string{"model", "pretrain"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, log.String())
	}
	var s pretrainSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return s, log.String()
}

func TestModelPretrain(t *testing.T) {
	corpus := pretrainCorpus(t)
	for _, dtype := range []string{"f32", "bf16"} {
		t.Run(dtype, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tiny")
			args := append([]string{"--corpus", corpus, "--tokenizer", storiesTokenizer, "--out", out, "--steps", "40",
				"--log-every", "10", "--eval-every", "20", "--dtype", dtype}, tinyPretrain...)
			s, log := pretrain(t, args...)
			t.Logf("loss %.3f → %.3f, validation %.3f, %.0f tok/s", s.FirstLoss, s.TrainLoss, *s.ValLoss, s.TokensPerSec)
			if s.Steps != 40 || s.Tokens == 0 || s.Params == 0 || s.ValLoss == nil || s.Stopped != "" {
				t.Fatalf("summary %+v", s)
			}
			if s.TrainLoss > s.FirstLoss-1.5 || *s.ValLoss > s.FirstLoss-1.5 {
				t.Errorf("loss went from %.3f to %.3f (validation %.3f)", s.FirstLoss, s.TrainLoss, *s.ValLoss)
			}
			// Off a terminal, progress is roe train's JSON lines, every --log-every steps.
			for _, want := range []string{`"event":"progress"`, `"phase":"pretrain"`, `"step":10,"total":40`, `"loss"`, `"tokens_per_sec"`, `"eta_s"`,
				"step 20  validation loss", "validation loss"} {
				if !strings.Contains(log, want) {
					t.Errorf("progress lacks %q:\n%s", want, log)
				}
			}
			m, err := model.LoadWith(out, model.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.NumParams() != s.Params || m.Config.HiddenSize != 32 || m.Config.MaxPositions != 32 || len(m.Config.EOS) != 1 {
				t.Errorf("loaded %d params, config %+v", m.NumParams(), m.Config)
			}
			if want := map[string]string{"f32": "float32", "bf16": "bfloat16"}[dtype]; m.Config.TorchDType != want {
				t.Errorf("torch_dtype %q, want %q", m.Config.TorchDType, want)
			}
			readme, err := os.ReadFile(filepath.Join(out, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"roe model pretrain --corpus " + corpus, "stories.txt", "steps: 40 of 40", "validation loss"} {
				if !strings.Contains(string(readme), want) {
					t.Errorf("README.md lacks %q:\n%s", want, readme)
				}
			}
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
				a, _ := os.ReadFile(filepath.Join(storiesTokenizer, f))
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("%s not copied: %v", f, err)
				}
			}
			gen, errs, code := roe(t, "", "generate", "--model", out, "--prompt", "Once upon a time, Tom had a red ball.\nTom played with it every",
				"--temperature", "0", "--max-tokens", "12")
			t.Logf("generated %q", gen)
			if code != 0 || !strings.HasPrefix(strings.TrimSpace(gen), "day") {
				t.Errorf("generate: exit %d, %q (want \"day …\"), %s", code, gen, errs)
			}
		})
	}
}

// --time-budget without --steps fits the whole schedule into the budget.
func TestModelPretrainTimeBudget(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny")
	start := time.Now()
	s, log := pretrain(t, append([]string{"--corpus", pretrainCorpus(t), "--tokenizer", storiesTokenizer, "--out", out,
		"--time-budget", "3s", "--log-every", "1000"}, tinyPretrain...)...)
	took := time.Since(start)
	t.Logf("%d of %d steps in %s\n%s", s.Steps, s.PlannedSteps, took, log)
	if s.PlannedSteps < 10 || s.Steps < s.PlannedSteps/2 || !strings.Contains(log, "time budget 3s") {
		t.Errorf("summary %+v\n%s", s, log)
	}
	if took > 4*time.Second {
		t.Errorf("a 3s budget took %s", took)
	}
	if _, err := model.LoadWith(out, model.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestModelPretrainBadFlags(t *testing.T) {
	corpus := pretrainCorpus(t)
	out := filepath.Join(t.TempDir(), "x")
	// --steps 1: should a case be accepted, it fails fast.
	base := []string{"model", "pretrain", "--corpus", corpus, "--tokenizer", storiesTokenizer, "--out", out, "--steps", "1"}
	cases := []struct {
		args    []string
		mention string
	}{
		{[]string{"model", "pretrain"}, "usage"},
		{[]string{"model", "pretrain", "--corpus", corpus, "--out", out}, "usage"},
		{append(base, "--hidden", "100", "--heads", "3"), "--hidden"},
		{append(base, "--hidden", "12", "--heads", "4"), "even head size"},
		{append(base, "--heads", "4", "--kv-heads", "3"), "--kv-heads"},
		{append(base, "--seq-len", "1"), "--seq-len"},
		{append(base, "--steps", "0"), "--steps"},
		{append(base, "--batch", "0"), "--batch"},
		{append(base, "--lr", "-1"), "--lr"},
		{append(base, "--dtype", "int4"), "--dtype"},
		{append(base, "--docs", "sentence"), "--docs"},
		{append(base, "--val-frac", "1"), "--val-frac"},
		{append(base, "--time-budget", "-1s"), "--time-budget"},
		{append(base, "--time-budget", "banana"), "time-budget"},
		{append(base, "--layers", "x"), "layers"},
		{[]string{"model", "pretrain", "--corpus", "/nonexistent.txt", "--tokenizer", storiesTokenizer, "--out", out}, "nonexistent"},
		{[]string{"model", "pretrain", "--corpus", filepath.Dir(corpus), "--tokenizer", storiesTokenizer, "--out", out}, "folder"},
		{[]string{"model", "pretrain", "--corpus", corpus, "--tokenizer", "/nonexistent", "--out", out}, "tokenizer.json"},
		{append(base[:len(base)-2], "--time-budget", "1ms"), "too short"},
	}
	for _, c := range cases {
		var log bytes.Buffer
		pretrainLog = &log
		_, errs, code := roe(t, "", c.args...)
		if code == 0 || !strings.Contains(errs, c.mention) {
			t.Errorf("%v: exit %d, stderr %q (want it to mention %q)", c.args[2:], code, errs, c.mention)
		}
	}
	pretrainLog = os.Stderr
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused run wrote its output folder")
	}
}

// A run resumed from its finished checkpoint writes the same model.
func TestModelPretrainCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	args := func(out string) []string {
		return append([]string{"--corpus", pretrainCorpus(t), "--tokenizer", storiesTokenizer, "--out", out, "--steps", "12",
			"--checkpoint", ck, "--checkpoint-every", "5"}, tinyPretrain...)
	}
	a, _ := pretrain(t, args(filepath.Join(dir, "a"))...)
	b, log := pretrain(t, args(filepath.Join(dir, "b"))...)
	if !strings.Contains(log, "resumed from "+ck+" at step 12 of 12") || b.Steps != 12 || b.Tokens < a.Tokens-32 || b.Tokens > a.Tokens {
		t.Errorf("second run: %+v\n%s", b, log)
	}
	wa, _ := os.ReadFile(filepath.Join(dir, "a", "model.safetensors"))
	wb, _ := os.ReadFile(filepath.Join(dir, "b", "model.safetensors"))
	if len(wa) == 0 || !bytes.Equal(wa, wb) {
		t.Error("the resumed run wrote other weights")
	}
}
