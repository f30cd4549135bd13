package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"roe/kernels"
	"roe/model/gguf"
	"strings"
	"testing"
)

// `roe experts add` followed by `roe route` finds the expert; list, show,
// export, import and rm work on the same library.
func TestExpertsAddThenRoute(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib")
	zero := filepath.Join(dir, "zero")
	if _, errs, code := roe(t, "", "adapter", "init", "--rank", "2", "--out", zero); code != 0 {
		t.Fatal(errs)
	}
	write := func(name string, lines []string) string {
		p := filepath.Join(dir, name+".jsonl")
		var b strings.Builder
		for _, l := range lines {
			j, _ := json.Marshal(map[string]any{"input": l, "answer_choices": []string{"yes", "no"}})
			b.Write(j)
			b.WriteByte('\n')
		}
		os.WriteFile(p, []byte(b.String()), 0o644)
		return p
	}
	animals := write("animals", []string{"The cat sat on the mat.", "A dog barked at the mailman.", "The bird sang in the tree.", "A fish swam in the pond."})
	money := write("money", []string{"Stocks fell sharply on Wall Street.", "The central bank raised interest rates.", "Bond yields rose again.", "The company reported quarterly earnings."})
	var progress bytes.Buffer
	progressOut = &progress
	defer func() { progressOut = os.Stderr }()
	for _, e := range []struct{ name, file string }{{"animals", animals}, {"money", money}} {
		if out, errs, code := roe(t, "", "experts", "add", "--library", lib, "--adapter", zero, "--instances", e.file,
			"--name", e.name, "--kind", "dataset", "--dataset", e.name); code != 0 || !strings.Contains(out, "added "+e.name) {
			t.Fatalf("add %s: %s %s", e.name, out, errs)
		}
	}
	if !strings.Contains(progress.String(), `"phase":"embed"`) || !strings.Contains(progress.String(), `"done":4,`) {
		t.Errorf("no embedding progress: %s", progress.String())
	}
	// Without instances: served by name only, never routed to.
	if out, errs, code := roe(t, "", "experts", "add", "--library", lib, "--adapter", zero, "--name", "bare"); code != 0 || !strings.Contains(out, "by name only") {
		t.Fatalf("add without instances: %d %s %s", code, out, errs)
	}
	out, errs, code := roe(t, "", "route", "--library", lib, "The central bank cut rates and stocks rose.", "Bond markets rallied.")
	if code != 0 {
		t.Fatal(errs)
	}
	var r struct {
		Experts []struct {
			Name  string `json:"name"`
			Votes int    `json:"votes"`
		} `json:"experts"`
		Neighbors [][]map[string]any `json:"neighbors"`
		Fallback  bool               `json:"fallback"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err, out)
	}
	if len(r.Experts) == 0 || r.Experts[0].Name != "money" || r.Fallback || len(r.Neighbors) != 2 {
		t.Errorf("route: %s", out)
	}
	for _, x := range r.Experts {
		if x.Name == "bare" {
			t.Errorf("routed to an expert without instances: %s", out)
		}
	}
	if out, _, _ := roe(t, "", "experts", "list", "--library", lib); !strings.Contains(out, "animals") || !strings.Contains(out, "money") {
		t.Errorf("list: %s", out)
	}
	exp := filepath.Join(dir, "export")
	if _, errs, code := roe(t, "", "experts", "export", "--library", lib, "--out", exp, "money"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := roe(t, "", "experts", "rm", "--library", lib, "money"); code != 0 {
		t.Fatal(errs)
	}
	if _, _, code := roe(t, "", "experts", "show", "--library", lib, "money"); code == 0 {
		t.Error("a removed expert is still shown")
	}
	if _, errs, code := roe(t, "", "experts", "import", "--library", lib, exp); code != 0 {
		t.Fatal(errs)
	}
	if out, _, _ := roe(t, "", "experts", "show", "--library", lib, "money"); !strings.Contains(out, `"kind": "dataset"`) {
		t.Errorf("imported expert: %s", out)
	}
	// Refusals: a duplicate name, an adapter for another base model.
	if _, errs, code := roe(t, "", "experts", "add", "--library", lib, "--adapter", zero, "--instances", money, "--name", "money"); code == 0 || !strings.Contains(errs, "exists") {
		t.Errorf("duplicate: %d %s", code, errs)
	}
	if _, err := os.Stat(goldenLoRA); err == nil {
		if _, errs, code := roe(t, "", "experts", "add", "--library", lib, "--adapter", goldenLoRA, "--instances", money, "--name", "alien"); code == 0 {
			t.Errorf("an adapter for another base model was accepted: %s", errs)
		}
	}
}

// A llama.cpp GGUF LoRA is added like a PEFT folder, on a safetensors base
// or on the same model as GGUF, and exports as the PEFT adapter it stands for.
func TestExpertsAddGGUFLoRA(t *testing.T) {
	const shared = "../../../shared/golden"
	adapter := shared + "/gguf/tiny-llama-lora/tiny-llama-lora-F32.gguf"
	if _, err := os.Stat(adapter); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	dir := t.TempDir()
	inst := filepath.Join(dir, "i.jsonl")
	os.WriteFile(inst, []byte(`{"input": "Is this a test?", "answer_choices": ["yes", "no"]}`+"\n"), 0o644)
	for i, base := range []string{shared + "/tiny-llama", shared + "/gguf/tiny-llama/tiny-llama-Q8_0.gguf"} {
		lib := filepath.Join(dir, "lib"+string(rune('0'+i)))
		out, errs, code := roe(t, "", "experts", "add", "--library", lib, "--model", base, "--adapter", adapter, "--instances", inst, "--name", "tiny")
		if code != 0 || !strings.Contains(out, "added tiny") {
			t.Fatalf("add on %s: %s %s", base, out, errs)
		}
	}
	// Exported as GGUF it is the file it came from, tensor for tensor.
	out := filepath.Join(dir, "tiny.gguf")
	if _, errs, code := roe(t, "", "experts", "export", "--library", filepath.Join(dir, "lib0"), "--model", shared+"/tiny-llama", "--format", "gguf", "--out", out, "tiny"); code != 0 {
		t.Fatal(errs)
	}
	a, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := gguf.Open(adapter)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, ti := range b.Tensors {
		x, _ := a.Data(ti.Name)
		y, _ := b.Data(ti.Name)
		if !bytes.Equal(x, y) {
			t.Errorf("exported %s differs", ti.Name)
		}
	}
	// --outtype f16 writes the same tensors as IEEE halves (llama.cpp's
	// converter's default), which read back as float16 decode factors.
	half := filepath.Join(dir, "tiny-f16.gguf")
	if _, errs, code := roe(t, "", "experts", "export", "--library", filepath.Join(dir, "lib0"), "--model", shared+"/tiny-llama", "--format", "gguf", "--outtype", "f16", "--out", half, "tiny"); code != 0 {
		t.Fatal(errs)
	}
	h, err := gguf.Open(half)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, ti := range b.Tensors {
		got, err := h.Float32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := b.Float32(ti.Name)
		for i := range want {
			if hi := h.Tensors[0].Type; hi != kernels.F16 || got[i] != kernels.FromF16(kernels.ToF16(want[i])) {
				t.Fatalf("--outtype f16: %s[%d] = %v (%s), want %v rounded to F16", ti.Name, i, got[i], hi, want[i])
			}
		}
	}
	if _, errs, code := roe(t, "", "experts", "export", "--library", filepath.Join(dir, "lib0"), "--model", shared+"/tiny-llama", "--format", "gguf", "--outtype", "q4_0", "--out", half, "tiny"); code == 0 || !strings.Contains(errs, "outtype") {
		t.Errorf("--outtype q4_0: exit %d, %s", code, errs)
	}
	// On a base of another shape it is refused.
	_, errs, code := roe(t, "", "experts", "add", "--library", filepath.Join(dir, "lib9"), "--model", "stories260K", "--adapter", adapter, "--instances", inst, "--name", "tiny")
	if code == 0 {
		t.Errorf("a tiny-llama adapter was added over stories260K: %s", errs)
	}
}
