package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/internal/testenv"
)

// ollamaStore writes an Ollama model store under a temporary directory
// (OLLAMA_MODELS for the test) holding file as NAME:TAG, with extra layers
// of the given media types, and returns the model blob's path.
func ollamaStore(t *testing.T, file, name, tag string, extra ...string) (dir, blob string) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv("OLLAMA_MODELS", dir)
	b, err := os.ReadFile(file)
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	put := func(data []byte) (string, string) {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256-"+hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return digest, p
	}
	type layer struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	digest, blob := put(b)
	layers := []layer{{"application/vnd.ollama.image.model", digest, len(b)}}
	for _, mt := range extra {
		data := []byte("{}")
		if strings.HasSuffix(mt, ".adapter") {
			data = b // any GGUF: the flag refuses it before reading
		}
		d, _ := put(data)
		layers = append(layers, layer{mt, d, len(data)})
	}
	mf, _ := json.Marshal(map[string]any{"schemaVersion": 2,
		"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": layers})
	p := filepath.Join(dir, "manifests", "registry.ollama.ai", "library", name, tag)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, mf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, blob
}

// --model ollama:NAME[:TAG] serves the GGUF blob Ollama's store holds for
// the name, as the file itself; the blob, named sha256-HEX without an
// extension, is a GGUF by its content; the layers roe does not apply are
// named on stderr, and a model with adapter layers, a missing name, an
// unfinished pull and a name with a path in it are refused.
func TestOllamaModel(t *testing.T) {
	const file = "../../../shared/golden/gguf/stories260K/stories260K-F32.gguf"
	_, blob := ollamaStore(t, file, "stories", "260k",
		"application/vnd.ollama.image.template", "application/vnd.ollama.image.system", "application/vnd.ollama.image.params")
	var notices strings.Builder
	defer func(w io.Writer) { noticeOut = w }(noticeOut)
	noticeOut = &notices
	args := []string{"generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "16", "--json"}
	want, errs, code := roe(t, "", append([]string{args[0], "--model", file}, args[1:]...)...)
	if code != 0 {
		t.Fatalf("the file: exit %d: %s", code, errs)
	}
	for _, ref := range []string{"ollama:stories:260k", "ollama:library/stories:260k", "ollama:registry.ollama.ai/library/stories:260k", blob} {
		notices.Reset()
		got, errs, code := roe(t, "", append([]string{args[0], "--model", ref}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", ref, code, errs)
		}
		if got != want {
			t.Errorf("%s gives\n%s\nthe file\n%s", ref, got, want)
		}
		if n := notices.String(); strings.HasPrefix(ref, "ollama:") && !(strings.Contains(n, "system prompt") && strings.Contains(n, "default parameters")) {
			t.Errorf("%s: stderr does not name the layers left out: %q", ref, n)
		}
	}
	if got := modelID(blob); got != "ollama:registry.ollama.ai/library/stories:260k" {
		t.Errorf("model id %q, want the name it was given by", got)
	}
	for ref, why := range map[string]string{
		"ollama:stories":         "ollama pull stories", // tag latest: not pulled
		"ollama:nosuch:1b":       "not found",
		"ollama:../stories:260k": "not a name",
		"ollama:a/b/c/d":         "NAMESPACE/NAME",
	} {
		_, errs, code := roe(t, "", "generate", "--model", ref, "--prompt", "x")
		if code == 0 || !strings.Contains(errs, why) {
			t.Errorf("%s: exit %d, stderr %q, want it to say %q", ref, code, errs, why)
		}
	}

	// A model with an adapter layer is refused with what to run instead.
	ollamaStore(t, file, "tuned", "latest", "application/vnd.ollama.image.adapter")
	if _, errs, code := roe(t, "", "generate", "--model", "ollama:tuned", "--prompt", "x"); code == 0 || !strings.Contains(errs, "roe experts add") {
		t.Errorf("adapter layer: exit %d, %s", code, errs)
	}
	// A blob shorter than its manifest says (a pull cut short) is refused.
	dir, blob := ollamaStore(t, file, "cut", "latest")
	if err := os.Truncate(blob, 1000); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := roe(t, "", "generate", "--model", "ollama:cut", "--prompt", "x"); code == 0 || !strings.Contains(errs, "unfinished pull") {
		t.Errorf("truncated blob in %s: exit %d, %s", dir, code, errs)
	}

	// The refusal's advice works: an adapter blob (a GGUF LoRA named
	// sha256-HEX) adds as an expert by its path.
	const shared = "../../../shared/golden"
	_, lora := ollamaStore(t, shared+"/gguf/tiny-llama-lora/tiny-llama-lora-F32.gguf", "lora", "latest")
	inst := filepath.Join(t.TempDir(), "i.jsonl")
	os.WriteFile(inst, []byte(`{"input": "Is this a test?", "answer_choices": ["yes", "no"]}`+"\n"), 0o644)
	out, errs, code := roe(t, "", "experts", "add", "--library", filepath.Join(t.TempDir(), "lib"), "--model", shared+"/gguf/tiny-llama/tiny-llama-Q8_0.gguf",
		"--adapter", lora, "--instances", inst, "--name", "tiny")
	if code != 0 || !strings.Contains(out, "added tiny") {
		t.Errorf("experts add --adapter %s: %s %s", lora, out, errs)
	}
}
