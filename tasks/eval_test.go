package tasks

import (
	"math"
	"roe/internal/testenv"
	"roe/internal/testmodel"
	"testing"
)

// toyItems: "is Tom happy?" → yes/no by a word of the input.
func toyItems(n int) []Item {
	pos := []string{"happy", "glad", "smiled", "laughed", "fun"}
	neg := []string{"sad", "cried", "angry", "scared", "lost"}
	var out []Item
	for i := 0; i < n; i++ {
		w, target := pos[i%len(pos)], "yes"
		if i%2 == 1 {
			w, target = neg[i%len(neg)], "no"
		}
		out = append(out, Item{Rendered: Rendered{Input: "Tom was " + w + " at the park. Was he happy?", Target: target, AnswerChoices: []string{"no", "yes"}}})
	}
	return out
}

func TestRenderItemsPromptAndDataset(t *testing.T) {
	ts, fm, err := TemplatesFor("sst2", "../../shared/data/templates")
	if err != nil {
		testenv.SkipOrFail(t, "shared data missing: %v", err)
	}
	ex, err := LoadTask("../../shared/data/tasks/sst2", "validation")
	if err != nil {
		testenv.SkipOrFail(t, "shared data missing: %v", err)
	}
	ex = ex[:60]
	one, _ := FindTemplate(ts, "review")
	items, skipped, err := RenderItems(ex, []Template{one}, fm, 0, 1)
	if err != nil || skipped != 0 || len(items) != 60 {
		t.Fatalf("prompt expert: %d items, %d skipped, %v", len(items), skipped, err)
	}
	all, _, err := RenderItems(ex, ts, fm, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, it := range all {
		names[it.Template] = true
	}
	if len(names) < 3 {
		t.Errorf("dataset expert used templates %v", names)
	}
	again, _, _ := RenderItems(ex, ts, fm, 0, 1)
	for i := range all {
		if all[i].Template != again[i].Template {
			t.Fatal("template draw is not seeded")
		}
	}
}

func TestClassificationAndMajority(t *testing.T) {
	golds := []string{"a", "a", "a", "b"}
	preds := []string{"a", "b", "a", "b"}
	acc, f1, per := Classification(golds, preds)
	// a: P=1 R=2/3 F1=0.8; b: P=1/2 R=1 F1=2/3.
	if acc != 0.75 || math.Abs(f1-(0.8+2.0/3)/2) > 1e-12 || per["a"].Support != 3 || per["b"].Predicted != 2 {
		t.Errorf("acc %v f1 %v per %+v", acc, f1, per)
	}
	mb := MajorityBaseline(golds)
	if mb.Class != "a" || mb.Accuracy != 0.75 || math.Abs(mb.MacroF1-(6.0/7)/2) > 1e-12 {
		t.Errorf("majority %+v", mb)
	}
	rep := Summarize([]SeedRun{
		{Seed: 1, Result: &EvalResult{Accuracy: 0.9, MacroF1: 0.9, Majority: mb}},
		{Seed: 2, Result: &EvalResult{Accuracy: 0.75, MacroF1: 0.4, Majority: mb}},
		{Seed: 3, Err: "boom"},
	})
	if rep.Failed != 2 || math.Abs(rep.MeanAccuracy-0.825) > 1e-12 || rep.StdAccuracy <= 0 {
		t.Errorf("summary %+v", rep)
	}
}

func TestEvalRank(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	items := toyItems(10)
	items = append(items, Item{Rendered: Rendered{Input: "x", Target: "maybe", AnswerChoices: []string{"no", "yes"}}})
	res, err := EvalRank(m, nil, tok, items, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 10 || res.Skipped != 1 || res.Majority.Accuracy != 0.5 || len(res.PerClass) == 0 {
		t.Errorf("%+v", res)
	}
	// Batched scores equal model.LogLikelihood.
	ctx, cont, _ := SplitTokens(tok, items[0].Input, "yes", 0)
	want, _ := m.LogLikelihood(ctx, cont, nil)
	got, err := choiceScores(m, []scoreReq{{0, 0, ctx, cont, nil}, {0, 1, ctx, cont, nil}}, EvalOptions{MaxRows: 1 << 26})
	if err != nil || math.Abs(got[0]-want) > 1e-4 || math.Abs(got[1]-want) > 1e-4 {
		t.Errorf("score %v, LogLikelihood %v (%v)", got, want, err)
	}
}
