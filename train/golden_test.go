package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"testing"

	"roe/adapters"
	"roe/model"
	"roe/model/safetensors"
)

const (
	goldenDir  = "../../shared/golden/tiny-llama"
	trainDir   = goldenDir + "/train"
	storiesDir = "../../shared/data/models/stories260K-hf"
)

func needRef(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "reference data not present: %v", err)
	}
}

func loadRefModel(t testing.TB, dir string) *model.Model {
	t.Helper()
	needRef(t, dir)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadRefLoRA(t testing.TB, dir string, c model.Config) *adapters.LoRA {
	t.Helper()
	needRef(t, dir)
	l, err := adapters.Load(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// readTensors reads every tensor of a safetensors file as float32.
func readTensors(t testing.TB, path string) map[string][]float32 {
	t.Helper()
	needRef(t, path)
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, info := range f.Tensors() {
		if info.DType != safetensors.F32 {
			continue
		}
		v, err := f.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[info.Name] = v
	}
	return out
}

// goldenBatch reads the padded [2, 12] batch and truncates it (FromPadded).
func goldenBatch(t testing.TB) Batch {
	t.Helper()
	path := trainDir + "/batch.safetensors"
	needRef(t, path)
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := func(name string) [][]int {
		info, _ := f.Info(name)
		v, err := f.Int32(name)
		if err != nil {
			t.Fatal(err)
		}
		B, T := info.Shape[0], info.Shape[1]
		out := make([][]int, B)
		for b := range out {
			for _, x := range v[b*T : (b+1)*T] {
				out[b] = append(out[b], int(x))
			}
		}
		return out
	}
	b, err := FromPadded(rows("input_ids"), rows("attention_mask"), rows("loss_mask"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Tokens[0]) != 12 || len(b.Tokens[1]) != 9 || b.Targets() != 11 {
		t.Fatalf("golden batch lengths %d, %d, targets %d", len(b.Tokens[0]), len(b.Tokens[1]), b.Targets())
	}
	return b
}

type goldenJSON struct {
	LossBase      float64   `json:"loss_base_model"`
	LossLoRA      float64   `json:"loss_with_lora"`
	LossStep1BC   float64   `json:"loss_with_lora_after_adamw_step1_bias_corrected"`
	LossStep1NoBC float64   `json:"loss_with_lora_after_adamw_step1_no_bias_correction"`
	Losses3Steps  []float64 `json:"adamw_3step_losses_bias_corrected"`
	Qwen2         struct {
		LossBase float64 `json:"loss_base_model"`
		LossLoRA float64 `json:"loss_with_lora"`
	} `json:"qwen2"`
	Adam struct {
		LR          float64 `json:"lr"`
		Beta1       float64 `json:"beta1"`
		Beta2       float64 `json:"beta2"`
		Eps         float64 `json:"eps"`
		WeightDecay float64 `json:"weight_decay"`
	} `json:"adamw_hyperparameters"`
}

func readGoldenJSON(t testing.TB) goldenJSON {
	t.Helper()
	path := trainDir + "/train_golden.json"
	needRef(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenJSON
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// compare checks |got−want| ≤ abs + rel·|want| elementwise and returns the
// largest absolute difference.
func compareVec(t testing.TB, name string, got, want []float32, abs, rel float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return math.Inf(1)
	}
	worst, bad := 0.0, 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		worst = max(worst, d)
		if d > abs+rel*math.Abs(float64(want[i])) || math.IsNaN(d) {
			if bad < 3 {
				t.Errorf("%s[%d] = %.8g, want %.8g (Δ %.3g)", name, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d values off", name, bad)
	}
	return worst
}

func TestGoldenLoss(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
	b := goldenBatch(t)
	gj := readGoldenJSON(t)
	bt := readTensors(t, trainDir+"/batch.safetensors")
	for _, c := range []struct {
		name string
		l    *adapters.LoRA
		want float64
		nll  string
	}{{"base", nil, gj.LossBase, "token_nll_base"}, {"lora", l, gj.LossLoRA, "token_nll_lora"}} {
		loss, err := Loss(m, c.l, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(loss - c.want); d > 1e-5 {
			t.Errorf("%s loss %.9f, want %.9f", c.name, loss, c.want)
		} else {
			t.Logf("%s loss %.9f (Δ %.2g)", c.name, loss, d)
		}
		// the training forward gives the same loss
		loss2, _, err := LossAndGrads(m, c.l, b, false)
		if err != nil || math.Abs(loss2-loss) > 1e-9 {
			t.Errorf("%s: LossAndGrads loss %.9f, Loss %.9f (%v)", c.name, loss2, loss, err)
		}
		nll, err := TokenNLLs(m, c.l, b)
		if err != nil {
			t.Fatal(err)
		}
		want := bt[c.nll] // [2, 11]
		got := make([]float32, 22)
		for i, row := range nll {
			for t, v := range row {
				got[i*11+t] = float32(v)
			}
		}
		t.Logf("%s token NLLs max Δ %.2g", c.name, compareVec(t, c.nll, got, want, 1e-5, 0))
	}
}

func TestGoldenQwen2Loss(t *testing.T) {
	m := loadRefModel(t, goldenDir+"/qwen2")
	l := loadRefLoRA(t, trainDir+"/qwen2", m.Config)
	b := goldenBatch(t)
	gj := readGoldenJSON(t)
	for _, c := range []struct {
		l    *adapters.LoRA
		want float64
	}{{nil, gj.Qwen2.LossBase}, {l, gj.Qwen2.LossLoRA}} {
		loss, err := Loss(m, c.l, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(loss - c.want); d > 1e-5 {
			t.Errorf("qwen2 loss %.9f, want %.9f", loss, c.want)
		}
	}
}

func checkGrads(t *testing.T, what string, got, want map[string][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d gradients, golden has %d", what, len(got), len(want))
	}
	worst := 0.0
	for _, k := range SortedKeys(want) {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: no gradient for %s", what, k)
			continue
		}
		worst = max(worst, compareVec(t, k, g, want[k], 1e-5, 1e-4))
	}
	t.Logf("%s: %d tensors, max |Δ| %.3g", what, len(want), worst)
}

func TestGoldenLoRAGrads(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
	b := goldenBatch(t)
	loss, g, err := LossAndGrads(m, l, b, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.Base != nil {
		t.Error("Base gradients without full")
	}
	t.Logf("loss %.9f", loss)
	checkGrads(t, "llama LoRA", g.LoRA, readTensors(t, trainDir+"/lora_grads.safetensors"))
	ie := readTensors(t, trainDir+"/inputs_embeds_grad.safetensors")["inputs_embeds_grad_lora"]
	checkInputsEmbeds(t, "inputs_embeds_grad_lora", g.InputsEmbeds, ie, m.Config.HiddenSize)
	ln := g.LayerNorms()
	if len(ln) != 2 || ln[0] <= 0 || ln[1] <= 0 {
		t.Errorf("LayerNorms %v", ln)
	}
	t.Logf("per-layer grad norms %v, global %.4g", ln, g.Norm())
}

func TestGoldenQwen2LoRAGrads(t *testing.T) {
	m := loadRefModel(t, goldenDir+"/qwen2")
	l := loadRefLoRA(t, trainDir+"/qwen2", m.Config)
	_, g, err := LossAndGrads(m, l, goldenBatch(t), false)
	if err != nil {
		t.Fatal(err)
	}
	checkGrads(t, "qwen2 LoRA", g.LoRA, readTensors(t, trainDir+"/qwen2/lora_grads.safetensors"))
}

func TestGoldenBaseGrads(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	b := goldenBatch(t)
	loss, g, err := LossAndGrads(m, nil, b, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.LoRA) != 0 {
		t.Error("LoRA gradients without an adapter")
	}
	t.Logf("loss %.9f", loss)
	checkGrads(t, "llama base", g.Base, readTensors(t, trainDir+"/base_grads.safetensors"))
	ie := readTensors(t, trainDir+"/inputs_embeds_grad.safetensors")["inputs_embeds_grad_base"]
	checkInputsEmbeds(t, "inputs_embeds_grad_base", g.InputsEmbeds, ie, m.Config.HiddenSize)
}

// checkInputsEmbeds compares per-sequence [T, H] gradients with the golden
// padded [2, 12, H] tensor, whose pad rows must be 0.
func checkInputsEmbeds(t *testing.T, name string, got [][]float32, want []float32, H int) {
	t.Helper()
	const T = 12
	worst := 0.0
	for i, g := range got {
		n := len(g) / H
		w := want[i*T*H : (i+1)*T*H]
		worst = max(worst, compareVec(t, fmt.Sprintf("%s seq %d", name, i), g, w[:n*H], 1e-5, 1e-4))
		for _, v := range w[n*H:] {
			if v != 0 {
				t.Fatalf("%s: golden pad row not zero", name)
			}
		}
	}
	t.Logf("%s max |Δ| %.3g", name, worst)
}

// ---------------------------------------------------------------- AdamW

func goldenAdam(gj goldenJSON, bc bool) *AdamW {
	o := NewAdamW(gj.Adam.LR, gj.Adam.WeightDecay)
	o.Beta1, o.Beta2, o.Eps, o.BiasCorrection = gj.Adam.Beta1, gj.Adam.Beta2, gj.Adam.Eps, bc
	return o
}

func TestGoldenAdamWStep1(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	gj := readGoldenJSON(t)
	grads := readTensors(t, trainDir+"/lora_grads.safetensors")
	state := readTensors(t, trainDir+"/adamw_step1_state.safetensors")
	b := goldenBatch(t)
	for _, c := range []struct {
		bc   bool
		file string
		loss float64
	}{{true, "adamw_step1_bias_corrected", gj.LossStep1BC}, {false, "adamw_step1_no_bias_correction", gj.LossStep1NoBC}} {
		l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
		o := goldenAdam(gj, c.bc)
		params := LoRAParams(l)
		if err := o.Step(params, grads, gj.Adam.LR); err != nil {
			t.Fatal(err)
		}
		want := readTensors(t, trainDir+"/"+c.file+".safetensors")
		worst := 0.0
		for _, k := range SortedKeys(want) {
			worst = max(worst, compareVec(t, c.file+" "+k, params[k], want[k], 1e-6, 0))
		}
		t.Logf("%s: max |Δ| %.3g", c.file, worst)
		worst = 0
		st := o.State()
		for _, k := range SortedKeys(state) {
			worst = max(worst, compareVec(t, "state "+k, st[k], state[k], 1e-6, 1e-6))
		}
		for _, k := range SortedKeys(grads) {
			if s := st[k+".step"]; len(s) != 1 || s[0] != 1 {
				t.Errorf("%s.step = %v, want [1]", k, s)
			}
		}
		t.Logf("state after step 1: max |Δ| %.3g", worst)
		SyncLoRA(l)
		loss, err := Loss(m, l, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(loss - c.loss); d > 1e-5 {
			t.Errorf("loss after step (bias correction %v) %.9f, want %.9f", c.bc, loss, c.loss)
		}
	}
}

func TestGoldenAdamW3Steps(t *testing.T) {
	m := loadRefModel(t, goldenDir)
	gj := readGoldenJSON(t)
	l := loadRefLoRA(t, goldenDir+"/lora", m.Config)
	b := goldenBatch(t)
	o := goldenAdam(gj, true)
	params := LoRAParams(l)
	for step := 0; step < 3; step++ {
		loss, g, err := LossAndGrads(m, l, b, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(loss - gj.Losses3Steps[step]); d > 1e-5 {
			t.Errorf("step %d: loss %.9f, want %.9f", step, loss, gj.Losses3Steps[step])
		}
		if err := o.Step(params, g.LoRA, gj.Adam.LR); err != nil {
			t.Fatal(err)
		}
		// checkpoint round trip mid-run: resume must not change anything
		if step == 1 {
			dir := t.TempDir()
			path := filepath.Join(dir, "optim.safetensors")
			if err := safetensors.Write(path, o.StateTensors(), nil); err != nil {
				t.Fatal(err)
			}
			o2 := goldenAdam(gj, true)
			if err := o2.LoadStateFile(path); err != nil {
				t.Fatal(err)
			}
			if o2.Steps(SortedKeys(params)[0]) != 2 {
				t.Fatalf("resumed step count %d", o2.Steps(SortedKeys(params)[0]))
			}
			o = o2
		}
	}
	loss, err := Loss(m, l, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(loss - gj.Losses3Steps[3]); d > 1e-5 {
		t.Errorf("after 3 steps: loss %.9f, want %.9f", loss, gj.Losses3Steps[3])
	}
	want := readTensors(t, trainDir+"/adamw_step3_bias_corrected.safetensors")
	worst := 0.0
	for _, k := range SortedKeys(want) {
		worst = max(worst, compareVec(t, "step3 "+k, params[k], want[k], 1e-6, 0))
	}
	t.Logf("after 3 steps: max |Δ| %.3g, final loss %.9f", worst, loss)
}
