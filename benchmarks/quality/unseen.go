package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
	"roe/tasks"
)

// ---- 4. Unseen tasks ----

// heldOut are the paper's held-out evaluation tasks that have data here
// (hellaswag and story_cloze have none); their experts leave the library.
var heldOut = []string{"anli_r1", "anli_r2", "anli_r3", "cb", "copa", "rte", "wic", "wsc"}

// UnseenRow is one held-out task under each condition.
type UnseenRow struct {
	Task      string   `json:"task"`
	Split     string   `json:"split"`
	N         int      `json:"n"`
	Prompts   []string `json:"eval_prompts"`
	Missing   []string `json:"eval_prompts_not_found,omitempty"`
	Majority  float64  `json:"majority_baseline"`
	Top3      []string `json:"top3_q32"` // the task-level vote's three experts, best first
	Top3Votes []int    `json:"top3_votes"`
	// Conditions: base, mtl_seen, roe_top1 (task-level, Q = 32), auto_q1 (per
	// example), merge_linear_top3, merge_ties_top3.
	Results map[string]tasks.EvalResult `json:"results"`
	Auto    map[string]int              `json:"auto_q1_routed_to_task"`
}

// UnseenReport is section 4.
type UnseenReport struct {
	HeldOut     []string           `json:"held_out"`
	Library     []string           `json:"library"`
	MTL         map[string]any     `json:"mtl_seen_training"`
	Q           int                `json:"q"`
	Tasks       []UnseenRow        `json:"tasks"`
	Mean        map[string]float64 `json:"mean_accuracy"`
	MeanF1      map[string]float64 `json:"mean_macro_f1"`
	PromptsFrom string             `json:"prompts_from"`
}

var unseenConds = []string{"base", "mtl_seen", "roe_top1", "auto_q1", "merge_linear_top3", "merge_ties_top3"}

var unseenLabels = map[string]string{"base": "base", "mtl_seen": "MTL-seen", "roe_top1": "RoE top-1",
	"auto_q1": "auto (per example)", "merge_linear_top3": "linear top-3", "merge_ties_top3": "TIES top-3"}

// evalPrompts reads the paper's held-out evaluation prompt names by task folder
// (ELM_experts_and_eval_prompts.json: "super_glue_cb/cb" → cb, "anli_r1/dev_r1" → anli_r1).
func evalPrompts(tmplDir string) (map[string][]string, error) {
	b, err := os.ReadFile(filepath.Join(tmplDir, "ELM_experts_and_eval_prompts.json"))
	if err != nil {
		return nil, err
	}
	var f struct {
		HeldOut map[string][]string `json:"heldout_eval_prompts"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("ELM_experts_and_eval_prompts.json: %w", err)
	}
	out := map[string][]string{}
	for k, v := range f.HeldOut {
		ds, _, _ := strings.Cut(k, "/")
		ds = strings.TrimSuffix(strings.TrimPrefix(ds, "super_glue_"), ".fixed")
		out[ds] = v
	}
	return out, nil
}

// heldOutTask says whether an expert stands for a held-out task; merged
// experts go too, since merged/nli is built from rte and cb.
func heldOutTask(m library.Manifest) bool {
	if m.Kind == library.KindMerged {
		return true
	}
	return slices.Contains(heldOut, m.Task())
}

// unseenTasks: held-out tasks scored with the paper's evaluation prompts, by
// the base model, one LoRA trained on the library's (seen) tasks mixed, the
// expert a task-level Q = 32 vote picks, per-example routing, and uniform
// linear and TIES merges of the vote's top three.
func unseenTasks(e *env, rep *Report) error {
	prompts, err := evalPrompts(e.tmpl)
	if err != nil {
		return err
	}
	lib, err := copyLib(e, "lib-unseen", func(m library.Manifest) bool { return !heldOutTask(m) })
	if err != nil {
		return err
	}
	defer lib.Close()
	ms, err := lib.List()
	if err != nil {
		return err
	}
	ur := &UnseenReport{HeldOut: heldOut, Q: 32, Mean: map[string]float64{}, MeanF1: map[string]float64{},
		PromptsFrom: "data/templates/ELM_experts_and_eval_prompts.json (heldout_eval_prompts)"}
	for _, m := range ms {
		ur.Library = append(ur.Library, m.Name)
	}
	seen, err := datasetTasks(lib)
	if err != nil {
		return err
	}
	mtl, info, err := trainMTLOn(e, seen, *mtlSeenAdapter, "MTL-seen")
	if err != nil {
		return err
	}
	ur.MTL = info
	ix, owner, err := buildIndex(e, lib)
	if err != nil {
		return err
	}
	acc, f1 := map[string][]float64{}, map[string][]float64{}
	for _, task := range heldOut {
		names, ok := prompts[task]
		if !ok {
			return fmt.Errorf("%s: no held-out prompts in ELM_experts_and_eval_prompts.json", task)
		}
		row := UnseenRow{Task: task, Results: map[string]tasks.EvalResult{}, Auto: map[string]int{}}
		items, err := promptItems(e, task, names, &row)
		if err != nil {
			return fmt.Errorf("%s: %w", task, err)
		}
		// The task-level vote: Q = 32 unlabeled instances of the task (the
		// paper's setting), drawn from its evaluation split.
		texts, _, err := queryTexts(e, task, *routeSeed)
		if err != nil {
			return err
		}
		if len(texts) > ur.Q {
			texts = texts[:ur.Q]
		}
		embs, err := e.emb.Embed(texts)
		if err != nil {
			return err
		}
		rt, err := ix.Route(embs, ix.Options(retriever.RouteOptions{TopK: 3}, texts))
		if err != nil {
			return err
		}
		var tops []*adapters.LoRA
		for _, x := range rt.Experts {
			l, err := e.lora(lib, x.Name, false)
			if err != nil {
				return err
			}
			tops = append(tops, l)
			row.Top3 = append(row.Top3, x.Name)
			row.Top3Votes = append(row.Top3Votes, x.Votes)
		}
		if len(tops) == 0 {
			return fmt.Errorf("%s: routing chose no expert", task)
		}
		conds := map[string]model.Adapter{"base": nil, "mtl_seen": mtl, "roe_top1": tops[0]}
		for c, method := range map[string]adapters.Method{"merge_linear_top3": adapters.MethodLinear, "merge_ties_top3": adapters.MethodTIES} {
			if len(tops) < 2 {
				conds[c] = tops[0]
				continue
			}
			ml, _, err := adapters.Merge(tops, adapters.MergeOptions{Method: method})
			if err != nil {
				return fmt.Errorf("%s %s: %w", task, c, err)
			}
			conds[c] = ml
		}
		for _, c := range unseenConds {
			if c == "auto_q1" {
				continue
			}
			if row.Results[c], err = tasks.EvalRank(e.m, conds[c], e.tok, items, e.eo); err != nil {
				return fmt.Errorf("%s %s: %w", task, c, err)
			}
		}
		per, chosen, err := routeEachIn(e, lib, ix, items)
		if err != nil {
			return err
		}
		if row.Results["auto_q1"], err = tasks.EvalRankEach(e.m, func(i int) model.Adapter { return per[i] }, e.tok, items, e.eo); err != nil {
			return err
		}
		for i, it := range items {
			if scorable(it) {
				row.Auto[cmp.Or(owner[chosen[i]], chosen[i])]++
			}
		}
		row.N, row.Majority = row.Results["base"].N, row.Results["base"].Majority.Accuracy
		for _, c := range unseenConds {
			acc[c] = append(acc[c], row.Results[c].Accuracy)
			f1[c] = append(f1[c], row.Results[c].MacroF1)
		}
		acc["majority"] = append(acc["majority"], row.Majority)
		logf("unseen %-8s base %.3f mtl %.3f top1 %.3f auto %.3f lin3 %.3f ties3 %.3f (top-3 %v)", task,
			row.Results["base"].Accuracy, row.Results["mtl_seen"].Accuracy, row.Results["roe_top1"].Accuracy,
			row.Results["auto_q1"].Accuracy, row.Results["merge_linear_top3"].Accuracy, row.Results["merge_ties_top3"].Accuracy, row.Top3)
		ur.Tasks = append(ur.Tasks, row)
	}
	for c, xs := range acc {
		ur.Mean[c] = mean(xs)
	}
	for c, xs := range f1 {
		ur.MeanF1[c] = mean(xs)
	}
	rep.Unseen = ur
	rep.md = append(rep.md, unseenMarkdown(ur))
	return nil
}

// promptItems renders a seeded sample of the task's evaluation split, each
// example with one of the named templates (drawn with the seed).
func promptItems(e *env, task string, names []string, row *UnseenRow) ([]tasks.Item, error) {
	ts, fm, err := tasks.TemplatesFor(task, e.tmpl)
	if err != nil {
		return nil, err
	}
	byName := map[string]tasks.Template{}
	for _, t := range ts {
		if _, dup := byName[t.Name]; !dup {
			byName[t.Name] = t
		}
	}
	var use []tasks.Template
	for _, n := range names {
		if t, ok := byName[n]; ok {
			use = append(use, t)
			row.Prompts = append(row.Prompts, n)
		} else {
			row.Missing = append(row.Missing, n)
		}
	}
	if len(use) == 0 {
		return nil, fmt.Errorf("none of the evaluation prompts %q is among the task's templates", names)
	}
	dir := filepath.Join(e.tasks, task)
	row.Split = evalSplit(dir)
	ex, err := tasks.LoadTask(dir, row.Split)
	if err != nil {
		return nil, err
	}
	ex = tasks.SampleExamples(ex, *evalN, *seed)
	items, _, err := tasks.RenderItems(ex, use, fm, 0, *seed)
	return items, err
}

func unseenMarkdown(ur *UnseenReport) string {
	var sb strings.Builder
	sb.WriteString("## 4. Unseen tasks\n\n")
	fmt.Fprintf(&sb, "The paper's held-out tasks that have data here (%s) are kept out: their dataset and prompt experts, "+
		"and the merged experts (merged/nli is made of rte and cb), are removed from a copy of the library, leaving %d experts. "+
		"Each task is scored by rank classification on a seeded sample of n ≤ %d examples of its validation split, every "+
		"example rendered with one of the paper's evaluation prompts for it (%s; drawn with the seed). Conditions: the base "+
		"model; **MTL-seen**, one LoRA trained on the %d remaining tasks mixed (the MTL-all recipe: %s); **RoE top-1**, the "+
		"expert that a vote of Q = %d unlabeled instances of the task picks (the paper's task-level retrieval); **auto**, "+
		"per-example routing (Q = 1, as the server does for `model: auto`); **linear top-3** and **TIES top-3**, a uniform "+
		"linear merge and a TIES merge (density 0.2, sign election) of the vote's three best experts.\n\n",
		strings.Join(ur.HeldOut, ", "), len(ur.Library), *evalN, ur.PromptsFrom, trainedTasks(ur.MTL), mtlInfo(ur.MTL), ur.Q)
	sb.WriteString("| task | n | prompts | majority |")
	for _, c := range unseenConds {
		fmt.Fprintf(&sb, " %s |", unseenLabels[c])
	}
	sb.WriteString(" top-3 at Q = 32 (votes) | auto routed to (task: count) |\n|---|---:|---:|---:|")
	for range unseenConds {
		sb.WriteString("---:|")
	}
	sb.WriteString("---|---|\n")
	for _, r := range ur.Tasks {
		fmt.Fprintf(&sb, "| %s | %d | %d | %s |", r.Task, r.N, len(r.Prompts), pct(r.Majority))
		for _, c := range unseenConds {
			fmt.Fprintf(&sb, " %s |", pct(r.Results[c].Accuracy))
		}
		var tv []string
		for i, n := range r.Top3 {
			tv = append(tv, fmt.Sprintf("%s (%d)", n, r.Top3Votes[i]))
		}
		fmt.Fprintf(&sb, " %s | %s |\n", strings.Join(tv, ", "), counts(r.Auto))
	}
	fmt.Fprintf(&sb, "| **mean** | | | %s |", pct(ur.Mean["majority"]))
	for _, c := range unseenConds {
		fmt.Fprintf(&sb, " %s |", pct(ur.Mean[c]))
	}
	sb.WriteString(" | |\n\n")
	sb.WriteString("Mean macro-F1:")
	for _, c := range unseenConds {
		fmt.Fprintf(&sb, " %s %s;", unseenLabels[c], pct(ur.MeanF1[c]))
	}
	sb.WriteString("\n\n")
	var missing []string
	for _, r := range ur.Tasks {
		if len(r.Missing) > 0 {
			missing = append(missing, fmt.Sprintf("%s: %q", r.Task, r.Missing))
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(&sb, "Evaluation prompts named by the paper but absent from the promptsource snapshot here: %s.\n\n", strings.Join(missing, "; "))
	}
	sb.WriteString("![unseen tasks](unseen_tasks.png)\n")
	return sb.String()
}

// trainedTasks is the number of tasks an MTL run's info lists.
func trainedTasks(info map[string]any) int {
	if s, ok := info["train_sizes"].(map[string]int); ok {
		return len(s)
	}
	if s, ok := info["train_sizes"].(map[string]any); ok {
		return len(s)
	}
	return 0
}
