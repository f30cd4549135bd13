// Package templated renders a task's held-out examples with the library's own
// promptsource templates: the routing queries of benchmarks/quality's section 2,
// shared with benchmarks/routing so that both report the same numbers.
package templated

import (
	"math/rand/v2"
	"os"
	"path/filepath"

	"roe/retriever"
	"roe/tasks"
)

// EvalSplit is the task folder's validation split, else test.
func EvalSplit(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "validation.jsonl")); err == nil {
		return "validation"
	}
	return "test"
}

// QueryTexts renders each held-out example of task (under tasksDir) with a
// template drawn (seeded) from its templates (under tmplDir), as cmd/roe's
// taskInstances does, in the instance format. It returns the texts and the split.
func QueryTexts(tasksDir, tmplDir, task, format string, seed uint64) ([]string, string, error) {
	dir := filepath.Join(tasksDir, task)
	sp := EvalSplit(dir)
	ex, err := tasks.LoadTask(dir, sp)
	if err != nil {
		return nil, "", err
	}
	ts, fm, err := tasks.TemplatesFor(task, tmplDir)
	if err != nil {
		return nil, "", err
	}
	r := rand.New(rand.NewPCG(seed, 0xda7a))
	var out []string
	for _, x := range ex {
		for _, i := range r.Perm(len(ts)) {
			rd, err := ts[i].Render(fm.Apply(x))
			if err != nil || rd.Input == "" {
				continue
			}
			out = append(out, retriever.FormatInstance(format, rd.Input, rd.AnswerChoices))
			break
		}
	}
	return out, sp, nil
}
