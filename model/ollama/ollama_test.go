package ollama

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for ref, want := range map[string]string{
		"llama3.2":                          "registry.ollama.ai/library/llama3.2:latest",
		"llama3.2:1b":                       "registry.ollama.ai/library/llama3.2:1b",
		"someone/tuned:q4_K_M":              "registry.ollama.ai/someone/tuned:q4_K_M",
		"hf.co/bartowski/SmolLM2-135M:Q8_0": "hf.co/bartowski/SmolLM2-135M:Q8_0",
	} {
		h, ns, n, tag, err := ParseName(ref)
		if got := h + "/" + ns + "/" + n + ":" + tag; err != nil || got != want {
			t.Errorf("ParseName(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for _, ref := range []string{"", ":", "a:", "../a", "a/../b", "a/b/c/d", "a b", "a:b:c", "host:5000/ns/a", ".hidden", "a/.", "a\\b"} {
		if _, _, _, _, err := ParseName(ref); err == nil {
			t.Errorf("ParseName(%q) took it", ref)
		}
	}
}

// A manifest resolves to its model blob; one whose blobs are missing, of
// another size or named by a malformed digest, or without a model layer,
// is refused; a name the store lacks is ErrNotFound.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	hex := strings.Repeat("ab", 32)
	blob := filepath.Join(dir, "blobs", "sha256-"+hex)
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(blob, "GGUF0123")
	manifest := func(layers string) {
		write(filepath.Join(dir, "manifests", "registry.ollama.ai", "library", "m", "latest"), `{"schemaVersion":2,"layers":[`+layers+`]}`)
	}
	model := `{"mediaType":"` + MediaModel + `","digest":"sha256:` + hex + `","size":8}`
	manifest(model + `,{"mediaType":"` + MediaLicense + `","digest":"sha256:` + strings.Repeat("cd", 32) + `","size":3}`)
	m, err := Resolve(dir, "m")
	if err != nil || m.GGUF != blob || len(m.Other) != 1 || m.Other[0] != MediaLicense {
		t.Fatalf("Resolve: %+v, %v", m, err)
	}
	for layers, why := range map[string]string{
		strings.Replace(model, `"size":8`, `"size":9`, 1):        "unfinished pull",
		strings.Replace(model, "sha256:", "sha512:", 1):          "not sha256:HEX",
		strings.Replace(model, hex, strings.Repeat("ef", 32), 1): "no such file",
		``:                  "no layer of type",
		model + `,` + model: "two model layers",
	} {
		manifest(layers)
		if _, err := Resolve(dir, "m"); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("layers %s: %v, want %q", layers, err, why)
		}
	}
	if _, err := Resolve(dir, "other:7b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a name not in the store: %v", err)
	}
}

// Neither a name nor a manifest, whatever their bytes, panics.
func FuzzManifest(f *testing.F) {
	f.Add("llama3.2:1b", []byte(`{"schemaVersion":2,"layers":[{"mediaType":"`+MediaModel+`","digest":"sha256:`+strings.Repeat("0", 64)+`","size":1}]}`))
	f.Add("a/b/c:d", []byte(`{"schemaVersion":2,"layers":null}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ref string, b []byte) {
		if host, ns, name, tag, err := ParseName(ref); err == nil {
			for _, p := range []string{host, ns, name, tag} {
				if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `/\:`) {
					t.Fatalf("ParseName(%q) gave part %q", ref, p)
				}
			}
		}
		if m, err := parseManifest(b, dir); err == nil && !strings.HasPrefix(m.GGUF, filepath.Join(dir, "blobs")) {
			t.Fatalf("model blob %q outside the store", m.GGUF)
		}
	})
}

// OLLAMA_MODELS, when set, is the only store looked in; Find says where it
// looked when no store has the name.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OLLAMA_MODELS", dir)
	if d := Dirs(); len(d) != 1 || d[0] != dir {
		t.Fatalf("Dirs with OLLAMA_MODELS: %v", d)
	}
	if _, err := Find("m"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Find in an empty store: %v", err)
	}
	t.Setenv("OLLAMA_MODELS", "")
	if d := Dirs(); len(d) < 1 || d[len(d)-1] != "/usr/share/ollama/.ollama/models" {
		t.Errorf("Dirs without OLLAMA_MODELS: %v", d)
	}
}
