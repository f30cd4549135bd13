package train

import (
	"context"
	"path/filepath"
	"testing"

	"roe/model"
)

// An expert trained on a float32 base and served unmerged over that base's
// Q4_K_M GGUF picks the same greedy tokens wherever its top-1 margin over
// float32 is larger than what quantization moves the logits.
func TestExpertOnQuantizedBase(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":256,"intermediate_size":512,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"rms_norm_eps":1e-5,
	"max_position_embeddings":256,"tie_word_embeddings":false}`))
	if err != nil {
		t.Fatal(err)
	}
	base, err := model.Random(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	// The expert learns a cycle of tokens, which gives it clear margins.
	var seqs []Sequence
	for s := 0; s < 16; s++ {
		var toks []int
		for i := 0; i < 24; i++ {
			toks = append(toks, 10+(s+i)%7)
		}
		mask := make([]bool, len(toks))
		for i := 1; i < len(mask); i++ {
			mask[i] = true
		}
		seqs = append(seqs, Sequence{Tokens: toks, LossMask: mask})
	}
	l, err := NewLoRA(cfg, 4, 8, AllTargets, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(base, l, seqs, Options{LR: 1e-2, BatchSize: 4, Steps: 40, Seed: 1, ClipNorm: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ft, err := model.ParseGGUFFileType("q4_k_m")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "base-q4_k_m.gguf")
	if err := model.SaveGGUF(path, base, model.GGUFWriteOptions{FileType: ft}); err != nil {
		t.Fatal(err)
	}
	q, f, err := model.LoadGGUF(path, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if q.Fingerprint() != base.Fingerprint() || q.WeightFormat() == model.WeightsF32 {
		t.Fatalf("the Q4_K_M file is not the same base held quantized (%s)", q.WeightFormat())
	}
	// Greedy over float32, then the same path teacher-forced over Q4_K_M.
	ids := []int{10, 11, 12}
	fc, qc := base.NewCache(), q.NewCache()
	next := ids
	checked := 0
	for step := 0; step < 32; step++ {
		fo, err := base.Forward([]model.Step{{Cache: fc, Tokens: next, Adapter: l}})
		if err != nil {
			t.Fatal(err)
		}
		qo, err := q.Forward([]model.Step{{Cache: qc, Tokens: next, Adapter: l}})
		if err != nil {
			t.Fatal(err)
		}
		fl, ql := fo[0].Logits, qo[0].Logits
		top, second := top2(fl)
		margin := float64(fl[top] - fl[second])
		moved := 0.0
		for i := range fl {
			moved = max(moved, abs64(float64(ql[i]-fl[i])))
		}
		if margin > 2*moved {
			checked++
			if got, _ := top2(ql); got != top {
				t.Fatalf("step %d: Q4_K_M picks %d, float32 %d (margin %.3g, logits moved ≤ %.3g)", step, got, top, margin, moved)
			}
		}
		next = []int{top}
	}
	if checked < 16 {
		t.Errorf("only %d of 32 steps had a margin above the quantization error: the test says little", checked)
	}
}

func top2(v []float32) (int, int) {
	a, b := 0, 1
	if v[b] > v[a] {
		a, b = b, a
	}
	for i := 2; i < len(v); i++ {
		switch {
		case v[i] > v[a]:
			a, b = i, a
		case v[i] > v[b]:
			b = i
		}
	}
	return a, b
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
