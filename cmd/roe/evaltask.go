package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"roe/experts"
	"sort"

	"roe/adapters"
	"roe/model"
	"roe/retriever"
	"roe/tasks"
)

// evalTask is `roe eval` on a task: rank classification of a split with the
// base model, an adapter, a library expert, or the expert routing picks per
// example (--expert auto).
func evalTask(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	lf := addLibFlags(fs)
	adapterDir := fs.String("adapter", "", "PEFT LoRA folder (default: the base model)")
	expert := fs.String("expert", "", "library expert NAME, or auto: route each example like serve does")
	data := fs.String("data", "", "task folder")
	tf := addTemplatesFlags(fs, true)
	split := fs.String("split", "", "split (default validation, else test)")
	n := fs.Int("n", 0, "examples drawn (0: all)")
	seed := fs.Uint64("seed", 1, "sampling and template-draw seed")
	lengthNorm := fs.Bool("length-norm", false, "score choices by mean per-token log-likelihood")
	maxLen := fs.Int("max-len", tasks.DefaultMaxLen, "tokens per scored sequence (long inputs lose their beginning)")
	norm := fs.String("normalization", "", "--expert auto: center-l2, l2 or raw (default: the embedder's)")
	sigWeight := signatureWeightFlag(fs)
	typWeight := typicalWeightFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("usage: roe eval --data DIR --template FILE|--templates DIR [--prompt NAME] [--adapter DIR | --library DIR --expert NAME|auto] (or: roe eval routing ...)")
	}
	if *adapterDir != "" && *expert != "" {
		return usagef("--adapter and --expert exclude each other")
	}
	tt, err := tf.load(*data, true)
	if err != nil {
		return err
	}
	sp := *split
	if sp == "" {
		sp = defaultEvalSplit(*data)
	}
	items, _, err := renderSplit(*data, sp, tt, *n, *seed)
	if err != nil {
		return err
	}
	pr := newProgress(progressOut, "eval")
	eo := tasks.EvalOptions{LengthNorm: *lengthNorm, MaxLen: *maxLen,
		Progress: func(done, total int) { pr.report(done, total, "choices scored", nil) }}
	out := map[string]any{"task": *data, "split": sp}
	var res tasks.EvalResult
	switch {
	case *expert != "":
		m, emb, lib, err := lf.open()
		if err != nil {
			return err
		}
		defer lib.Close()
		tok, err := loadTokenizer(*lf.model)
		if err != nil {
			return err
		}
		loras := map[string]*adapters.LoRA{}
		get := func(name string) (*adapters.LoRA, error) {
			if l, ok := loras[name]; ok {
				return l, nil
			}
			x, err := lib.Get(name)
			if err != nil {
				return nil, err
			}
			l, err := x.LoRA(m.Config)
			if err != nil {
				return nil, err
			}
			loras[name] = l
			return l, nil
		}
		per := make([]model.Adapter, len(items))
		chosen := map[string]int{}
		if *expert == "auto" {
			ix, err := experts.BuildIndex(lib, emb, experts.IndexOptions{Format: *lf.format, Normalization: retriever.Normalization(*norm), SignatureWeight: *sigWeight, TypicalWeight: *typWeight})
			if err != nil {
				return err
			}
			if ix.Len() == 0 {
				return fmt.Errorf("library %s has no instances to route over", *lf.library)
			}
			texts := make([]string, len(items))
			for i, it := range items {
				texts[i] = retriever.FormatInstance(*lf.format, it.Input, it.AnswerChoices)
			}
			embs, err := emb.Embed(texts)
			if err != nil {
				return err
			}
			for i := range items {
				rt, err := ix.Route(embs[i:i+1], ix.Options(retriever.RouteOptions{TopK: 1}, texts[i:i+1]))
				if err != nil {
					return err
				}
				if rt.Fallback || len(rt.Experts) == 0 {
					chosen["(base)"]++
					continue
				}
				nm := rt.Experts[0].Name
				l, err := get(nm)
				if err != nil {
					return err
				}
				per[i] = l
				chosen[nm]++
			}
			out["routed_to"] = chosen
		} else {
			l, err := get(*expert)
			if err != nil {
				return err
			}
			for i := range per {
				per[i] = l
			}
			out["expert"] = *expert
		}
		if res, err = tasks.EvalRankEach(m, func(i int) model.Adapter { return per[i] }, tok, items, eo); err != nil {
			return err
		}
	default:
		m, tok, err := loadModel(*lf.model)
		if err != nil {
			return err
		}
		var a model.Adapter
		if *adapterDir != "" {
			l, err := adapters.Load(*adapterDir, m.Config)
			if err != nil {
				return err
			}
			a = l
			out["adapter"] = *adapterDir
		}
		if res, err = tasks.EvalRank(m, a, tok, items, eo); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(tt.ts))
	for _, t := range tt.ts {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	out["templates"] = names
	out["n"], out["skipped"] = res.N, res.Skipped
	out["accuracy"], out["macro_f1"] = res.Accuracy, res.MacroF1
	out["per_class"], out["majority_baseline"] = res.PerClass, res.Majority
	out["length_norm"] = res.LengthNorm
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
