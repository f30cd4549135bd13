package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"roe/adapters"
	"roe/internal/testenv"
	"slices"
	"strings"
	"testing"
)

const storiesGolden = "../../../shared/data/models/stories260K-hf/golden.json"

func roe(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func readGolden(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(storiesGolden)
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	var g map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func toInts(v any) []int {
	var out []int
	for _, x := range v.([]any) {
		out = append(out, int(x.(float64)))
	}
	return out
}

// The embedded stories260K, from BOS alone, greedily gives the golden 64 tokens and text.
func TestGenerateGolden(t *testing.T) {
	g := readGolden(t)["greedy"].(map[string]any)
	want := toInts(g["ids_including_bos"])
	out, errs, code := roe(t, "", "generate", "--model", "stories260K", "--prompt", "", "--temperature", "0", "--max-tokens", "64", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		PromptTokens []int  `json:"prompt_tokens"`
		Tokens       []int  `json:"tokens"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !slices.Equal(got.PromptTokens, want[:1]) || !slices.Equal(got.Tokens, want[1:]) {
		t.Errorf("tokens:\n got %v %v\nwant %v", got.PromptTokens, got.Tokens, want)
	}
	if got.Text != g["text"].(string) {
		t.Errorf("text:\n got %q\nwant %q", got.Text, g["text"])
	}
	// Streaming prints the same text.
	out, _, code = roe(t, "", "generate", "--model", "stories260K", "--prompt", "", "--temperature", "0", "--max-tokens", "64")
	if code != 0 || out != g["text"].(string)+"\n" {
		t.Errorf("streamed text %q (exit %d)", out, code)
	}
}

func TestGenerateSamplingIsSeeded(t *testing.T) {
	args := []string{"generate", "--prompt", "Once upon a time", "--temperature", "1", "--top-p", "0.9", "--top-k", "40", "--seed", "7", "--max-tokens", "20", "--json"}
	a, _, c1 := roe(t, "", args...)
	b, _, c2 := roe(t, "", args...)
	if c1 != 0 || c2 != 0 || a != b {
		t.Errorf("same seed gave different output:\n%s\n%s", a, b)
	}
}

func TestGenerateStopString(t *testing.T) {
	out, errs, code := roe(t, "", "generate", "--model", "stories260K", "--prompt", "", "--temperature", "0", "--max-tokens", "64", "--stop", "Lily", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var got struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	}
	json.Unmarshal([]byte(out), &got)
	if got.Text != "Once upon a time, there was a little girl named " || got.FinishReason != "stop" {
		t.Errorf("stop string: %q, %q", got.Text, got.FinishReason)
	}
}

func TestTokenize(t *testing.T) {
	g := readGolden(t)
	for _, c := range g["tokenizer_cases"].([]any) {
		c := c.(map[string]any)
		text := c["text"].(string)
		out, errs, code := roe(t, "", "tokenize", "--model", "stories260K", text)
		if code != 0 {
			t.Fatal(errs)
		}
		var ids []int
		json.Unmarshal([]byte(out), &ids)
		if want := toInts(c["ids_add_special_tokens"]); !slices.Equal(ids, want) {
			t.Errorf("tokenize %q: %v, want %v", text, ids, want)
		}
		out, _, _ = roe(t, "", "tokenize", "--model", "stories260K", "--no-special", text)
		ids = nil
		json.Unmarshal([]byte(out), &ids)
		if want := toInts(c["ids_no_special_tokens"]); !slices.Equal(ids, want) {
			t.Errorf("tokenize --no-special %q: %v, want %v", text, ids, want)
		}
	}
	// Lines of JSON strings on stdin give one array per line.
	out, errs, code := roe(t, "\"Once upon a time\"\n\"\"\n", "tokenize", "--model", "stories260K")
	if code != 0 || out != "[1,403,407,261,378]\n[1]\n" {
		t.Errorf("stdin mode: %q %s", out, errs)
	}
	if _, errs, code := roe(t, "not json\n", "tokenize", "--model", "stories260K"); code == 0 || !strings.Contains(errs, "line 1") {
		t.Errorf("bad stdin line: exit %d, %s", code, errs)
	}
}

func TestEmbedAndScore(t *testing.T) {
	out, errs, code := roe(t, "", "embed", "--model", "stories260K", "Once upon a time")
	if code != 0 {
		t.Fatal(errs)
	}
	var e []float64
	if err := json.Unmarshal([]byte(out), &e); err != nil || len(e) != 64 {
		t.Fatalf("embedding: %v, %d values", err, len(e))
	}
	out, errs, code = roe(t, "", "score", "--model", "stories260K", "--prompt", "Once upon a", "--continuation", " time")
	if code != 0 {
		t.Fatal(errs)
	}
	var s struct {
		LogProb float64 `json:"logprob"`
		Tokens  int     `json:"tokens"`
	}
	json.Unmarshal([]byte(out), &s)
	if s.Tokens != 1 || s.LogProb >= 0 || s.LogProb < -5 {
		t.Errorf("score: %+v", s)
	}
	out, _, _ = roe(t, "", "score", "--model", "stories260K", "--prompt", "Once upon a", "--continuation", " banana")
	var s2 struct {
		LogProb float64 `json:"logprob"`
	}
	json.Unmarshal([]byte(out), &s2)
	if s2.LogProb >= s.LogProb {
		t.Errorf("' banana' (%g) should be less likely than ' time' (%g)", s2.LogProb, s.LogProb)
	}
}

func TestImportLlama2c(t *testing.T) {
	src := "../../../shared/data/models/stories260K"
	if _, err := os.Stat(src); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	out := t.TempDir()
	if _, errs, code := roe(t, "", "model", "import-llama2c", "--checkpoint", filepath.Join(src, "stories260K.bin"),
		"--tokenizer", filepath.Join(src, "tok512.bin"), "--out", out); code != 0 {
		t.Fatal(errs)
	}
	a, errs, code := roe(t, "", "generate", "--model", out, "--prompt", "", "--temperature", "0", "--max-tokens", "64")
	b, _, _ := roe(t, "", "generate", "--model", "stories260K", "--prompt", "", "--temperature", "0", "--max-tokens", "64")
	if code != 0 || a != b {
		t.Errorf("imported model generates %q (%s), embedded %q", a, errs, b)
	}
}

func TestBadCommandLines(t *testing.T) {
	cases := [][]string{
		{"frobnicate"},
		{"generate", "--max-tokens", "x"},
		{"generate", "--top-p", "2"},
		{"generate", "--model", "/nonexistent"},
		{"embed"},
		{"score", "--prompt", "a"},
		{"model", "import-llama2c"},
		{"model", "import-llama2c", "--checkpoint", "/nonexistent", "--tokenizer", "/nonexistent", "--out", "/tmp/x"},
	}
	for _, c := range cases {
		_, errs, code := roe(t, "", c...)
		if code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", c, code, errs)
		}
	}
}

const goldenLoRA = "../../../shared/golden/tiny-llama/lora"
const goldenBase = "../../../shared/golden/tiny-llama"

// `roe merge` writes a PEFT folder that loads back and generates like the
// on-the-fly merge of `generate --adapter A,B --merge`.
func TestMergeAndGenerateWithAdapters(t *testing.T) {
	if _, err := os.Stat(goldenLoRA); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	gen := func(extra ...string) string {
		args := append([]string{"generate", "--model", goldenBase, "--prompt", "Hello", "--temperature", "0", "--max-tokens", "8", "--json"}, extra...)
		out, errs, code := roe(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: %s", extra, errs)
		}
		return out
	}
	plain, one := gen(), gen("--adapter", goldenLoRA)
	if plain == one {
		t.Error("the adapter changed nothing")
	}
	for _, method := range []string{"linear", "cat", "ties", "task-arithmetic"} {
		out := filepath.Join(t.TempDir(), method)
		args := []string{"merge", "--model", goldenBase, "--adapters", goldenLoRA + "," + goldenLoRA, "--method", method, "--density", "1", "--out", out}
		if method == "task-arithmetic" {
			args = append(args, "--weights", "0.5,0.5")
		}
		if _, errs, code := roe(t, "", args...); code != 0 {
			t.Fatalf("merge %s: %s", method, errs)
		}
		var cfg map[string]any
		b, err := os.ReadFile(filepath.Join(out, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &cfg); err != nil || cfg["peft_type"] != "LORA" || cfg["task_type"] != "CAUSAL_LM" {
			t.Fatalf("%s: adapter_config.json not as PEFT writes it: %s", method, b)
		}
		// Merging an expert with itself (weights summing to 1) is that expert.
		want := one
		if method == "cat" {
			want = gen("--adapter", goldenLoRA+","+goldenLoRA, "--merge", "cat")
		}
		if got := gen("--adapter", out); got != want {
			t.Errorf("%s: merged adapter generates %s, want %s", method, got, want)
		}
	}
	if _, errs, code := roe(t, "", "merge", "--model", goldenBase, "--adapters", goldenLoRA, "--method", "nope", "--out", t.TempDir()); code == 0 || !strings.Contains(errs, "nope") {
		t.Errorf("unknown method: exit %d, %s", code, errs)
	}
	if _, errs, code := roe(t, "", "generate", "--model", "stories260K", "--adapter", goldenLoRA, "--prompt", "x"); code == 0 || !strings.Contains(errs, "layer") {
		t.Errorf("adapter for another base model: exit %d, %s", code, errs)
	}
}

// The stories260K GGUF serves every command the embedded model does, with
// the same output: generate, score, embed, tokenize (the embedding within
// float32 summation order: the GGUF's weights are multiplied in its mapping
// by other kernels).
func TestGGUFModelCommands(t *testing.T) {
	const file = "../../../shared/golden/gguf/stories260K/stories260K-F32.gguf"
	if _, err := os.Stat(file); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	for _, args := range [][]string{
		{"generate", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "32", "--json"},
		{"score", "--prompt", "Once upon a", "--continuation", " time"},
		{"embed", "Once upon a time"},
		{"tokenize", "Once upon a time, naïve café"},
	} {
		want, errs, code := roe(t, "", append([]string{args[0], "--model", "stories260K"}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		got, errs, code := roe(t, "", append([]string{args[0], "--model", file}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("%v on GGUF: exit %d: %s", args, code, errs)
		}
		if got != want && !(args[0] == "embed" && closeVectors(got, want, 1e-5)) {
			t.Errorf("%v: GGUF gives\n%s\nthe safetensors model\n%s", args, got, want)
		}
	}
	// A GGUF that is not a model is refused with its reason.
	_, errs, code := roe(t, "", "generate", "--model", "../../../shared/golden/gguf/tiny-llama-lora/tiny-llama-lora-F32.gguf", "--prompt", "x")
	if code == 0 || !strings.Contains(errs, "adapter") {
		t.Errorf("adapter GGUF as a model: exit %d, %s", code, errs)
	}
}

// --activations q8 runs a quantized GGUF with int8 activations (lossy; the
// default stays exact); an unknown value is a usage error.
func TestActivationsFlag(t *testing.T) {
	const file = "../../../shared/golden/gguf/tiny-llama-k256/tiny-llama-k256-Q4_K_M.gguf"
	if _, err := os.Stat(file); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	args := []string{"generate", "--model", file, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "8"}
	if _, errs, code := roe(t, "", append(args, "--activations", "q8")...); code != 0 {
		t.Fatalf("--activations q8: exit %d: %s", code, errs)
	}
	if _, errs, code := roe(t, "", append(args, "--activations", "q4")...); code == 0 || !strings.Contains(errs, "--activations") {
		t.Errorf("--activations q4: exit %d, %s", code, errs)
	}
}

// --lora-dtype bfloat16 serves an adapter with rounded decode factors (and
// says so on stderr, as --activations q8 does); an unknown value is a usage error, and
// training refuses it.
func TestLoRADTypeFlag(t *testing.T) {
	if _, err := os.Stat(goldenLoRA); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	defer adapters.SetDecodeDType(adapters.DecodeAuto) // a process-wide setting
	args := []string{"generate", "--model", goldenBase, "--adapter", goldenLoRA, "--prompt", "x", "--temperature", "0", "--max-tokens", "4"}
	if _, errs, code := roe(t, "", append(args, "--lora-dtype", "bfloat16")...); code != 0 {
		t.Fatalf("--lora-dtype bfloat16: exit %d: %s", code, errs)
	}
	if _, errs, code := roe(t, "", append(args, "--lora-dtype", "fp8")...); code == 0 || !strings.Contains(errs, "--lora-dtype") {
		t.Errorf("--lora-dtype fp8: exit %d, %s", code, errs)
	}
	if _, errs, code := roe(t, "", "train", "--model", goldenBase, "--lora-dtype", "bfloat16"); code == 0 || !strings.Contains(errs, "--lora-dtype") {
		t.Errorf("train --lora-dtype bfloat16: exit %d, %s", code, errs)
	}
	// auto is float32: train goes on to its own checks (here: no --data).
	if _, errs, code := roe(t, "", "train", "--model", goldenBase, "--lora-dtype", "auto"); code == 0 || strings.Contains(errs, "--lora-dtype") {
		t.Errorf("train --lora-dtype auto: exit %d, %s", code, errs)
	}
}

// closeVectors reports whether two JSON arrays of numbers have the same
// length and agree within tol·max(1, |want|) element by element.
func closeVectors(got, want string, tol float64) bool {
	var a, b []float64
	if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal([]byte(want), &b) != nil || len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol*max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}
