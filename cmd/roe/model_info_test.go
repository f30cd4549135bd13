package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"roe/internal/testenv"
)

// roe model info describes a model from its headers: the same model as a
// Hugging Face folder and as a Q8_0 GGUF has the same shape and parameter
// count, the GGUF its tensor types and file type; an embedded model and an
// Ollama name work too, and a missing model is an error.
func TestModelInfo(t *testing.T) {
	const folder, file = "../../../shared/golden/tiny-llama", "../../../shared/golden/gguf/tiny-llama/tiny-llama-Q8_0.gguf"
	if _, err := os.Stat(file); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	info := func(args ...string) modelInfo {
		t.Helper()
		out, errs, code := roe(t, "", append([]string{"model", "info", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var m modelInfo
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return m
	}
	hf, gg := info("--model", folder), info("--model", file)
	if hf.Format != "safetensors" || gg.Format != "gguf" || gg.GGUFVersion != 3 || gg.FileType != "q8_0" {
		t.Errorf("formats: %s, %s v%d %s", hf.Format, gg.Format, gg.GGUFVersion, gg.FileType)
	}
	if hf.Layers != 2 || hf.Hidden != 64 || hf.Heads != 4 || hf.KVHeads != 2 || hf.Vocab != 320 || hf.Architecture != "LlamaForCausalLM" {
		t.Errorf("folder: %+v", hf)
	}
	if hf.Parameters != gg.Parameters || hf.Layers != gg.Layers || hf.Hidden != gg.Hidden || hf.Vocab != gg.Vocab || hf.Tokenizer.Vocab != gg.Tokenizer.Vocab {
		t.Errorf("the same model differs: folder %+v, GGUF %+v", hf, gg)
	}
	if c := gg.Tensors["Q8_0"]; c.Count == 0 || c.Bytes == 0 || hf.Tensors["F32"].Count != 21 {
		t.Errorf("tensor types: GGUF %v, folder %v", gg.Tensors, hf.Tensors)
	}
	if gg.Bytes >= hf.Bytes || hf.Bytes != 4*hf.Parameters {
		t.Errorf("weight bytes: GGUF %d, folder %d for %d parameters", gg.Bytes, hf.Bytes, hf.Parameters)
	}
	if e := info("--model", "stories260K"); e.Format != "embedded" || e.Parameters == 0 || e.Tokenizer.Vocab != 512 {
		t.Errorf("embedded: %+v", e)
	}
	ollamaStore(t, file, "tiny", "latest")
	if o := info("--model", "ollama:tiny"); o.Model != "ollama:tiny" || o.Parameters != gg.Parameters {
		t.Errorf("ollama: %+v", o)
	}
	out, _, code := roe(t, "", "model", "info", "--model", file)
	if code != 0 || !strings.Contains(out, "GGUF v3, file type Q8_0") || !strings.Contains(out, "Q8_0 ×") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	if _, errs, code := roe(t, "", "model", "info", "--model", t.TempDir()); code == 0 || !strings.Contains(errs, "config.json") {
		t.Errorf("an empty folder: exit %d, %s", code, errs)
	}
}
