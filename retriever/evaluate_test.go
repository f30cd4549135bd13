package retriever

import (
	"math"
	"strings"
	"testing"
)

// axisEmbedder puts texts starting with "a" on one axis and the rest on the
// other, and counts what it embeds.
type axisEmbedder struct{ calls int }

func (e *axisEmbedder) Embed(texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		e.calls++
		if strings.HasPrefix(t, "a") {
			out[i] = []float32{1, 0.1}
		} else {
			out[i] = []float32{0.1, 1}
		}
	}
	return out, nil
}
func (e *axisEmbedder) Dim() int   { return 2 }
func (e *axisEmbedder) ID() string { return "axis" }

func TestEvalRouting(t *testing.T) {
	emb := &axisEmbedder{}
	ix := NewIndex(2, Raw)
	if err := ix.Add("alpha", [][]float32{{1, 0}}, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add("beta/p", [][]float32{{0, 1}}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	taskOf := func(x string) string { return strings.SplitN(x, "/", 2)[0] }
	// 3 of 4 queries of task "alpha" look like alpha: Q = 1 is right 3/4 of the
	// time on average, a vote of 3 or more always is.
	texts := []string{"a1", "a2", "a3", "b1"}
	tr, err := EvalRouting(ix, emb, "alpha", texts, taskOf, EvalOptions{Qs: []int{1, 3, 8}, Singles: 4000, Trials: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.At(1); math.Abs(got-0.75) > 0.03 {
		t.Errorf("Q = 1 accuracy %.3f, want ≈ 0.75", got)
	}
	if got := tr.At(3); got != 1 {
		t.Errorf("Q = 3 accuracy %.3f, want 1", got)
	}
	if !math.IsNaN(tr.At(8)) || len(tr.Scores) != 2 {
		t.Errorf("Q = 8 > 4 texts should be skipped: %+v", tr.Scores)
	}
	if tr.Confusion["beta"] == 0 || len(tr.Confusion) != 1 {
		t.Errorf("confusion %v, want mistakes counted under beta", tr.Confusion)
	}
	if emb.calls != len(texts) {
		t.Errorf("embedded %d texts, want each of the %d once", emb.calls, len(texts))
	}
	// The same seed draws the same queries.
	again, _ := EvalRouting(ix, emb, "alpha", texts, taskOf, EvalOptions{Qs: []int{1, 3, 8}, Singles: 4000, Trials: 20, Seed: 1})
	if again.At(1) != tr.At(1) {
		t.Errorf("not reproducible: %v vs %v", again.At(1), tr.At(1))
	}
}
