package tasks

import (
	"fmt"
	"math"
	"sort"

	"roe/kernels"
	"roe/model"
)

// EvalOptions configure rank classification.
type EvalOptions struct {
	// LengthNorm scores a choice by its mean per-token log-likelihood
	// instead of the sum.
	LengthNorm bool
	// MaxLen cuts prompts from the left as training does (default DefaultMaxLen).
	MaxLen int
	// MaxRows bounds the logits of one batched forward (rows·vocab floats);
	// default 1<<26 (256 MiB).
	MaxRows int
	// Progress, when set, is told after each batched forward how many of
	// the (item, answer choice) sequences are scored.
	Progress func(done, total int)
}

// ClassCounts are one class's numbers.
type ClassCounts struct {
	Support   int     `json:"support"`   // gold examples of the class
	Predicted int     `json:"predicted"` // examples predicted as the class
	Correct   int     `json:"correct"`
	F1        float64 `json:"f1"`
}

// Baseline is the majority-class predictor's score.
type Baseline struct {
	Class    string  `json:"class"`
	Accuracy float64 `json:"accuracy"`
	MacroF1  float64 `json:"macro_f1"`
}

// EvalResult is a rank-classification score.
type EvalResult struct {
	N          int                    `json:"n"`
	Skipped    int                    `json:"skipped"` // no answer choices, or target not among them
	Accuracy   float64                `json:"accuracy"`
	MacroF1    float64                `json:"macro_f1"`
	PerClass   map[string]ClassCounts `json:"per_class"`
	Majority   Baseline               `json:"majority_baseline"`
	LengthNorm bool                   `json:"length_norm"`
}

type scoreReq struct {
	item, choice int
	ctx, cont    []int
	adapter      model.Adapter
}

// EvalRank scores each item by rank classification: the log-likelihood of
// each answer choice (" " + choice, tokenized as SplitTokens does) given the
// rendered input, under the model with adapter a (nil: the base model); the
// prediction is the best choice. Items without choices, or whose target is
// not one of them, are skipped.
func EvalRank(m *model.Model, a model.Adapter, tok Tokenizer, items []Item, o EvalOptions) (EvalResult, error) {
	return EvalRankEach(m, func(int) model.Adapter { return a }, tok, items, o)
}

// EvalRankEach is EvalRank with an adapter per item (adapterFor(i) for
// items[i], nil for the base model): for routed evaluation.
func EvalRankEach(m *model.Model, adapterFor func(i int) model.Adapter, tok Tokenizer, items []Item, o EvalOptions) (EvalResult, error) {
	if o.MaxLen <= 0 {
		o.MaxLen = DefaultMaxLen
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 1 << 26
	}
	res := EvalResult{LengthNorm: o.LengthNorm, PerClass: map[string]ClassCounts{}}
	var reqs []scoreReq
	gold := map[int]int{}
	var kept []int
	for i, it := range items {
		g := -1
		for c, ch := range it.AnswerChoices {
			if ch == it.Target {
				g = c
				break
			}
		}
		if g < 0 {
			res.Skipped++
			continue
		}
		ok := true
		var rs []scoreReq
		for c, ch := range it.AnswerChoices {
			ctx, cont, err := SplitTokens(tok, it.Input, ch, o.MaxLen)
			if err != nil {
				ok = false
				break
			}
			rs = append(rs, scoreReq{i, c, ctx, cont, adapterFor(i)})
		}
		if !ok {
			res.Skipped++
			continue
		}
		gold[i] = g
		kept = append(kept, i)
		reqs = append(reqs, rs...)
	}
	if len(kept) == 0 {
		return res, ErrNoEvalItems
	}
	scores, err := choiceScores(m, reqs, o)
	if err != nil {
		return res, err
	}
	best := map[int]int{}
	bestScore := map[int]float64{}
	for k, r := range reqs {
		if s, ok := bestScore[r.item]; !ok || scores[k] > s {
			bestScore[r.item], best[r.item] = scores[k], r.choice
		}
	}
	var golds, preds []string
	for _, i := range kept {
		ch := items[i].AnswerChoices
		golds = append(golds, ch[gold[i]])
		preds = append(preds, ch[best[i]])
	}
	res.N = len(kept)
	res.Accuracy, res.MacroF1, res.PerClass = Classification(golds, preds)
	res.Majority = MajorityBaseline(golds)
	return res, nil
}

// evalBatchTokens bounds the tokens of one batched forward (its activations
// and KV caches): as large as a long prefill, where the GEMMs are at speed.
const evalBatchTokens = 2048

// choiceScores runs the requests in batched forwards and returns each one's
// (optionally length-normalised) log-likelihood.
func choiceScores(m *model.Model, reqs []scoreReq, o EvalOptions) ([]float64, error) {
	V := m.Config.VocabSize
	out := make([]float64, len(reqs))
	scratch := make([]float32, V)
	for lo := 0; lo < len(reqs); {
		hi, rows, toks := lo, 0, 0
		for hi < len(reqs) {
			n := len(reqs[hi].cont) + 1 // logits rows: the last context token's and the continuation's
			nt := len(reqs[hi].ctx) + len(reqs[hi].cont)
			if hi > lo && ((rows+n)*V > o.MaxRows || toks+nt > evalBatchTokens) {
				break
			}
			rows, toks = rows+n, toks+nt
			hi++
		}
		steps := make([]model.Step, hi-lo)
		for k := range steps {
			r := reqs[lo+k]
			toks := append(append([]int(nil), r.ctx...), r.cont...)
			steps[k] = model.Step{Cache: m.NewCache(), Tokens: toks, Adapter: r.adapter, AllLogits: true, LogitsFrom: len(r.ctx) - 1}
		}
		outs, err := m.Forward(steps)
		if err != nil {
			return nil, err
		}
		for k, st := range steps {
			r := reqs[lo+k]
			var lp float64
			for t := st.LogitsFrom; t < len(st.Tokens)-1; t++ {
				row := outs[k].Logits[(t-st.LogitsFrom)*V : (t-st.LogitsFrom+1)*V]
				lp += float64(row[st.Tokens[t+1]]) - kernels.LogSumExp(row, scratch)
			}
			if o.LengthNorm {
				lp /= float64(len(r.cont))
			}
			out[lo+k] = lp
		}
		lo = hi
		if o.Progress != nil {
			o.Progress(hi, len(reqs))
		}
	}
	return out, nil
}

// Classification returns accuracy, macro-F1 (over the classes that occur as
// gold or prediction) and per-class counts.
func Classification(golds, preds []string) (acc, macroF1 float64, per map[string]ClassCounts) {
	per = map[string]ClassCounts{}
	correct := 0
	for i, g := range golds {
		p := preds[i]
		cg := per[g]
		cg.Support++
		if g == p {
			cg.Correct++
			correct++
		}
		per[g] = cg
		cp := per[p]
		cp.Predicted++
		per[p] = cp
	}
	if len(golds) == 0 {
		return 0, 0, per
	}
	for k, c := range per {
		if c.Support+c.Predicted > 0 {
			c.F1 = 2 * float64(c.Correct) / float64(c.Support+c.Predicted)
		}
		per[k] = c
		macroF1 += c.F1
	}
	return float64(correct) / float64(len(golds)), macroF1 / float64(len(per)), per
}

// MajorityBaseline is always predicting the most frequent gold class (ties:
// the first in sort order).
func MajorityBaseline(golds []string) Baseline {
	counts := map[string]int{}
	for _, g := range golds {
		counts[g]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b Baseline
	bestN := -1
	for _, k := range keys {
		if counts[k] > bestN {
			b.Class, bestN = k, counts[k]
		}
	}
	if len(golds) == 0 {
		return b
	}
	preds := make([]string, len(golds))
	for i := range preds {
		preds[i] = b.Class
	}
	b.Accuracy, b.MacroF1, _ = Classification(golds, preds)
	return b
}

// SeedRun is one seed's training and evaluation.
type SeedRun struct {
	Seed   uint64      `json:"seed"`
	Result *EvalResult `json:"result,omitempty"`
	Failed bool        `json:"failed"` // no better than the majority class (or an error)
	Err    string      `json:"error,omitempty"`
}

// SeedReport summarises runs over seeds (Mosbach et al. 2021: mean, std and
// failed runs).
type SeedReport struct {
	Runs         []SeedRun `json:"runs"`
	MeanAccuracy float64   `json:"mean_accuracy"`
	StdAccuracy  float64   `json:"std_accuracy"`
	MeanMacroF1  float64   `json:"mean_macro_f1"`
	StdMacroF1   float64   `json:"std_macro_f1"`
	Failed       int       `json:"failed_runs"`
	// MajorityAccuracy is the majority-class baseline (of the first run).
	MajorityAccuracy float64 `json:"majority_accuracy"`
}

// MultiSeed runs fn (train and evaluate) for each seed and summarises the
// results. A run fails when its accuracy is no better than the majority
// class, or when fn returns an error (recorded, not returned).
func MultiSeed(seeds []uint64, fn func(seed uint64) (EvalResult, error)) SeedReport {
	var runs []SeedRun
	for _, s := range seeds {
		r, err := fn(s)
		if err != nil {
			runs = append(runs, SeedRun{Seed: s, Failed: true, Err: err.Error()})
			continue
		}
		runs = append(runs, SeedRun{Seed: s, Result: &r})
	}
	return Summarize(runs)
}

// Summarize fills in Failed and the statistics of runs (std is the sample
// standard deviation, 0 for one run).
func Summarize(runs []SeedRun) SeedReport {
	rep := SeedReport{Runs: runs}
	var accs, f1s []float64
	for i := range rep.Runs {
		r := &rep.Runs[i]
		if r.Result == nil {
			r.Failed = true
			rep.Failed++
			continue
		}
		if len(accs) == 0 {
			rep.MajorityAccuracy = r.Result.Majority.Accuracy
		}
		r.Failed = r.Result.Accuracy <= r.Result.Majority.Accuracy
		if r.Failed {
			rep.Failed++
		}
		accs = append(accs, r.Result.Accuracy)
		f1s = append(f1s, r.Result.MacroF1)
	}
	rep.MeanAccuracy, rep.StdAccuracy = meanStd(accs)
	rep.MeanMacroF1, rep.StdMacroF1 = meanStd(f1s)
	return rep
}

func meanStd(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	mean := s / float64(len(v))
	if len(v) == 1 {
		return mean, 0
	}
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(v)-1))
}

// String is a one-line summary.
func (r EvalResult) String() string {
	return fmt.Sprintf("n=%d accuracy=%.4f macro_f1=%.4f (majority %q %.4f)", r.N, r.Accuracy, r.MacroF1, r.Majority.Class, r.Majority.Accuracy)
}
