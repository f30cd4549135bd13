package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"roe/kernels"
)

func TestLinearWarmupDecay(t *testing.T) {
	// total 100, warmup 10: HF get_linear_schedule_with_warmup(num_warmup_steps=10)
	for _, c := range []struct {
		step int
		want float64
	}{{0, 0}, {1, 0.1}, {5, 0.5}, {10, 1}, {11, 89.0 / 90}, {55, 0.5}, {99, 1.0 / 90}, {100, 0}, {150, 0}} {
		if got := LinearWarmupDecay(c.step, 100, 0.1, 1); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("step %d: %g, want %g", c.step, got, c.want)
		}
	}
	if w := WarmupSteps(15, 0.1); w != 2 { // ceil(1.5)
		t.Errorf("WarmupSteps(15, 0.1) = %d", w)
	}
	if got := LinearWarmupDecay(0, 10, 0, 2e-5); got != 2e-5 {
		t.Errorf("no warmup: step 0 rate %g", got)
	}
}

func TestClipGradNorm(t *testing.T) {
	g := map[string][]float32{"a": {3, 0}, "b": {4}}
	if n := ClipGradNorm(g, 0); n != 5 || g["a"][0] != 3 {
		t.Fatalf("measure only: %g %v", n, g)
	}
	if n := ClipGradNorm(g, 1); n != 5 {
		t.Fatalf("norm %g", n)
	}
	if n := GlobalNorm(g); math.Abs(n-1) > 1e-6 {
		t.Fatalf("after clipping: %g", n)
	}
}

// TestAccumulate: two micro-batches accumulated give the big batch's token-mean
// loss and gradients.
func TestAccumulate(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
	r := rand.New(rand.NewPCG(21, 22))
	b := randomTrainBatch(r, m.Config.VocabSize, 10, 7, 20)
	loss, g, err := LossAndGrads(m, l, b, true)
	if err != nil {
		t.Fatal(err)
	}
	var acc Accumulator
	for _, part := range []Batch{{b.Tokens[:1], b.LossMask[:1]}, {b.Tokens[1:], b.LossMask[1:]}} {
		pl, pg, err := LossAndGrads(m, l, part, true)
		if err != nil {
			t.Fatal(err)
		}
		acc.Add(pl, pg)
	}
	if acc.Tokens() != b.Targets() {
		t.Fatalf("accumulated %d tokens, batch has %d", acc.Tokens(), b.Targets())
	}
	al, ag := acc.Result()
	if math.Abs(al-loss) > 1e-6 {
		t.Errorf("accumulated loss %.9f, batch %.9f", al, loss)
	}
	all := g.All()
	worst := 0.0
	for _, k := range SortedKeys(all) {
		worst = max(worst, compareVec(t, k, ag[k], all[k], 1e-6, 1e-4))
	}
	t.Logf("max |Δ| %.3g", worst)
}

// TestThreadsAgree: results do not depend on the kernel thread count beyond
// float32 summation order.
func TestThreadsAgree(t *testing.T) {
	m := loadRefModel(t, storiesDir)
	r := rand.New(rand.NewPCG(31, 32))
	b := randomTrainBatch(r, m.Config.VocabSize, 64, 33, 50, 64)
	defer kernels.SetThreads(kernels.Threads())
	kernels.SetThreads(1)
	l1, g1, err := LossAndGrads(m, nil, b, true)
	if err != nil {
		t.Fatal(err)
	}
	kernels.SetThreads(4)
	l4, g4, err := LossAndGrads(m, nil, b, true)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(l1-l4) > 1e-6 {
		t.Errorf("loss %.9f vs %.9f", l1, l4)
	}
	for _, k := range SortedKeys(g1.Base) {
		compareVec(t, k, g4.Base[k], g1.Base[k], 1e-6, 1e-4)
	}
}

func TestBatchErrors(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	for _, b := range []Batch{
		{},
		{Tokens: [][]int{{1, 2}}, LossMask: [][]bool{{false, false}}}, // no targets
		{Tokens: [][]int{{1, 2}}, LossMask: [][]bool{{false}}},
		{Tokens: [][]int{{1, 9999}}, LossMask: [][]bool{{false, true}}},
		{Tokens: [][]int{{}}, LossMask: [][]bool{{}}},
	} {
		if _, err := Loss(m, nil, b); err == nil {
			t.Errorf("batch %v accepted", b)
		}
	}
	if _, err := FromPadded([][]int{{1, 2, 3}}, [][]int{{0, 1, 1}}, [][]int{{0, 1, 1}}); err == nil {
		t.Error("left padding accepted")
	}
}

func TestAdamWStateErrors(t *testing.T) {
	o := NewAdamW(1e-3, 0)
	p := map[string][]float32{"x": {1, 2}}
	if err := o.Step(p, map[string][]float32{"y": {1, 1}}, 1e-3); err == nil {
		t.Error("gradient for an unknown parameter accepted")
	}
	if err := o.Step(p, map[string][]float32{"x": {1}}, 1e-3); err == nil {
		t.Error("short gradient accepted")
	}
	if err := o.LoadState(map[string][]float32{"x.exp_avg": {0, 0}}); err == nil {
		t.Error("incomplete state accepted")
	}
}
