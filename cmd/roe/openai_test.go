package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"roe/adapters"
	"roe/internal/testenv"
)

// TestOpenAIClient starts `roe serve` on a loopback port and drives it with the
// official openai npm package (installed into the npm cache by the test).
func TestOpenAIClient(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.SkipOrFail(t, "SKIP openai client test: node is not installed")
	}
	cache := os.Getenv("ROE_CACHE")
	if cache == "" {
		cache, _ = filepath.Abs("../../.cache")
	}
	// A prefix of its own: npm prunes what a --no-save install did not name,
	// which would remove the tokenizer vocabularies from the shared one.
	npmDir := filepath.Join(cache, "npm-openai")
	if _, err := os.Stat(filepath.Join(npmDir, "node_modules", "openai")); err != nil {
		cmd := exec.Command("npm", "install", "--prefix", npmDir, "--no-save", "--no-audit", "--no-fund", "openai@5")
		if out, err := cmd.CombinedOutput(); err != nil {
			testenv.SkipOrFail(t, "SKIP openai client test: npm install openai failed: %v\n%s", err, out)
		}
	}
	// An adapter root for POST /v1/load_lora_adapter, with a folder beside it
	// that lora_path must not reach.
	base260, err := loadConfig("stories260K")
	if err != nil {
		t.Fatal(err)
	}
	adapterDir := t.TempDir()
	for _, d := range []string{filepath.Join(adapterDir, "root", "sql"), filepath.Join(adapterDir, "outside")} {
		if err := adapters.Random(base260, 4, 1).Save(d); err != nil {
			t.Fatal(err)
		}
	}
	// stories260K, whose greedy text the script checks, with an empty library.
	base := startServe(t, "--model", "stories260K", "--starter=false", "--library", filepath.Join(t.TempDir(), "lib"), "--api-key", "test-key",
		"--adapter-root", filepath.Join(adapterDir, "root"))
	// ES modules resolve packages from the script's folder, so run a copy
	// next to the npm cache's node_modules.
	src, err := os.ReadFile("../../serve/testdata/openai/client.test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(npmDir, "roe-openai-client.test.mjs")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", script)
	cmd.Env = append(os.Environ(), "ROE_BASE_URL="+base, "ROE_API_KEY=test-key", "ROE_MODEL=stories260K")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("openai client tests failed: %v", err)
	}
}
