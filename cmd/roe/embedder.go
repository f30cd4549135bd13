package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"roe/experts"
	"roe/models"
	"roe/retriever"
)

// runEmbedder: roe embedder train — the routing encoder.
func runEmbedder(args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "train" {
		return usagef("usage: roe embedder train --data DIR --templates DIR [--corpus FILE...] [--hold-out a,b] --out DIR [flags]")
	}
	fs := flag.NewFlagSet("embedder train", flag.ContinueOnError)
	data := fs.String("data", "", "task folders (train splits are read)")
	templates := fs.String("templates", "", "promptsource templates folder")
	var corpus stringList
	fs.Var(&corpus, "corpus", "background text file (repeatable)")
	requests := fs.String("requests", "", `general requests no task is for, as background keys beside the corpus: JSON Lines of {"prompt"} ("default": the embedded models/background)`)
	requestShare := fs.Float64("request-share", 0.3, "with --requests: their share of the background keys")
	holdOut := fs.String("hold-out", "", "tasks left out of training, comma-separated (their experts are added later)")
	out := fs.String("out", "", "encoder folder to write")
	def := retriever.DefaultEncoderConfig()
	name := fs.String("name", def.Name, "encoder name (part of the embedder id)")
	buckets := fs.Int("buckets", def.Buckets, "hashed feature rows")
	dim := fs.Int("dim", def.Dim, "vector length")
	steps := fs.Int("steps", 3000, "optimizer steps")
	batch := fs.Int("batch", 64, "pairs a step")
	lr := fs.Float64("lr", 0.01, "Adam learning rate")
	temp := fs.Float64("temperature", 0.05, "InfoNCE temperature")
	perTask := fs.Int("per-task", 2000, "training examples read per task")
	swapShare := fs.Float64("swap-share", 0, "share of training queries whose content is swapped for another task's, so the instruction must tell the task")
	rawShare := fs.Float64("raw-share", 0.2, "share of training queries written as the bare fields, without instruction")
	userShare := fs.Float64("user-share", 0, "share of the other training queries written from the fields (bare or labelled with their names) and a template's answer choices asked as a question, with no template's instruction")
	seed := fs.Uint64("seed", 1, "random seed")
	lexical := fs.Float64("lexical", 0.5, "weight of the lexical half (a random projection of the bag of features) appended to each vector; 0: none")
	projLR := fs.Float64("proj-lr", 0.1, "the projection's learning rate, relative to --lr (negative: frozen at the identity)")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *data == "" || *templates == "" || *out == "" {
		return usagef("--data, --templates and --out are required")
	}
	var held []string
	for _, t := range strings.Split(*holdOut, ",") {
		if t = strings.TrimSpace(t); t != "" {
			held = append(held, t)
		}
	}
	if *requestShare <= 0 || *requestShare >= 1 {
		return usagef("--request-share %g: want a share in (0, 1)", *requestShare)
	}
	var reqs []string
	if *requests != "" {
		spec := *requests
		if spec == "default" {
			spec = ""
		}
		var err error
		if reqs, err = experts.LoadBackground(spec, models.Background()); err != nil {
			return fmt.Errorf("--requests: %w", err)
		}
	}
	t0 := time.Now()
	d, err := experts.LoadRouterData(experts.RouterDataOptions{DataDir: *data, TemplatesDir: *templates, HoldOut: held,
		Corpus: corpus, Requests: reqs, RequestShare: *requestShare, PerTask: *perTask, RawShare: *rawShare,
		SwapShare: *swapShare, UserShare: *userShare, Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tasks %v (held out %v), %d background keys (corpus paragraphs and, of %d general requests, those of 8 to 120 words, repeated), read in %.1f s\n", d.Tasks, held, len(d.Background()), len(reqs), time.Since(t0).Seconds())
	cfg := def
	cfg.Name, cfg.Buckets, cfg.Dim, cfg.Seed, cfg.Lexical = *name, *buckets, *dim, *seed, *lexical
	enc, err := retriever.NewEncoder(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// A bar on a terminal, else a JSON line every 100 steps.
	pr := newProgress(stdout, "embedder")
	pr.every = 0
	err = retriever.TrainEncoder(ctx, enc, d.Sample, retriever.EncoderTrainOptions{Steps: *steps, Batch: *batch, LR: *lr,
		Temperature: *temp, Seed: *seed, Background: d.Background(), ProjLR: *projLR,
		Progress: func(step int, loss float64) {
			pr.report(step, *steps, fmt.Sprintf("loss %.4f", loss), map[string]any{"loss": loss})
		}})
	pr.end()
	if err != nil {
		return err
	}
	if err := enc.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s) in %.0f s\n", *out, enc.ID(), time.Since(t0).Seconds())
	return nil
}
