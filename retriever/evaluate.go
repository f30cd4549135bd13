package retriever

import (
	"math"
	"math/rand/v2"
)

// RoutingScore is a task's routing accuracy at one Q.
type RoutingScore struct {
	Q        int     `json:"q"`
	Trials   int     `json:"trials"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

// TaskRouting is how often routing picks a task's own expert.
type TaskRouting struct {
	Task      string         `json:"task"`
	Split     string         `json:"split"`
	Scores    []RoutingScore `json:"scores"`
	Confusion map[string]int `json:"confused_with,omitempty"` // Q = 1 mistakes by the chosen expert's task
}

// At is the accuracy at q, NaN when q was not measured.
func (t TaskRouting) At(q int) float64 {
	for _, s := range t.Scores {
		if s.Q == q {
			return s.Accuracy
		}
	}
	return math.NaN()
}

// EvalOptions configure EvalRouting.
type EvalOptions struct {
	Qs      []int  // query instances per decision (default 1, 8, 32)
	Singles int    // decisions at Q = 1 (default 64)
	Trials  int    // decisions at each Q > 1 (default 16)
	Seed    uint64 // draws are PCG(Seed, len(task))
	// Route is the routing of each decision; TopK is forced to 1, and
	// QueryTexts is set from the drawn queries when Route.Lexical or
	// Route.Signatures is set.
	Route RouteOptions
}

// EvalRouting draws Q of the task's query instances (texts, already in the
// instance format) at random, routes them as one request and counts how often
// the top expert stands for task (taskOf maps an expert to its task). Each
// text is embedded once, however often it is drawn.
func EvalRouting(ix *Index, emb Embedder, task string, texts []string, taskOf func(expert string) string, o EvalOptions) (TaskRouting, error) {
	if len(o.Qs) == 0 {
		o.Qs = []int{1, 8, 32}
	}
	if o.Singles <= 0 {
		o.Singles = 64
	}
	if o.Trials <= 0 {
		o.Trials = 16
	}
	tr := TaskRouting{Task: task, Confusion: map[string]int{}}
	cache := map[int][]float32{}
	r := rand.New(rand.NewPCG(o.Seed, uint64(len(task))))
	for _, q := range o.Qs {
		if q > len(texts) {
			continue
		}
		n := o.Trials
		if q == 1 {
			n = o.Singles
		}
		sc := RoutingScore{Q: q}
		for t := 0; t < n; t++ {
			idx := r.Perm(len(texts))[:q]
			var miss []string
			var missIdx []int
			for _, j := range idx {
				if _, ok := cache[j]; !ok {
					miss, missIdx = append(miss, texts[j]), append(missIdx, j)
				}
			}
			if len(miss) > 0 {
				embs, err := emb.Embed(miss)
				if err != nil {
					return tr, err
				}
				for k, j := range missIdx {
					cache[j] = embs[k]
				}
			}
			qs := make([][]float32, q)
			batch := make([]string, q)
			for i, j := range idx {
				qs[i], batch[i] = cache[j], texts[j]
			}
			ro := o.Route
			ro.TopK = 1
			if ro.Lexical != nil || ro.Signatures != nil {
				ro.QueryTexts = batch
			}
			rt, err := ix.Route(qs, ro)
			if err != nil {
				return tr, err
			}
			sc.Trials++
			if len(rt.Experts) > 0 && taskOf(rt.Experts[0].Name) == task {
				sc.Correct++
			} else if q == 1 && len(rt.Experts) > 0 {
				tr.Confusion[taskOf(rt.Experts[0].Name)]++
			}
		}
		if sc.Trials > 0 {
			sc.Accuracy = float64(sc.Correct) / float64(sc.Trials)
		}
		tr.Scores = append(tr.Scores, sc)
	}
	return tr, nil
}
