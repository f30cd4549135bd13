package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"roe/internal/testenv"
)

// The goldens of ../shared/golden/arch: tiny random Qwen3, Gemma 2, Gemma 3
// and Phi-3 models with float64 references (logits at every position, final
// and per-layer hidden states, greedy ids). Every sequence is longer than
// the sliding windows.
const archDir = "../../shared/golden/arch"

var archNames = []string{"qwen3", "gemma2", "gemma3", "phi3"}

// planned returns a cache for a whole sequence of n tokens: the golden's
// longrope factors are those of its full length (NewCacheFor).
func planned(m *Model, n int) *Cache { return m.NewCacheFor(n) }

// stepwise feeds ids through one cache in chunks of the given size.
func stepwise(t testing.TB, m *Model, c *Cache, ids []int, chunk int) Output {
	t.Helper()
	var o Output
	for i := 0; i < len(ids); i += chunk {
		j := min(len(ids), i+chunk)
		out, err := m.Forward([]Step{{Cache: c, Tokens: ids[i:j], AllLogits: true, Hidden: true}})
		if err != nil {
			t.Fatal(err)
		}
		o.Logits = append(o.Logits, out[0].Logits...)
		o.Hidden = append(o.Hidden, out[0].Hidden...)
	}
	return o
}

func TestArchGoldens(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(archDir, name)
			m := loadModel(t, dir)
			g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
			worst := 0.0
			check := func(what string, got, want []float32) {
				t.Helper()
				d := maxAbsDiff(got, want)
				worst = max(worst, d)
				if d > tol {
					t.Errorf("%s: max |Δ| = %.3g", what, d)
				}
			}
			for k := 0; k < 3; k++ {
				ids := ints(t, g, fmt.Sprintf("seq%d.input_ids", k))
				wantLogits := floats(t, g, fmt.Sprintf("seq%d.logits", k))
				wantHidden := floats(t, g, fmt.Sprintf("seq%d.last_hidden_state", k))
				whole := forwardWhole(t, m, ids, nil)
				check(fmt.Sprintf("seq%d whole logits", k), whole.Logits, wantLogits)
				check(fmt.Sprintf("seq%d whole hidden", k), whole.Hidden, wantHidden)
				for _, chunk := range []int{1, 5, 64} {
					o := stepwise(t, m, planned(m, len(ids)), ids, chunk)
					check(fmt.Sprintf("seq%d in chunks of %d: logits", k, chunk), o.Logits, wantLogits)
					check(fmt.Sprintf("seq%d in chunks of %d: hidden", k, chunk), o.Hidden, wantHidden)
				}
			}
			// Per-layer hidden states of seq0: index 0 is the (scaled)
			// embedding, l the residual stream after block l−1, the last
			// one after the final norm.
			ids := ints(t, g, "seq0.input_ids")
			H, L := m.Config.HiddenSize, m.Config.NumLayers
			emb := make([]float32, len(ids)*H)
			for i, id := range ids {
				m.embedRow(emb[i*H:(i+1)*H], id)
				for j := range H {
					if m.Config.EmbedScale != 0 {
						emb[i*H+j] *= m.Config.EmbedScale
					}
				}
			}
			check("seq0 hidden_states.0", emb, floats(t, g, "seq0.hidden_states.0"))
			for l := 1; l <= L; l++ {
				layer := l
				if l == L {
					layer = 0 // HF's last entry has the final norm applied
				}
				out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: ids, Hidden: true, HiddenLayer: layer, NoLogits: true}})
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("seq0 hidden_states.%d", l), out[0].Hidden, floats(t, g, fmt.Sprintf("seq0.hidden_states.%d", l)))
			}
			// Greedy decoding through the KV cache reproduces the golden ids.
			gids := ints(t, g, "greedy.input_ids")
			check("greedy whole logits", forwardWhole(t, m, gids, nil).Logits, floats(t, g, "greedy.logits"))
			const prompt = 14
			c := m.NewCache()
			next := gids[:prompt]
			for i := prompt; i < len(gids); i++ {
				out, err := m.Forward([]Step{{Cache: c, Tokens: next}})
				if err != nil {
					t.Fatal(err)
				}
				tok := Argmax(out[0].Logits)
				if tok != gids[i] {
					t.Fatalf("greedy token %d: got %d, want %d", i, tok, gids[i])
				}
				next = []int{tok}
			}
			t.Logf("max |Δ| over all checks: %.3g", worst)
		})
	}
}

// Sequences of different lengths in one batch, prefilled in uneven chunks and
// then decoded together, give what each gets alone: per-sequence windows,
// caches and longrope choices do not leak across the batch.
func TestArchBatch(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(archDir, name)
			m := loadModel(t, dir)
			g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
			var seqs [][]int
			for k := 0; k < 3; k++ {
				seqs = append(seqs, ints(t, g, fmt.Sprintf("seq%d.input_ids", k)))
			}
			seqs = append(seqs, ints(t, g, "greedy.input_ids"))
			caches := make([]*Cache, len(seqs))
			got := make([][]float32, len(seqs))
			for i, s := range seqs {
				caches[i] = planned(m, len(s))
			}
			for round := 0; ; round++ {
				var st []Step
				var idx []int
				for i, s := range seqs {
					if n := caches[i].Len(); n < len(s) {
						chunk := 1
						if round < 3 {
							chunk = 3 + 4*round + i
						}
						st = append(st, Step{Cache: caches[i], Tokens: s[n:min(len(s), n+chunk)], AllLogits: true})
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
			names := []string{"seq0", "seq1", "seq2", "greedy"}
			for i := range seqs {
				if d := maxAbsDiff(got[i], floats(t, g, names[i]+".logits")); d > tol {
					t.Errorf("%s in a batch: max |Δ| = %.3g", names[i], d)
				}
			}
		})
	}
}

// Sliding layers keep only their window: after 100 tokens the Gemma 2 cache
// holds window + slack rows on its sliding layers and all 100 on the global one.
func TestSlidingCacheKeepsWindow(t *testing.T) {
	dir := filepath.Join(archDir, "gemma2")
	m := loadModel(t, dir)
	g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
	ids := ints(t, g, "seq2.input_ids")
	c := m.NewCache()
	stepwise(t, m, c, ids, 1)
	for i, l := range c.layers {
		w := m.Config.LayerWindow(i)
		switch {
		case w > 0 && l.cap > w-1+windowSlack:
			t.Errorf("sliding layer %d holds %d rows, window %d", i, l.cap, w)
		case w == 0 && l.cap < len(ids):
			t.Errorf("global layer %d holds %d rows for %d positions", i, l.cap, len(ids))
		}
	}
	if got, want := c.Bytes(), m.Config.KVBytes(len(ids), false); got < want || got > 2*want {
		t.Errorf("cache holds %d bytes, KVBytes says %d", got, want)
	}
	if m.Config.KVBytes(len(ids), true) <= m.Config.KVBytes(len(ids), false) {
		t.Error("the windows save nothing at 100 positions")
	}
	// Back within the window it can still go; further back it cannot.
	if !c.CanTruncate(95) || c.CanTruncate(10) {
		t.Errorf("CanTruncate(95) %v, CanTruncate(10) %v", c.CanTruncate(95), c.CanTruncate(10))
	}
	c.Truncate(10)
	if _, err := m.Forward([]Step{{Cache: c, Tokens: ids[10:11]}}); err == nil {
		t.Error("a cache truncated past its window was used")
	}
}

// Phi-3 with a cache that was not told the length: the sequence starts on the
// short factors and, when it grows past original_max_position_embeddings
// (64), is recomputed with the long ones (transformers' behaviour), so from
// there on it matches the golden's whole-sequence forward.
func TestPhi3LongropeSwitch(t *testing.T) {
	dir := filepath.Join(archDir, "phi3")
	m := loadModel(t, dir)
	g := openGolden(t, filepath.Join(dir, "golden.safetensors"))
	ids := ints(t, g, "seq2.input_ids")
	want := floats(t, g, "seq2.logits")
	V := m.Config.VocabSize
	orig := m.Config.Rope.OriginalMaxPos
	for _, chunk := range []int{1, 7} {
		o := stepwise(t, m, m.NewCache(), ids, chunk)
		b := orig / chunk * chunk // the step that crosses the original context starts here
		if d := maxAbsDiff(o.Logits[b*V:], want[b*V:]); d > tol {
			t.Errorf("chunks of %d: logits after the switch: max |Δ| = %.3g", chunk, d)
		}
		short := forwardWhole(t, m, ids[:b], nil)
		if d := maxAbsDiff(o.Logits[:b*V], short.Logits); d > tol {
			t.Errorf("chunks of %d: logits before the switch differ from a short-factor forward by %.3g", chunk, d)
		}
	}
}

// Each family's config.json is written back so that it parses to the same
// config, and a saved model (fused Phi-3 tensors, Gemma's (1 + w) norms
// stored as w) loads to the same logits.
func TestArchSaveLoad(t *testing.T) {
	for _, name := range archNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(archDir, name)
			m := loadModel(t, dir)
			got, err := ParseConfig(m.Config.JSON(""))
			if err != nil {
				t.Fatalf("%v\n%s", err, m.Config.JSON(""))
			}
			if !reflect.DeepEqual(got, m.Config) {
				t.Errorf("config round trip\n got  %+v\n want %+v", got, m.Config)
			}
			ids := []int{317, 46, 77, 66, 68, 220, 84, 79, 78, 77, 259, 256, 291, 68, 5, 9, 11, 300, 200, 100}
			want := forwardWhole(t, m, ids, nil).Logits
			out := t.TempDir()
			if err := m.Save(out, WeightsF32); err != nil {
				t.Fatal(err)
			}
			m2, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if m2.Fingerprint() != m.Fingerprint() {
				t.Error("the saved model has another fingerprint")
			}
			if d := maxAbsDiff(forwardWhole(t, m2, ids, nil).Logits, want); d != 0 {
				t.Errorf("saved and reloaded: logits differ by %g", d)
			}
			// bf16 and a clone with float32 projections run the same forward.
			scale := 0.0
			for _, v := range want {
				scale = max(scale, float64(v), -float64(v))
			}
			if d := maxAbsDiff(forwardWhole(t, m.WithBF16(), ids, nil).Logits, want); d > bf16Tol*scale {
				t.Errorf("bf16: logits differ by %g (max |logit| %g)", d, scale)
			}
			if d := maxAbsDiff(forwardWhole(t, m.WithBF16().CloneWeights(), ids, nil).Logits, forwardWhole(t, m.WithBF16(), ids, nil).Logits); d > 1e-5 {
				t.Errorf("CloneWeights of bf16: logits differ by %g", d)
			}
			if m.NumParams() != m.Config.NumParamsHint() {
				t.Errorf("NumParams %d, NumParamsHint %d", m.NumParams(), m.Config.NumParamsHint())
			}
		})
	}
}

func TestArchConfigRefusals(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(archDir, name, "config.json"))
		if err != nil {
			testenv.SkipOrFail(t, "reference data not present: %v", err)
		}
		return string(b)
	}
	set := func(js, key, val string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			t.Fatal(err)
		}
		m[key] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct {
		name, json string
		want       error
		mention    string
	}{
		{"qwen3 bias", set(read("qwen3"), "attention_bias", "true"), ErrUnsupported, "attention_bias"},
		{"qwen3 moe", set(read("qwen3"), "architectures", `["Qwen3MoeForCausalLM"]`), ErrArchitecture, "Qwen3MoeForCausalLM"},
		{"gemma erf gelu", set(read("gemma2"), "hidden_activation", `"gelu"`), ErrUnsupported, "gelu"},
		{"gemma bidirectional", set(read("gemma3"), "use_bidirectional_attention", "true"), ErrUnsupported, "bidirectional"},
		{"gemma3 yarn", set(read("gemma3"), "rope_scaling", `{"rope_type":"yarn","factor":4}`), ErrUnsupported, "yarn"},
		{"gemma3 bad layer type", set(read("gemma3"), "layer_types", `["sliding_attention","chunked_attention","full_attention"]`), ErrUnsupported, "chunked_attention"},
		{"gemma3 layer_types length", set(read("gemma3"), "layer_types", `["sliding_attention"]`), ErrConfig, "layer_types"},
		{"gemma 1", set(read("gemma2"), "architectures", `["GemmaForCausalLM"]`), ErrArchitecture, "GemmaForCausalLM"},
		{"phi3 longrope length", set(read("phi3"), "rope_scaling", `{"type":"longrope","short_factor":[1,1],"long_factor":[1,1]}`), ErrConfig, "longrope"},
		{"phi3 yarn", set(read("phi3"), "rope_scaling", `{"type":"yarn","factor":4}`), ErrUnsupported, "yarn"},
		{"phi3 odd rotary", set(read("phi3"), "partial_rotary_factor", "0.33"), ErrUnsupported, "partial_rotary_factor"},
		{"phi3 small", set(read("phi3"), "architectures", `["Phi3SmallForCausalLM"]`), ErrArchitecture, "Phi3Small"},
		{"v5 rope_parameters", set(set(read("qwen3"), "rope_theta", "null"), "rope_parameters", `{"rope_theta":1e6}`), ErrUnsupported, "rope_parameters"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.mention)
		}
	}
}

// The layer rules of each family, and layer_types overriding them.
func TestArchLayerWindows(t *testing.T) {
	cases := []struct {
		js   string
		want []int
	}{
		{`{"architectures":["Gemma2ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":4,"num_attention_heads":2,"head_dim":4,"vocab_size":8,"sliding_window":16}`, []int{16, 0, 16, 0}},
		{`{"architectures":["Gemma3ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":7,"num_attention_heads":2,"head_dim":4,"vocab_size":8,"sliding_window":16}`, []int{16, 16, 16, 16, 16, 0, 16}},
		{`{"architectures":["Gemma3ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":3,"num_attention_heads":2,"head_dim":4,"vocab_size":8,"sliding_window":16,"layer_types":["full_attention","sliding_attention","full_attention"]}`, []int{0, 16, 0}},
		{`{"architectures":["Qwen2ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":3,"num_attention_heads":2,"vocab_size":8,"sliding_window":16,"use_sliding_window":true,"max_window_layers":1}`, []int{0, 16, 16}},
		{`{"architectures":["Qwen2ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":3,"num_attention_heads":2,"vocab_size":8,"sliding_window":16,"use_sliding_window":false}`, []int{0, 0, 0}},
		{`{"architectures":["MistralForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":2,"num_attention_heads":2,"vocab_size":8,"sliding_window":16}`, []int{16, 16}},
		{`{"architectures":["Phi3ForCausalLM"],"hidden_size":8,"intermediate_size":8,"num_hidden_layers":2,"num_attention_heads":2,"vocab_size":8,"sliding_window":16}`, []int{16, 16}},
	}
	for i, c := range cases {
		cfg, err := ParseConfig([]byte(c.js))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		cfg.TorchDType = "float32"
		for l, w := range c.want {
			if got := cfg.LayerWindow(l); got != w {
				t.Errorf("%d: layer %d window %d, want %d", i, l, got, w)
			}
		}
		back, err := ParseConfig(cfg.JSON(""))
		if err != nil || !reflect.DeepEqual(back, cfg) {
			t.Errorf("%d: JSON round trip: %v\n got  %+v\n want %+v", i, err, back, cfg)
		}
	}
}

// Mistral's window for real: in a one-layer model the output at position p
// depends only on the last W tokens and, RoPE being relative, not on where
// they sit, so it equals a fresh forward over those W tokens.
func TestMistralWindow(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures":["MistralForCausalLM"],"hidden_size":64,"intermediate_size":128,
	"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":320,"sliding_window":6,"max_position_embeddings":512}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Random(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() { // std 1/√fan_in rather than 0.02: attention that is not uniform
		if len(p.Shape) == 2 {
			for i := range p.Data {
				p.Data[i] *= 50 / float32(math.Sqrt(float64(p.Shape[1])))
			}
		}
	}
	full := m.CloneWeights() // the same weights without the window
	full.Config.SlidingWindow = 0
	ids := make([]int, 90)
	for i := range ids {
		ids[i] = (i*37 + 11) % 320
	}
	V, W := c.VocabSize, c.SlidingWindow
	for _, o := range []Output{forwardWhole(t, m, ids, nil), stepwise(t, m, m.NewCache(), ids, 1), stepwise(t, m, m.NewCache(), ids, 13)} {
		for p := W; p < len(ids); p += 7 {
			ref := forwardWhole(t, m, ids[p-W+1:p+1], nil).Logits
			if d := maxAbsDiff(o.Logits[p*V:(p+1)*V], ref[(W-1)*V:]); d > 1e-5 {
				t.Fatalf("position %d: max |Δ| = %.3g against the window alone", p, d)
			}
			// One token more does change it: the test can tell.
			wider := forwardWhole(t, full, ids[p-W:p+1], nil).Logits
			if d := maxAbsDiff(o.Logits[p*V:(p+1)*V], wider[W*V:]); d < 1e-4 {
				t.Fatalf("position %d: a window one wider changes the logits by only %.3g", p, d)
			}
		}
	}
}
