package train

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"roe/internal/testmodel"
	"roe/model"
)

// An expert trained on a float32 base and served unmerged over that base's
// Q4_K_M GGUF picks the same greedy tokens wherever its top-1 margin over
// float32 is larger than what quantization moves the logits.
func TestExpertOnQuantizedBase(t *testing.T) {
	base := randomLlama(t, 256, 512, 4, 2, 512, 7)
	cfg := base.Config
	// The expert learns a cycle of tokens, which gives it clear margins.
	seqs, _ := cycleTask()
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
	q := quantized(t, base, "q4_k_m")
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

// QLoRA: LoRA over a quantized base computes the loss and gradients of its
// float32 twin (the dequantized weights), and never widens the base whole.
func TestLoRAOnQuantizedBase(t *testing.T) {
	base := randomLlama(t, 512, 2048, 8, 4, 4096, 11)
	cfg := base.Config
	var b Batch
	for s := 0; s < 2; s++ {
		var toks []int
		for i := 0; i < 16; i++ {
			toks = append(toks, (s*131+i*17)%cfg.VocabSize)
		}
		mask := make([]bool, len(toks))
		for i := 1; i < len(mask); i++ {
			mask[i] = true
		}
		b.Tokens, b.LossMask = append(b.Tokens, toks), append(b.LossMask, mask)
	}
	l, err := NewLoRA(cfg, 4, 8, AllTargets, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range LoRAParams(l) { // B starts at zero, which would zero dA
		for i := range v {
			v[i] = 0.02 * float32(math.Sin(float64(i*7+len(k))))
		}
	}
	f32Bytes := 4 * base.NumParams()
	// f16 and bf16: a GGUF's float matrices stay in its mapping too.
	for _, typ := range []string{"q8_0", "q4_0", "q4_k_m", "f16", "bf16"} {
		t.Run(typ, func(t *testing.T) {
			q := quantized(t, base, typ)
			twin := q.Clone() // float32 copy of the dequantized weights
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			lq, gq, err := LossAndGrads(q, l, b, false)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			// Activations and panels only: a whole widened copy of the base
			// alone would be the float32 model's size.
			if alloc := int(after.TotalAlloc - before.TotalAlloc); alloc > f32Bytes {
				t.Errorf("one step over %s allocated %d MiB; the float32 model is %d MiB", typ, alloc>>20, f32Bytes>>20)
			} else {
				t.Logf("one step over %s allocated %d MiB; the float32 model is %d MiB", typ, alloc>>20, f32Bytes>>20)
			}
			if tr, err := NewTrainer(q, l, []Sequence{{Tokens: b.Tokens[0], LossMask: b.LossMask[0]}}, Options{Steps: 1}); err != nil || tr.Model != q {
				t.Errorf("the trainer does not train over the quantized model as it is (err %v)", err)
			}
			lt, gt, err := LossAndGrads(twin, l, b, false)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(lq-lt) > 1e-5*math.Abs(lt) {
				t.Errorf("loss %v over %s, %v over its float32 twin", lq, typ, lt)
			}
			for k, want := range gt.LoRA {
				got := gq.LoRA[k]
				var scale, diff float64
				for i := range want {
					scale = math.Max(scale, math.Abs(float64(want[i])))
					diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
				}
				if diff > 1e-4*scale {
					t.Errorf("%s: gradient differs by %.3g (max |g| %.3g)", k, diff, scale)
				}
			}
		})
	}
}

// An adapter trained over a Q4_K_M base (QLoRA) has learned the task on the
// float32 base too: the PEFT weights do not depend on the base's storage.
func TestQLoRAAdapterOnFloat32Base(t *testing.T) {
	base := randomLlama(t, 256, 512, 4, 2, 512, 5)
	cfg := base.Config
	q := quantized(t, base, "q4_k_m")
	seqs, b := cycleTask()
	l, err := NewLoRA(cfg, 4, 8, AllTargets, 1)
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := LossAndGrads(base, l, b, false)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(q, l, seqs, Options{LR: 1e-2, BatchSize: 4, Steps: 40, Seed: 1, ClipNorm: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	afterQ, _, err := LossAndGrads(q, l, b, false)
	if err != nil {
		t.Fatal(err)
	}
	afterF, _, err := LossAndGrads(base, l, b, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss on the float32 base: %.3f untrained, %.3f with the adapter trained over Q4_K_M (%.3f over Q4_K_M)", before, afterF, afterQ)
	if afterF > before/2 || math.Abs(afterF-afterQ) > 0.1*afterQ+0.05 {
		t.Errorf("the QLoRA adapter does not carry to the float32 base: loss %.3f untrained, %.3f on float32, %.3f on Q4_K_M", before, afterF, afterQ)
	}
}

// randomLlama is a random two-layer Llama of the given widths.
func randomLlama(t *testing.T, hidden, ffn, heads, kvHeads, vocab int, seed uint64) *model.Model {
	t.Helper()
	return testmodel.Random(t, fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"hidden_size":%d,"intermediate_size":%d,
	"num_hidden_layers":2,"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":%d,"rms_norm_eps":1e-5,
	"max_position_embeddings":256,"tie_word_embeddings":false}`, hidden, ffn, heads, kvHeads, vocab), seed)
}

// quantized writes base as a GGUF of type typ with roe's quantizer and loads
// it back as roe serves it (closed when the test ends).
func quantized(t *testing.T, base *model.Model, typ string) *model.Model {
	t.Helper()
	ft, err := model.ParseGGUFFileType(typ)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), typ+".gguf")
	if err := model.SaveGGUF(path, base, model.GGUFWriteOptions{FileType: ft}); err != nil {
		t.Fatal(err)
	}
	q, f, err := model.LoadGGUF(path, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return q
}

// cycleTask is 16 sequences of a 7-token cycle, as training sequences and as
// one batch: a task with clear margins.
func cycleTask() ([]Sequence, Batch) {
	var seqs []Sequence
	var b Batch
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
		b.Tokens, b.LossMask = append(b.Tokens, toks), append(b.LossMask, mask)
	}
	return seqs, b
}
