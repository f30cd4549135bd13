package adapters

import (
	"math"
	"os"
	"testing"

	"roe/internal/testenv"

	"roe/kernels"
	"roe/model"
)

// A sequence decoding alone on two threads has its rank updates spread over
// the pool by output columns (model.LowRank): its logits must be the very
// bits of the one-thread path, which adds each delta whole (AddDelta).
func TestSpreadDeltaBitIdentical(t *testing.T) {
	// Widths that are not multiples of the column blocks, so blocks end
	// short; two ranks so the factors differ per module.
	cfg, err := model.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":320,"intermediate_size":600,
	"num_hidden_layers":2,"num_attention_heads":5,"num_key_value_heads":1,"vocab_size":300,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":256}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Random(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("float32", func(t *testing.T) { checkSpread(t, m) })
	// A Llama GGUF base keeps q and k in llama.cpp's row order and puts
	// their outputs back before the deltas are added.
	path := "../../shared/golden/gguf/tiny-llama-k256/tiny-llama-k256-Q4_K_M.gguf"
	if _, err := os.Stat(path); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	q, f, err := model.LoadGGUF(path, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Run("Q4_K_M", func(t *testing.T) { checkSpread(t, q) })
}

func checkSpread(t *testing.T, m *model.Model) {
	cfg := m.Config
	lora := Random(cfg, 8, 5)
	lora.Layers[1][model.ProjK] = nil // a module left unadapted
	defer kernels.SetThreads(kernels.Threads())
	run := func(threads, rows int) ([]float32, uint64) {
		kernels.SetThreads(threads)
		c := m.NewCache()
		prompt := []int{1, 17, 42, 99, 123, 7, 25}
		if _, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt, Adapter: lora}}); err != nil {
			t.Fatal(err)
		}
		d0 := kernels.ParallelDispatches()
		out, err := m.Forward([]model.Step{{Cache: c, Tokens: prompt[:rows], Adapter: lora, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Logits, kernels.ParallelDispatches() - d0
	}
	for _, rows := range []int{1, 3, fewRows} {
		one, _ := run(1, rows)
		two, n := run(2, rows)
		if n == 0 {
			t.Errorf("%d rows: no parallel job on two threads", rows)
		}
		for i := range one {
			if math.Float32bits(one[i]) != math.Float32bits(two[i]) {
				t.Fatalf("%d rows: logit %d: %v on one thread, %v spread over two", rows, i, one[i], two[i])
			}
		}
	}
}
