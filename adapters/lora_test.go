package adapters

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"strings"
	"testing"

	"roe/model"
	"roe/model/safetensors"
)

const (
	baseDir = "../../shared/golden/tiny-llama"
	loraDir = "../../shared/golden/tiny-llama/lora"
	tol     = 1e-4
)

func need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(loraDir); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
}

func loadBase(t testing.TB) *model.Model {
	t.Helper()
	need(t)
	m, err := model.Load(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadGoldenLoRA(t testing.TB, m *model.Model) *LoRA {
	t.Helper()
	l, err := Load(loraDir, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type goldenSeq struct {
	ids    []int
	logits []float32
	mean   []float32
}

func readGolden(t testing.TB, path string) []goldenSeq {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenSeq
	for k := 0; k < 4; k++ {
		ids32, err := f.Int32(fmt.Sprintf("seq%d.input_ids", k))
		if err != nil {
			t.Fatal(err)
		}
		g := goldenSeq{}
		for _, v := range ids32 {
			g.ids = append(g.ids, int(v))
		}
		if g.logits, err = f.Float32(fmt.Sprintf("seq%d.logits", k)); err != nil {
			t.Fatal(err)
		}
		if g.mean, err = f.Float32(fmt.Sprintf("seq%d.last_hidden_state_mean", k)); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
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

func whole(t testing.TB, m *model.Model, ids []int, a model.Adapter) []float32 {
	t.Helper()
	out, err := m.Forward([]model.Step{{Cache: m.NewCache(), Tokens: ids, Adapter: a, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Logits
}

func stepwise(t testing.TB, m *model.Model, ids []int, a model.Adapter) []float32 {
	t.Helper()
	c := m.NewCache()
	var logits []float32
	for _, id := range ids {
		out, err := m.Forward([]model.Step{{Cache: c, Tokens: []int{id}, Adapter: a}})
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, out[0].Logits...)
	}
	return logits
}

func TestGoldenUnmerged(t *testing.T) {
	m := loadBase(t)
	l := loadGoldenLoRA(t, m)
	for k, g := range readGolden(t, filepath.Join(loraDir, "golden.safetensors")) {
		if d := maxAbsDiff(whole(t, m, g.ids, l), g.logits); d > tol {
			t.Errorf("seq%d unmerged whole: max |Δ| %.3g", k, d)
		}
		if d := maxAbsDiff(stepwise(t, m, g.ids, l), g.logits); d > tol {
			t.Errorf("seq%d unmerged token by token: max |Δ| %.3g", k, d)
		}
		e, err := m.Embed(g.ids, l)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(e, g.mean); d > tol {
			t.Errorf("seq%d unmerged embedding: max |Δ| %.3g", k, d)
		}
	}
}

func TestGoldenMergedAndUnmerged(t *testing.T) {
	base := loadBase(t)
	l := loadGoldenLoRA(t, base)
	merged, err := Merged(base, l)
	if err != nil {
		t.Fatal(err)
	}
	gs := readGolden(t, filepath.Join(loraDir, "golden.safetensors"))
	for k, g := range gs {
		if d := maxAbsDiff(whole(t, merged, g.ids, nil), g.logits); d > tol {
			t.Errorf("seq%d merged whole: max |Δ| %.3g", k, d)
		}
		if d := maxAbsDiff(stepwise(t, merged, g.ids, nil), g.logits); d > tol {
			t.Errorf("seq%d merged token by token: max |Δ| %.3g", k, d)
		}
	}
	// Un-merging gives the base model back.
	if err := l.Merge(merged, -1); err != nil {
		t.Fatal(err)
	}
	base0 := readGolden(t, filepath.Join(baseDir, "golden.safetensors"))
	for k, g := range base0 {
		if d := maxAbsDiff(whole(t, merged, g.ids, nil), g.logits); d > tol {
			t.Errorf("seq%d after unmerge: max |Δ| %.3g from the base", k, d)
		}
	}
}

// scaledCopy returns a second, different adapter: the golden one with B scaled by f.
func scaledCopy(l *LoRA, f float32) *LoRA {
	c := New(modelConfigOf(l), l.Config)
	for layer := range l.Layers {
		for p, pr := range l.Layers[layer] {
			if pr == nil {
				continue
			}
			b := make([]float32, len(pr.B))
			for i, v := range pr.B {
				b[i] = v * f
			}
			c.SetPair(layer, model.Proj(p), &Pair{A: pr.A, B: b, Rank: pr.Rank, In: pr.In, Out: pr.Out, Alpha: pr.Alpha})
		}
	}
	return c
}

func modelConfigOf(l *LoRA) model.Config { return model.Config{NumLayers: len(l.Layers)} }

// One batch mixing the golden adapter, no adapter and a second adapter gives each
// sequence exactly what it gets alone.
func TestMixedBatch(t *testing.T) {
	m := loadBase(t)
	l := loadGoldenLoRA(t, m)
	l2 := scaledCopy(l, -0.7)
	gs := readGolden(t, filepath.Join(loraDir, "golden.safetensors"))
	adapters := []model.Adapter{l, nil, l2, l}
	steps := make([]model.Step, len(gs))
	for i, g := range gs {
		steps[i] = model.Step{Cache: m.NewCache(), Tokens: g.ids, Adapter: adapters[i], AllLogits: true}
	}
	out, err := m.Forward(steps)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gs {
		alone := whole(t, m, g.ids, adapters[i])
		if d := maxAbsDiff(out[i].Logits, alone); d > 1e-5 {
			t.Errorf("seq%d in a mixed batch differs from alone by %.3g", i, d)
		}
		if adapters[i] == model.Adapter(l) {
			if d := maxAbsDiff(out[i].Logits, g.logits); d > tol {
				t.Errorf("seq%d with the golden adapter in a batch: %.3g", i, d)
			}
		}
	}
	// Decode steps mixed too.
	var dec []model.Step
	for i := range steps {
		dec = append(dec, model.Step{Cache: steps[i].Cache, Tokens: []int{7}, Adapter: adapters[i]})
	}
	outs, err := m.Forward(dec)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gs {
		c := m.NewCache()
		if _, err := m.Forward([]model.Step{{Cache: c, Tokens: g.ids, Adapter: adapters[i]}}); err != nil {
			t.Fatal(err)
		}
		o, _ := m.Forward([]model.Step{{Cache: c, Tokens: []int{7}, Adapter: adapters[i]}})
		if d := maxAbsDiff(outs[i].Logits, o[0].Logits); d > 1e-5 {
			t.Errorf("seq%d decode in a mixed batch differs by %.3g", i, d)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m := loadBase(t)
	l := loadGoldenLoRA(t, m)
	dir := t.TempDir()
	if err := l.Save(dir); err != nil {
		t.Fatal(err)
	}
	l2, err := Load(dir, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{317, 5, 9, 100}
	if d := maxAbsDiff(whole(t, m, ids, l), whole(t, m, ids, l2)); d != 0 {
		t.Errorf("saved adapter differs by %.3g", d)
	}
}

// writeAdapter writes a PEFT folder with the golden tensors and an edited config or tensor set.
func writeAdapter(t *testing.T, cfg string, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(loraDir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.Tensor
	for _, info := range f.Tensors() {
		v, _ := f.Float32(info.Name)
		ts = append(ts, safetensors.F32Tensor(info.Name, info.Shape, v))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		ts = edit(ts)
	}
	if err := safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRefusals(t *testing.T) {
	m := loadBase(t)
	good, err := os.ReadFile(filepath.Join(loraDir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	set := func(k, v string) string {
		s := string(good)
		return strings.Replace(s, "{", "{\n  \""+k+"\": "+v+",", 1)
	}
	const qA = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
	extra := func(name string, shape ...int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			n := 1
			for _, s := range shape {
				n *= s
			}
			return append(ts, safetensors.F32Tensor(name, shape, make([]float32, n)))
		}
	}
	cases := []struct {
		name    string
		cfg     string
		edit    func([]safetensors.Tensor) []safetensors.Tensor
		want    error
		mention string
	}{
		{"dora", strings.Replace(string(good), `"use_dora": false`, `"use_dora": true`, 1), nil, ErrUnsupported, "DoRA"},
		{"lora_bias", set("lora_bias", "true"), nil, ErrUnsupported, "lora_bias"},
		{"bias all", strings.Replace(string(good), `"bias": "none"`, `"bias": "all"`, 1), nil, ErrUnsupported, "bias"},
		{"embedding target", strings.Replace(string(good), `"q_proj",`, `"q_proj", "embed_tokens",`, 1), nil, ErrUnsupported, "embed_tokens"},
		{"lm_head target", strings.Replace(string(good), `"q_proj",`, `"q_proj", "lm_head",`, 1), nil, ErrUnsupported, "lm_head"},
		{"unknown module", strings.Replace(string(good), `"q_proj",`, `"q_proj", "c_attn",`, 1), nil, ErrUnsupported, "c_attn"},
		{"modules_to_save", strings.Replace(string(good), `"modules_to_save": null`, `"modules_to_save": ["lm_head"]`, 1), nil, ErrUnsupported, "modules_to_save"},
		{"prefix tuning", strings.Replace(string(good), `"peft_type": "LORA"`, `"peft_type": "PREFIX_TUNING"`, 1), nil, ErrUnsupported, "PREFIX_TUNING"},
		{"malformed", `{"r": `, nil, ErrConfig, ""},
		{"wrong rank", strings.Replace(string(good), `"r": 4`, `"r": 8`, 1), nil, ErrShape, "q_proj.lora_A"},
		{"wrong shape", string(good), func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == qA {
					ts[i].Shape = []int{4, 32}
					ts[i].Data = ts[i].Data[:4*32*4]
				}
			}
			return ts
		}, ErrShape, "[4 32]"},
		{"dora magnitude", string(good), extra("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", 64), ErrUnsupported, "DoRA"},
		{"embedding tensor", string(good), extra("base_model.model.model.embed_tokens.lora_embedding_A", 4, 320), ErrUnsupported, "embedding"},
		{"layer past the model", string(good), extra("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", 4, 64), ErrShape, "layers.9"},
		{"half a pair", string(good), func(ts []safetensors.Tensor) []safetensors.Tensor {
			out := ts[:0]
			for _, x := range ts {
				if x.Name != qA {
					out = append(out, x)
				}
			}
			return out
		}, ErrTensor, "only one of"},
	}
	for _, c := range cases {
		dir := writeAdapter(t, c.cfg, c.edit)
		_, err := Load(dir, m.Config)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: got %v, want %v naming %q", c.name, err, c.want, c.mention)
		}
	}
}

// rank_pattern, alpha_pattern and rsLoRA change the scale exactly as PEFT defines it.
func TestScaleSettings(t *testing.T) {
	c, err := ParseConfig([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"],
	"rank_pattern":{"v_proj":4},"alpha_pattern":{"layers.1.self_attn.q_proj":2},"use_rslora":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if r, a := c.rankAlpha(0, model.ProjV); r != 4 || a != 16 {
		t.Errorf("v_proj: rank %d alpha %g", r, a)
	}
	if r, a := c.rankAlpha(1, model.ProjQ); r != 8 || a != 2 {
		t.Errorf("layer 1 q_proj: rank %d alpha %g", r, a)
	}
	if r, a := c.rankAlpha(0, model.ProjQ); r != 8 || a != 16 {
		t.Errorf("layer 0 q_proj: rank %d alpha %g", r, a)
	}
	if s := c.Scale(4, 16); math.Abs(float64(s)-8) > 1e-6 {
		t.Errorf("rslora scale %g, want 16/√4 = 8", s)
	}
	if c.targets(0, model.ProjK) || !c.targets(0, model.ProjV) {
		t.Error("target_modules matching is wrong")
	}
}
