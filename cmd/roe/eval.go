package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"roe/retriever"
	"roe/serve"
	"roe/train"
)

func runEval(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "routing" {
		return evalRouting(args[1:], stdout)
	}
	return evalTask(args, stdout)
}

// routingScore is one task's routing accuracy at one Q.
type routingScore struct {
	Q        int     `json:"q"`
	Trials   int     `json:"trials"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

type taskRouting struct {
	Task      string         `json:"task"`
	Split     string         `json:"split"`
	Scores    []routingScore `json:"scores"`
	Confusion map[string]int `json:"confused_with,omitempty"` // Q = 1 mistakes by chosen expert
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
	norm := fs.String("normalization", string(retriever.CenterL2), "center-l2, l2 or raw")
	agg := fs.String("aggregation", string(retriever.Vote), "vote, sum-top-m or softmax")
	lexical := fs.Bool("lexical", false, "fuse BM25 (reciprocal rank fusion)")
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
	tasks, err := expandTaskDirs(dirs)
	if err != nil {
		return err
	}
	m, emb, lib, err := lf.open()
	if err != nil {
		return err
	}
	defer lib.Close()
	_ = m
	ix, lx, err := serve.BuildIndex(lib, emb, *lf.format, retriever.Normalization(*norm), *lexical)
	if err != nil {
		return err
	}
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
	var report []taskRouting
	mean := map[int][]float64{}
	for _, dir := range tasks {
		task := filepath.Base(dir)
		sp := *split
		if sp == "" {
			sp = "validation"
			if _, err := os.Stat(filepath.Join(dir, "validation.jsonl")); err != nil {
				sp = "test"
			}
		}
		ex, err := train.LoadTask(dir, sp)
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
		tr := taskRouting{Task: task, Split: sp, Confusion: map[string]int{}}
		r := rand.New(rand.NewPCG(*seed, uint64(len(task))))
		for _, q := range qlist {
			n := *trials
			if q == 1 {
				n = *perTask
			}
			if q > len(texts) {
				continue
			}
			sc := routingScore{Q: q}
			for t := 0; t < n; t++ {
				idx := r.Perm(len(texts))[:q]
				batch := make([]string, q)
				for i, j := range idx {
					batch[i] = texts[j]
				}
				embs, err := emb.Embed(batch)
				if err != nil {
					return err
				}
				o := retriever.RouteOptions{TopK: 1, Aggregation: retriever.Aggregation(*agg)}
				if lx != nil {
					o.Lexical, o.QueryTexts = lx, batch
				}
				rt, err := ix.Route(embs, o)
				if err != nil {
					return err
				}
				sc.Trials++
				if len(rt.Experts) > 0 && owner[rt.Experts[0].Name] == task {
					sc.Correct++
				} else if q == 1 && len(rt.Experts) > 0 {
					tr.Confusion[owner[rt.Experts[0].Name]]++
				}
			}
			if sc.Trials > 0 {
				sc.Accuracy = float64(sc.Correct) / float64(sc.Trials)
				mean[q] = append(mean[q], sc.Accuracy)
			}
			tr.Scores = append(tr.Scores, sc)
		}
		report = append(report, tr)
	}
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
		Embedder      string             `json:"embedder"`
		Normalization string             `json:"normalization"`
		Aggregation   string             `json:"aggregation"`
		Lexical       bool               `json:"lexical"`
		Experts       int                `json:"experts"`
		Average       map[string]float64 `json:"average"`
		Tasks         []taskRouting      `json:"tasks"`
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
