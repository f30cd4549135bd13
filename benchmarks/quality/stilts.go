package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"roe/tasks"
	"roe/train"
)

// ---- 5. STILTs vs MTL ----

// taskPair is a target task and the auxiliary (supporting) task helping it,
// with caps on their training sets (0: -pair-cap).
type taskPair struct {
	Target, Aux string
	CapT, CapA  int
}

// Pairs come in both directions, so the size rule faces each pair once with
// the larger set as target and once as auxiliary; mr is cut to 500 so that
// the two sentiment sets differ in size.
var stiltsPairs = []taskPair{
	{"rte", "cb", 0, 0}, {"cb", "rte", 0, 0},
	{"mrpc", "wnli", 0, 0}, {"wnli", "mrpc", 0, 0},
	{"sst2", "mr", 0, 500}, {"mr", "sst2", 500, 0},
	{"cola", "wsc", 0, 0}, {"wsc", "cola", 0, 0},
}

func capOr(c int) int {
	if c > 0 {
		return min(c, *pairCap)
	}
	return *pairCap
}

// PairRow is one pair's result.
type PairRow struct {
	Target    string  `json:"target"`
	Aux       string  `json:"aux"`
	NTarget   int     `json:"n_target_train"`
	NAux      int     `json:"n_aux_train"`
	N         int     `json:"n_eval"`
	Majority  float64 `json:"majority_baseline"`
	Single    float64 `json:"single"`
	STILTs    float64 `json:"stilts"`
	MTL       float64 `json:"mtl"`
	Heuristic string  `json:"heuristic"` // what train.Auto picks
	Better    string  `json:"better"`    // stilts, mtl or tie
	// Clear: |STILTs − MTL| exceeds two standard errors of the difference.
	Clear   bool    `json:"clear"`
	Seconds float64 `json:"seconds"`
}

// StiltsReport is section 5.
type StiltsReport struct {
	Cap       int       `json:"train_cap"`
	Pairs     []PairRow `json:"pairs"`
	Hits      int       `json:"heuristic_hits"`
	Decided   int       `json:"decided"` // pairs without a tie
	ClearHits int       `json:"clear_hits"`
	Clear     int       `json:"clear"`
}

// stiltsVsMTL: for each pair, the target's accuracy after STILTs (one epoch of
// the auxiliary task, then one of the target, fresh optimizer) and after MTL
// (one epoch of both mixed, per-example weights): the same examples and steps.
// The size heuristic (train.ChooseStrategy's auto) is scored against the better one.
func stiltsVsMTL(e *env, rep *Report) error {
	sr := &StiltsReport{Cap: *pairCap}
	for _, p := range stiltsPairs {
		t0 := time.Now()
		tgt, err := cappedTrainItems(e, p.Target, capOr(p.CapT))
		if err != nil {
			return err
		}
		aux, err := cappedTrainItems(e, p.Aux, capOr(p.CapA))
		if err != nil {
			return err
		}
		row := PairRow{Target: p.Target, Aux: p.Aux, NTarget: len(tgt), NAux: len(aux)}
		td, ad := train.TaskData{Name: p.Target, Items: tgt}, train.TaskData{Name: p.Aux, Items: aux}
		h, _, err := train.ChooseStrategy(train.Auto, td, []train.TaskData{ad})
		if err != nil {
			return err
		}
		row.Heuristic = string(h)
		items, _, err := evalItems(e, p.Target, *evalN)
		if err != nil {
			return err
		}
		o := recipe(0)
		o.Epochs = 1
		for _, s := range []train.Strategy{train.Single, train.STILTs, train.MTL} {
			var auxs []train.TaskData
			if s != train.Single {
				auxs = []train.TaskData{ad}
			}
			l, _, err := train.TrainStrategy(context.Background(), e.m, e.tok, td, auxs, o, train.StrategyOptions{Strategy: s})
			if err != nil {
				return fmt.Errorf("%s ← %s %s: %w", p.Target, p.Aux, s, err)
			}
			r, err := tasks.EvalRank(e.m, l, e.tok, items, e.eo)
			if err != nil {
				return err
			}
			row.N, row.Majority = r.N, r.Majority.Accuracy
			switch s {
			case train.Single:
				row.Single = r.Accuracy
			case train.STILTs:
				row.STILTs = r.Accuracy
			case train.MTL:
				row.MTL = r.Accuracy
			}
		}
		row.Seconds = time.Since(t0).Seconds()
		switch d := row.STILTs - row.MTL; {
		case d > 0:
			row.Better = string(train.STILTs)
		case d < 0:
			row.Better = string(train.MTL)
		default:
			row.Better = "tie"
		}
		// Two standard errors of a difference of two accuracies on n items.
		se := math.Sqrt((row.STILTs*(1-row.STILTs) + row.MTL*(1-row.MTL)) / float64(max(1, row.N)))
		row.Clear = math.Abs(row.STILTs-row.MTL) > 2*se
		if row.Better != "tie" {
			sr.Decided++
			if row.Better == row.Heuristic {
				sr.Hits++
			}
			if row.Clear {
				sr.Clear++
				if row.Better == row.Heuristic {
					sr.ClearHits++
				}
			}
		}
		logf("stilts %s ← %s (%d/%d): single %.3f stilts %.3f mtl %.3f, heuristic %s, better %s", p.Target, p.Aux,
			row.NTarget, row.NAux, row.Single, row.STILTs, row.MTL, row.Heuristic, row.Better)
		sr.Pairs = append(sr.Pairs, row)
	}
	rep.Stilts = sr
	rep.md = append(rep.md, stiltsMarkdown(sr))
	return nil
}

// cappedTrainItems renders a task's training split (all templates mixed) and
// keeps a seeded sample of at most n.
func cappedTrainItems(e *env, task string, n int) ([]tasks.Item, error) {
	items, err := trainItems(e, task, "train")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", task, err)
	}
	if n > 0 && len(items) > n {
		r := rand.New(rand.NewPCG(*seed, 0x5a3))
		idx := r.Perm(len(items))[:n]
		sort.Ints(idx)
		out := make([]tasks.Item, n)
		for i, j := range idx {
			out[i] = items[j]
		}
		items = out
	}
	return items, nil
}

func stiltsMarkdown(sr *StiltsReport) string {
	var sb strings.Builder
	sb.WriteString("## 5. STILTs vs MTL\n\n")
	fmt.Fprintf(&sb, "Weller et al. (2022) found that multi-task learning (MTL) beats intermediate-task training "+
		"(STILTs) when the target task's training set is smaller than the supporting task's, and STILTs wins "+
		"when it is larger; the rule picked the better strategy in 92%% of their GLUE pairs. Here each pair is "+
		"trained with the dataset experts' recipe, training sets capped at %d examples (mr at 500, so that the sentiment pair differs in size; seeded "+
		"sample, templates mixed): **STILTs** = one epoch of the auxiliary task, then one epoch of the target from that adapter with "+
		"a fresh optimizer; **MTL** = one epoch of both mixed (per-example weights); both see the same examples "+
		"in the same number of steps. **single** (one epoch of the target alone) is the reference. Accuracy on "+
		"the target's validation sample (n ≤ %d, as section 1). *heuristic* is what `roe train --strategy auto` "+
		"picks (STILTs when the target set is larger); *clear* marks differences above two standard errors.\n\n",
		sr.Cap, *evalN)
	sb.WriteString("| target ← auxiliary | train sizes | n | majority | single | STILTs | MTL | heuristic | better | clear |\n")
	sb.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range sr.Pairs {
		mark := ""
		if r.Better == r.Heuristic {
			mark = " ✓"
		}
		clear := ""
		if r.Clear {
			clear = "yes"
		}
		fmt.Fprintf(&sb, "| %s ← %s | %d / %d | %d | %s | %s | %s | %s | %s | %s%s | %s |\n", r.Target, r.Aux, r.NTarget,
			r.NAux, r.N, pct(r.Majority), pct(r.Single), pct(r.STILTs), pct(r.MTL), r.Heuristic, r.Better, mark, clear)
	}
	fmt.Fprintf(&sb, "\nThe size heuristic picked the better strategy in **%d of %d** pairs with a winner (%s%%); "+
		"in %d of %d pairs where the difference is clear.\n", sr.Hits, sr.Decided, pct(ratio(sr.Hits, sr.Decided)),
		sr.ClearHits, sr.Clear)
	return sb.String()
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
