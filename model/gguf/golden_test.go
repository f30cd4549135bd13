package gguf

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"roe/internal/testenv"
	"roe/kernels"
	"roe/model/safetensors"
)

const (
	goldenDir = "../../../shared/golden/gguf"
	tinyDir   = "../../../shared/golden/tiny-llama"
	storiesHF = "../../../shared/data/models/stories260K-hf"
)

// goldenFiles lists every GGUF file of the golden folders.
func goldenFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*", "*.gguf"))
	if len(files) == 0 {
		testenv.SkipOrFail(t, "no GGUF goldens under %s", goldenDir)
	}
	return files
}

// goldenEntry is one file's record in a folder's golden.json.
type goldenEntry struct {
	File           string            `json:"file"`
	AdapterFile    string            `json:"adapter_file"`
	TensorTypes    map[string]string `json:"tensor_types"`
	AdapterTensors map[string]string `json:"adapter_tensors"`
	AdapterKV      map[string]any    `json:"adapter_kv"`
	FileType       *int              `json:"file_type"`
}

// goldenEntries maps a GGUF file name to its golden.json record.
func goldenEntries(t *testing.T) map[string]goldenEntry {
	out := map[string]goldenEntry{}
	dirs, _ := filepath.Glob(filepath.Join(goldenDir, "*", "golden.json"))
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Files []goldenEntry `json:"files"`
		}
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, e := range g.Files {
			if e.AdapterFile != "" {
				e.File, e.TensorTypes = e.AdapterFile, e.AdapterTensors
			}
			out[e.File] = e
		}
	}
	return out
}

func TestGoldenFiles(t *testing.T) {
	entries := goldenEntries(t)
	for _, path := range goldenFiles(t) {
		base := filepath.Base(path)
		t.Run(base, func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 || f.Alignment != 32 {
				t.Errorf("version %d alignment %d", f.Version, f.Alignment)
			}
			st, _ := os.Stat(path)
			for _, ti := range f.Tensors {
				b, err := f.Data(ti.Name)
				if err != nil || int64(len(b)) != ti.Size {
					t.Fatalf("%s: Data: %d bytes, %v; want %d", ti.Name, len(b), err, ti.Size)
				}
				if f.DataOffset+ti.Offset+ti.Size > st.Size() {
					t.Fatalf("%s past end of file", ti.Name)
				}
			}
			if arch, err := f.Architecture(); err != nil || (arch != "llama" && arch != "qwen2") {
				t.Errorf("architecture %q %v", arch, err)
			}

			e, ok := entries[base]
			if !ok {
				if base != "stories260K-F32.gguf" {
					t.Fatalf("no golden.json entry for %s", base)
				}
				checkStories(t, f)
				return
			}
			var names []string
			for _, ti := range f.Tensors {
				names = append(names, ti.Name)
				want, ok := e.TensorTypes[ti.Name]
				if !ok {
					t.Errorf("tensor %s not in golden.json", ti.Name)
					continue
				}
				if ti.Type.String() != want {
					t.Errorf("tensor %s: type %s, golden %s", ti.Name, ti.Type, want)
				}
			}
			if len(names) != len(e.TensorTypes) {
				t.Errorf("%d tensors, golden.json lists %d", len(names), len(e.TensorTypes))
			}
			if e.FileType != nil {
				if ft, err := f.Uint("general.file_type"); err != nil || ft != uint64(*e.FileType) {
					t.Errorf("general.file_type %d %v, golden %d", ft, err, *e.FileType)
				}
			}
			for k, want := range e.AdapterKV {
				checkJSONValue(t, f, k, want)
			}
			checkDequant(t, f, path)
			checkFloat32Independent(t, f, base)
		})
	}
}

// checkJSONValue compares a metadata value with its golden.json form.
func checkJSONValue(t *testing.T, f *File, key string, want any) {
	t.Helper()
	v, ok := f.Get(key)
	if !ok {
		t.Errorf("key %s missing", key)
		return
	}
	switch w := want.(type) {
	case string:
		if s, ok := v.String(); !ok || s != w {
			t.Errorf("%s = %s, golden %q", key, v.Describe(), w)
		}
	case float64:
		x, ok := v.Float()
		if !ok {
			var i int64
			i, ok = v.Int()
			x = float64(i)
		}
		if !ok || x != w {
			t.Errorf("%s = %s, golden %v", key, v.Describe(), w)
		}
	default:
		t.Errorf("%s: golden value %T not compared", key, want)
	}
}

// checkDequant compares shapes (ne reversed) with the NAME.dequant*.safetensors
// reference, and F32/F16/BF16 tensors' Float32 values bit for bit.
func checkDequant(t *testing.T, f *File, path string) {
	t.Helper()
	stem := path[:len(path)-len(".gguf")]
	ref, err := safetensors.Open(stem + ".dequant.safetensors")
	partial := false
	if errors.Is(err, os.ErrNotExist) {
		ref, err = safetensors.Open(stem + ".dequant-first16rows.safetensors")
		partial = true
	}
	if errors.Is(err, os.ErrNotExist) {
		return // F32 files and adapters have none
	}
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if n := len(ref.Tensors()); n != len(f.Tensors) {
		t.Errorf("reference has %d tensors, file %d", n, len(f.Tensors))
	}
	compared := 0
	for _, ti := range f.Tensors {
		info, ok := ref.Info(ti.Name)
		if !ok {
			t.Errorf("%s not in the dequant reference", ti.Name)
			continue
		}
		want := slices.Clone(ti.Shape)
		slices.Reverse(want)
		if partial && len(want) == 2 {
			want[0] = min(want[0], 16)
		}
		if !slices.Equal(info.Shape, want) {
			t.Errorf("%s: ne %v, reference shape %v", ti.Name, ti.Shape, info.Shape)
		}
		got, err := f.Float32(ti.Name)
		if ti.Type.Quantized() {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s (%s): Float32 error %v, want ErrUnsupported", ti.Name, ti.Type, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		exp, err := ref.Float32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bitEqual(got[:len(exp)], exp) {
			t.Errorf("%s (%s): Float32 differs from the reference", ti.Name, ti.Type)
		}
		compared++
	}
	if compared == 0 {
		t.Error("no float tensor compared")
	}
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// checkFloat32Independent compares F32 files with the Hugging Face weights
// they were converted from (tensors the converter does not permute).
func checkFloat32Independent(t *testing.T, f *File, base string) {
	t.Helper()
	var hf string
	var pairs [][2]string
	switch base {
	case "tiny-llama-F32.gguf":
		hf = filepath.Join(tinyDir, "model.safetensors")
		pairs = [][2]string{{"token_embd.weight", "model.embed_tokens.weight"}, {"output.weight", "lm_head.weight"},
			{"output_norm.weight", "model.norm.weight"}, {"blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"},
			{"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"}}
	case "tiny-qwen2-F32.gguf":
		hf = filepath.Join(tinyDir, "qwen2", "model.safetensors")
		pairs = [][2]string{{"token_embd.weight", "model.embed_tokens.weight"},
			{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
			{"blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"},
			{"blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"}}
	case "tiny-llama-lora-F32.gguf":
		hf = filepath.Join(tinyDir, "lora", "adapter_model.safetensors")
		pairs = [][2]string{{"blk.0.ffn_down.weight.lora_a", "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"},
			{"blk.1.attn_v.weight.lora_b", "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"}}
	case "stories260K-F32.gguf":
		hf = filepath.Join(storiesHF, "model.safetensors")
		pairs = [][2]string{{"token_embd.weight", "model.embed_tokens.weight"},
			{"blk.4.ffn_gate.weight", "model.layers.4.mlp.gate_proj.weight"},
			{"blk.2.attn_norm.weight", "model.layers.2.input_layernorm.weight"}}
	default:
		return
	}
	ref, err := safetensors.Open(hf)
	if err != nil {
		testenv.SkipOrFail(t, "reference weights: %v", err)
		return
	}
	defer ref.Close()
	for _, p := range pairs {
		got, err := f.Float32(p[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Float32(p[1])
		if err != nil {
			t.Fatal(err)
		}
		ti, _ := f.Tensor(p[0])
		info, _ := ref.Info(p[1])
		shape := slices.Clone(info.Shape)
		slices.Reverse(shape)
		if !slices.Equal(ti.Shape, shape) {
			t.Errorf("%s: ne %v, %s has shape %v", p[0], ti.Shape, p[1], info.Shape)
		}
		if !bitEqual(got, want) {
			t.Errorf("%s differs from %s", p[0], p[1])
		}
	}
}

// checkStories checks stories260K against its README: hyperparameters,
// vocabulary, and the tensors of the HF model it was converted from.
func checkStories(t *testing.T, f *File) {
	t.Helper()
	for k, want := range map[string]uint64{"llama.block_count": 5, "llama.context_length": 512,
		"llama.embedding_length": 64, "llama.feed_forward_length": 172, "llama.attention.head_count": 8,
		"llama.attention.head_count_kv": 4, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2} {
		if got, err := f.Uint(k); err != nil || got != want {
			t.Errorf("%s = %d %v, want %d", k, got, err, want)
		}
	}
	if eps, err := f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil || float32(eps) != 1e-5 {
		t.Errorf("rms epsilon %v %v", eps, err)
	}
	tv, _ := f.Get("tokenizer.ggml.tokens")
	tokens, ok := tv.Strings()
	// 498 and 511 are whitespace-only pieces (tokenizer.json agrees).
	if !ok || len(tokens) != 512 || tokens[3] != "<0x00>" || tokens[498] != "\u00a0" || tokens[511] != "\u200a" {
		t.Errorf("tokens: %d, ok %v", len(tokens), ok)
	}
	sv, _ := f.Get("tokenizer.ggml.scores")
	scores, ok := sv.Float32s()
	if !ok || len(scores) != 512 || scores[259] != 0 || scores[260] != -1 || scores[511] != -252 {
		t.Errorf("scores: %d, ok %v", len(scores), ok)
	}
	yv, _ := f.Get("tokenizer.ggml.token_type")
	types, ok := yv.Int32s()
	if !ok || len(types) != 512 || types[0] != 2 || types[1] != 3 || types[3] != 6 || types[300] != 1 {
		t.Errorf("token types: %d, ok %v", len(types), ok)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("stories260K has tied embeddings, no output.weight")
	}
	if len(f.Tensors) != 2+9*5 {
		t.Errorf("%d tensors, want %d", len(f.Tensors), 2+9*5)
	}
	for _, ti := range f.Tensors {
		if ti.Type != kernels.F32 {
			t.Errorf("%s is %s", ti.Name, ti.Type)
		}
	}
}
