package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"roe/adapters"
	"roe/model"
	"roe/tasks"
	"roe/train"
)

// ---- 7. CPI-FT against MTL and plain merges ----

// cpiTasks: two sentiment tasks and two sentence-pair/acceptability tasks, so
// that grouping by core overlap has something to find.
var cpiTasks = []string{"sst2", "mr", "cola", "mrpc"}

var cpiConds = []string{"dataset_expert", "merge_linear", "merge_cpi", "mtl", "cpi_fused", "cpi_ft"}

var cpiLabels = map[string]string{"dataset_expert": "own dataset expert", "merge_linear": "linear merge",
	"merge_cpi": "CPI merge", "mtl": "MTL", "cpi_fused": "CPI fused (no final FT)", "cpi_ft": "CPI-FT"}

// CPIRow is one task under each condition.
type CPIRow struct {
	Task     string                      `json:"task"`
	N        int                         `json:"n"`
	Majority float64                     `json:"majority_baseline"`
	Results  map[string]tasks.EvalResult `json:"results"`
}

// CPISection is section 7.
type CPISection struct {
	Tasks    []string           `json:"tasks"`
	Report   *train.CPIReport   `json:"cpi"`
	MTLSteps int                `json:"mtl_steps"`
	CPISteps int                `json:"cpi_steps"`
	Rows     []CPIRow           `json:"rows"`
	Mean     map[string]float64 `json:"mean_accuracy"`
	Seconds  float64            `json:"seconds"`
}

// cpiVsMTL: one adapter for several tasks, four ways: a uniform linear merge
// and a CPI merge of the shipped dataset experts (no training), one LoRA
// trained on the tasks mixed (MTL), and CPI-FT (per-task LoRAs, core
// parameters found and grouped, fused, then a mixed fine-tune with the cores
// frozen); each task's own expert is the reference.
func cpiVsMTL(e *env, rep *Report) error {
	t0 := time.Now()
	cs := &CPISection{Tasks: cpiTasks, Mean: map[string]float64{}}
	var tds []train.TaskData
	var own []*adapters.LoRA
	for _, t := range cpiTasks {
		items, err := trainItems(e, t, "train")
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		tds = append(tds, train.TaskData{Name: t, Items: items})
		l, err := e.lora(e.lib, t, true)
		if err != nil {
			return err
		}
		own = append(own, l)
	}
	conds := map[string]*adapters.LoRA{}
	var err error
	if conds["merge_linear"], _, err = adapters.Merge(own, adapters.MergeOptions{Method: adapters.MethodLinear}); err != nil {
		return err
	}
	if conds["merge_cpi"], _, err = adapters.Merge(own, adapters.MergeOptions{Method: adapters.MethodCPI}); err != nil {
		return err
	}
	o := recipe(*mtlStepsPerTask * len(cpiTasks))
	mtl, srep, err := train.TrainStrategy(context.Background(), e.m, e.tok, tds[0], tds[1:], o,
		train.StrategyOptions{Strategy: train.MTL, Weighting: train.PerExample})
	if err != nil {
		return err
	}
	conds["mtl"], cs.MTLSteps = mtl, srep.Steps()
	logf("cpi: MTL %d steps", cs.MTLSteps)
	dir := filepath.Join(e.work, "cpi")
	co := recipe(*mtlStepsPerTask)
	cpi, crep, err := train.TrainCPI(context.Background(), e.m, e.tok, tds, co, train.CPIOptions{OutDir: dir})
	if err != nil {
		return err
	}
	conds["cpi_ft"], cs.Report = cpi, crep
	for _, p := range crep.Phases {
		cs.CPISteps += p.Steps
	}
	if conds["cpi_fused"], err = adapters.Load(filepath.Join(dir, "fused"), e.m.Config); err != nil {
		return err
	}
	logf("cpi: CPI-FT %d steps, groups %v", cs.CPISteps, crep.Groups)
	acc := map[string][]float64{}
	for i, t := range cpiTasks {
		items, _, err := evalItems(e, t, *evalN)
		if err != nil {
			return err
		}
		row := CPIRow{Task: t, Results: map[string]tasks.EvalResult{}}
		for _, c := range cpiConds {
			var a model.Adapter = own[i]
			if c != "dataset_expert" {
				a = conds[c]
			}
			if row.Results[c], err = tasks.EvalRank(e.m, a, e.tok, items, e.eo); err != nil {
				return fmt.Errorf("%s %s: %w", t, c, err)
			}
			acc[c] = append(acc[c], row.Results[c].Accuracy)
		}
		row.N, row.Majority = row.Results["mtl"].N, row.Results["mtl"].Majority.Accuracy
		acc["majority"] = append(acc["majority"], row.Majority)
		cs.Rows = append(cs.Rows, row)
		logf("cpi %-5s own %.3f linear %.3f cpi-merge %.3f mtl %.3f fused %.3f cpi-ft %.3f", t,
			row.Results["dataset_expert"].Accuracy, row.Results["merge_linear"].Accuracy, row.Results["merge_cpi"].Accuracy,
			row.Results["mtl"].Accuracy, row.Results["cpi_fused"].Accuracy, row.Results["cpi_ft"].Accuracy)
	}
	for c, xs := range acc {
		cs.Mean[c] = mean(xs)
	}
	cs.Seconds = time.Since(t0).Seconds()
	rep.CPI = cs
	rep.md = append(rep.md, cpiMarkdown(cs))
	return nil
}

func cpiMarkdown(cs *CPISection) string {
	var sb strings.Builder
	sb.WriteString("## 7. CPI-FT against MTL and plain merges\n\n")
	r := cs.Report
	fmt.Fprintf(&sb, "One adapter for %d tasks (%s), each scored on its validation sample (n ≤ %d, as section 1). "+
		"**linear merge** and **CPI merge** combine the shipped dataset experts without training (CPI keeps each "+
		"expert's top %.0f%% |ΔW| entries per module and averages the rest). **MTL** is one LoRA trained on the four "+
		"tasks mixed (%d steps). **CPI-FT** (`roe train --method cpi`) trains a LoRA per task (%d steps each), finds "+
		"each one's core parameters, groups tasks whose cores overlap (Jaccard > %.2g; groups found: %v), fuses them "+
		"(SVD re-factoring error %.3f) and fine-tunes the fused adapter on all tasks mixed with the cores frozen "+
		"(%d steps in all phases; core drift after the final phase %.2g). **CPI fused** is that fused adapter before "+
		"the final fine-tune. Each task's own dataset expert is the reference. %.0f s in all.\n\n",
		len(cs.Tasks), strings.Join(cs.Tasks, ", "), *evalN, 100*r.CoreFraction, cs.MTLSteps, *mtlStepsPerTask, r.Tau,
		r.Groups, r.FusionRelError, cs.CPISteps, r.CoreDrift, cs.Seconds)
	sb.WriteString("| task | n | majority |")
	for _, c := range cpiConds {
		fmt.Fprintf(&sb, " %s |", cpiLabels[c])
	}
	sb.WriteString("\n|---|---:|---:|")
	for range cpiConds {
		sb.WriteString("---:|")
	}
	sb.WriteString("\n")
	for _, row := range cs.Rows {
		fmt.Fprintf(&sb, "| %s | %d | %s |", row.Task, row.N, pct(row.Majority))
		for _, c := range cpiConds {
			fmt.Fprintf(&sb, " %s |", pct(row.Results[c].Accuracy))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "| **mean** | | %s |", pct(cs.Mean["majority"]))
	for _, c := range cpiConds {
		fmt.Fprintf(&sb, " %s |", pct(cs.Mean[c]))
	}
	sb.WriteString("\n\n![CPI-FT](cpi.png)\n")
	return sb.String()
}
