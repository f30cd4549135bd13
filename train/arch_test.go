package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"roe/adapters"
	"roe/model"
	"roe/model/safetensors"
)

// Training on the families of ../shared/golden/arch: train's own forward
// (which keeps activations for the backward) is held to the same float64
// goldens as the inference forward, its gradients to finite differences on
// every kind of parameter, and a LoRA trained a few steps lowers the loss.

const archDir = "../../shared/golden/arch"

var archNames = []string{"qwen3", "gemma2", "gemma3", "phi3"}

// TestArchGoldenNLL: −log p(next token) from train's forward equals the one
// from the golden logits (float64 log-softmax), every position of every
// sequence, each sequence its own batch (longrope picks its factors per batch).
func TestArchGoldenNLL(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(archDir, name)
			m := loadRefModel(t, dir)
			g := readTensors(t, filepath.Join(dir, "golden.safetensors"))
			V := m.Config.VocabSize
			worst := 0.0
			for _, seq := range []string{"seq0", "seq2", "greedy"} {
				ids := readIDs(t, filepath.Join(dir, "golden.safetensors"), seq+".input_ids")
				mask := make([]bool, len(ids))
				for i := range mask {
					mask[i] = true
				}
				got, err := TokenNLLs(m, nil, Batch{Tokens: [][]int{ids}, LossMask: [][]bool{mask}})
				if err != nil {
					t.Fatal(err)
				}
				logits := g[seq+".logits"]
				for tt := 0; tt+1 < len(ids); tt++ {
					row := logits[tt*V : (tt+1)*V]
					mx := math.Inf(-1)
					for _, v := range row {
						mx = max(mx, float64(v))
					}
					var sum float64
					for _, v := range row {
						sum += math.Exp(float64(v) - mx)
					}
					want := mx + math.Log(sum) - float64(row[ids[tt+1]])
					d := math.Abs(got[0][tt] - want)
					worst = max(worst, d)
					if d > 2e-4 {
						t.Fatalf("%s position %d: nll %.6g, golden %.6g", seq, tt, got[0][tt], want)
					}
				}
			}
			t.Logf("max |Δnll| %.3g", worst)
		})
	}
}

// archBatch: sequences longer than the sliding windows (and, for Phi-3, past
// longrope's original context, so the long factors are in play).
func archBatch(m *model.Model, seed uint64) Batch {
	r := rand.New(rand.NewPCG(seed, 5))
	lens := []int{21, 13}
	if m.Config.Rope.Type == "longrope" {
		lens = []int{70, 30}
	}
	return randomTrainBatch(r, m.Config.VocabSize, lens...)
}

// TestArchFD: LoRA gradients on every projection and full gradients of every
// base tensor (norms, q/k norms, fused Phi-3 tensors, embeddings) against
// central differences.
func TestArchFD(t *testing.T) {
	for _, name := range append(archNames, "gemma2-tight-caps") {
		t.Run(name, func(t *testing.T) {
			dir := strings.TrimSuffix(name, "-tight-caps")
			m := loadRefModel(t, filepath.Join(archDir, dir)).Clone()
			if dir != name {
				// Caps that most scores and logits reach, so that the
				// tanh's derivative weighs in the gradients.
				m.Config.AttnSoftcap, m.Config.FinalSoftcap = 1.5, 2
			}
			l := adapters.Random(m.Config, 2, 3)
			for i := range l.Layers {
				for p, pr := range l.Layers[i] {
					for j := range pr.B {
						pr.B[j] *= 20
					}
					l.SetPair(i, model.Proj(p), pr)
				}
			}
			b := archBatch(m, 7)
			_, g, err := LossAndGrads(m, l, b, true)
			if err != nil {
				t.Fatal(err)
			}
			var cases []fdCase
			lp := LoRAParams(l)
			for _, k := range SortedKeys(lp) {
				cases = append(cases, fdCase{k, lp[k], g.LoRA[k]})
			}
			params := BaseParams(m)
			for _, k := range SortedKeys(params) {
				if g.Base[k] == nil {
					t.Fatalf("no gradient for %s", k)
				}
				cases = append(cases, fdCase{k, params[k], g.Base[k]})
			}
			fdCheck(t, lossFunc(t, m, l, b), cases, 1, 11)
		})
	}
}

// TestArchLoRALearns: a rank-4 LoRA on all projections, trained a few steps
// on a fixed set of sequences, lowers their loss.
func TestArchLoRALearns(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			m := loadRefModel(t, filepath.Join(archDir, name))
			r := rand.New(rand.NewPCG(2, 2))
			var seqs []Sequence
			for i := 0; i < 8; i++ {
				b := randomTrainBatch(r, m.Config.VocabSize, 24)
				seqs = append(seqs, Sequence{Tokens: b.Tokens[0], LossMask: b.LossMask[0]})
			}
			targets := AllTargets
			if m.Config.FusedQKV {
				targets = []string{"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
			}
			l, err := NewLoRA(m.Config, 4, 8, targets, 1)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := NewTrainer(m, l, seqs, Options{LR: 1e-2, BatchSize: 4, Steps: 20, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			first, last := tr.Losses[0]+tr.Losses[1], tr.Losses[18]+tr.Losses[19]
			if !(last < 0.8*first) {
				t.Errorf("loss did not fall: %v", tr.Losses)
			}
			// The trained adapter, run by the inference forward, scores the
			// sequences as training's forward does.
			SyncLoRA(l)
			b := Batch{Tokens: [][]int{seqs[0].Tokens}, LossMask: [][]bool{seqs[0].LossMask}}
			want, err := TokenNLLs(m, l, b)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: seqs[0].Tokens, Adapter: l, AllLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			V := m.Config.VocabSize
			for tt := 0; tt+1 < len(seqs[0].Tokens); tt++ {
				if !seqs[0].LossMask[tt+1] {
					continue
				}
				row := out[0].Logits[tt*V : (tt+1)*V]
				got := nll(row, seqs[0].Tokens[tt+1])
				if d := math.Abs(got - want[0][tt]); d > 1e-4 {
					t.Fatalf("position %d: inference nll %.6g, training %.6g", tt, got, want[0][tt])
				}
			}
			t.Logf("loss %s", fmt.Sprint(tr.Losses[0], " → ", tr.Losses[19]))
		})
	}
}

func readIDs(t testing.TB, path, name string) []int {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Int32(name)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(v))
	for i, x := range v {
		ids[i] = int(x)
	}
	return ids
}

func nll(row []float32, y int) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = max(mx, float64(v))
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s) - float64(row[y])
}
