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
	"roe/model/tokenizer"
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
			fmt.Fprintf(stdout, "\r%s steps  loss %.4f  %.0f tok/s  ETA %s   ", drawBar(*phase, p.Step, p.Total),
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

// trainFlags are the flags of `roe train`.
type trainFlags struct {
	lf     *libFlags
	tf     *templatesFlags
	libSet bool // --library was given

	data, strategy, weighting, method, targets string
	aux                                        stringList
	targetWeight, alpha, epochs                float64
	lr, wd, warmup, clip, core, tau            float64
	rank, steps, batch, accum, maxLen, n       int
	seeds, logEvery, evalN, ckptEvery          int
	seed                                       uint64
	noEOS, noBC, lengthNorm, evalBase, resume  bool
	evalSplit, out, name, desc, ckpt, work     string
}

// addTrainFlags defines the flags of `roe train` on fs. The defaults are the
// recipe of the shipped experts.
func addTrainFlags(fs *flag.FlagSet) *trainFlags {
	f := &trainFlags{lf: addLibFlags(fs)}
	fs.StringVar(&f.data, "data", "", "target task folder (train.jsonl, validation.jsonl)")
	f.tf = addTemplatesFlags(fs, true)
	fs.Var(&f.aux, "aux", "auxiliary task folder (repeatable)")
	fs.StringVar(&f.strategy, "strategy", "single", "single, stilts, mtl or auto (Weller et al.: STILTs when the target set is larger)")
	fs.StringVar(&f.weighting, "weighting", "example", "mtl loss weighting: example, task or target")
	fs.Float64Var(&f.targetWeight, "target-weight", 2, "mtl --weighting target: the target's example weight")
	fs.StringVar(&f.method, "method", "lora", "lora, full or cpi")
	rc := experts.DefaultRecipe(library.KindDataset) // the recipe of the shipped experts
	fs.IntVar(&f.rank, "rank", rc.Rank, "LoRA rank")
	fs.Float64Var(&f.alpha, "alpha", 0, "lora_alpha (default 2·rank)")
	fs.StringVar(&f.targets, "targets", strings.Join(train.AllTargets, ","), "LoRA target modules")
	fs.Float64Var(&f.epochs, "epochs", 0, "passes over the training data instead of --steps")
	fs.IntVar(&f.steps, "steps", 0, fmt.Sprintf("optimizer steps (default: the expert recipe's, %d for a prompt expert, %d otherwise)", experts.PromptSteps, experts.DatasetSteps))
	fs.Float64Var(&f.lr, "lr", rc.LR, "peak learning rate")
	fs.Float64Var(&f.wd, "weight-decay", 0, "AdamW weight decay")
	fs.Float64Var(&f.warmup, "warmup", rc.WarmupFrac, "warmup share of the steps (then linear decay to 0)")
	fs.Float64Var(&f.clip, "clip", rc.ClipNorm, "clip the gradient norm (0: off)")
	fs.IntVar(&f.batch, "batch", rc.BatchSize, "sequences per micro-batch")
	fs.IntVar(&f.accum, "grad-accum", 1, "micro-batches per optimizer step")
	fs.IntVar(&f.maxLen, "max-len", rc.MaxLen, "tokens per sequence (long inputs lose their beginning)")
	fs.IntVar(&f.n, "n", 0, "training examples drawn (0: all)")
	fs.BoolVar(&f.noEOS, "no-eos", rc.NoEOS, "targets without EOS (--no-eos=false adds it)")
	fs.Uint64Var(&f.seed, "seed", rc.Seed, "random seed (initialisation, data order, template draw)")
	fs.IntVar(&f.seeds, "seeds", 1, "train with this many seeds (seed, seed+1, …) and report mean, std and failed runs")
	fs.BoolVar(&f.noBC, "no-bias-correction", false, "AdamW without bias correction (not recommended: Mosbach et al.)")
	fs.IntVar(&f.logEvery, "log-every", 10, "log per-layer gradient norms every K steps")
	fs.StringVar(&f.evalSplit, "eval-split", "", "split to evaluate on (default validation, else test)")
	fs.IntVar(&f.evalN, "eval-n", 0, "evaluation examples (0: all; -1: no evaluation)")
	fs.BoolVar(&f.lengthNorm, "length-norm", false, "evaluation: length-normalised choice scores")
	fs.BoolVar(&f.evalBase, "eval-base", false, "also evaluate the base model")
	fs.StringVar(&f.out, "out", "", "write the adapter as a PEFT folder (full: a model folder)")
	fs.StringVar(&f.name, "name", "", "with --library: the expert's name")
	fs.StringVar(&f.desc, "description", "", "with --library: what the expert is for")
	fs.StringVar(&f.ckpt, "checkpoint", "", "checkpoint folder (adapter, optimizer, step, data position)")
	fs.IntVar(&f.ckptEvery, "checkpoint-every", 0, "steps between checkpoints (0: at the end)")
	fs.BoolVar(&f.resume, "resume", false, "resume from --checkpoint")
	fs.StringVar(&f.work, "work", "", "cpi: folder for per-task adapters, masks, Jaccard matrix, fused adapter (default OUT/cpi or ./cpi-NAME)")
	fs.Float64Var(&f.core, "core-fraction", adapters.DefaultCoreFraction, "cpi: core share p of |ΔW|")
	fs.Float64Var(&f.tau, "tau", 0.1, "cpi: Jaccard threshold τ for grouping tasks")
	return f
}

// check validates the parsed flags and sets the default --steps. With
// --library it fails before training if the expert name is not allowed or
// already taken.
func (f *trainFlags) check() error {
	switch {
	case f.data == "":
		return usagef("--data DIR is required")
	case (f.out == "") == (!f.libSet || f.name == ""):
		return usagef("give --out DIR, or --library DIR --name NAME")
	case f.method != "lora" && f.method != "full" && f.method != "cpi":
		return usagef("--method %q: want lora, full or cpi", f.method)
	case f.method == "full" && f.out == "":
		return usagef("--method full writes a model folder: use --out (the library keeps LoRA experts)")
	case f.method == "cpi" && len(f.aux) == 0:
		return usagef("--method cpi needs at least one --aux task")
	case f.seeds < 1 || f.rank < 1 || f.batch < 1:
		return usagef("--seeds, --rank and --batch must be ≥ 1")
	}
	if *f.tf.prompt != "" && *f.tf.all {
		return usagef("--prompt and --all-prompts exclude each other")
	}
	if f.epochs < 0 || f.epochs > 0 && f.steps > 0 {
		return usagef("give --steps or --epochs, not both")
	}
	if f.steps == 0 && f.epochs == 0 {
		f.steps = experts.DatasetSteps
		if *f.tf.prompt != "" {
			f.steps = experts.PromptSteps
		}
	}
	if f.libSet && f.name != "" {
		if err := experts.CheckName(f.name, modelID(*f.lf.model)); err != nil {
			return err
		}
	}
	// Fail before training if the name is taken.
	if f.libSet {
		if _, err := os.Stat(*f.lf.library); err == nil {
			lib, err := openLibraryOnly(*f.lf.library)
			if err != nil {
				return err
			}
			_, err = lib.Manifest(f.name)
			lib.Close()
			if err == nil {
				return fmt.Errorf("expert %q already exists in %s (remove it first with `roe experts rm %s`)", f.name, *f.lf.library, f.name)
			}
		}
	}
	return nil
}

// trainData is the rendered data of `roe train`.
type trainData struct {
	tt      taskTemplates // the target task's templates
	task    string        // the target task's name
	items   []tasks.Item  // the target's training items
	skipped int           // target examples without a target
	target  train.TaskData
	aux     []train.TaskData
	eval    []tasks.Item // empty with --eval-n -1
}

// loadData renders the target's training split, the auxiliary tasks'
// training splits and the target's evaluation split.
func (f *trainFlags) loadData() (*trainData, error) {
	tt, err := f.tf.load(f.data, true)
	if err != nil {
		return nil, err
	}
	d := &trainData{tt: tt, task: filepath.Base(filepath.Clean(f.data))}
	if d.items, d.skipped, err = renderSplit(f.data, "train", tt, f.n, f.seed); err != nil {
		return nil, err
	}
	if len(d.items) == 0 {
		return nil, fmt.Errorf("no training examples in %s (%d skipped: no target)", f.data, d.skipped)
	}
	d.target = train.TaskData{Name: d.task, Items: d.items}
	for _, dir := range f.aux {
		at, err := f.tf.load(dir, false)
		if err != nil {
			return nil, err
		}
		ai, _, err := renderSplit(dir, "train", at, f.n, f.seed)
		if err != nil {
			return nil, err
		}
		d.aux = append(d.aux, train.TaskData{Name: filepath.Base(filepath.Clean(dir)), Items: ai})
	}
	if f.evalN >= 0 {
		sp := f.evalSplit
		if sp == "" {
			sp = defaultEvalSplit(f.data)
		}
		if d.eval, _, err = renderSplit(f.data, sp, tt, f.evalN, f.seed); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func runTrain(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	f := addTrainFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "library" {
			f.libSet = true
		}
	})
	if err := adapters.SetDecodeDType(*loraDType); err != nil {
		return usagef("--lora-dtype: %v", err)
	}
	if d := adapters.DecodeDType(); d == adapters.DecodeBFloat16 {
		return usagef("--lora-dtype %s is for inference (lossy); training keeps float32 factors", d)
	}
	if err := f.check(); err != nil {
		return err
	}
	d, err := f.loadData()
	if err != nil {
		return err
	}

	if act, err := model.ParseActivations(*activations); err == nil && act != model.ActivationsF32 {
		return usagef("--activations %s is for inference (lossy); training runs with float32 activations", act)
	}
	base, tok, err := loadModel(*f.lf.model)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	enc := json.NewEncoder(stdout)
	logJSON := !isTerminal(stdout)
	var baseEval *tasks.EvalResult
	eo := tasks.EvalOptions{LengthNorm: f.lengthNorm, MaxLen: f.maxLen}
	if f.evalBase && len(d.eval) > 0 {
		r, err := tasks.EvalRank(base, nil, tok, d.eval, eo)
		if err != nil {
			return err
		}
		baseEval = &r
	}

	var runs []trainRun
	var seedRuns []tasks.SeedRun
	for k := 0; k < f.seeds; k++ {
		run, sr, err := f.trainSeed(ctx, base, tok, d, f.seed+uint64(k), eo, stdout)
		if err != nil {
			return err
		}
		if sr != nil {
			seedRuns = append(seedRuns, *sr)
		}
		logSeed(stdout, enc, logJSON, run)
		runs = append(runs, run)
	}

	o := keepBest(runs, seedRuns, baseEval)
	dest, err := f.save(d, o)
	if err != nil {
		return err
	}
	br := o.best
	res := map[string]any{"event": "done", "saved": dest, "task": d.task, "method": f.method, "strategy": br.strat,
		"reason": br.reason, "data_size": len(d.items), "skipped": d.skipped, "steps": br.steps, "best_seed": br.seed,
		"metrics": o.metrics, "seeds": o.summary}
	if baseEval != nil {
		res["base"] = baseEval
	}
	if br.eval != nil {
		res["eval"] = br.eval
	}
	return enc.Encode(res)
}

// options are the training options of the run with seed s.
func (f *trainFlags) options(s uint64) train.Options {
	o := train.Options{
		Full: f.method == "full", Rank: f.rank, Alpha: f.alpha, Targets: strings.Split(f.targets, ","),
		LR: f.lr, WeightDecay: f.wd, WarmupFrac: f.warmup, NoBiasCorrection: f.noBC, ClipNorm: f.clip,
		BatchSize: f.batch, GradAccum: f.accum, Steps: f.steps, Epochs: f.epochs, MaxLen: f.maxLen, Seed: s, NoEOS: f.noEOS,
		LogEvery: f.logEvery, Resume: f.resume, CheckpointEvery: f.ckptEvery,
	}
	if f.warmup == 0 {
		o.WarmupFrac = -1
	}
	if f.ckpt != "" {
		o.CheckpointDir = f.ckpt
		if f.seeds > 1 {
			o.CheckpointDir = filepath.Join(f.ckpt, fmt.Sprintf("seed-%d", s))
		}
	}
	return o
}

// cpiWorkDir is the CPI artefact folder of the run with seed s.
func (f *trainFlags) cpiWorkDir(s uint64) string {
	wd := f.work
	if wd == "" {
		if f.out != "" {
			wd = filepath.Join(f.out, "cpi")
		} else {
			wd = "cpi-" + strings.ReplaceAll(f.name, "/", "_")
		}
	}
	if f.seeds > 1 {
		wd = filepath.Join(wd, fmt.Sprintf("seed-%d", s))
	}
	return wd
}

// trainSeed trains one run with seed s (full fine-tuning: on a clone of base)
// and evaluates it on d.eval. The seed run is nil without evaluation.
func (f *trainFlags) trainSeed(ctx context.Context, base *model.Model, tok *tokenizer.Tokenizer, d *trainData, s uint64,
	eo tasks.EvalOptions, stdout io.Writer) (trainRun, *tasks.SeedRun, error) {
	phase := "train"
	o := f.options(s)
	o.Progress = progressPrinter(stdout, s, &phase)
	m := base
	if o.Full {
		m = base.Clone()
	}
	run := trainRun{seed: s, model: m}
	switch f.method {
	case "cpi":
		phase = "cpi"
		wd := f.cpiWorkDir(s)
		l, rep, err := train.TrainCPI(ctx, m, tok, append([]train.TaskData{d.target}, d.aux...), o,
			train.CPIOptions{CoreFraction: f.core, Tau: f.tau, OutDir: wd})
		if err != nil {
			return run, nil, err
		}
		run.lora, run.report, run.strat, run.reason = l, rep, "cpi", fmt.Sprintf("CPI-FT over %d tasks, groups %v (artefacts in %s)", len(rep.Tasks), rep.Groups, wd)
		run.phases = rep.Phases
	default:
		l, rep, err := train.TrainStrategy(ctx, m, tok, d.target, d.aux, o, train.StrategyOptions{
			Strategy: train.Strategy(f.strategy), Weighting: train.Weighting(f.weighting), TargetWeight: f.targetWeight})
		if err != nil {
			return run, nil, err
		}
		run.lora, run.report, run.strat, run.reason, run.phases = l, rep, string(rep.Strategy), rep.Reason, rep.Phases
	}
	for _, p := range run.phases {
		run.steps += p.Steps
		run.loss = p.FinalLoss
		run.trained += p.Sequences
	}
	if len(d.eval) == 0 {
		return run, nil, nil
	}
	var a model.Adapter
	if run.lora != nil {
		a = run.lora
	}
	r, err := tasks.EvalRank(m, a, tok, d.eval, eo)
	if err != nil {
		return run, &tasks.SeedRun{Seed: s, Err: err.Error()}, nil
	}
	run.eval = &r
	return run, &tasks.SeedRun{Seed: s, Result: &r}, nil
}

// logSeed reports a finished run: a JSON line, or a line of text on a terminal.
func logSeed(stdout io.Writer, enc *json.Encoder, logJSON bool, run trainRun) {
	if logJSON {
		_ = enc.Encode(map[string]any{"event": "seed_done", "seed": run.seed, "strategy": run.strat, "reason": run.reason,
			"steps": run.steps, "final_loss": run.loss, "eval": run.eval})
		return
	}
	fmt.Fprintf(stdout, "seed %d: %s; %d steps, final loss %.4f", run.seed, run.reason, run.steps, run.loss)
	if run.eval != nil {
		fmt.Fprintf(stdout, "; %s", run.eval)
	}
	fmt.Fprintln(stdout)
}

// trainOutcome is the run `roe train` keeps, with its metrics.
type trainOutcome struct {
	best    trainRun
	summary tasks.SeedReport
	metrics map[string]float64
	seeds   []int64 // of all runs
}

// keepBest keeps the best run by validation accuracy (the first without
// evaluation) and gathers the metrics: its own, the mean and spread over the
// seeds, and the base model's.
func keepBest(runs []trainRun, seedRuns []tasks.SeedRun, baseEval *tasks.EvalResult) trainOutcome {
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
	return trainOutcome{best: br, summary: summary, metrics: metrics, seeds: seedList}
}

// save writes the kept run to --out (an adapter or model folder with
// training.json) or adds it to the library, and returns where it went.
func (f *trainFlags) save(d *trainData, o trainOutcome) (string, error) {
	br := o.best
	if f.out == "" {
		dest := *f.lf.library + ":" + f.name
		if err := addTrainedExpert(f.lf, d.tt, f.name, f.desc, d.task, *f.tf.prompt, *f.tf.all || len(d.tt.ts) > 1, f.method, d.items, br, o.seeds, o.metrics, f.seed); err != nil {
			return dest, err
		}
		return dest, nil
	}
	if f.method == "full" {
		if err := saveModelDir(br.model, *f.lf.model, f.out); err != nil {
			return f.out, err
		}
	} else if err := br.lora.Save(f.out); err != nil {
		return f.out, err
	}
	meta := map[string]any{"task": d.task, "data_size": len(d.items), "steps": br.steps, "seeds": o.seeds,
		"metrics": o.metrics, "strategy": br.strat, "reason": br.reason, "seed_report": o.summary}
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(f.out, "training.json"), append(b, '\n'), 0o644); err != nil {
		return f.out, err
	}
	return f.out, nil
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
