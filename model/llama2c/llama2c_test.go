package llama2c

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"roe/internal/testenv"
	"testing"

	"roe/model/safetensors"
)

const (
	srcDir = "../../../shared/data/models/stories260K"
	refDir = "../../../shared/data/models/stories260K-hf"
)

func need(t *testing.T) {
	if _, err := os.Stat(srcDir); err != nil {
		testenv.SkipOrFail(t, "stories260K not present: %v", err)
	}
}

// Converting stories260K gives bit-identical tensors and the same tokenizer as
// the independently converted reference folder.
func TestConvertStories260K(t *testing.T) {
	need(t)
	out := t.TempDir()
	if err := Convert(filepath.Join(srcDir, "stories260K.bin"), filepath.Join(srcDir, "tok512.bin"), out); err != nil {
		t.Fatal(err)
	}
	got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	ref, err := safetensors.Open(filepath.Join(refDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if len(got.Tensors()) != len(ref.Tensors()) {
		t.Fatalf("%d tensors, reference has %d", len(got.Tensors()), len(ref.Tensors()))
	}
	for _, info := range ref.Tensors() {
		a, err := got.Float32(info.Name)
		if err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
		b, _ := ref.Float32(info.Name)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("tensor %s differs from the reference", info.Name)
		}
	}
	var gotTok, refTok map[string]any
	readJSON(t, filepath.Join(out, "tokenizer.json"), &gotTok)
	readJSON(t, filepath.Join(refDir, "tokenizer.json"), &refTok)
	for _, k := range []string{"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"} {
		if !reflect.DeepEqual(gotTok[k], refTok[k]) {
			t.Errorf("tokenizer.json %q differs from the reference", k)
		}
	}
	var gotCfg, refCfg map[string]any
	readJSON(t, filepath.Join(out, "config.json"), &gotCfg)
	readJSON(t, filepath.Join(refDir, "config.json"), &refCfg)
	for _, k := range []string{"architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
		"num_key_value_heads", "vocab_size", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "max_position_embeddings", "bos_token_id", "eos_token_id"} {
		if !reflect.DeepEqual(gotCfg[k], refCfg[k]) {
			t.Errorf("config.json %q: got %v, reference %v", k, gotCfg[k], refCfg[k])
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestBadCheckpoints(t *testing.T) {
	need(t)
	b, err := os.ReadFile(filepath.Join(srcDir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"header":    b[:20],
		"truncated": b[:len(b)/2],
		"zero dim":  append(make([]byte, 28), b[28:]...),
		"magic":     append([]byte{0x32, 0x34, 0x6b, 0x61}, b[4:]...),
	}
	for name, data := range cases {
		if _, _, err := ParseCheckpoint(data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
	tb, _ := os.ReadFile(filepath.Join(srcDir, "tok512.bin"))
	if _, err := ParseTokenizer(tb[:len(tb)-3], 512); !errors.Is(err, ErrFormat) {
		t.Errorf("truncated tokenizer: got %v", err)
	}
}
