package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"roe/internal/atomicfile"
	"roe/model"
	"roe/model/tokenizer"
	"roe/tasks"
	"roe/train"
)

// pretrainLog receives pretraining progress (tests replace it).
var pretrainLog io.Writer = os.Stderr

// defaultPretrainSteps is about 20 minutes of the default config on 2 idle
// cores (~0.5 s a step): ~9.8M tokens, ~3 passes over the 3.4M-token corpus.
const defaultPretrainSteps = 2400

// pretrainSummary is what `roe model pretrain` prints and puts in README.md.
type pretrainSummary struct {
	Command      string             `json:"command"`
	Out          string             `json:"out"`
	Tokenizer    string             `json:"tokenizer"`
	Files        []train.CorpusFile `json:"files"`
	Params       int                `json:"params"`
	Config       json.RawMessage    `json:"config"`
	Steps        int                `json:"steps"` // done
	PlannedSteps int                `json:"planned_steps"`
	Batch        int                `json:"batch"`
	SeqLen       int                `json:"seq_len"`
	Warmup       int                `json:"warmup_steps"`
	LR           float64            `json:"lr"`
	Tokens       int                `json:"tokens_seen"`
	TrainTokens  int                `json:"train_tokens"` // the training stream
	ValTokens    int                `json:"val_tokens"`
	Epochs       float64            `json:"epochs"`
	TrainLoss    float64            `json:"train_loss"` // mean of the last (up to) 10 steps
	FirstLoss    float64            `json:"first_loss"`
	ValLoss      *float64           `json:"val_loss,omitempty"`
	ValPPL       *float64           `json:"val_ppl,omitempty"`
	Seconds      float64            `json:"seconds"`       // the whole command
	TrainSeconds float64            `json:"train_seconds"` // optimizer steps only
	TokensPerSec float64            `json:"tokens_per_sec"`
	Stopped      string             `json:"stopped,omitempty"` // why training ended before PlannedSteps
	Budget       string             `json:"time_budget,omitempty"`
	ValFrac      float64            `json:"val_frac"`
	Docs         string             `json:"docs"`
	EOS          bool               `json:"eos"`
	DType        string             `json:"dtype"`
	Seed         uint64             `json:"seed"`
}

// pretrainFlags are the flags of `roe model pretrain`.
type pretrainFlags struct {
	corpus                                stringList
	tokDir, out, dtype, docs, decon, ckpt string
	hidden, layers, heads, kvHeads, ffn   int
	seqLen, steps, batch, warmup          int
	evalEvery, logEvery, ckptEvery        int
	tie, noEOS                            bool
	ropeTheta, lr, wd, clip, valFrac      float64
	seed                                  uint64
	budget                                time.Duration
	stepsSet                              bool               // --steps was given
	format                                model.WeightFormat // --dtype, set by check
}

// addPretrainFlags defines the flags of `roe model pretrain` on fs.
func addPretrainFlags(fs *flag.FlagSet) *pretrainFlags {
	f := &pretrainFlags{}
	fs.Var(&f.corpus, "corpus", "UTF-8 text file to train on (repeatable)")
	fs.StringVar(&f.tokDir, "tokenizer", "", "folder with tokenizer.json (and tokenizer_config.json), copied into --out")
	fs.StringVar(&f.out, "out", "", "output Hugging Face model folder")
	fs.IntVar(&f.hidden, "hidden", 128, "hidden size")
	fs.IntVar(&f.layers, "layers", 4, "transformer blocks")
	fs.IntVar(&f.heads, "heads", 4, "attention heads")
	fs.IntVar(&f.kvHeads, "kv-heads", 2, "key/value heads (grouped-query attention when fewer than --heads)")
	fs.IntVar(&f.ffn, "ffn", 352, "SwiGLU width (intermediate_size)")
	fs.BoolVar(&f.tie, "tie-embeddings", true, "share the embedding matrix with the LM head")
	fs.Float64Var(&f.ropeTheta, "rope-theta", 10000, "RoPE base")
	fs.IntVar(&f.seqLen, "seq-len", 256, "tokens per training window (the model's max_position_embeddings)")
	fs.IntVar(&f.steps, "steps", defaultPretrainSteps, "optimizer steps (with --time-budget and no --steps: as many as fit)")
	fs.IntVar(&f.batch, "batch", 16, "windows per optimizer step")
	fs.Float64Var(&f.lr, "lr", 3e-3, "peak learning rate (linear warmup, then linear decay to 0)")
	fs.IntVar(&f.warmup, "warmup", -1, "warmup steps (-1: 5% of the steps)")
	fs.Float64Var(&f.wd, "weight-decay", 0.1, "AdamW weight decay (not on norms)")
	fs.Float64Var(&f.clip, "clip", 1, "clip the gradient norm (0: off)")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed (initial weights, window order)")
	fs.StringVar(&f.dtype, "dtype", "f32", "weights in model.safetensors: f32 or bf16")
	fs.DurationVar(&f.budget, "time-budget", 0, "wall-clock limit for the whole command, e.g. 20m (0: none); sets the steps from a measured step time")
	fs.Float64Var(&f.valFrac, "val-frac", train.DefaultValFrac, "share of each file, from its end, held out for validation (0: none)")
	fs.StringVar(&f.docs, "docs", "paragraph", "what a document (BOS … EOS) is: paragraph (blank-line separated) or file")
	fs.BoolVar(&f.noEOS, "no-eos", false, "do not end documents with EOS")
	fs.StringVar(&f.decon, "decontaminate", "", "task folders (as shared/data/tasks): drop corpus lines sharing a 13-word sequence with any validation or test example")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "validation loss on a subset every K steps (0: only at the end)")
	fs.IntVar(&f.logEvery, "log-every", 10, "print progress every K steps")
	fs.StringVar(&f.ckpt, "checkpoint", "", "checkpoint folder: resumed from when it holds one (same data, seed and batch)")
	fs.IntVar(&f.ckptEvery, "checkpoint-every", 0, "steps between checkpoints (0: only at the end)")
	return f
}

// check validates the parsed flags, sets f.format from --dtype, and checks
// that the corpus files exist.
func (f *pretrainFlags) check() error {
	format, ferr := model.ParseWeightFormat(f.dtype)
	f.format = format
	switch {
	case len(f.corpus) == 0 || f.tokDir == "" || f.out == "":
		return usagef("usage: roe model pretrain --corpus FILE [--corpus FILE ...] --tokenizer DIR --out DIR [flags]")
	case ferr != nil:
		return usagef("--dtype %q: want f32 or bf16", f.dtype)
	case f.hidden < 1 || f.layers < 1 || f.heads < 1 || f.kvHeads < 1 || f.ffn < 1:
		return usagef("--hidden, --layers, --heads, --kv-heads and --ffn must be ≥ 1")
	case f.hidden%f.heads != 0 || (f.hidden/f.heads)%2 != 0:
		return usagef("--hidden %d must be --heads %d times an even head size", f.hidden, f.heads)
	case f.heads%f.kvHeads != 0:
		return usagef("--heads %d must be a multiple of --kv-heads %d", f.heads, f.kvHeads)
	case f.seqLen < 2:
		return usagef("--seq-len must be ≥ 2")
	case f.steps < 1 && !(f.budget > 0 && !f.stepsSet):
		return usagef("--steps must be ≥ 1")
	case f.batch < 1:
		return usagef("--batch must be ≥ 1")
	case !(f.lr > 0) || f.wd < 0 || f.clip < 0 || f.ropeTheta <= 0:
		return usagef("--lr and --rope-theta must be > 0, --weight-decay and --clip ≥ 0")
	case f.budget < 0:
		return usagef("--time-budget must be ≥ 0")
	case !(f.valFrac >= 0 && f.valFrac < 1):
		return usagef("--val-frac must be in [0, 1)")
	case f.docs != "paragraph" && f.docs != "file":
		return usagef("--docs %q: want paragraph or file", f.docs)
	case f.evalEvery < 0 || f.logEvery < 1 || f.ckptEvery < 0:
		return usagef("--eval-every and --checkpoint-every must be ≥ 0, --log-every ≥ 1")
	}
	for _, c := range f.corpus {
		if st, err := os.Stat(c); err != nil {
			return err
		} else if st.IsDir() {
			return usagef("--corpus %s is a folder: give text files", c)
		}
	}
	return nil
}

// pretrainLogf prints a line of pretraining progress to pretrainLog.
func pretrainLogf(format string, a ...any) { fmt.Fprintf(pretrainLog, format+"\n", a...) }

func runModelPretrain(args []string, stdout io.Writer) error {
	start := time.Now()
	fs := flag.NewFlagSet("model pretrain", flag.ContinueOnError)
	f := addPretrainFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) { f.stepsSet = f.stepsSet || fl.Name == "steps" })
	if err := f.check(); err != nil {
		return err
	}
	tok, err := tokenizer.Load(f.tokDir)
	if err != nil {
		return err
	}
	cfg, err := f.modelConfig(tok)
	if err != nil {
		return err
	}
	c, err := f.loadCorpus(tok, start)
	if err != nil {
		return err
	}
	m, err := model.Random(cfg, f.seed)
	if err != nil {
		return err
	}
	train.InitWeights(m, f.seed)
	pretrainLogf("model: %d parameters (hidden %d, %d layers, %d/%d heads, ffn %d, vocab %d, tied %v)",
		m.NumParams(), f.hidden, f.layers, f.heads, f.kvHeads, f.ffn, cfg.VocabSize, f.tie)

	evalSet := train.Spread(c.Val, 32)
	opts := train.Options{
		Full: true, LR: f.lr, WeightDecay: f.wd, ClipNorm: f.clip, BatchSize: f.batch, Steps: f.steps,
		MaxLen: f.seqLen, Seed: f.seed, LogEvery: 1 << 30, CheckpointDir: f.ckpt, CheckpointEvery: f.ckptEvery,
	}
	var deadline time.Time
	if f.budget > 0 {
		if deadline, err = f.fitBudget(m, c, len(evalSet), &opts, start); err != nil {
			return err
		}
	}
	w := setWarmup(&opts, f.warmup)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	sum := pretrainSummary{
		Command: "roe model pretrain " + shellJoin(args), Out: f.out, Tokenizer: f.tokDir, Files: c.Files,
		Params: m.NumParams(), Batch: f.batch, SeqLen: f.seqLen, Warmup: w, LR: f.lr,
		TrainTokens: c.TrainTokens, ValTokens: c.ValTokens, DType: string(f.format), Seed: f.seed,
		ValFrac: f.valFrac, Docs: f.docs, EOS: !f.noEOS,
	}
	if f.budget > 0 {
		sum.Budget = f.budget.String()
	}
	if err := f.pretrain(ctx, m, c, evalSet, opts, &sum); err != nil {
		return err
	}
	stop() // a second Ctrl-C ends the command
	if len(c.Val) > 0 {
		l, _, err := train.EvalLoss(m, c.Val, f.batch)
		if err != nil {
			return err
		}
		ppl := math.Exp(l)
		sum.ValLoss, sum.ValPPL = &l, &ppl
		pretrainLogf("validation loss %.4f  ppl %.2f  (%d tokens)", l, ppl, c.ValTokens)
	}
	if err := f.save(m, &sum, start); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(sum)
}

// modelConfig is the Llama config of the flags' shape with tok's vocabulary
// and special tokens.
func (f *pretrainFlags) modelConfig(tok *tokenizer.Tokenizer) (model.Config, error) {
	cfg := model.Config{
		Architecture: "LlamaForCausalLM", ModelType: "llama",
		HiddenSize: f.hidden, IntermediateSize: f.ffn, NumLayers: f.layers, NumHeads: f.heads, NumKVHeads: f.kvHeads,
		HeadDim: f.hidden / f.heads, VocabSize: tok.VocabSize(), RMSNormEps: 1e-5, RopeTheta: f.ropeTheta,
		MaxPositions: f.seqLen, TieWordEmbeddings: f.tie,
	}
	if id, ok := tok.BOS(); ok {
		cfg.BOS = []int{id}
	}
	if id, ok := tok.EOS(); ok {
		cfg.EOS = []int{id}
	}
	// Through ParseConfig, so the model is exactly what the written config.json loads as.
	cfg, err := model.ParseConfig(cfg.JSON(f.format.TorchDType()))
	if err != nil {
		return cfg, usagef("model shape: %v", err)
	}
	return cfg, nil
}

// loadCorpus tokenizes the corpus files into training and validation
// windows, decontaminated with --decontaminate.
func (f *pretrainFlags) loadCorpus(tok *tokenizer.Tokenizer, start time.Time) (*train.Corpus, error) {
	vf := f.valFrac
	if vf == 0 {
		vf = -1 // CorpusOptions: 0 means the default
	}
	co := train.CorpusOptions{SeqLen: f.seqLen, ValFrac: vf, Docs: f.docs, NoEOS: f.noEOS}
	if f.decon != "" {
		flt, err := tasks.TaskFilter(f.decon)
		if err != nil {
			return nil, fmt.Errorf("--decontaminate: %w", err)
		}
		pretrainLogf("decontamination: %d distinct %d-grams from the evaluation splits under %s", flt.Len(), tasks.DefaultNGram, f.decon)
		co.Drop = flt.Hit
	}
	c, err := train.LoadCorpus(tok, f.corpus, co)
	if err != nil {
		return nil, err
	}
	for _, cf := range c.Files {
		pretrainLogf("corpus %s: %d bytes, %d docs, %d train + %d validation tokens, %d lines dropped", cf.Name, cf.Bytes, cf.Docs,
			cf.TrainTokens, cf.ValTokens, cf.DroppedLines)
	}
	pretrainLogf("tokenized in %s: %d training windows of ≤ %d tokens, %d validation windows",
		time.Since(start).Round(time.Millisecond), len(c.Train), f.seqLen, len(c.Val))
	return c, nil
}

// fitBudget fits the whole run, schedule included, into --time-budget: it
// times a few steps, then sets opts.Steps to as many as the time left allows
// after the final validation and saving (at most --steps when given). The
// deadline it returns only guards against a machine that slows down later.
func (f *pretrainFlags) fitBudget(m *model.Model, c *train.Corpus, evalWindows int, opts *train.Options, start time.Time) (time.Time, error) {
	perStep, err := timeStep(m, c.Train, *opts, f.budget/200)
	if err != nil {
		return time.Time{}, err
	}
	tokPerSec := float64(f.batch*f.seqLen) / perStep.Seconds()
	evalCost := func(tokens int) time.Duration { // a forward pass costs about 1/3 of a training step: assume 1/2
		return time.Duration(0.5 * float64(tokens) / tokPerSec * float64(time.Second))
	}
	reserve := evalCost(c.ValTokens) + f.budget/25 // 4%: saving, and slack
	left := f.budget - time.Since(start) - reserve
	per := float64(perStep)
	if f.evalEvery > 0 {
		per += float64(evalCost(evalWindows*f.seqLen)) / float64(f.evalEvery)
	}
	fit := int(float64(left) / per)
	if fit < 1 {
		return time.Time{}, fmt.Errorf("--time-budget %s is too short: one step takes %s and %s are left", f.budget,
			perStep.Round(time.Millisecond), left.Round(time.Second))
	}
	if !f.stepsSet || fit < opts.Steps {
		opts.Steps = fit
	}
	pretrainLogf("time budget %s: one step takes %s (%.0f tok/s): %d steps", f.budget, perStep.Round(time.Millisecond), tokPerSec, opts.Steps)
	return start.Add(f.budget - reserve/2), nil
}

// setWarmup sets opts.WarmupFrac for warmup steps (-1: 5% of the steps) and
// returns the warmup steps.
func setWarmup(opts *train.Options, warmup int) int {
	total := opts.Steps
	w := warmup
	if w < 0 {
		w = max(1, int(math.Round(0.05*float64(total))))
	}
	w = min(w, total)
	opts.WarmupFrac = -1 // no warmup
	if w > 0 {
		opts.WarmupFrac = (float64(w) - 0.5) / float64(total) // WarmupSteps rounds up to exactly w
	}
	return w
}

// pretrain trains m on the corpus, resuming from --checkpoint when it holds
// one, and records the run in sum. Stopped by the time budget or an
// interrupt, it keeps the model as it is.
func (f *pretrainFlags) pretrain(ctx context.Context, m *model.Model, c *train.Corpus, evalSet []train.Sequence,
	opts train.Options, sum *pretrainSummary) error {
	var tr *train.Trainer
	resumed := 0 // steps done before a resume
	// roe train's progress: a bar on a terminal, else JSON lines (every
	// --log-every steps).
	phase := "pretrain"
	show := progressPrinter(pretrainLog, f.seed, &phase)
	tty := isTerminal(pretrainLog)
	barOpen := false
	opts.Progress = func(p train.Progress) {
		// Steps before a resume count as full windows.
		sum.Tokens, sum.TokensPerSec = p.Tokens+resumed*f.batch*f.seqLen, p.TokensPerSec
		if tty || p.Step%f.logEvery == 0 || p.Step == 1 || p.Step == p.Total {
			show(p)
			barOpen = tty && p.Step < p.Total
		}
		if f.evalEvery > 0 && p.Step%f.evalEvery == 0 && p.Step < p.Total && len(evalSet) > 0 {
			if l, _, err := train.EvalLoss(tr.Model, evalSet, f.batch); err == nil {
				if barOpen {
					fmt.Fprintln(pretrainLog)
				}
				pretrainLogf("step %d  validation loss %.4f  ppl %.2f  (%d windows)", p.Step, l, math.Exp(l), len(evalSet))
			}
		}
	}
	tr, err := train.NewTrainer(m, nil, c.Train, opts)
	if err != nil {
		return err
	}
	// Small-model pretraining uses β₂ 0.95 (GPT-3, Llama): steadier than 0.999
	// when the loss falls fast.
	tr.Optimizer().Beta2 = 0.95
	if f.ckpt != "" {
		if _, err := os.Stat(filepath.Join(f.ckpt, "trainer.json")); err == nil {
			if err := tr.LoadCheckpoint(f.ckpt); err != nil {
				return err
			}
			resumed = tr.Step()
			sum.Tokens = resumed * f.batch * f.seqLen
			pretrainLogf("resumed from %s at step %d of %d", f.ckpt, tr.Step(), tr.TotalSteps())
		}
	}
	sum.PlannedSteps = tr.TotalSteps()
	trainStart := time.Now()
	if _, err := tr.Run(ctx); err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			sum.Stopped = "time budget"
		case errors.Is(err, context.Canceled):
			sum.Stopped = "interrupted"
		default:
			return err
		}
		if barOpen {
			fmt.Fprintln(pretrainLog) // the bar of a run stopped before its last step
		}
		pretrainLogf("stopped at step %d of %d (%s): saving the model as it is", tr.Step(), tr.TotalSteps(), sum.Stopped)
	}
	sum.TrainSeconds = time.Since(trainStart).Seconds()
	sum.Steps = tr.Step()
	sum.Epochs = float64(sum.Steps*f.batch) / float64(len(c.Train))
	if n := len(tr.Losses); n > 0 {
		sum.FirstLoss = tr.Losses[0]
		k := min(10, n)
		for _, l := range tr.Losses[n-k:] {
			sum.TrainLoss += l / float64(k)
		}
	}
	return nil
}

// save writes the model folder: the weights, the tokenizer files copied from
// --tokenizer, and a README.md from sum.
func (f *pretrainFlags) save(m *model.Model, sum *pretrainSummary, start time.Time) error {
	if err := m.Save(f.out, f.format); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(f.tokDir, name))
		if errors.Is(err, os.ErrNotExist) && name != "tokenizer.json" {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(f.out, name), b); err != nil {
			return err
		}
	}
	sum.Config = json.RawMessage(m.Config.JSON(f.format.TorchDType()))
	sum.Seconds = time.Since(start).Seconds()
	if err := atomicfile.WriteFile(filepath.Join(f.out, "README.md"), []byte(pretrainReadme(*sum))); err != nil {
		return err
	}
	pretrainLogf("wrote %s in %s", f.out, time.Since(start).Round(time.Second))
	return nil
}

// timeStep measures optimizer steps of a throwaway copy of the model on the
// real data: steps 2 to at most 20, stopping after span, the first step left
// out (it also grows the heap). That is what one step of the run will cost.
func timeStep(m *model.Model, seqs []train.Sequence, o train.Options, span time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var marks []time.Time
	o.Steps, o.StopAfter, o.CheckpointDir = 1000, 20, ""
	o.Progress = func(train.Progress) {
		marks = append(marks, time.Now())
		if len(marks) >= 4 && marks[len(marks)-1].Sub(marks[0]) >= span {
			cancel()
		}
	}
	tr, err := train.NewTrainer(m.Clone(), nil, seqs, o)
	if err != nil {
		return 0, err
	}
	if _, err := tr.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return 0, err
	}
	n := len(marks)
	return marks[n-1].Sub(marks[0]) / time.Duration(n-1), nil
}

// shellJoin quotes args for a POSIX shell where needed.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

func pretrainReadme(s pretrainSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", filepath.Base(filepath.Clean(s.Out)))
	fmt.Fprintf(&b, "A Llama-architecture base model (%d parameters) pretrained from scratch by roe's own full-parameter trainer.\n\n", s.Params)
	fmt.Fprintf(&b, "Made with:\n\n```\n%s\n```\n\n", s.Command)
	doc, end := "paragraph (lines between blank lines)", " + EOS"
	if s.Docs == "file" {
		doc = "file"
	}
	if !s.EOS {
		end = ""
	}
	fmt.Fprintf(&b, "## Data\n\nTokenizer: `%s` (copied here). The last %g%% of each file (from a line start) is held out for validation. "+
		"Each %s is a document, encoded as BOS + text%s; documents are concatenated and cut into windows of %d tokens "+
		"(overlapping by one), with the loss on every position.\n\n", s.Tokenizer, 100*s.ValFrac, doc, end, s.SeqLen)
	b.WriteString("Lines sharing a 13-word sequence with a task's validation or test example (`--decontaminate`) are dropped first.\n\n")
	b.WriteString("| file | bytes | docs | train tokens | validation tokens | lines dropped |\n|---|---:|---:|---:|---:|---:|\n")
	for _, f := range s.Files {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", f.Name, f.Bytes, f.Docs, f.TrainTokens, f.ValTokens, f.DroppedLines)
	}
	fmt.Fprintf(&b, "\n## Training\n\n")
	fmt.Fprintf(&b, "- steps: %d of %d planned", s.Steps, s.PlannedSteps)
	if s.Stopped != "" {
		fmt.Fprintf(&b, " (stopped early: %s)", s.Stopped)
	}
	if s.Budget != "" {
		fmt.Fprintf(&b, "; steps fitted to a time budget of %s", s.Budget)
	}
	fmt.Fprintf(&b, "\n- batch: %d windows × %d tokens; tokens seen: %d (%.2f epochs of %d training tokens)\n", s.Batch, s.SeqLen, s.Tokens, s.Epochs, s.TrainTokens)
	fmt.Fprintf(&b, "- AdamW (β 0.9/0.95), peak learning rate %g, linear warmup over %d steps, then linear decay to 0; seed %d\n", s.LR, s.Warmup, s.Seed)
	fmt.Fprintf(&b, "- time: %.0f s training (%.0f tokens/s), %.0f s in all\n", s.TrainSeconds, s.TokensPerSec, s.Seconds)
	fmt.Fprintf(&b, "- train loss: %.4f at the first step, %.4f at the end (mean of the last 10 steps)\n", s.FirstLoss, s.TrainLoss)
	if s.ValLoss != nil {
		fmt.Fprintf(&b, "- validation loss: %.4f (perplexity %.2f) over %d held-out tokens\n", *s.ValLoss, *s.ValPPL, s.ValTokens)
	}
	fmt.Fprintf(&b, "- weights: %s\n\n## config.json\n\n```json\n%s```\n", s.DType, s.Config)
	return b.String()
}
