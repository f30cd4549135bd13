package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/internal/testenv"
)

const (
	tinyDir    = "../../../shared/golden/tiny-llama"
	storiesDir = "../../../shared/data/models/stories260K-hf"
)

// openOrSkip opens a shared file in place, skipping when it is absent (failing in CI).
func openOrSkip(t *testing.T, path string) *File {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		testenv.SkipOrFail(t, "%s not available: %v", path, err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func shapeOf(t *testing.T, f interface {
	Info(string) (TensorInfo, bool)
}, name string) []int {
	t.Helper()
	info, ok := f.Info(name)
	if !ok {
		t.Fatalf("tensor %q missing", name)
	}
	return info.Shape
}

func eqShape(a []int, b ...int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGoldenTinyLlamaModel(t *testing.T) {
	f := openOrSkip(t, filepath.Join(tinyDir, "model.safetensors"))
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q", got)
	}
	infos := f.Tensors()
	// 2 layers × 9 tensors + embed_tokens + norm + lm_head.
	if len(infos) != 21 {
		t.Errorf("%d tensors, want 21", len(infos))
	}
	want := map[string][]int{
		"model.embed_tokens.weight":                      {320, 64},
		"lm_head.weight":                                 {320, 64},
		"model.norm.weight":                              {64},
		"model.layers.1.self_attn.q_proj.weight":         {64, 64},
		"model.layers.1.self_attn.k_proj.weight":         {32, 64},
		"model.layers.1.self_attn.v_proj.weight":         {32, 64},
		"model.layers.0.self_attn.o_proj.weight":         {64, 64},
		"model.layers.0.mlp.gate_proj.weight":            {128, 64},
		"model.layers.0.mlp.up_proj.weight":              {128, 64},
		"model.layers.0.mlp.down_proj.weight":            {64, 128},
		"model.layers.0.input_layernorm.weight":          {64},
		"model.layers.1.post_attention_layernorm.weight": {64},
	}
	for name, shape := range want {
		if got := shapeOf(t, f, name); !eqShape(got, shape...) {
			t.Errorf("%s: shape %v, want %v", name, got, shape)
		}
	}
	// Norm weights are 1 + N(0, 0.2²): all near 1, none exactly 1.
	norm, err := f.Float32("model.norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for _, v := range norm {
		mean += float64(v)
	}
	mean /= float64(len(norm))
	if mean < 0.8 || mean > 1.2 {
		t.Errorf("model.norm.weight mean %g, want about 1", mean)
	}
	for _, info := range infos {
		if info.DType != F32 {
			t.Errorf("%s: dtype %s", info.Name, info.DType)
		}
		if _, err := f.Float32(info.Name); err != nil {
			t.Error(err)
		}
	}
}

// Re-encoding the tiny model reproduces the file byte for byte, which pins
// our writer to the Hugging Face layout (key order, offsets, padding).
func TestGoldenReencodeIdentical(t *testing.T) {
	for _, name := range []string{
		filepath.Join(tinyDir, "model.safetensors"),
		filepath.Join(tinyDir, "golden.safetensors"),
		filepath.Join(storiesDir, "model.safetensors"),
	} {
		t.Run(filepath.Base(filepath.Dir(name))+"/"+filepath.Base(name), func(t *testing.T) {
			f := openOrSkip(t, name)
			var tensors []Tensor
			for _, info := range f.Tensors() {
				raw, err := f.Raw(info.Name)
				if err != nil {
					t.Fatal(err)
				}
				tensors = append(tensors, Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: raw})
			}
			var buf bytes.Buffer
			if err := Encode(&buf, tensors, f.Metadata()); err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(name)
			if !bytes.Equal(buf.Bytes(), orig) {
				t.Errorf("re-encoded file differs (%d vs %d bytes)", buf.Len(), len(orig))
			}
		})
	}
}

func TestGoldenTinyLlamaOutputs(t *testing.T) {
	f := openOrSkip(t, filepath.Join(tinyDir, "golden.safetensors"))
	if got := len(f.Tensors()); got != 19 {
		t.Errorf("%d tensors, want 19", got)
	}
	lengths := []int{33, 1, 200, 16}
	for k, T := range lengths {
		seq := "seq" + string(rune('0'+k))
		ids, err := f.Int32(seq + ".input_ids")
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != T || (k <= 1 && ids[0] != 317) { // seq2 is random ids, seq3 is token 5 repeated
			t.Errorf("%s.input_ids: len %d first %d", seq, len(ids), ids[0])
		}
		if info, _ := f.Info(seq + ".input_ids"); info.DType != I32 {
			t.Errorf("%s.input_ids dtype %s", seq, info.DType)
		}
		if s := shapeOf(t, f, seq+".logits"); !eqShape(s, T, 320) {
			t.Errorf("%s.logits shape %v", seq, s)
		}
		if s := shapeOf(t, f, seq+".last_hidden_state"); !eqShape(s, T, 64) {
			t.Errorf("%s.last_hidden_state shape %v", seq, s)
		}
	}
	ids, _ := f.Int32("seq0.input_ids")
	want := []int32{317, 284, 311, 0, 220, 285, 220, 80}
	for i, w := range want {
		if ids[i] != w {
			t.Errorf("seq0.input_ids[%d] = %d, want %d", i, ids[i], w)
		}
	}
	if ids, _ := f.Int32("seq3.input_ids"); ids[15] != 5 || ids[0] != 5 {
		t.Errorf("seq3.input_ids = %v", ids)
	}
	// golden.json: first 8 logits of seq0's last position.
	logits, err := f.Float32("seq0.logits")
	if err != nil {
		t.Fatal(err)
	}
	if last := logits[32*320:]; last[0] != float32(-3.61690354347229) || last[6] != float32(3.0850987434387207) {
		t.Errorf("seq0 last logits %v", last[:8])
	}
	// Floats cannot be read as int32 and vice versa.
	if _, err := f.Int32("seq0.logits"); err == nil {
		t.Error("Int32 on F32 succeeded")
	}
}

func TestGoldenStories260K(t *testing.T) {
	dir := storiesDir
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		testenv.SkipOrFail(t, "stories260K-hf not available: %v", err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	infos := s.Tensors()
	if len(infos) != 47 {
		t.Errorf("%d tensors, want 47", len(infos))
	}
	var params int64
	for _, info := range infos {
		params += info.Numel()
		if strings.HasPrefix(info.Name, "lm_head") {
			t.Errorf("unexpected %s (embeddings are tied)", info.Name)
		}
	}
	if params != 260032 {
		t.Errorf("%d parameters, want 260032", params)
	}
	checks := map[string][]int{
		"model.embed_tokens.weight":              {512, 64},
		"model.layers.4.self_attn.q_proj.weight": {64, 64},
		"model.layers.4.self_attn.o_proj.weight": {64, 64},
		"model.layers.0.self_attn.k_proj.weight": {32, 64},
		"model.layers.0.self_attn.v_proj.weight": {32, 64},
		"model.layers.2.mlp.gate_proj.weight":    {172, 64},
		"model.layers.2.mlp.up_proj.weight":      {172, 64},
		"model.layers.2.mlp.down_proj.weight":    {64, 172},
		"model.layers.3.input_layernorm.weight":  {64},
		"model.norm.weight":                      {64},
	}
	for name, shape := range checks {
		if got := shapeOf(t, s, name); !eqShape(got, shape...) {
			t.Errorf("%s: shape %v, want %v", name, got, shape)
		}
	}
	if got := s.File("model.norm.weight"); filepath.Base(got) != "model.safetensors" {
		t.Errorf("File = %q", got)
	}
	if v, err := s.Float32("model.embed_tokens.weight"); err != nil || len(v) != 512*64 {
		t.Errorf("embed: %d %v", len(v), err)
	}

	g := openOrSkip(t, filepath.Join(dir, "golden.safetensors"))
	ids, err := g.Int32("prompt.input_ids")
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{1, 403, 407, 261, 378}
	if len(ids) != len(want) {
		t.Fatalf("prompt.input_ids = %v", ids)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Errorf("prompt.input_ids = %v, want %v", ids, want)
			break
		}
	}
	greedy, err := g.Int32("greedy.input_ids")
	if err != nil || len(greedy) != 65 || greedy[0] != 1 || greedy[64] != 310 {
		t.Errorf("greedy.input_ids: %v %v", greedy, err)
	}
	if s := shapeOf(t, g, "greedy.logits"); !eqShape(s, 65, 512) {
		t.Errorf("greedy.logits shape %v", s)
	}
}
