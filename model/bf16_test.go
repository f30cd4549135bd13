package model

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"roe/kernels"
)

// bf16Tol is how far bf16-weight logits may stray from the float32 golden
// ones, relative to the largest |logit| of the sequence: rounding every
// weight to 8 significant bits (relative error ≤ 2⁻⁹) moves these small test
// models' logits by 0.02–0.09 absolute, about 1% of their range (measured:
// see the test log). float32 weights stay within tol = 1e-4 absolute.
const bf16Tol = 2e-2

func TestBF16Golden(t *testing.T) {
	for _, dir := range []string{goldenDir, filepath.Join(goldenDir, "qwen2"), storiesDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			needDir(t, dir)
			m, err := LoadWith(dir, LoadOptions{Weights: WeightsBF16})
			if err != nil {
				t.Fatal(err)
			}
			if m.WeightFormat() != WeightsBF16 {
				t.Fatalf("format %s", m.WeightFormat())
			}
			f32 := loadModel(t, dir)
			if w := f32.WithBF16(); w.NumParams() != m.NumParams() {
				t.Errorf("WithBF16 has %d params, LoadWith %d", w.NumParams(), m.NumParams())
			}
			g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
			names := []string{"seq0", "seq1", "seq2", "seq3"}
			if dir == storiesDir {
				names = []string{"greedy", "prompt"}
			}
			for _, n := range names {
				ids := ints(t, g, n+".input_ids")
				want := floats(t, g, n+".logits")
				whole := forwardWhole(t, m, ids, nil)
				d := maxAbsDiff(whole.Logits, want)
				step := forwardStepwise(t, m, ids, nil)
				ds := maxAbsDiff(step.Logits, want)
				scale := 0.0
				for _, v := range want {
					scale = max(scale, float64(v), -float64(v))
				}
				t.Logf("%s: bf16 max |Δlogit| whole %.3g, stepwise %.3g; max |logit| %.3g", n, d, ds, scale)
				if d > bf16Tol*scale || ds > bf16Tol*scale {
					t.Errorf("%s: bf16 logits off by %.3g / %.3g (tolerance %g × %.3g)", n, d, ds, bf16Tol, scale)
				}
			}
			// A bf16 model's clone widens to float32 and stays usable.
			c := m.CloneWeights()
			if c.Weight(0, ProjQ) == nil || m.Weight(0, ProjQ) != nil {
				t.Error("CloneWeights of a bf16 model should hold f32 projections")
			}
		})
	}
}

func TestParseWeightFormat(t *testing.T) {
	for in, want := range map[string]WeightFormat{"": WeightsF32, "f32": WeightsF32, "BF16": WeightsBF16, "bfloat16": WeightsBF16} {
		if got, err := ParseWeightFormat(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseWeightFormat("int4"); err == nil {
		t.Error("int4 accepted")
	}
}

// smallShape is a model big enough to run every kernel path (parallel GEMMs,
// several attention items) and small enough for a unit test.
func smallShape() Config {
	c, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":128,"intermediate_size":320,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":1000,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":512,"tie_word_embeddings":true}`))
	if err != nil {
		panic(err)
	}
	return c
}

// decodeLoop prepares batch sequences with a prompt each and returns one
// decode step over all of them (with outputs reused), rewinding the caches.
func decodeLoop(t testing.TB, m *Model, batch int) func() {
	caches := make([]*Cache, batch)
	steps := make([]Step, batch)
	for i := range caches {
		caches[i] = m.NewCache()
		ids := benchTokens(20 + i)
		for j := range ids {
			ids[j] %= m.Config.VocabSize
		}
		if _, err := m.Forward([]Step{{Cache: caches[i], Tokens: ids}}); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]Output, batch)
	tok := make([][]int, batch)
	for i := range tok {
		tok[i] = []int{(i * 31) % m.Config.VocabSize}
	}
	return func() {
		for i, c := range caches {
			c.Truncate(20 + i)
			steps[i] = Step{Cache: c, Tokens: tok[i]}
		}
		if err := m.ForwardInto(steps, out); err != nil {
			t.Fatal(err)
		}
	}
}

// A decode step (every sequence one token) allocates nothing once warm: f32
// and bf16, one sequence and a batch, serial (AllocsPerRun runs with
// GOMAXPROCS=1) and, below, with real helper threads.
func TestDecodeAllocs(t *testing.T) {
	base := randomModel(t, smallShape())
	for _, m := range []*Model{base, base.WithBF16()} {
		for _, batch := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/batch=%d", m.WeightFormat(), batch), func(t *testing.T) {
				step := decodeLoop(t, m, batch)
				step()
				if a := testing.AllocsPerRun(20, step); a != 0 {
					t.Errorf("%v allocations per decode step", a)
				}
			})
		}
	}
}

func TestDecodeAllocsParallel(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2")
	}
	defer kernels.SetThreads(kernels.Threads())
	kernels.SetThreads(2)
	m := randomModel(t, smallShape())
	step := decodeLoop(t, m, 4)
	for range 50 {
		step()
	}
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for range 100 {
		step()
	}
	runtime.ReadMemStats(&b)
	if d := b.Mallocs - a.Mallocs; d > 10 {
		t.Errorf("100 parallel decode steps made %d allocations", d)
	}
}

// ForwardInto from several goroutines at once (each with its own caches and
// outputs) matches the serial results: the pooled workspaces are not shared.
func TestForwardConcurrent(t *testing.T) {
	m := randomModel(t, smallShape())
	ids := benchTokens(30)
	for j := range ids {
		ids[j] %= m.Config.VocabSize
	}
	want, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			out := make([]Output, 1)
			for range 5 {
				if err := m.ForwardInto([]Step{{Cache: m.NewCache(), Tokens: ids}}, out); err != nil {
					done <- err
					return
				}
				if d := maxAbsDiff(out[0].Logits, want[0].Logits); d != 0 {
					done <- fmt.Errorf("concurrent logits differ by %g", d)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
