package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"roe/adapters"
	"roe/library"
	"roe/tasks"
	"roe/train"
)

// taskInstances turns examples of a task into instances: each rendered by a
// template drawn (seeded) from the task's promptsource templates when a
// templates folder is given and the task has some, else the raw text fields.
func taskInstances(taskDir, templatesDir string, ex []tasks.Example, seed uint64) ([]library.Instance, error) {
	task := filepath.Base(filepath.Clean(taskDir))
	var ts []tasks.Template
	var fm tasks.FieldMap
	if templatesDir != "" {
		var err error
		ts, fm, err = tasks.TemplatesFor(task, templatesDir)
		if err != nil && !errors.Is(err, tasks.ErrUnknownTask) {
			return nil, err
		}
	}
	r := rand.New(rand.NewPCG(seed, 0xda7a))
	var out []library.Instance
	for _, e := range ex {
		if len(ts) == 0 {
			if text := rawInput(e); text != "" {
				out = append(out, library.Instance{Text: text})
			}
			continue
		}
		// Try templates in a seeded order until one renders this example.
		for _, i := range r.Perm(len(ts)) {
			rd, err := ts[i].Render(fm.Apply(e))
			if err != nil || rd.Input == "" {
				continue
			}
			out = append(out, library.Instance{Text: rd.Input, AnswerChoices: rd.AnswerChoices, Target: rd.Target})
			break
		}
	}
	return out, nil
}

// rawInput joins an example's text fields: the instance of a task without templates.
func rawInput(e tasks.Example) string { return strings.Join(tasks.TextFields(e), "\n") }

func runData(args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "instances" {
		return usagef("usage: roe data instances --task DIR [--split train] [--n 100] [--templates DIR] [--seed S]")
	}
	fs := flag.NewFlagSet("data instances", flag.ContinueOnError)
	task := fs.String("task", "", "task folder with <split>.jsonl files")
	split := fs.String("split", "train", "split to read")
	n := fs.Int("n", library.DefaultSampleSize, "instances to draw (0: all)")
	templates := fs.String("templates", "", "promptsource templates folder (without it, raw text fields)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *task == "" {
		return usagef("--task is required")
	}
	ex, err := tasks.LoadTask(*task, *split)
	if err != nil {
		return err
	}
	if *n > 0 {
		ex = tasks.SampleExamples(ex, *n, *seed)
	}
	ins, err := taskInstances(*task, *templates, ex, *seed)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, in := range ins {
		if err := enc.Encode(in); err != nil {
			return err
		}
	}
	return nil
}

func runAdapter(args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return usagef("usage: roe adapter init [--model DIR] [--rank R] [--alpha A] [--targets q_proj,v_proj] [--seed S] --out DIR")
	}
	fs := flag.NewFlagSet("adapter init", flag.ContinueOnError)
	dir := modelFlag(fs)
	rank := fs.Int("rank", 8, "LoRA rank")
	alpha := fs.Float64("alpha", 16, "lora_alpha")
	targets := fs.String("targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "target modules")
	seed := fs.Uint64("seed", 1, "seed of A's initialisation")
	out := fs.String("out", "", "output PEFT folder")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *out == "" || *rank < 1 {
		return usagef("--out is required and --rank must be ≥ 1")
	}
	cfg, err := loadConfig(*dir)
	if err != nil {
		return err
	}
	names := strings.Split(*targets, ",")
	for i, t := range names {
		names[i] = strings.TrimSpace(t)
		if _, ok := adapters.ModuleProjs(cfg, names[i]); !ok {
			return usagef("unknown target module %q", t)
		}
	}
	l, err := train.NewLoRA(cfg, *rank, *alpha, names, *seed)
	if err != nil {
		return err
	}
	if err := l.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: rank %d on %s (B = 0, so it starts as the base model)\n", *out, *rank, *targets)
	return nil
}
