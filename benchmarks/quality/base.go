package main

import (
	"fmt"
	"math"
	"os"
	"roe/tasks"
	"strings"

	"roe/library"
	"roe/models"
)

// ---- 8. Choice of base model ----

// BaseCandidate is one base model with its own dataset experts.
type BaseCandidate struct {
	Name     string `json:"name"`
	Dir      string `json:"dir,omitempty"` // "" for the embedded model
	Params   int    `json:"params"`
	Vocab    int    `json:"vocab"`
	Embedder string `json:"embedder"`
	Experts  int    `json:"dataset_experts"`
	// Routing over the candidate's dataset experts only, per task and mean.
	Routing     []taskRouting      `json:"routing"`
	RoutingMean map[string]float64 `json:"routing_mean"`
	// Seen-task accuracy of the base model and of each task's dataset expert.
	Base       map[string]float64 `json:"base_accuracy"`
	Expert     map[string]float64 `json:"expert_accuracy"`
	MeanBase   float64            `json:"mean_base"`
	MeanExpert float64            `json:"mean_expert"`
	// Score = ½ mean expert accuracy + ½ mean routing accuracy over Q = 1 and 32.
	Score float64 `json:"score"`
}

// BaseReport is section 8.
type BaseReport struct {
	Candidates []BaseCandidate `json:"candidates"`
	Chosen     string          `json:"chosen"`
}

// baseChoice compares the embedded model with each -candidate (a Hugging Face
// folder, with its dataset experts in -candidate-experts) on what decides the
// default: routing accuracy and dataset-expert accuracy, each over the same
// tasks and with dataset experts only, so both libraries hold the same experts.
func baseChoice(e *env, rep *Report) error {
	br := &BaseReport{}
	if *embedderFlag != "base" {
		// Base models are compared by their own pooled states.
		be, cleanup, err := setupWith(models.Default(), models.StarterExperts(), "base")
		if err != nil {
			return err
		}
		defer cleanup()
		e = be
	}
	c, err := measureCandidate(e, models.DefaultName, "")
	if err != nil {
		return err
	}
	br.Candidates = append(br.Candidates, c)
	if *candidate != "" {
		if *candidateExperts == "" {
			return fmt.Errorf("-candidate needs -candidate-experts (its dataset experts: scripts/starter-library.sh with MODEL=)")
		}
		ce, cleanup, err := setupWith(os.DirFS(*candidate), os.DirFS(*candidateExperts), "base")
		if err != nil {
			return fmt.Errorf("candidate %s: %w", *candidate, err)
		}
		defer cleanup()
		c, err := measureCandidate(ce, *candidate, *candidate)
		if err != nil {
			return fmt.Errorf("candidate %s: %w", *candidate, err)
		}
		br.Candidates = append(br.Candidates, c)
	}
	best := -1.0
	for _, c := range br.Candidates {
		if c.Score > best {
			best, br.Chosen = c.Score, c.Name
		}
	}
	rep.BaseModel = br
	rep.md = append(rep.md, baseMarkdown(br))
	return nil
}

func measureCandidate(e *env, name, dir string) (BaseCandidate, error) {
	c := BaseCandidate{Name: name, Dir: dir, Params: e.m.NumParams(), Vocab: e.m.Config.VocabSize, Embedder: e.emb.ID(),
		RoutingMean: map[string]float64{}, Base: map[string]float64{}, Expert: map[string]float64{}}
	lib, err := copyLib(e, "lib-dataset", func(m library.Manifest) bool { return m.Kind == library.KindDataset })
	if err != nil {
		return c, err
	}
	defer lib.Close()
	taskNames, err := datasetTasks(lib)
	if err != nil {
		return c, err
	}
	c.Experts = len(taskNames)
	ix, owner, err := buildIndex(e, lib)
	if err != nil {
		return c, err
	}
	for _, t := range taskNames {
		tr, err := routeTask(e, ix, owner, t)
		if err != nil {
			return c, fmt.Errorf("%s: %w", t, err)
		}
		c.Routing = append(c.Routing, tr)
	}
	c.RoutingMean = routingMeans(c.Routing)
	var bs, xs []float64
	for _, t := range taskNames {
		items, _, err := evalItems(e, t, *evalN)
		if err != nil {
			return c, err
		}
		b, err := tasks.EvalRank(e.m, nil, e.tok, items, e.eo)
		if err != nil {
			continue // stsb: no answer choices
		}
		l, err := e.lora(lib, t, false)
		if err != nil {
			return c, err
		}
		x, err := tasks.EvalRank(e.m, l, e.tok, items, e.eo)
		if err != nil {
			return c, err
		}
		c.Base[t], c.Expert[t] = b.Accuracy, x.Accuracy
		bs, xs = append(bs, b.Accuracy), append(xs, x.Accuracy)
	}
	c.MeanBase, c.MeanExpert = mean(bs), mean(xs)
	c.Score = c.MeanExpert/2 + (c.RoutingMean["q1"]+c.RoutingMean["q32"])/4
	logf("base %s: routing Q=1 %.3f Q=32 %.3f, base %.3f, experts %.3f, score %.3f", name, c.RoutingMean["q1"],
		c.RoutingMean["q32"], c.MeanBase, c.MeanExpert, c.Score)
	return c, nil
}

func baseMarkdown(br *BaseReport) string {
	var sb strings.Builder
	sb.WriteString("## 8. Choice of base model\n\n")
	sb.WriteString("Each candidate with its own dataset experts (the starter recipe, trained on that base), and only those " +
		"in its library, so both libraries hold the same experts. Routing is section 2's protocol over the dataset experts; " +
		"accuracy is section 1's (base model and each task's dataset expert). The score weighs routing as much as accuracy: " +
		"½ · mean expert accuracy + ½ · mean routing accuracy over Q = 1 and Q = 32.\n\n")
	sb.WriteString("| candidate | parameters | vocab | experts | routing Q = 1 | Q = 8 | Q = 32 | base accuracy | expert accuracy | score |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range br.Candidates {
		name := c.Name
		if c.Name == br.Chosen {
			name = "**" + name + "** (chosen)"
		}
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", name, c.Params, c.Vocab, c.Experts,
			pct(c.RoutingMean["q1"]), pct(c.RoutingMean["q8"]), pct(c.RoutingMean["q32"]), pct(c.MeanBase), pct(c.MeanExpert), pct(c.Score))
	}
	if len(br.Candidates) > 1 {
		sb.WriteString("\nPer task (routing at Q = 1 / expert accuracy):\n\n| task |")
		for _, c := range br.Candidates {
			fmt.Fprintf(&sb, " %s |", c.Name)
		}
		sb.WriteString("\n|---|")
		for range br.Candidates {
			sb.WriteString("---|")
		}
		sb.WriteString("\n")
		for i, tr := range br.Candidates[0].Routing {
			fmt.Fprintf(&sb, "| %s |", tr.Task)
			for _, c := range br.Candidates {
				q1 := math.NaN()
				if i < len(c.Routing) && c.Routing[i].Task == tr.Task {
					q1 = c.Routing[i].At(1)
				}
				x, ok := c.Expert[tr.Task]
				if !ok {
					x = math.NaN()
				}
				fmt.Fprintf(&sb, " %s / %s |", pct(q1), pct(x))
			}
			sb.WriteString("\n")
		}
	} else {
		sb.WriteString("\nNo other candidate was given (-candidate DIR -candidate-experts DIR).\n")
	}
	return sb.String()
}
