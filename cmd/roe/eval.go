package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"roe/experts"
	"roe/tasks"
	"sort"
	"strconv"
	"strings"

	"roe/retriever"
)

func runEval(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "routing" {
		return evalRouting(args[1:], stdout)
	}
	return evalTask(args, stdout)
}

// evalRouting draws query instances from each task's held-out split and checks
// whether routing picks that task's expert (an expert named after the task
// folder, or whose dataset is the task).
func evalRouting(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval routing", flag.ContinueOnError)
	lf := addLibFlags(fs)
	qs := fs.String("q", "1,8,32", "query instances per routing decision (comma-separated)")
	perTask := fs.Int("queries", 64, "Q = 1: queries drawn per task")
	trials := fs.Int("trials", 4, "Q > 1: routing decisions per task")
	split := fs.String("split", "", "split to draw queries from (default: validation, else test)")
	templates := fs.String("templates", "", "promptsource templates folder: render queries like the library's instances")
	norm := fs.String("normalization", "", "center-l2, l2 or raw (default: the embedder's; l2 for a routing encoder, else center-l2)")
	agg := fs.String("aggregation", string(retriever.Vote), "vote, sum-top-m or softmax")
	lexical := fs.Bool("lexical", false, "fuse BM25 (reciprocal rank fusion)")
	sigWeight := signatureWeightFlag(fs)
	typWeight := typicalWeightFlag(fs)
	seed := fs.Uint64("seed", 7, "sampling seed")
	var dirs stringList
	fs.Var(&dirs, "data", "task folder (repeatable; a folder of task folders also works)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	dirs = append(dirs, pos...)
	if len(dirs) == 0 {
		return usagef("eval routing needs --data DIR")
	}
	var qlist []int
	for _, s := range strings.Split(*qs, ",") {
		q, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || q < 1 {
			return usagef("--q: %q is not a positive integer", s)
		}
		qlist = append(qlist, q)
	}
	taskNames, err := expandTaskDirs(dirs)
	if err != nil {
		return err
	}
	m, emb, lib, err := lf.open()
	if err != nil {
		return err
	}
	defer lib.Close()
	_ = m
	ix, err := experts.BuildIndex(lib, emb, experts.IndexOptions{Format: *lf.format, Normalization: retriever.Normalization(*norm), Lexical: *lexical, SignatureWeight: *sigWeight, TypicalWeight: *typWeight})
	if err != nil {
		return err
	}
	defer ix.Close()
	if ix.Len() == 0 {
		return fmt.Errorf("library %s has no instances to route over", *lf.library)
	}
	ms, err := lib.List()
	if err != nil {
		return err
	}
	owner := map[string]string{} // expert → task it stands for
	for _, x := range ms {
		owner[x.Name] = x.Task()
	}
	var report []retriever.TaskRouting
	mean := map[int][]float64{}
	pr := newProgress(progressOut, "routing")
	for ti, dir := range taskNames {
		task := filepath.Base(dir)
		pr.report(ti, len(taskNames), task, map[string]any{"task": task})
		sp := *split
		if sp == "" {
			sp = "validation"
			if _, err := os.Stat(filepath.Join(dir, "validation.jsonl")); err != nil {
				sp = "test"
			}
		}
		ex, err := tasks.LoadTask(dir, sp)
		if err != nil {
			return err
		}
		ins, err := taskInstances(dir, *templates, ex, *seed)
		if err != nil {
			return err
		}
		if len(ins) == 0 {
			continue
		}
		texts := make([]string, len(ins))
		for i, in := range ins {
			texts[i] = retriever.FormatInstance(*lf.format, in.Text, in.AnswerChoices)
		}
		eo := retriever.EvalOptions{Qs: qlist, Singles: *perTask, Trials: *trials, Seed: *seed,
			Route: ix.Options(retriever.RouteOptions{Aggregation: retriever.Aggregation(*agg)}, nil)}
		tr, err := retriever.EvalRouting(ix.Index, emb, task, texts, func(x string) string { return owner[x] }, eo)
		if err != nil {
			return err
		}
		tr.Split = sp
		for _, sc := range tr.Scores {
			mean[sc.Q] = append(mean[sc.Q], sc.Accuracy)
		}
		report = append(report, tr)
	}
	pr.report(len(taskNames), len(taskNames), "tasks", nil)
	avg := map[string]float64{}
	for q, as := range mean {
		s := 0.0
		for _, a := range as {
			s += a
		}
		avg[fmt.Sprintf("q%d", q)] = s / float64(len(as))
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Embedder      string                  `json:"embedder"`
		Normalization string                  `json:"normalization"`
		Aggregation   string                  `json:"aggregation"`
		Lexical       bool                    `json:"lexical"`
		Experts       int                     `json:"experts"`
		Average       map[string]float64      `json:"average"`
		Tasks         []retriever.TaskRouting `json:"tasks"`
	}{emb.ID(), *norm, *agg, *lexical, len(ms), avg, report})
}

// expandTaskDirs accepts task folders or folders of task folders.
func expandTaskDirs(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		hasJSONL := false
		var subs []string
		for _, e := range ents {
			if e.IsDir() {
				subs = append(subs, filepath.Join(d, e.Name()))
			} else if strings.HasSuffix(e.Name(), ".jsonl") {
				hasJSONL = true
			}
		}
		if hasJSONL {
			out = append(out, filepath.Clean(d))
		} else {
			sort.Strings(subs)
			out = append(out, subs...)
		}
	}
	return out, nil
}
