package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"roe/experts"
	"strings"
	"time"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/model/safetensors"
	"roe/tasks"
	"roe/train"
)

// taskTemplates are the templates a task is rendered with.
type taskTemplates struct {
	ts   []tasks.Template
	fm   tasks.FieldMap
	file string // template file (for the expert's manifest)
}

// templatesFlags choose templates: --template FILE or --templates DIR, and
// --prompt NAME or --all-prompts.
type templatesFlags struct {
	file, dir, prompt *string
	all               *bool
}

func addTemplatesFlags(fs *flag.FlagSet, withAll bool) *templatesFlags {
	f := &templatesFlags{
		file:   fs.String("template", "", "promptsource templates.yaml of the task"),
		dir:    fs.String("templates", "", "promptsource templates folder (files found by task name)"),
		prompt: fs.String("prompt", "", "template (prompt) name: a prompt expert"),
	}
	if withAll {
		f.all = fs.Bool("all-prompts", false, "all templates of the dataset, mixed: a dataset expert")
	} else {
		b := false
		f.all = &b
	}
	return f
}

// load returns the templates of the task in dir. strict: the target task
// (with --prompt it must have that template); an auxiliary task falls back to
// all its templates.
func (f *templatesFlags) load(taskDir string, strict bool) (taskTemplates, error) {
	task := filepath.Base(filepath.Clean(taskDir))
	var tt taskTemplates
	var err error
	switch {
	case *f.file != "" && strict:
		if tt.ts, err = tasks.LoadTemplates(*f.file); err != nil {
			return tt, err
		}
		if x, ok := tasks.TemplateFilesFor(task); ok {
			tt.fm = x.Fields
		}
		tt.file = filepath.Base(*f.file)
	case *f.dir != "" || *f.file != "":
		dir := *f.dir
		if dir == "" {
			dir = filepath.Dir(*f.file)
		}
		if tt.ts, tt.fm, err = tasks.TemplatesFor(task, dir); err != nil {
			return tt, err
		}
		if x, ok := tasks.TemplateFilesFor(task); ok {
			tt.file = strings.Join(x.Files, ",")
		}
	default:
		return tt, usagef("give --template FILE or --templates DIR")
	}
	if *f.prompt != "" {
		t, ok := tasks.FindTemplate(tt.ts, *f.prompt)
		if !ok {
			if strict {
				var names []string
				for _, t := range tt.ts {
					names = append(names, t.Name)
				}
				return tt, usagef("task %s has no template %q (%s)", task, *f.prompt, strings.Join(names, "; "))
			}
			return tt, nil
		}
		tt.ts = []tasks.Template{t}
		return tt, nil
	}
	if strict && !*f.all && len(tt.ts) > 1 {
		return tt, usagef("task %s has %d templates: choose one with --prompt NAME, or --all-prompts", task, len(tt.ts))
	}
	return tt, nil
}

// renderSplit loads and renders a split of a task (n > 0: a seeded sample of n).
func renderSplit(taskDir, split string, tt taskTemplates, n int, seed uint64) ([]tasks.Item, int, error) {
	ex, err := tasks.LoadTask(taskDir, split)
	if err != nil {
		return nil, 0, err
	}
	if n > 0 {
		ex = tasks.SampleExamples(ex, n, seed)
	}
	return tasks.RenderItems(ex, tt.ts, tt.fm, 0, seed)
}

// defaultEvalSplit is validation, else test.
func defaultEvalSplit(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "validation.jsonl")); err == nil {
		return "validation"
	}
	return "test"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows a progress bar on a terminal, else JSON lines.
func progressPrinter(stdout io.Writer, seed uint64, phase *string) func(train.Progress) {
	tty := isTerminal(stdout)
	enc := json.NewEncoder(stdout)
	return func(p train.Progress) {
		if tty {
			const width = 30
			done := width * p.Step / max(1, p.Total)
			bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
			fmt.Fprintf(stdout, "\r%-9s [%s] step %d/%d  loss %.4f  %.0f tok/s  ETA %s   ", *phase, bar, p.Step, p.Total,
				p.Loss, p.TokensPerSec, p.ETA.Round(time.Second))
			if p.Step == p.Total {
				fmt.Fprintln(stdout)
			}
			return
		}
		_ = enc.Encode(struct {
			Event string `json:"event"`
			Seed  uint64 `json:"seed"`
			Phase string `json:"phase"`
			train.Progress
			ETASeconds float64 `json:"eta_s"`
		}{"progress", seed, *phase, p, p.ETA.Seconds()})
	}
}

type trainRun struct {
	seed    uint64
	lora    *adapters.LoRA
	model   *model.Model // full fine-tuning: the trained model
	report  any
	steps   int
	eval    *tasks.EvalResult
	loss    float64
	reason  string
	strat   string
	phases  []train.PhaseReport
	trained int
}

func runTrain(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	lf := addLibFlags(fs)
	data := fs.String("data", "", "target task folder (train.jsonl, validation.jsonl)")
	tf := addTemplatesFlags(fs, true)
	var auxDirs stringList
	fs.Var(&auxDirs, "aux", "auxiliary task folder (repeatable)")
	strategy := fs.String("strategy", "single", "single, stilts, mtl or auto (Weller et al.: STILTs when the target set is larger)")
	weighting := fs.String("weighting", "example", "mtl loss weighting: example, task or target")
	targetWeight := fs.Float64("target-weight", 2, "mtl --weighting target: the target's example weight")
	method := fs.String("method", "lora", "lora, full or cpi")
	rc := experts.DefaultRecipe(library.KindDataset) // the recipe of the shipped experts
	rank := fs.Int("rank", rc.Rank, "LoRA rank")
	alpha := fs.Float64("alpha", 0, "lora_alpha (default 2·rank)")
	targets := fs.String("targets", strings.Join(train.AllTargets, ","), "LoRA target modules")
	epochs := fs.Float64("epochs", 0, "passes over the training data instead of --steps")
	steps := fs.Int("steps", 0, fmt.Sprintf("optimizer steps (default: the expert recipe's, %d for a prompt expert, %d otherwise)", experts.PromptSteps, experts.DatasetSteps))
	lr := fs.Float64("lr", rc.LR, "peak learning rate")
	wd := fs.Float64("weight-decay", 0, "AdamW weight decay")
	warmup := fs.Float64("warmup", rc.WarmupFrac, "warmup share of the steps (then linear decay to 0)")
	clip := fs.Float64("clip", rc.ClipNorm, "clip the gradient norm (0: off)")
	batch := fs.Int("batch", rc.BatchSize, "sequences per micro-batch")
	accum := fs.Int("grad-accum", 1, "micro-batches per optimizer step")
	maxLen := fs.Int("max-len", rc.MaxLen, "tokens per sequence (long inputs lose their beginning)")
	n := fs.Int("n", 0, "training examples drawn (0: all)")
	noEOS := fs.Bool("no-eos", rc.NoEOS, "targets without EOS (--no-eos=false adds it)")
	seed := fs.Uint64("seed", rc.Seed, "random seed (initialisation, data order, template draw)")
	seeds := fs.Int("seeds", 1, "train with this many seeds (seed, seed+1, …) and report mean, std and failed runs")
	noBC := fs.Bool("no-bias-correction", false, "AdamW without bias correction (not recommended: Mosbach et al.)")
	logEvery := fs.Int("log-every", 10, "log per-layer gradient norms every K steps")
	evalSplit := fs.String("eval-split", "", "split to evaluate on (default validation, else test)")
	evalN := fs.Int("eval-n", 0, "evaluation examples (0: all; -1: no evaluation)")
	lengthNorm := fs.Bool("length-norm", false, "evaluation: length-normalised choice scores")
	evalBase := fs.Bool("eval-base", false, "also evaluate the base model")
	out := fs.String("out", "", "write the adapter as a PEFT folder (full: a model folder)")
	name := fs.String("name", "", "with --library: the expert's name")
	desc := fs.String("description", "", "with --library: what the expert is for")
	ckpt := fs.String("checkpoint", "", "checkpoint folder (adapter, optimizer, step, data position)")
	ckptEvery := fs.Int("checkpoint-every", 0, "steps between checkpoints (0: at the end)")
	resume := fs.Bool("resume", false, "resume from --checkpoint")
	work := fs.String("work", "", "cpi: folder for per-task adapters, masks, Jaccard matrix, fused adapter (default OUT/cpi or ./cpi-NAME)")
	core := fs.Float64("core-fraction", adapters.DefaultCoreFraction, "cpi: core share p of |ΔW|")
	tau := fs.Float64("tau", 0.1, "cpi: Jaccard threshold τ for grouping tasks")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	libSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "library" {
			libSet = true
		}
	})
	switch {
	case *data == "":
		return usagef("--data DIR is required")
	case (*out == "") == (!libSet || *name == ""):
		return usagef("give --out DIR, or --library DIR --name NAME")
	case *method != "lora" && *method != "full" && *method != "cpi":
		return usagef("--method %q: want lora, full or cpi", *method)
	case *method == "full" && *out == "":
		return usagef("--method full writes a model folder: use --out (the library keeps LoRA experts)")
	case *method == "cpi" && len(auxDirs) == 0:
		return usagef("--method cpi needs at least one --aux task")
	case *seeds < 1 || *rank < 1 || *batch < 1:
		return usagef("--seeds, --rank and --batch must be ≥ 1")
	}
	if *tf.prompt != "" && *tf.all {
		return usagef("--prompt and --all-prompts exclude each other")
	}
	if *epochs < 0 || *epochs > 0 && *steps > 0 {
		return usagef("give --steps or --epochs, not both")
	}
	if *steps == 0 && *epochs == 0 {
		*steps = experts.DatasetSteps
		if *tf.prompt != "" {
			*steps = experts.PromptSteps
		}
	}
	if libSet && *name != "" {
		if err := experts.CheckName(*name, modelID(*lf.model)); err != nil {
			return err
		}
	}
	// Fail before training if the name is taken.
	if libSet {
		if _, err := os.Stat(*lf.library); err == nil {
			lib, err := openLibraryOnly(*lf.library)
			if err != nil {
				return err
			}
			_, err = lib.Manifest(*name)
			lib.Close()
			if err == nil {
				return fmt.Errorf("expert %q already exists in %s (remove it first with `roe experts rm %s`)", *name, *lf.library, *name)
			}
		}
	}

	tt, err := tf.load(*data, true)
	if err != nil {
		return err
	}
	task := filepath.Base(filepath.Clean(*data))
	items, skipped, err := renderSplit(*data, "train", tt, *n, *seed)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return fmt.Errorf("no training examples in %s (%d skipped: no target)", *data, skipped)
	}
	target := train.TaskData{Name: task, Items: items}
	var aux []train.TaskData
	for _, d := range auxDirs {
		at, err := tf.load(d, false)
		if err != nil {
			return err
		}
		ai, _, err := renderSplit(d, "train", at, *n, *seed)
		if err != nil {
			return err
		}
		aux = append(aux, train.TaskData{Name: filepath.Base(filepath.Clean(d)), Items: ai})
	}
	var evalItems []tasks.Item
	if *evalN >= 0 {
		sp := *evalSplit
		if sp == "" {
			sp = defaultEvalSplit(*data)
		}
		if evalItems, _, err = renderSplit(*data, sp, tt, *evalN, *seed); err != nil {
			return err
		}
	}

	base, tok, err := loadModel(*lf.model)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	enc := json.NewEncoder(stdout)
	logJSON := !isTerminal(stdout)
	var baseEval *tasks.EvalResult
	eo := tasks.EvalOptions{LengthNorm: *lengthNorm, MaxLen: *maxLen}
	if *evalBase && len(evalItems) > 0 {
		r, err := tasks.EvalRank(base, nil, tok, evalItems, eo)
		if err != nil {
			return err
		}
		baseEval = &r
	}

	var runs []trainRun
	var seedRuns []tasks.SeedRun
	for k := 0; k < *seeds; k++ {
		s := *seed + uint64(k)
		phase := "train"
		o := train.Options{
			Full: *method == "full", Rank: *rank, Alpha: *alpha, Targets: strings.Split(*targets, ","),
			LR: *lr, WeightDecay: *wd, WarmupFrac: *warmup, NoBiasCorrection: *noBC, ClipNorm: *clip,
			BatchSize: *batch, GradAccum: *accum, Steps: *steps, Epochs: *epochs, MaxLen: *maxLen, Seed: s, NoEOS: *noEOS,
			LogEvery: *logEvery, Resume: *resume, CheckpointEvery: *ckptEvery,
		}
		if *warmup == 0 {
			o.WarmupFrac = -1
		}
		if *ckpt != "" {
			o.CheckpointDir = *ckpt
			if *seeds > 1 {
				o.CheckpointDir = filepath.Join(*ckpt, fmt.Sprintf("seed-%d", s))
			}
		}
		o.Progress = progressPrinter(stdout, s, &phase)
		m := base
		if o.Full {
			m = base.Clone()
		}
		run := trainRun{seed: s, model: m}
		switch *method {
		case "cpi":
			phase = "cpi"
			wd := *work
			if wd == "" {
				if *out != "" {
					wd = filepath.Join(*out, "cpi")
				} else {
					wd = "cpi-" + strings.ReplaceAll(*name, "/", "_")
				}
			}
			if *seeds > 1 {
				wd = filepath.Join(wd, fmt.Sprintf("seed-%d", s))
			}
			l, rep, err := train.TrainCPI(ctx, m, tok, append([]train.TaskData{target}, aux...), o,
				train.CPIOptions{CoreFraction: *core, Tau: *tau, OutDir: wd})
			if err != nil {
				return err
			}
			run.lora, run.report, run.strat, run.reason = l, rep, "cpi", fmt.Sprintf("CPI-FT over %d tasks, groups %v (artefacts in %s)", len(rep.Tasks), rep.Groups, wd)
			run.phases = rep.Phases
		default:
			l, rep, err := train.TrainStrategy(ctx, m, tok, target, aux, o, train.StrategyOptions{
				Strategy: train.Strategy(*strategy), Weighting: train.Weighting(*weighting), TargetWeight: *targetWeight})
			if err != nil {
				return err
			}
			run.lora, run.report, run.strat, run.reason, run.phases = l, rep, string(rep.Strategy), rep.Reason, rep.Phases
		}
		for _, p := range run.phases {
			run.steps += p.Steps
			run.loss = p.FinalLoss
			run.trained += p.Sequences
		}
		if len(evalItems) > 0 {
			var a model.Adapter
			if run.lora != nil {
				a = run.lora
			}
			r, err := tasks.EvalRank(m, a, tok, evalItems, eo)
			if err != nil {
				seedRuns = append(seedRuns, tasks.SeedRun{Seed: s, Err: err.Error()})
			} else {
				run.eval = &r
				seedRuns = append(seedRuns, tasks.SeedRun{Seed: s, Result: &r})
			}
		}
		if logJSON {
			_ = enc.Encode(map[string]any{"event": "seed_done", "seed": s, "strategy": run.strat, "reason": run.reason,
				"steps": run.steps, "final_loss": run.loss, "eval": run.eval})
		} else {
			fmt.Fprintf(stdout, "seed %d: %s; %d steps, final loss %.4f", s, run.reason, run.steps, run.loss)
			if run.eval != nil {
				fmt.Fprintf(stdout, "; %s", run.eval)
			}
			fmt.Fprintln(stdout)
		}
		runs = append(runs, run)
	}

	// Keep the best run by validation accuracy (the first without evaluation).
	best := 0
	for i, r := range runs {
		if r.eval != nil && (runs[best].eval == nil || r.eval.Accuracy > runs[best].eval.Accuracy) {
			best = i
		}
	}
	br := runs[best]
	summary := tasks.Summarize(seedRuns)
	metrics := map[string]float64{"final_loss": br.loss}
	if br.eval != nil {
		metrics["accuracy"], metrics["macro_f1"] = br.eval.Accuracy, br.eval.MacroF1
		metrics["majority_accuracy"] = br.eval.Majority.Accuracy
		metrics["eval_n"] = float64(br.eval.N)
	}
	if len(seedRuns) > 1 {
		metrics["mean_accuracy"], metrics["std_accuracy"] = summary.MeanAccuracy, summary.StdAccuracy
		metrics["mean_macro_f1"], metrics["std_macro_f1"] = summary.MeanMacroF1, summary.StdMacroF1
		metrics["failed_runs"] = float64(summary.Failed)
	}
	if baseEval != nil {
		metrics["base_accuracy"], metrics["base_macro_f1"] = baseEval.Accuracy, baseEval.MacroF1
	}
	var seedList []int64
	for _, r := range runs {
		seedList = append(seedList, int64(r.seed))
	}

	dest := *out
	if *out != "" {
		if *method == "full" {
			if err := saveModelDir(br.model, *lf.model, *out); err != nil {
				return err
			}
		} else if err := br.lora.Save(*out); err != nil {
			return err
		}
		meta := map[string]any{"task": task, "data_size": len(items), "steps": br.steps, "seeds": seedList,
			"metrics": metrics, "strategy": br.strat, "reason": br.reason, "seed_report": summary}
		b, _ := json.MarshalIndent(meta, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, "training.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
	} else {
		dest = *lf.library + ":" + *name
		if err := addTrainedExpert(lf, tt, *name, *desc, task, *tf.prompt, *tf.all || len(tt.ts) > 1, *method, items, br, seedList, metrics, *seed); err != nil {
			return err
		}
	}
	res := map[string]any{"event": "done", "saved": dest, "task": task, "method": *method, "strategy": br.strat,
		"reason": br.reason, "data_size": len(items), "skipped": skipped, "steps": br.steps, "best_seed": br.seed,
		"metrics": metrics, "seeds": summary}
	if baseEval != nil {
		res["base"] = baseEval
	}
	if br.eval != nil {
		res["eval"] = br.eval
	}
	return enc.Encode(res)
}

// addTrainedExpert stores a trained adapter in the library with S sampled
// training instances, embedded by the base-model embedder.
func addTrainedExpert(lf *libFlags, tt taskTemplates, name, desc, task, prompt string, dataset bool, method string,
	items []tasks.Item, br trainRun, seeds []int64, metrics map[string]float64, seed uint64) error {
	m, emb, lib, err := lf.open()
	if err != nil {
		return err
	}
	defer lib.Close()
	cfg, tensors, err := library.ExpertFromLoRA(br.lora)
	if err != nil {
		return err
	}
	kind := library.KindPrompt
	if dataset {
		kind = library.KindDataset
	}
	if method == "cpi" {
		kind = library.KindMerged
	}
	ins := make([]library.Instance, len(items))
	for i, it := range items {
		ins[i] = library.Instance{Text: it.Input, AnswerChoices: it.AnswerChoices, Target: it.Target}
	}
	x := &library.Expert{
		Manifest: library.Manifest{Name: name, Kind: kind, Dataset: task, Template: tt.file, Description: desc,
			Training: library.Training{DataSize: len(items), Steps: br.steps, Seeds: seeds, Metrics: metrics,
				Notes: fmt.Sprintf("roe train --method %s: %s", method, br.reason)}},
		AdapterConfig: cfg, Tensors: tensors, Instances: ins,
	}
	if err := experts.Prepare(x, m, emb, *lf.format, experts.AddOptions{Seed: seed}); err != nil {
		return err
	}
	if !dataset {
		x.Prompt = prompt
		if x.Prompt == "" && len(tt.ts) == 1 {
			x.Prompt = tt.ts[0].Name
		}
	}
	if _, err := lib.Add(x); err != nil {
		if errors.Is(err, library.ErrExists) {
			return fmt.Errorf("%w (remove it first with `roe experts rm %s`)", err, name)
		}
		return err
	}
	return nil
}

// saveModelDir writes a fully fine-tuned model as a Hugging Face folder:
// model.safetensors, and config and tokenizer files copied from the source.
func saveModelDir(m *model.Model, srcDir, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var ts []safetensors.Tensor
	for _, p := range m.Params() {
		ts = append(ts, safetensors.F32Tensor(p.Name, p.Shape, p.Data))
	}
	if err := safetensors.Write(filepath.Join(out, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"} {
		var b []byte
		var err error
		if fsys, ok := embeddedModel(srcDir); ok {
			b, err = fs.ReadFile(fsys, f)
		} else {
			b, err = os.ReadFile(filepath.Join(srcDir, f))
		}
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
