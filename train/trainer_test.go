package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"roe/internal/testmodel"
	"slices"
	"testing"

	"roe/adapters"
	"roe/model"
	"roe/tasks"
)

// toyTask: "is X happy?" → yes/no by a word of the input.
func toyTask(n int, task int) []tasks.Item {
	pos := []string{"happy", "glad", "smiled", "laughed", "fun"}
	neg := []string{"sad", "cried", "angry", "scared", "lost"}
	var out []tasks.Item
	for i := 0; i < n; i++ {
		w, target := pos[i%len(pos)], "yes"
		if i%2 == 1 {
			w, target = neg[i%len(neg)], "no"
		}
		in := "Tom was " + w + " at the park. Was he happy?"
		if task == 1 {
			in = "Lily felt " + w + ". Good day?"
		}
		out = append(out, tasks.Item{Rendered: tasks.Rendered{Input: in, Target: target, AnswerChoices: []string{"no", "yes"}}, Task: task})
	}
	return out
}

func TestEncodeItem(t *testing.T) {
	_, tok := testmodel.Stories260K(t)
	it := tasks.Item{Rendered: tasks.Rendered{Input: "Once upon a time there was a cat. Is it happy?", Target: "yes"}}
	s, err := EncodeItem(tok, it, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.BOS()
	eos, _ := tok.EOS()
	if s.Tokens[0] != bos || s.Tokens[len(s.Tokens)-1] != eos {
		t.Fatalf("want BOS … EOS, got %v", s.Tokens)
	}
	ctx := tok.Encode(it.Input, true)
	for i, m := range s.LossMask {
		if m != (i >= len(ctx)) {
			t.Fatalf("loss mask %v for context of %d tokens", s.LossMask, len(ctx))
		}
	}
	// The target tokens are what the joint encoding adds.
	whole := tok.Encode(it.Input+" yes", true)
	if !slices.Equal(s.Tokens[:len(s.Tokens)-1], whole) {
		t.Errorf("tokens %v, joint encoding %v", s.Tokens, whole)
	}
	// Truncation from the left keeps BOS and the whole target.
	nt := len(s.Tokens) - len(ctx)
	short, err := EncodeItem(tok, it, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(short.Tokens) != 8 || short.Tokens[0] != bos || !slices.Equal(short.Tokens[8-nt:], s.Tokens[len(s.Tokens)-nt:]) ||
		!slices.Equal(short.Tokens[1:8-nt], ctx[len(ctx)-(7-nt):]) {
		t.Errorf("truncated %v from %v", short.Tokens, s.Tokens)
	}
}

func toySeqs(t *testing.T, tok tasks.Tokenizer, n int) []Sequence {
	seqs, _, err := EncodeItems(tok, toyTask(n, 0), 64, false)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func runToy(t *testing.T, m *model.Model, seqs []Sequence, o Options) (*Trainer, *adapters.LoRA) {
	t.Helper()
	l, err := NewLoRA(m.Config, 4, 8, AllTargets, o.Seed)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, l, seqs, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tr, l
}

func loraBytesEqual(a, b *adapters.LoRA) bool {
	pa, pb := LoRAParams(a), LoRAParams(b)
	for k, v := range pa {
		w := pb[k]
		if len(w) != len(v) {
			return false
		}
		for i := range v {
			if math.Float32bits(v[i]) != math.Float32bits(w[i]) {
				return false
			}
		}
	}
	return len(pa) == len(pb)
}

func TestTrainerDeterministicAndLearns(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	seqs := toySeqs(t, tok, 40)
	var progress []Progress
	o := Options{LR: 3e-3, BatchSize: 4, Steps: 30, Seed: 3, LogEvery: 5, ClipNorm: 1, WeightDecay: 0.01,
		Progress: func(p Progress) { progress = append(progress, p) }}
	t1, l1 := runToy(t, m, seqs, o)
	o.Progress = nil
	t2, l2 := runToy(t, m, seqs, o)
	if !slices.Equal(t1.Losses, t2.Losses) || !loraBytesEqual(l1, l2) {
		t.Fatalf("same seed, different runs:\n%v\n%v", t1.Losses, t2.Losses)
	}
	first := (t1.Losses[0] + t1.Losses[1] + t1.Losses[2]) / 3
	last := (t1.Losses[27] + t1.Losses[28] + t1.Losses[29]) / 3
	if !(last < first*0.7) {
		t.Errorf("loss did not fall: %v", t1.Losses)
	}
	if len(progress) != 30 || progress[29].Step != 30 || progress[29].Total != 30 || progress[29].TokensPerSec <= 0 {
		t.Fatalf("progress %+v", progress[len(progress)-1])
	}
	logged := 0
	for _, p := range progress {
		if len(p.LayerGradNorms) == m.Config.NumLayers {
			logged++
			for _, v := range p.LayerGradNorms {
				if !(v > 0) && p.Step > 1 {
					t.Errorf("step %d: layer norms %v", p.Step, p.LayerGradNorms)
				}
			}
		}
	}
	if logged < 6 {
		t.Errorf("layer gradient norms logged %d times", logged)
	}
	// Another seed gives another run.
	o.Seed = 4
	t3, _ := runToy(t, m, seqs, o)
	if slices.Equal(t1.Losses, t3.Losses) {
		t.Error("seed has no effect")
	}
}

func TestTrainerResume(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	seqs := toySeqs(t, tok, 20)
	o := Options{LR: 2e-3, BatchSize: 3, GradAccum: 2, Steps: 8, Seed: 9, WeightDecay: 0.1}
	_, full := runToy(t, m, seqs, o)

	dir := t.TempDir()
	half := o
	half.StopAfter, half.CheckpointDir = 4, dir
	tr, _ := runToy(t, m, seqs, half)
	if tr.Step() != 4 {
		t.Fatalf("stopped at %d", tr.Step())
	}
	for _, f := range []string{"adapter/adapter_model.safetensors", "optimizer.safetensors", "trainer.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh process: new adapter (other init), state from the checkpoint.
	l, _ := NewLoRA(m.Config, 4, 8, AllTargets, 12345)
	tr2, err := NewTrainer(m, l, seqs, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.LoadCheckpoint(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := tr2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tr2.Step() != 8 || !loraBytesEqual(full, l) {
		t.Fatal("8 steps ≠ 4 steps + resume 4")
	}
	// A checkpoint from another seed is refused.
	o.Seed = 10
	tr3, _ := NewTrainer(m, l, seqs, o)
	if err := tr3.LoadCheckpoint(dir); err == nil {
		t.Error("checkpoint of another seed accepted")
	}
}

func TestWeightedLossMatchesPlainBatch(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	seqs := toySeqs(t, tok, 4)
	l, _ := NewLoRA(m.Config, 4, 8, AllTargets, 1)
	for _, pr := range LoRAParams(l) {
		for i := range pr {
			pr[i] += 0.01 * float32(i%7-3)
		}
	}
	tr, _ := NewTrainer(m, l, seqs, Options{BatchSize: 4})
	var acc weightedGrads
	if err := tr.add(&acc, seqs); err != nil {
		t.Fatal(err)
	}
	loss, g, err := LossAndGrads(m, l, MakeBatch(seqs), false)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(acc.lossNum/acc.den-loss) > 1e-9 {
		t.Errorf("weight 1: loss %v vs %v", acc.lossNum/acc.den, loss)
	}
	// Weighting one example by 3 equals repeating it three times.
	w := slices.Clone(seqs)
	w[0].Weight = 3
	var acc2 weightedGrads
	if err := tr.add(&acc2, w); err != nil {
		t.Fatal(err)
	}
	rep := append([]Sequence{seqs[0], seqs[0]}, seqs...)
	loss3, g3, _ := LossAndGrads(m, l, MakeBatch(rep), false)
	if math.Abs(acc2.lossNum/acc2.den-loss3) > 1e-6 {
		t.Errorf("weight 3: loss %v vs repeated %v", acc2.lossNum/acc2.den, loss3)
	}
	for k, v := range g3.LoRA {
		s := acc2.sum[k]
		for i := range v {
			if d := math.Abs(float64(s[i])/acc2.den - float64(v[i])); d > 1e-5*(1+math.Abs(float64(v[i]))) {
				t.Fatalf("%s[%d]: %v vs %v", k, i, float64(s[i])/acc2.den, v[i])
			}
		}
	}
	_ = g
}

func TestChooseStrategyAndWeights(t *testing.T) {
	big, small := TaskData{"t", toyTask(10, 0)}, TaskData{"a", toyTask(4, 1)}
	if s, why, _ := ChooseStrategy(Auto, big, []TaskData{small}); s != STILTs || why == "" {
		t.Errorf("large target: %s (%s)", s, why)
	}
	if s, _, _ := ChooseStrategy(Auto, small, []TaskData{big}); s != MTL {
		t.Errorf("small target: %s", s)
	}
	if _, _, err := ChooseStrategy(STILTs, big, nil); err == nil {
		t.Error("stilts without aux accepted")
	}
	w, _ := MTLWeights(PerTask, []int{10, 30}, 0)
	if math.Abs(w[0]*10-w[1]*30) > 1e-9 || math.Abs(w[0]*10+w[1]*30-40) > 1e-9 {
		t.Errorf("per-task weights %v", w)
	}
	w, _ = MTLWeights(TargetUp, []int{10, 30}, 3)
	if w[0] != 3 || w[1] != 1 {
		t.Errorf("target weights %v", w)
	}
}

func TestStrategies(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	target, aux := TaskData{"t", toyTask(12, 0)}, TaskData{"a", toyTask(24, 1)}
	o := Options{Rank: 4, LR: 2e-3, BatchSize: 4, Steps: 4, Seed: 1}
	for _, s := range []Strategy{Single, STILTs, MTL, Auto} {
		auxs := []TaskData{aux}
		if s == Single {
			auxs = nil
		}
		l, rep, err := TrainStrategy(context.Background(), m, tok, target, auxs, o, StrategyOptions{Strategy: s, Weighting: PerTask})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		wantPhases := map[Strategy]int{Single: 1, STILTs: 2, MTL: 1, Auto: 1}[s]
		if l == nil || len(rep.Phases) != wantPhases || rep.Reason == "" {
			t.Errorf("%s: %+v", s, rep)
		}
		if s == Auto && rep.Strategy != MTL {
			t.Errorf("auto with a smaller target chose %s", rep.Strategy)
		}
		if s == MTL && rep.Phases[0].Sequences != 36 {
			t.Errorf("mtl trained on %d sequences", rep.Phases[0].Sequences)
		}
	}
}

func TestCPI(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	dir := t.TempDir()
	tasks := []TaskData{{"t", toyTask(12, 0)}, {"a", toyTask(12, 1)}}
	o := Options{Rank: 4, LR: 3e-3, BatchSize: 4, Steps: 6, Seed: 2}
	l, rep, err := TrainCPI(context.Background(), m, tok, tasks, o, CPIOptions{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if l == nil || len(rep.Jaccard) != 2 || rep.Jaccard[0][0] != 1 || rep.Jaccard[0][1] != rep.Jaccard[1][0] {
		t.Fatalf("report %+v", rep)
	}
	if rep.CoreDrift != 0 {
		t.Errorf("core entries moved by %g in the final fine-tune", rep.CoreDrift)
	}
	if rep.FrozenParams == 0 || rep.TrainableParams == 0 || len(rep.Phases) != 3 {
		t.Errorf("frozen %d trainable %d phases %d", rep.FrozenParams, rep.TrainableParams, len(rep.Phases))
	}
	for _, f := range []string{"task-t/adapter_model.safetensors", "task-a/adapter_config.json", "masks.json", "jaccard.json", "fused/adapter_model.safetensors", "final/adapter_model.safetensors", "report.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := adapters.Load(filepath.Join(dir, "final"), m.Config); err != nil {
		t.Error(err)
	}
}

func TestGroupTasks(t *testing.T) {
	J := [][]float64{{1, 0.2, 0}, {0.2, 1, 0.05}, {0, 0.05, 1}}
	g := groupTasks(J, 0.1)
	if len(g) != 2 || !slices.Equal(g[0], []int{0, 1}) || !slices.Equal(g[1], []int{2}) {
		t.Errorf("groups %v", g)
	}
	a := []moduleMask{{0, 0, []int{1, 2, 3}}}
	b := []moduleMask{{0, 0, []int{2, 3, 4}}, {1, 0, []int{7}}}
	if j := jaccard(a, b); math.Abs(j-2.0/5) > 1e-12 {
		t.Errorf("jaccard %v", j)
	}
}

func TestEvalRankAfterTraining(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	res, err := tasks.EvalRank(m, nil, tok, toyTask(10, 0), tasks.EvalOptions{LengthNorm: true})
	if err != nil {
		t.Fatal(err)
	}
	// Training on the task makes the adapter beat the base model.
	seqs, _, _ := EncodeItems(tok, toyTask(40, 0), 64, false)
	l, _ := NewLoRA(m.Config, 8, 16, AllTargets, 1)
	tr, _ := NewTrainer(m, l, seqs, Options{LR: 5e-3, BatchSize: 8, Steps: 60, Seed: 1})
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, err := tasks.EvalRank(m, l, tok, toyTask(10, 0), tasks.EvalOptions{LengthNorm: true})
	if err != nil {
		t.Fatal(err)
	}
	if after.Accuracy < 0.9 {
		t.Errorf("after training: %v (base %v)", after, res)
	}
}

// A bf16 or GGUF base trains like its float32 twin: LoRA trains over a bf16
// base as stored (the adapter differs only by bf16's rounding), and an F32
// GGUF gives the same adapter bytes as its safetensors.
func TestTrainOnNonFloat32Base(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	seqs := toySeqs(t, tok, 12)
	o := Options{LR: 3e-3, BatchSize: 4, Steps: 3, Seed: 3, ClipNorm: 1}
	_, want := runToy(t, m, seqs, o)
	// bf16 rounds the base weights, so that adapter differs slightly; it
	// must be finite.
	_, got := runToy(t, m.WithBF16(), seqs, o)
	for k, v := range LoRAParams(got) {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s: non-finite", k)
			}
		}
	}
	g := testmodel.GGUF(t, "../../shared/golden/gguf/stories260K/stories260K-F32.gguf", model.LoadOptions{})
	if _, got := runToy(t, g, seqs, o); !loraBytesEqual(got, want) {
		t.Error("the F32 GGUF of stories260K trains another adapter than its safetensors")
	}
}
