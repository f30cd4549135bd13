package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"testing"

	"roe/model/safetensors"
)

const goldenDir = "../../shared/golden/tiny-llama"
const storiesDir = "../../shared/data/models/stories260K-hf"

func needDir(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "reference data not present: %v", err)
	}
}

func loadModel(t testing.TB, dir string) *Model {
	t.Helper()
	needDir(t, dir)
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func openGolden(t testing.TB, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ints(t testing.TB, f *safetensors.File, name string) []int {
	t.Helper()
	v, err := f.Int32(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func floats(t testing.TB, f *safetensors.File, name string) []float32 {
	t.Helper()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// forwardWhole runs ids through a fresh cache in one step.
func forwardWhole(t testing.TB, m *Model, ids []int, a Adapter) Output {
	t.Helper()
	out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids, Adapter: a, AllLogits: true, Hidden: true}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// forwardStepwise feeds ids one token at a time through the KV cache.
func forwardStepwise(t testing.TB, m *Model, ids []int, a Adapter) Output {
	t.Helper()
	c := m.NewCache()
	var o Output
	for _, id := range ids {
		out, err := m.Forward([]Step{{Cache: c, Tokens: []int{id}, Adapter: a, Hidden: true}})
		if err != nil {
			t.Fatal(err)
		}
		o.Logits = append(o.Logits, out[0].Logits...)
		o.Hidden = append(o.Hidden, out[0].Hidden...)
	}
	return o
}

const tol = 1e-4

func TestGoldenLogits(t *testing.T) {
	for _, dir := range []string{goldenDir, filepath.Join(goldenDir, "qwen2")} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadModel(t, dir)
			g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
			for k := 0; k < 4; k++ {
				ids := ints(t, g, fmt.Sprintf("seq%d.input_ids", k))
				wantLogits := floats(t, g, fmt.Sprintf("seq%d.logits", k))
				wantHidden := floats(t, g, fmt.Sprintf("seq%d.last_hidden_state", k))
				wantMean := floats(t, g, fmt.Sprintf("seq%d.last_hidden_state_mean", k))
				whole := forwardWhole(t, m, ids, nil)
				if d := maxAbsDiff(whole.Logits, wantLogits); d > tol {
					t.Errorf("seq%d whole-sequence logits: max |Δ| = %.3g", k, d)
				}
				if d := maxAbsDiff(whole.Hidden, wantHidden); d > tol {
					t.Errorf("seq%d last hidden state: max |Δ| = %.3g", k, d)
				}
				step := forwardStepwise(t, m, ids, nil)
				if d := maxAbsDiff(step.Logits, wantLogits); d > tol {
					t.Errorf("seq%d token-by-token logits: max |Δ| = %.3g", k, d)
				}
				if d := maxAbsDiff(step.Hidden, wantHidden); d > tol {
					t.Errorf("seq%d token-by-token hidden: max |Δ| = %.3g", k, d)
				}
				e, err := m.Embed(ids, nil)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(e, wantMean); d > tol {
					t.Errorf("seq%d mean-pooled embedding: max |Δ| = %.3g", k, d)
				}
			}
		})
	}
}

// TestGoldenHiddenStates checks the residual stream after the embedding via
// seq0.hidden_states.0 = embeddings (a cheap check of the embedding lookup).
func TestGoldenEmbeddingRows(t *testing.T) {
	m := loadModel(t, goldenDir)
	g := openGolden(t, filepath.Join(goldenDir, "golden.safetensors"))
	ids := ints(t, g, "seq0.input_ids")
	want := floats(t, g, "seq0.hidden_states.0")
	H := m.Config.HiddenSize
	got := make([]float32, len(ids)*H)
	for i, id := range ids {
		m.embedRow(got[i*H:(i+1)*H], id)
	}
	if d := maxAbsDiff(got, want); d > 0 {
		t.Errorf("embedding rows differ by %.3g", d)
	}
}

// A batch of different sequences, prefilled together and then decoded together,
// gives each sequence what it gets alone.
func TestBatchEqualsAlone(t *testing.T) {
	m := loadModel(t, goldenDir)
	g := openGolden(t, filepath.Join(goldenDir, "golden.safetensors"))
	var seqs [][]int
	for k := 0; k < 4; k++ {
		seqs = append(seqs, ints(t, g, fmt.Sprintf("seq%d.input_ids", k)))
	}
	// Prefill all but the last 3 tokens of each (seq1 has 1 token: prefill it whole).
	caches := make([]*Cache, len(seqs))
	steps := make([]Step, len(seqs))
	split := make([]int, len(seqs))
	for i, s := range seqs {
		caches[i] = m.NewCache()
		split[i] = max(1, len(s)-3)
		steps[i] = Step{Cache: caches[i], Tokens: s[:split[i]], AllLogits: true}
	}
	out, err := m.Forward(steps)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]float32, len(seqs))
	for i := range seqs {
		got[i] = append(got[i], out[i].Logits...)
	}
	for {
		var st []Step
		var idx []int
		for i, s := range seqs {
			if n := caches[i].Len(); n < len(s) {
				st = append(st, Step{Cache: caches[i], Tokens: s[n : n+1]})
				idx = append(idx, i)
			}
		}
		if len(st) == 0 {
			break
		}
		out, err := m.Forward(st)
		if err != nil {
			t.Fatal(err)
		}
		for j, i := range idx {
			got[i] = append(got[i], out[j].Logits...)
		}
	}
	for i := range seqs {
		want := floats(t, g, fmt.Sprintf("seq%d.logits", i))
		if d := maxAbsDiff(got[i], want); d > tol {
			t.Errorf("seq%d in a batch: max |Δ| = %.3g", i, d)
		}
	}
}

func TestStoriesGolden(t *testing.T) {
	m := loadModel(t, storiesDir)
	g := openGolden(t, filepath.Join(storiesDir, "golden.safetensors"))
	ids := ints(t, g, "greedy.input_ids")
	want := floats(t, g, "greedy.logits")
	whole := forwardWhole(t, m, ids, nil)
	if d := maxAbsDiff(whole.Logits, want); d > tol {
		t.Errorf("greedy sequence logits: max |Δ| = %.3g", d)
	}
	// Greedy decoding from BOS reproduces the golden tokens.
	c := m.NewCache()
	next := ids[:1]
	for i := 1; i < len(ids); i++ {
		out, err := m.Forward([]Step{{Cache: c, Tokens: next}})
		if err != nil {
			t.Fatal(err)
		}
		tok := Argmax(out[0].Logits)
		if tok != ids[i] {
			t.Fatalf("greedy token %d: got %d, want %d", i, tok, ids[i])
		}
		next = []int{tok}
	}
	p := ints(t, g, "prompt.input_ids")
	o := forwardWhole(t, m, p, nil)
	if d := maxAbsDiff(o.Logits, floats(t, g, "prompt.logits")); d > tol {
		t.Errorf("prompt logits: max |Δ| = %.3g", d)
	}
	if d := maxAbsDiff(o.Hidden, floats(t, g, "prompt.last_hidden_state")); d > tol {
		t.Errorf("prompt hidden: max |Δ| = %.3g", d)
	}
}

// seq0.hidden_states.1 is the residual stream after block 0 (HF output_hidden_states).
func TestGoldenMiddleLayer(t *testing.T) {
	m := loadModel(t, goldenDir)
	g := openGolden(t, filepath.Join(goldenDir, "golden.safetensors"))
	ids := ints(t, g, "seq0.input_ids")
	out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids, Hidden: true, HiddenLayer: 1, NoLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(out[0].Hidden, floats(t, g, "seq0.hidden_states.1")); d > tol {
		t.Errorf("hidden states after layer 1: max |Δ| = %.3g", d)
	}
	if _, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids, Hidden: true, HiddenLayer: 3}}); err == nil {
		t.Error("a layer past the model was accepted")
	}
}
