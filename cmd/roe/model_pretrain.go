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

func runModelPretrain(args []string, stdout io.Writer) error {
	start := time.Now()
	fs := flag.NewFlagSet("model pretrain", flag.ContinueOnError)
	var corpus stringList
	fs.Var(&corpus, "corpus", "UTF-8 text file to train on (repeatable)")
	tokDir := fs.String("tokenizer", "", "folder with tokenizer.json (and tokenizer_config.json), copied into --out")
	out := fs.String("out", "", "output Hugging Face model folder")
	hidden := fs.Int("hidden", 128, "hidden size")
	layers := fs.Int("layers", 4, "transformer blocks")
	heads := fs.Int("heads", 4, "attention heads")
	kvHeads := fs.Int("kv-heads", 2, "key/value heads (grouped-query attention when fewer than --heads)")
	ffn := fs.Int("ffn", 352, "SwiGLU width (intermediate_size)")
	tie := fs.Bool("tie-embeddings", true, "share the embedding matrix with the LM head")
	ropeTheta := fs.Float64("rope-theta", 10000, "RoPE base")
	seqLen := fs.Int("seq-len", 256, "tokens per training window (the model's max_position_embeddings)")
	steps := fs.Int("steps", defaultPretrainSteps, "optimizer steps (with --time-budget and no --steps: as many as fit)")
	batch := fs.Int("batch", 16, "windows per optimizer step")
	lr := fs.Float64("lr", 3e-3, "peak learning rate (linear warmup, then linear decay to 0)")
	warmup := fs.Int("warmup", -1, "warmup steps (-1: 5% of the steps)")
	wd := fs.Float64("weight-decay", 0.1, "AdamW weight decay (not on norms)")
	clip := fs.Float64("clip", 1, "clip the gradient norm (0: off)")
	seed := fs.Uint64("seed", 1, "random seed (initial weights, window order)")
	dtype := fs.String("dtype", "f32", "weights in model.safetensors: f32 or bf16")
	budget := fs.Duration("time-budget", 0, "wall-clock limit for the whole command, e.g. 20m (0: none); sets the steps from a measured step time")
	valFrac := fs.Float64("val-frac", train.DefaultValFrac, "share of each file, from its end, held out for validation (0: none)")
	docs := fs.String("docs", "paragraph", "what a document (BOS … EOS) is: paragraph (blank-line separated) or file")
	noEOS := fs.Bool("no-eos", false, "do not end documents with EOS")
	decon := fs.String("decontaminate", "", "task folders (as shared/data/tasks): drop corpus lines sharing a 13-word sequence with any validation or test example")
	evalEvery := fs.Int("eval-every", 0, "validation loss on a subset every K steps (0: only at the end)")
	logEvery := fs.Int("log-every", 10, "print progress every K steps")
	ckpt := fs.String("checkpoint", "", "checkpoint folder: resumed from when it holds one (same data, seed and batch)")
	ckptEvery := fs.Int("checkpoint-every", 0, "steps between checkpoints (0: only at the end)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	stepsSet := false
	fs.Visit(func(f *flag.Flag) { stepsSet = stepsSet || f.Name == "steps" })
	format, ferr := model.ParseWeightFormat(*dtype)
	switch {
	case len(corpus) == 0 || *tokDir == "" || *out == "":
		return usagef("usage: roe model pretrain --corpus FILE [--corpus FILE ...] --tokenizer DIR --out DIR [flags]")
	case ferr != nil:
		return usagef("--dtype %q: want f32 or bf16", *dtype)
	case *hidden < 1 || *layers < 1 || *heads < 1 || *kvHeads < 1 || *ffn < 1:
		return usagef("--hidden, --layers, --heads, --kv-heads and --ffn must be ≥ 1")
	case *hidden%*heads != 0 || (*hidden / *heads)%2 != 0:
		return usagef("--hidden %d must be --heads %d times an even head size", *hidden, *heads)
	case *heads%*kvHeads != 0:
		return usagef("--heads %d must be a multiple of --kv-heads %d", *heads, *kvHeads)
	case *seqLen < 2:
		return usagef("--seq-len must be ≥ 2")
	case *steps < 1 && !(*budget > 0 && !stepsSet):
		return usagef("--steps must be ≥ 1")
	case *batch < 1:
		return usagef("--batch must be ≥ 1")
	case !(*lr > 0) || *wd < 0 || *clip < 0 || *ropeTheta <= 0:
		return usagef("--lr and --rope-theta must be > 0, --weight-decay and --clip ≥ 0")
	case *budget < 0:
		return usagef("--time-budget must be ≥ 0")
	case !(*valFrac >= 0 && *valFrac < 1):
		return usagef("--val-frac must be in [0, 1)")
	case *docs != "paragraph" && *docs != "file":
		return usagef("--docs %q: want paragraph or file", *docs)
	case *evalEvery < 0 || *logEvery < 1 || *ckptEvery < 0:
		return usagef("--eval-every and --checkpoint-every must be ≥ 0, --log-every ≥ 1")
	}
	for _, f := range corpus {
		if st, err := os.Stat(f); err != nil {
			return err
		} else if st.IsDir() {
			return usagef("--corpus %s is a folder: give text files", f)
		}
	}
	tok, err := tokenizer.Load(*tokDir)
	if err != nil {
		return err
	}
	cfg := model.Config{
		Architecture: "LlamaForCausalLM", ModelType: "llama",
		HiddenSize: *hidden, IntermediateSize: *ffn, NumLayers: *layers, NumHeads: *heads, NumKVHeads: *kvHeads,
		HeadDim: *hidden / *heads, VocabSize: tok.VocabSize(), RMSNormEps: 1e-5, RopeTheta: *ropeTheta,
		MaxPositions: *seqLen, TieWordEmbeddings: *tie,
	}
	if id, ok := tok.BOS(); ok {
		cfg.BOS = []int{id}
	}
	if id, ok := tok.EOS(); ok {
		cfg.EOS = []int{id}
	}
	// Through ParseConfig, so the model is exactly what the written config.json loads as.
	if cfg, err = model.ParseConfig(cfg.JSON(format.TorchDType())); err != nil {
		return usagef("model shape: %v", err)
	}

	logf := func(format string, a ...any) { fmt.Fprintf(pretrainLog, format+"\n", a...) }
	vf := *valFrac
	if vf == 0 {
		vf = -1 // CorpusOptions: 0 means the default
	}
	co := train.CorpusOptions{SeqLen: *seqLen, ValFrac: vf, Docs: *docs, NoEOS: *noEOS}
	if *decon != "" {
		f, err := tasks.TaskFilter(*decon)
		if err != nil {
			return fmt.Errorf("--decontaminate: %w", err)
		}
		logf("decontamination: %d distinct %d-grams from the evaluation splits under %s", f.Len(), tasks.DefaultNGram, *decon)
		co.Drop = f.Hit
	}
	c, err := train.LoadCorpus(tok, corpus, co)
	if err != nil {
		return err
	}
	for _, f := range c.Files {
		logf("corpus %s: %d bytes, %d docs, %d train + %d validation tokens, %d lines dropped", f.Name, f.Bytes, f.Docs,
			f.TrainTokens, f.ValTokens, f.DroppedLines)
	}
	logf("tokenized in %s: %d training windows of ≤ %d tokens, %d validation windows",
		time.Since(start).Round(time.Millisecond), len(c.Train), *seqLen, len(c.Val))

	m, err := model.Random(cfg, *seed)
	if err != nil {
		return err
	}
	train.InitWeights(m, *seed)
	logf("model: %d parameters (hidden %d, %d layers, %d/%d heads, ffn %d, vocab %d, tied %v)",
		m.NumParams(), *hidden, *layers, *heads, *kvHeads, *ffn, cfg.VocabSize, *tie)

	evalSet := train.Spread(c.Val, 32)
	opts := train.Options{
		Full: true, LR: *lr, WeightDecay: *wd, ClipNorm: *clip, BatchSize: *batch, Steps: *steps,
		MaxLen: *seqLen, Seed: *seed, LogEvery: 1 << 30, CheckpointDir: *ckpt, CheckpointEvery: *ckptEvery,
	}
	var deadline time.Time
	if *budget > 0 {
		// Fit the whole run, schedule included, into the budget: time a few
		// steps, then take as many as the time left allows after the final
		// validation and saving. The deadline only guards against a
		// machine that slows down later.
		perStep, err := timeStep(m, c.Train, opts, *budget/200)
		if err != nil {
			return err
		}
		tokPerSec := float64(*batch**seqLen) / perStep.Seconds()
		evalCost := func(tokens int) time.Duration { // a forward pass costs about 1/3 of a training step: assume 1/2
			return time.Duration(0.5 * float64(tokens) / tokPerSec * float64(time.Second))
		}
		reserve := evalCost(c.ValTokens) + *budget/25 // 4%: saving, and slack
		left := *budget - time.Since(start) - reserve
		per := float64(perStep)
		if *evalEvery > 0 {
			per += float64(evalCost(len(evalSet)**seqLen)) / float64(*evalEvery)
		}
		fit := int(float64(left) / per)
		if fit < 1 {
			return fmt.Errorf("--time-budget %s is too short: one step takes %s and %s are left", *budget,
				perStep.Round(time.Millisecond), left.Round(time.Second))
		}
		if !stepsSet || fit < opts.Steps {
			opts.Steps = fit
		}
		deadline = start.Add(*budget - reserve/2)
		logf("time budget %s: one step takes %s (%.0f tok/s): %d steps", *budget, perStep.Round(time.Millisecond), tokPerSec, opts.Steps)
	}
	total := opts.Steps
	w := *warmup
	if w < 0 {
		w = max(1, int(math.Round(0.05*float64(total))))
	}
	w = min(w, total)
	opts.WarmupFrac = -1 // no warmup
	if w > 0 {
		opts.WarmupFrac = (float64(w) - 0.5) / float64(total) // WarmupSteps rounds up to exactly w
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	sum := pretrainSummary{
		Command: "roe model pretrain " + shellJoin(args), Out: *out, Tokenizer: *tokDir, Files: c.Files,
		Params: m.NumParams(), Batch: *batch, SeqLen: *seqLen, Warmup: w, LR: *lr,
		TrainTokens: c.TrainTokens, ValTokens: c.ValTokens, DType: string(format), Seed: *seed,
		ValFrac: *valFrac, Docs: *docs, EOS: !*noEOS,
	}
	if *budget > 0 {
		sum.Budget = budget.String()
	}
	var tr *train.Trainer
	resumed := 0 // steps done before a resume
	opts.Progress = func(p train.Progress) {
		// Steps before a resume count as full windows.
		sum.Tokens, sum.TokensPerSec = p.Tokens+resumed**batch**seqLen, p.TokensPerSec
		if p.Step%*logEvery == 0 || p.Step == 1 || p.Step == p.Total {
			logf("step %d/%d  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s  elapsed %s  ETA %s", p.Step, p.Total, p.Loss,
				p.LR, p.GradNorm, p.TokensPerSec, p.Elapsed.Round(time.Second), p.ETA.Round(time.Second))
		}
		if *evalEvery > 0 && p.Step%*evalEvery == 0 && p.Step < p.Total && len(evalSet) > 0 {
			if l, _, err := train.EvalLoss(tr.Model, evalSet, *batch); err == nil {
				logf("step %d  validation loss %.4f  ppl %.2f  (%d windows)", p.Step, l, math.Exp(l), len(evalSet))
			}
		}
	}
	tr, err = train.NewTrainer(m, nil, c.Train, opts)
	if err != nil {
		return err
	}
	// Small-model pretraining uses β₂ 0.95 (GPT-3, Llama): steadier than 0.999
	// when the loss falls fast.
	tr.Optimizer().Beta2 = 0.95
	if *ckpt != "" {
		if _, err := os.Stat(filepath.Join(*ckpt, "trainer.json")); err == nil {
			if err := tr.LoadCheckpoint(*ckpt); err != nil {
				return err
			}
			resumed = tr.Step()
			sum.Tokens = resumed * *batch * *seqLen
			logf("resumed from %s at step %d of %d", *ckpt, tr.Step(), tr.TotalSteps())
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
		logf("stopped at step %d of %d (%s): saving the model as it is", tr.Step(), tr.TotalSteps(), sum.Stopped)
	}
	stop() // a second Ctrl-C ends the command
	sum.TrainSeconds = time.Since(trainStart).Seconds()
	sum.Steps = tr.Step()
	sum.Epochs = float64(sum.Steps**batch) / float64(len(c.Train))
	if n := len(tr.Losses); n > 0 {
		sum.FirstLoss = tr.Losses[0]
		k := min(10, n)
		for _, l := range tr.Losses[n-k:] {
			sum.TrainLoss += l / float64(k)
		}
	}
	if len(c.Val) > 0 {
		l, _, err := train.EvalLoss(m, c.Val, *batch)
		if err != nil {
			return err
		}
		ppl := math.Exp(l)
		sum.ValLoss, sum.ValPPL = &l, &ppl
		logf("validation loss %.4f  ppl %.2f  (%d tokens)", l, ppl, c.ValTokens)
	}

	if err := m.Save(*out, format); err != nil {
		return err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(*tokDir, f))
		if errors.Is(err, os.ErrNotExist) && f != "tokenizer.json" {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(*out, f), b); err != nil {
			return err
		}
	}
	sum.Config = json.RawMessage(m.Config.JSON(format.TorchDType()))
	sum.Seconds = time.Since(start).Seconds()
	if err := atomicfile.WriteFile(filepath.Join(*out, "README.md"), []byte(pretrainReadme(sum))); err != nil {
		return err
	}
	logf("wrote %s in %s", *out, time.Since(start).Round(time.Second))
	enc := json.NewEncoder(stdout)
	return enc.Encode(sum)
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
