package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"roe/train"
)

// ---- 6. Stability over seeds ----

// stabilityTasks are Mosbach et al.'s small tasks that have data here.
var stabilityTasks = []string{"rte", "cb", "mrpc", "cola"}

// StabilityCell is one task under one setting over all seeds.
type StabilityCell struct {
	Task           string    `json:"task"`
	BiasCorrection bool      `json:"bias_correction"`
	Steps          int       `json:"steps"`
	Accuracies     []float64 `json:"accuracies"` // one per seed
	Mean           float64   `json:"mean"`
	Std            float64   `json:"std"`
	Failed         int       `json:"failed"` // runs at or below the majority class
	FinalLosses    []float64 `json:"final_losses"`
}

// StabilityReport is section 6.
type StabilityReport struct {
	Seeds    []uint64           `json:"seeds"`
	Short    int                `json:"short_steps"`
	Long     int                `json:"long_steps"`
	Majority map[string]float64 `json:"majority_baseline"`
	N        map[string]int     `json:"n_eval"`
	Cells    []StabilityCell    `json:"cells"`
	Seconds  float64            `json:"seconds"`
}

// stability: the dataset-expert recipe on each small task with 5 seeds (LoRA
// initialisation and data order), with and without AdamW's bias correction,
// for a short and a long run; a run fails when it does not beat the majority
// class (Mosbach et al. 2021).
func stability(e *env, rep *Report) error {
	t0 := time.Now()
	sr := &StabilityReport{Short: *stabShort, Long: *stabLong, Majority: map[string]float64{}, N: map[string]int{}}
	for s := 1; s <= *stabSeeds; s++ {
		sr.Seeds = append(sr.Seeds, uint64(s))
	}
	for _, task := range stabilityTasks {
		titems, err := trainItems(e, task, "train")
		if err != nil {
			return fmt.Errorf("%s: %w", task, err)
		}
		items, _, err := evalItems(e, task, *evalN)
		if err != nil {
			return err
		}
		for _, steps := range []int{sr.Short, sr.Long} {
			for _, bc := range []bool{true, false} {
				c := StabilityCell{Task: task, BiasCorrection: bc, Steps: steps}
				for _, s := range sr.Seeds {
					o := recipe(steps)
					o.Seed = s
					o.NoBiasCorrection = !bc
					l, srep, err := train.TrainStrategy(context.Background(), e.m, e.tok, train.TaskData{Name: task, Items: titems}, nil, o,
						train.StrategyOptions{Strategy: train.Single})
					if err != nil {
						return fmt.Errorf("%s seed %d: %w", task, s, err)
					}
					r, err := train.EvalRank(e.m, l, e.tok, items, e.eo)
					if err != nil {
						return err
					}
					sr.Majority[task], sr.N[task] = r.Majority.Accuracy, r.N
					c.Accuracies = append(c.Accuracies, r.Accuracy)
					c.FinalLosses = append(c.FinalLosses, srep.Phases[len(srep.Phases)-1].FinalLoss)
					if r.Accuracy <= r.Majority.Accuracy {
						c.Failed++
					}
				}
				c.Mean, c.Std = meanStd(c.Accuracies)
				logf("stability %-5s steps %3d bias-correction %-5v: mean %.3f std %.3f failed %d/%d", task, steps, bc,
					c.Mean, c.Std, c.Failed, len(sr.Seeds))
				sr.Cells = append(sr.Cells, c)
			}
		}
	}
	sr.Seconds = time.Since(t0).Seconds()
	rep.Stability = sr
	rep.md = append(rep.md, stabilityMarkdown(sr))
	return nil
}

// meanStd is the mean and the sample standard deviation.
func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) == 1 {
		return m, 0
	}
	v := 0.0
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

func stabilityMarkdown(sr *StabilityReport) string {
	var sb strings.Builder
	sb.WriteString("## 6. Stability over seeds\n\n")
	fmt.Fprintf(&sb, "Mosbach et al. (2021) traced fine-tuning's failed runs to AdamW without bias correction and to "+
		"too few iterations. Each task's dataset expert is retrained with the starter recipe and %d seeds (the seed "+
		"sets the LoRA initialisation and the data order), with and without bias correction, for a short (%d steps) "+
		"and a long (%d steps, the shipped experts' length) run; accuracy on the validation sample of section 1. "+
		"A run **fails** when it does not beat the majority class. %.0f s in all.\n\n", len(sr.Seeds), sr.Short, sr.Long, sr.Seconds)
	sb.WriteString("| task | n | majority | steps | bias correction | mean | std | failed | accuracies by seed |\n")
	sb.WriteString("|---|---:|---:|---:|---|---:|---:|---:|---|\n")
	agg := map[string][]float64{}
	fails := map[string]int{}
	for _, c := range sr.Cells {
		bc := "on"
		if !c.BiasCorrection {
			bc = "off"
		}
		var a []string
		for _, x := range c.Accuracies {
			a = append(a, pct(x))
		}
		fmt.Fprintf(&sb, "| %s | %d | %s | %d | %s | %s | %s | %d/%d | %s |\n", c.Task, sr.N[c.Task], pct(sr.Majority[c.Task]),
			c.Steps, bc, pct(c.Mean), pct(c.Std), c.Failed, len(c.Accuracies), strings.Join(a, " "))
		k := fmt.Sprintf("%d steps, bias correction %s", c.Steps, bc)
		agg[k] = append(agg[k], c.Std)
		fails[k] += c.Failed
	}
	sb.WriteString("\nOver the four tasks:\n\n| setting | mean std (points) | failed runs |\n|---|---:|---:|\n")
	for _, k := range sortedKeys(agg) {
		fmt.Fprintf(&sb, "| %s | %s | %d/%d |\n", k, pct(mean(agg[k])), fails[k], len(agg[k])*len(sr.Seeds))
	}
	sb.WriteString("\n![stability](stability.png)\n")
	return sb.String()
}
