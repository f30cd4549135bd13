package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"roe/experts"
	"sort"
	"strings"
	"time"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/tasks"
	"roe/train"
)

// ---- 1. Seen tasks ----

// SeenRow is one task's accuracy under each condition.
type SeenRow struct {
	Task      string            `json:"task"`
	Split     string            `json:"split"`
	N         int               `json:"n"`
	Majority  float64           `json:"majority_baseline"`
	Base      tasks.EvalResult  `json:"base"`
	Expert    tasks.EvalResult  `json:"dataset_expert"`
	MTL       tasks.EvalResult  `json:"mtl_all"`
	Auto      tasks.EvalResult  `json:"auto_top1"`
	RoutedTo  map[string]int    `json:"auto_routed_to"`
	AutoOwner map[string]int    `json:"auto_routed_to_task"`
	Extra     map[string]string `json:"-"`
}

// SeenReport is section 1.
type SeenReport struct {
	N      int                `json:"n_per_task"`
	MTL    map[string]any     `json:"mtl_all_training"`
	Tasks  []SeenRow          `json:"tasks"`
	Mean   map[string]float64 `json:"mean_accuracy"`
	MeanF1 map[string]float64 `json:"mean_macro_f1"`
	// Unscorable tasks have no answer choices (stsb: regression), so rank
	// classification cannot score them.
	Unscorable []string `json:"unscorable,omitempty"`
}

// seenTasks: for each task with a dataset expert, validation accuracy of the
// base model, its dataset expert, one LoRA trained on all tasks mixed
// (MTL-all), and per-example top-1 routing over the whole library.
func seenTasks(e *env, rep *Report) error {
	taskNames, err := datasetTasks(e.lib)
	if err != nil {
		return err
	}
	mtl, info, err := trainMTL(e, taskNames)
	if err != nil {
		return err
	}
	ix, owner, err := buildIndex(e, e.lib)
	if err != nil {
		return err
	}
	sr := &SeenReport{N: *evalN, MTL: info, Mean: map[string]float64{}, MeanF1: map[string]float64{}}
	conds := []string{"base", "dataset_expert", "mtl_all", "auto_top1", "majority"}
	acc := map[string][]float64{}
	f1 := map[string][]float64{}
	for _, task := range taskNames {
		items, sp, err := evalItems(e, task, *evalN)
		if err != nil {
			return fmt.Errorf("%s: %w", task, err)
		}
		row := SeenRow{Task: task, Split: sp, AutoOwner: map[string]int{}}
		if row.Base, err = tasks.EvalRank(e.m, nil, e.tok, items, e.eo); errors.Is(err, tasks.ErrNoEvalItems) {
			// stsb's templates are regression prompts without answer choices.
			sr.Unscorable = append(sr.Unscorable, task)
			logf("seen %-8s not scorable by rank classification (no answer choices)", task)
			continue
		} else if err != nil {
			return fmt.Errorf("%s base: %w", task, err)
		}
		xl, err := e.lora(e.lib, task, true)
		if err != nil {
			return err
		}
		if row.Expert, err = tasks.EvalRank(e.m, xl, e.tok, items, e.eo); err != nil {
			return err
		}
		if row.MTL, err = tasks.EvalRank(e.m, mtl, e.tok, items, e.eo); err != nil {
			return err
		}
		per, chosen, err := routeEach(e, ix, items)
		if err != nil {
			return err
		}
		if row.Auto, err = tasks.EvalRankEach(e.m, func(i int) model.Adapter { return per[i] }, e.tok, items, e.eo); err != nil {
			return err
		}
		// Count only the items rank classification scores (with answer choices
		// that include the target), so the counts add up to n.
		row.RoutedTo = map[string]int{}
		for i, it := range items {
			if !scorable(it) {
				continue
			}
			nm := chosen[i]
			row.RoutedTo[nm]++
			row.AutoOwner[cmp.Or(owner[nm], nm)]++
		}
		row.N, row.Majority = row.Base.N, row.Base.Majority.Accuracy
		logf("seen %-8s base %.3f expert %.3f mtl %.3f auto %.3f (majority %.3f, n %d)", task,
			row.Base.Accuracy, row.Expert.Accuracy, row.MTL.Accuracy, row.Auto.Accuracy, row.Majority, row.N)
		for c, r := range map[string]tasks.EvalResult{"base": row.Base, "dataset_expert": row.Expert, "mtl_all": row.MTL, "auto_top1": row.Auto} {
			acc[c] = append(acc[c], r.Accuracy)
			f1[c] = append(f1[c], r.MacroF1)
		}
		acc["majority"] = append(acc["majority"], row.Majority)
		f1["majority"] = append(f1["majority"], row.Base.Majority.MacroF1)
		sr.Tasks = append(sr.Tasks, row)
	}
	for _, c := range conds {
		sr.Mean[c], sr.MeanF1[c] = mean(acc[c]), mean(f1[c])
	}
	rep.Seen = sr

	var sb strings.Builder
	fmt.Fprintf(&sb, "## 1. Seen tasks\n\n")
	fmt.Fprintf(&sb, "Rank classification accuracy (%%) on a seeded sample of n ≤ %d examples of each task's validation "+
		"split (test for mrpc), every example rendered with a template drawn from all the task's promptsource templates "+
		"(= `roe eval --all-prompts --n %d --seed %d`), for the %d tasks with a shipped dataset expert. "+
		"**auto** routes each example on its own (Q = 1, top-1 over all %d experts, prompt and merged experts included) "+
		"and scores it with the chosen expert. **MTL-all** is one LoRA trained on all %d tasks' training splits mixed "+
		"(examples drawn in proportion to task size, per-example loss weight), with the dataset experts' recipe "+
		"(rank 4, alpha 8, lr 1e-3, 10%% warm-up then linear decay, batch 8, max-len 128, no EOS, clip 1, seed %d) and "+
		"%v steps (13 × the experts' 300: the same number of steps per task).\n\n",
		*evalN, *evalN, *seed, len(taskNames), rep.Experts, len(taskNames), *seed, info["steps"])
	sb.WriteString("| task | n | majority | base | dataset expert | MTL-all | auto (top-1) | macro-F1 base / expert / MTL / auto | auto routed to (task: count) |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range sr.Tasks {
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %s | %s | %s | %s / %s / %s / %s | %s |\n", r.Task, r.N, pct(r.Majority),
			pct(r.Base.Accuracy), pct(r.Expert.Accuracy), pct(r.MTL.Accuracy), pct(r.Auto.Accuracy),
			pct(r.Base.MacroF1), pct(r.Expert.MacroF1), pct(r.MTL.MacroF1), pct(r.Auto.MacroF1), counts(r.AutoOwner))
	}
	fmt.Fprintf(&sb, "| **mean** | | %s | %s | %s | %s | %s | %s / %s / %s / %s | |\n\n", pct(sr.Mean["majority"]),
		pct(sr.Mean["base"]), pct(sr.Mean["dataset_expert"]), pct(sr.Mean["mtl_all"]), pct(sr.Mean["auto_top1"]),
		pct(sr.MeanF1["base"]), pct(sr.MeanF1["dataset_expert"]), pct(sr.MeanF1["mtl_all"]), pct(sr.MeanF1["auto_top1"]))
	beat := map[string]int{}
	for _, r := range sr.Tasks {
		for c, x := range map[string]float64{"base": r.Base.Accuracy, "dataset_expert": r.Expert.Accuracy, "mtl_all": r.MTL.Accuracy, "auto_top1": r.Auto.Accuracy} {
			if x > r.Majority+1e-9 {
				beat[c]++
			}
		}
	}
	if len(sr.Unscorable) > 0 {
		fmt.Fprintf(&sb, "Not in the table: %s, whose templates have no answer choices (regression prompts), so rank "+
			"classification cannot score them; their experts still take part in routing and in MTL-all.\n\n", strings.Join(sr.Unscorable, ", "))
	}
	fmt.Fprintf(&sb, "Tasks where the condition beats the majority class: base %d, dataset expert %d, MTL-all %d, auto %d (of %d). "+
		"The majority baseline is the most frequent gold answer *string*: with templates mixed, one class is spelled "+
		"differently by different templates (yes / True / entailment), so it understates the class majority, and it is "+
		"near 0 where the answer choices are the example's own sentences (copa, dream). "+
		"MTL-all training: %s.\n\n![seen tasks](seen_tasks.png)\n",
		beat["base"], beat["dataset_expert"], beat["mtl_all"], beat["auto_top1"], len(sr.Tasks), mtlInfo(info))
	rep.md = append(rep.md, sb.String())
	return nil
}

func mtlInfo(info map[string]any) string {
	if p, ok := info["loaded_from"]; ok {
		return fmt.Sprintf("loaded from %v (trained by an earlier run: %v steps, final loss %v)", p, info["steps"], info["final_loss"])
	}
	return fmt.Sprintf("%v steps, final loss %.3f, %.0f s", info["steps"], info["final_loss"], info["seconds"])
}

// counts formats a count map, largest first.
func counts(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var xs []kv
	for k, v := range m {
		xs = append(xs, kv{k, v})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].v > xs[j].v || xs[i].v == xs[j].v && xs[i].k < xs[j].k })
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%s: %d", x.k, x.v))
	}
	return strings.Join(parts, ", ")
}

// ---- 2. Routing ----

// RoutingReport is section 2.
type RoutingReport struct {
	Queries int                `json:"queries_q1"`
	Trials  int                `json:"trials_q_gt_1"`
	Seed    uint64             `json:"seed"`
	Tasks   []taskRouting      `json:"tasks"`
	Mean    map[string]float64 `json:"mean"`
}

// routingQ: top-1 routing accuracy at Q = 1, 8, 32 for each task with a
// dataset expert, over the shipped library (roe eval routing's logic).
func routingQ(e *env, rep *Report) error {
	taskNames, err := datasetTasks(e.lib)
	if err != nil {
		return err
	}
	ix, owner, err := buildIndex(e, e.lib)
	if err != nil {
		return err
	}
	rr := &RoutingReport{Queries: *queries, Trials: *trials, Seed: *routeSeed, Mean: map[string]float64{}}
	for _, t := range taskNames {
		tr, err := routeTask(e, ix, owner, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		rr.Tasks = append(rr.Tasks, tr)
	}
	rr.Mean = routingMeans(rr.Tasks)
	rep.Routing = rr
	logf("routing mean Q=1 %.3f Q=8 %.3f Q=32 %.3f", rr.Mean["q1"], rr.Mean["q8"], rr.Mean["q32"])

	var sb strings.Builder
	fmt.Fprintf(&sb, "## 2. Routing\n\n")
	fmt.Fprintf(&sb, "How often the vote of Q query instances picks the task's own expert (a dataset expert, or a prompt "+
		"expert of the task; `merged/*` experts count as wrong), over all %d shipped experts. Queries are the task's "+
		"validation (else test) examples, each rendered with a seeded random template; %d single queries at Q = 1 and "+
		"%d random draws at Q = 8 and 32 (= `roe eval routing --data ../shared/data/tasks/<task> --templates "+
		"../shared/data/templates --queries %d --trials %d --seed %d`).\n\n",
		rep.Experts, *queries, *trials, *queries, *trials, *routeSeed)
	sb.WriteString(routingTable(rr.Tasks, rr.Mean))
	sb.WriteString("\n![routing accuracy vs Q](routing_vs_q.png)\n")
	rep.md = append(rep.md, sb.String())
	return nil
}

// routingMeans is the mean routing accuracy over tasks at each Q ("q1", "q8", "q32").
func routingMeans(ts []taskRouting) map[string]float64 {
	out := map[string]float64{}
	for _, q := range qList {
		var xs []float64
		for _, t := range ts {
			xs = append(xs, t.At(q))
		}
		out[fmt.Sprintf("q%d", q)] = mean(xs)
	}
	return out
}

func routingTable(ts []taskRouting, m map[string]float64) string {
	var sb strings.Builder
	sb.WriteString("| task | split | Q = 1 | Q = 8 | Q = 32 | Q = 1 mistakes (task: count) |\n|---|---|---:|---:|---:|---|\n")
	for _, t := range ts {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", t.Task, t.Split, pct(t.At(1)), pct(t.At(8)), pct(t.At(32)), counts(t.Confusion))
	}
	if m != nil {
		fmt.Fprintf(&sb, "| **mean** | | %s | %s | %s | |\n", pct(m["q1"]), pct(m["q8"]), pct(m["q32"]))
	}
	return sb.String()
}

// ---- 3. Adding an expert ----

// AddReport is section 3.
type AddReport struct {
	NewExpert     string             `json:"new_expert"`
	TrainSplit    string             `json:"train_split"`
	TrainItems    int                `json:"train_items"`
	EveryTemplate bool               `json:"every_template"` // each example rendered with every template
	Steps         int                `json:"steps"`
	TrainSeconds  float64            `json:"train_seconds"`
	FinalLoss     float64            `json:"final_loss"`
	ProbeTokens   int                `json:"probe_tokens"`
	Compared      int                `json:"experts_compared"`
	MaxAbsDelta   float64            `json:"max_abs_logit_delta"`
	Identical     int                `json:"bit_identical"`
	Before        taskRouting        `json:"routing_before"`
	After         taskRouting        `json:"routing_after"`
	OthersBefore  map[string]float64 `json:"other_tasks_mean_before"`
	OthersAfter   map[string]float64 `json:"other_tasks_mean_after"`
	BaseAcc       tasks.EvalResult   `json:"new_task_base"`
	NewAcc        tasks.EvalResult   `json:"new_task_new_expert"`
	AutoBeforeAcc tasks.EvalResult   `json:"new_task_auto_before"`
}

const probeText = "Once upon a time, a girl read a review: the acting is superb. Question: Was that sentence positive or negative? Answer:"

// probeLogits runs the fixed probe through the base model with each expert of
// lib (by name) and returns the logits of every probe token.
func probeLogits(e *env, lib *library.Library, names []string) (map[string][]float32, error) {
	ids := e.tok.Encode(probeText, true)
	out := map[string][]float32{}
	for _, nm := range names {
		l, err := e.lora(lib, nm, false)
		if err != nil {
			return nil, err
		}
		o, err := e.m.Forward([]model.Step{{Cache: e.m.NewCache(), Tokens: ids, Adapter: l, AllLogits: true}})
		if err != nil {
			return nil, err
		}
		out[nm] = o[0].Logits
	}
	return out, nil
}

// addExpert trains a dataset expert for a task the library lacks, adds it to a
// copy of the library, and checks that (a) every other expert computes the
// same logits on a fixed probe, bit for bit, and (b) the task now routes to it.
func addExpert(e *env, rep *Report) error {
	task := *newTask
	have, err := datasetTasks(e.lib)
	if err != nil {
		return err
	}
	for _, t := range have {
		if t == task {
			return fmt.Errorf("the library already has a %s expert: choose another -new-task", task)
		}
	}
	// The library copy: a Badger backup of the shipped library restored into a new folder.
	lib2, err := copyLib(e, "lib-copy", nil)
	if err != nil {
		return err
	}
	ms, err := lib2.List()
	if err != nil {
		return err
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	before, err := probeLogits(e, lib2, names)
	if err != nil {
		return err
	}
	ix, owner, err := buildIndex(e, lib2)
	if err != nil {
		return err
	}
	ar := &AddReport{NewExpert: task, OthersBefore: map[string]float64{}, OthersAfter: map[string]float64{}}
	var others []taskRouting
	if ar.Before, others, err = routeTasks(e, ix, owner, task, have); err != nil {
		return err
	}
	items, sp, err := evalItems(e, task, *evalN)
	if err != nil {
		return err
	}
	if ar.BaseAcc, err = tasks.EvalRank(e.m, nil, e.tok, items, e.eo); err != nil {
		return err
	}
	per, _, err := routeEach(e, ix, items)
	if err != nil {
		return err
	}
	if ar.AutoBeforeAcc, err = tasks.EvalRankEach(e.m, func(i int) model.Adapter { return per[i] }, e.tok, items, e.eo); err != nil {
		return err
	}

	l, titems, err := trainNewExpert(e, task, items, ar)
	if err != nil {
		return err
	}
	if err := addNewExpert(e, lib2, task, l, titems, ar); err != nil {
		return err
	}
	// Reopen the copy so that "after" reads what Badger stored.
	if err := lib2.Close(); err != nil {
		return err
	}
	if lib2, err = openLib(e, filepath.Join(e.work, "lib-copy")); err != nil {
		return err
	}
	defer lib2.Close()
	after, err := probeLogits(e, lib2, names)
	if err != nil {
		return err
	}
	ar.ProbeTokens = len(e.tok.Encode(probeText, true))
	compareProbes(ar, names, before, after)
	ix2, owner2, err := buildIndex(e, lib2)
	if err != nil {
		return err
	}
	var othersAfter []taskRouting
	if ar.After, othersAfter, err = routeTasks(e, ix2, owner2, task, have); err != nil {
		return err
	}
	for _, q := range qList {
		var b, a []float64
		for i := range others {
			b, a = append(b, others[i].At(q)), append(a, othersAfter[i].At(q))
		}
		k := fmt.Sprintf("q%d", q)
		ar.OthersBefore[k], ar.OthersAfter[k] = mean(b), mean(a)
	}
	rep.Add = ar
	logf("add %s: %d/%d experts bit-identical (max |Δ| %g); routing Q=1 %.3f → %.3f", task, ar.Identical, ar.Compared,
		ar.MaxAbsDelta, ar.Before.At(1), ar.After.At(1))
	rep.md = append(rep.md, addExpertMD(ar, sp, len(have), len(names)))
	return nil
}

// routeTasks routes the new task and then each of the tasks the library has.
func routeTasks(e *env, ix *experts.Searchable, owner map[string]string, task string, have []string) (taskRouting, []taskRouting, error) {
	tr, err := routeTask(e, ix, owner, task)
	if err != nil {
		return tr, nil, err
	}
	var others []taskRouting
	for _, t := range have {
		o, err := routeTask(e, ix, owner, t)
		if err != nil {
			return tr, nil, err
		}
		others = append(others, o)
	}
	return tr, others, nil
}

// trainNewExpert trains the new expert with the dataset experts' recipe on
// the task's training split (a few-shot split: every example with every
// template) and evaluates it on items.
func trainNewExpert(e *env, task string, items []tasks.Item, ar *AddReport) (*adapters.LoRA, []tasks.Item, error) {
	ar.TrainSplit = "train"
	if _, err := os.Stat(filepath.Join(e.tasks, task, "train.jsonl")); err != nil {
		ar.TrainSplit = "train_fewglue32"
	}
	titems, err := trainItems(e, task, ar.TrainSplit)
	if err != nil {
		return nil, nil, err
	}
	if len(titems) < library.DefaultSampleSize {
		// A few-shot split (boolq's 32 examples): every example with every template.
		if titems, err = everyTemplate(e, task, ar.TrainSplit); err != nil {
			return nil, nil, err
		}
		ar.EveryTemplate = true
	}
	ar.TrainItems = len(titems)
	o := recipe(*newSteps)
	t0 := time.Now()
	l, srep, err := train.TrainStrategy(context.Background(), e.m, e.tok, train.TaskData{Name: task, Items: titems}, nil, o,
		train.StrategyOptions{Strategy: train.Single})
	if err != nil {
		return nil, nil, err
	}
	ar.TrainSeconds, ar.Steps, ar.FinalLoss = time.Since(t0).Seconds(), srep.Steps(), srep.Phases[0].FinalLoss
	logf("trained %s: %d steps on %d items, loss %.3f, %.0f s", task, ar.Steps, ar.TrainItems, ar.FinalLoss, ar.TrainSeconds)
	if ar.NewAcc, err = tasks.EvalRank(e.m, l, e.tok, items, e.eo); err != nil {
		return nil, nil, err
	}
	return l, titems, nil
}

// addNewExpert adds the trained adapter to the library copy as a dataset
// expert with S of its training instances.
func addNewExpert(e *env, lib *library.Library, task string, l *adapters.LoRA, titems []tasks.Item, ar *AddReport) error {
	cfg, tensors, err := library.ExpertFromLoRA(l)
	if err != nil {
		return err
	}
	ins := make([]library.Instance, len(titems))
	for i, it := range titems {
		ins[i] = library.Instance{Text: it.Input, AnswerChoices: it.AnswerChoices, Target: it.Target}
	}
	x := &library.Expert{
		Manifest: library.Manifest{Name: task, Kind: library.KindDataset, Dataset: task,
			Description: "bench-quality: " + task + ", all templates",
			Training:    library.Training{DataSize: len(titems), Steps: ar.Steps, Seeds: []int64{int64(*seed)}}},
		AdapterConfig: cfg, Tensors: tensors, Instances: ins,
	}
	if err := experts.Prepare(x, e.m, e.emb, e.format, experts.AddOptions{Seed: *seed}); err != nil {
		return err
	}
	_, err = lib.Add(x)
	return err
}

// compareProbes counts the experts whose probe logits are bit-identical
// before and after the addition, and the largest difference.
func compareProbes(ar *AddReport, names []string, before, after map[string][]float32) {
	for _, nm := range names {
		a, b := before[nm], after[nm]
		d := 0.0
		same := len(a) == len(b)
		for i := range a {
			if i >= len(b) {
				break
			}
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				same = false
			}
			d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		}
		ar.Compared++
		ar.MaxAbsDelta = math.Max(ar.MaxAbsDelta, d)
		if same {
			ar.Identical++
		}
	}
}

// addExpertMD is section 3 of the report; sp is the evaluation split, nOthers
// the tasks the library had, nExperts its experts.
func addExpertMD(ar *AddReport, sp string, nOthers, nExperts int) string {
	task := ar.NewExpert
	var sb strings.Builder
	fmt.Fprintf(&sb, "## 3. Adding an expert\n\n")
	fmt.Fprintf(&sb, "The library lacks %s. A dataset expert for it was trained with the starter recipe (%d steps, "+
		"seed %d) on its `%s` split (%d rendered examples, %s; %.0f s, final loss %.3f), given S ≤ %d of its "+
		"training instances, and added to a copy of the shipped library (Badger backup → restore into a new folder; "+
		"nothing else retrained, no router to refit).\n\n",
		task, ar.Steps, *seed, ar.TrainSplit, ar.TrainItems, tmplNote(ar.EveryTemplate), ar.TrainSeconds, ar.FinalLoss, library.DefaultSampleSize)
	fmt.Fprintf(&sb, "**(a) The other experts are untouched.** Each of the %d experts already in the library was read back "+
		"from the copy before and after the addition (after reopening the library), and the base model ran the same "+
		"%d-token probe with it (`model.Forward`, logits of every position): **%d of %d bit-identical, max |Δlogit| = %g**.\n\n",
		ar.Compared, ar.ProbeTokens, ar.Identical, ar.Compared, ar.MaxAbsDelta)
	fmt.Fprintf(&sb, "**(b) The new task routes to its expert.** Routing accuracy for %s (%s split; same protocol as section 2):\n\n", task, ar.Before.Split)
	fmt.Fprintf(&sb, "| library | Q = 1 | Q = 8 | Q = 32 | Q = 1 mistakes (task: count) | other %d tasks, mean Q = 1 / 8 / 32 |\n|---|---:|---:|---:|---|---|\n", nOthers)
	fmt.Fprintf(&sb, "| before (%d experts) | %s | %s | %s | %s | %s / %s / %s |\n", nExperts, pct(ar.Before.At(1)), pct(ar.Before.At(8)),
		pct(ar.Before.At(32)), counts(ar.Before.Confusion), pct(ar.OthersBefore["q1"]), pct(ar.OthersBefore["q8"]), pct(ar.OthersBefore["q32"]))
	fmt.Fprintf(&sb, "| after (+ %s) | %s | %s | %s | %s | %s / %s / %s |\n\n", task, pct(ar.After.At(1)), pct(ar.After.At(8)),
		pct(ar.After.At(32)), counts(ar.After.Confusion), pct(ar.OthersAfter["q1"]), pct(ar.OthersAfter["q8"]), pct(ar.OthersAfter["q32"]))
	fmt.Fprintf(&sb, "Accuracy on %s (%s, n = %d, as in section 1): base %s, per-example auto routing before the addition %s, "+
		"the new expert %s (majority class %s).\n\n![adding an expert](add_expert.png)\n",
		task, sp, ar.BaseAcc.N, pct(ar.BaseAcc.Accuracy), pct(ar.AutoBeforeAcc.Accuracy), pct(ar.NewAcc.Accuracy), pct(ar.BaseAcc.Majority.Accuracy))
	return sb.String()
}

func tmplNote(every bool) string {
	if every {
		return "each example rendered with every one of its templates, since the split is tiny"
	}
	return "all templates mixed"
}

// everyTemplate renders every example of a split with each of the task's templates.
func everyTemplate(e *env, task, split string) ([]tasks.Item, error) {
	ts, fm, err := tasks.TemplatesFor(task, e.tmpl)
	if err != nil {
		return nil, err
	}
	ex, err := tasks.LoadTask(filepath.Join(e.tasks, task), split)
	if err != nil {
		return nil, err
	}
	var out []tasks.Item
	for _, t := range ts {
		items, _, err := tasks.RenderItems(ex, []tasks.Template{t}, fm, 0, *seed)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

// scorable reports whether rank classification scores the item (tasks.EvalRank
// skips items without answer choices or whose target is not among them).
func scorable(it tasks.Item) bool {
	for _, c := range it.AnswerChoices {
		if c == it.Target {
			return true
		}
	}
	return false
}
