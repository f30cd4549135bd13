package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/experts"
	"roe/internal/testmodel"
	"roe/model"
)

// adapterRootFixture is a server whose adapter root holds a PEFT folder
// (peft), the same adapter as a GGUF LoRA (gguf/same.gguf) and a PEFT folder
// with instances (withins); a folder outside the root and a symbolic link
// to it (root/link) test the confinement.
func adapterRootFixture(t *testing.T) (f *fixture, root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	l := randomLoRA(testModelConfig(t), 1)
	for _, d := range []string{filepath.Join(root, "peft"), filepath.Join(root, "withins"), outside} {
		if err := l.Save(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "withins", "instances.jsonl"), []byte(`{"input":"a dragon flew over the castle"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var g bytes.Buffer
	if err := l.WriteGGUF(&g, testModelConfig(t)); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "gguf"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "gguf", "same.gguf"), g.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	f = newFixtureExperts(t, "k", func(c *experts.Config) { c.FallbackQuantile = -1 },
		func(c *Config) { c.AdapterRoot = root })
	return f, root, outside
}

func testModelConfig(t *testing.T) model.Config {
	t.Helper()
	m, _ := testmodel.Stories260K(t)
	return m.Config
}

func completionText(t *testing.T, f *fixture, fields string) string {
	t.Helper()
	code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"prompt":"Once upon a time","max_tokens":12,"temperature":0,`+fields+`}`, "k")
	if code != 200 {
		t.Fatalf("%s: %d %v", fields, code, out)
	}
	return out["choices"].([]any)[0].(map[string]any)["text"].(string)
}

func TestLoadLoRAAdapter(t *testing.T) {
	f, root, outside := adapterRootFixture(t)
	load := func(body string) (int, map[string]any) {
		code, out, _ := do(t, f.srv, "POST", "/v1/load_lora_adapter", body, "k")
		return code, out
	}
	// Admin only.
	if code, _, _ := do(t, f.srv, "POST", "/v1/load_lora_adapter", `{"lora_name":"x","lora_path":"peft"}`, ""); code != 401 {
		t.Fatalf("without the key: %d", code)
	}
	code, out := load(`{"lora_name":"sql","lora_path":"peft"}`)
	if code != 200 || out["_raw"] != "Success: LoRA adapter 'sql' added successfully." {
		t.Fatalf("load: %d %v", code, out)
	}
	for _, c := range []struct {
		body  string
		code  int
		param string
	}{
		{`{"lora_name":"sql","lora_path":"peft"}`, 400, "lora_name"}, // already loaded
		{`{"lora_name":"x"}`, 400, "lora_path"},
		{`{"lora_path":"peft"}`, 400, "lora_name"},
		{`{"lora_name":"x","lora_path":"peft","extra":1}`, 400, "extra"},
		{`{"lora_name":"x","lora_path":"nope"}`, 404, "lora_path"},
		{`{"lora_name":"x","lora_path":"../outside"}`, 400, "lora_path"},
		{`{"lora_name":"x","lora_path":"peft/../../outside"}`, 400, "lora_path"},
		{fmt.Sprintf(`{"lora_name":"x","lora_path":%q}`, outside), 400, "lora_path"},
		{`{"lora_name":"x","lora_path":"link"}`, 400, "lora_path"},
		{`{"lora_name":"x","lora_path":"link/adapter_config.json"}`, 400, "lora_path"},
		{`{"lora_name":"x","lora_path":"peft/adapter_config.json"}`, 400, "lora_path"}, // a file, not GGUF
		{`{"lora_name":"auto","lora_path":"peft"}`, 400, "name"},
	} {
		code, out := load(c.body)
		e, _ := out["error"].(map[string]any)
		if code != c.code || e == nil || e["param"] != c.param {
			t.Errorf("%s: %d %v (want %d naming %s)", c.body, code, out, c.code, c.param)
		}
	}
	if f.ex.Has("x") {
		t.Fatal("a refused load stored an expert")
	}
	// An absolute path under the root, a GGUF LoRA, a folder with instances.
	if code, out := load(fmt.Sprintf(`{"lora_name":"abs","lora_path":%q}`, filepath.Join(root, "peft"))); code != 200 {
		t.Fatalf("absolute path under the root: %d %v", code, out)
	}
	if code, out := load(`{"lora_name":"gg","lora_path":"gguf/same.gguf"}`); code != 200 {
		t.Fatalf("GGUF: %d %v", code, out)
	}
	if code, out := load(`{"lora_name":"routed","lora_path":"withins"}`); code != 200 {
		t.Fatalf("with instances: %d %v", code, out)
	}
	if code, out := load(`{"lora_name":"sql","lora_path":"peft","load_inplace":true}`); code != 200 || out["_raw"] != "Success: LoRA adapter 'sql' replaced successfully." {
		t.Fatalf("load_inplace: %d %v", code, out)
	}

	// Listed as served by name only.
	_, out, _ = do(t, f.srv, "GET", "/v1/models", "", "k")
	routable := map[string]any{}
	for _, m := range out["data"].([]any) {
		m := m.(map[string]any)
		routable[m["id"].(string)] = m["roe_routable"]
		if m["id"] == "sql" && m["parent"] != "stories260K" {
			t.Errorf("model card %v", m)
		}
	}
	if routable["sql"] != false || routable["gg"] != false || routable["routed"] != true || routable["stories260K"] != nil {
		t.Errorf("roe_routable in /v1/models: %v", routable)
	}
	_, out, _ = do(t, f.srv, "GET", "/v1/experts/sql", "", "k")
	if out["routable"] != false || out["num_instances"] != 0.0 {
		t.Errorf("GET /v1/experts/sql: %v", out)
	}

	// Chosen by model, LoRAX's adapter_id, llama.cpp's lora (name or index).
	base := completionText(t, f, `"model":"stories260K"`)
	sql := completionText(t, f, `"model":"sql"`)
	if sql == base {
		t.Fatalf("the adapter changes nothing: %q", sql)
	}
	idx := -1
	var list []map[string]any
	code, raw := getRaw(t, f, "/lora-adapters")
	if code != 200 || json.Unmarshal(raw, &list) != nil {
		t.Fatalf("GET /lora-adapters: %d %s", code, raw)
	}
	for i, a := range list {
		if a["name"] == "sql" && a["id"] == float64(i) {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("sql not in /lora-adapters: %s", raw)
	}
	for _, fields := range []string{
		`"model":"stories260K","adapter_id":"sql"`,
		`"adapter_id":"sql"`,
		`"lora":[{"id":"sql","scale":1}]`,
		fmt.Sprintf(`"model":"stories260K","lora":[{"id":%d,"scale":1}]`, idx),
		`"lora":[{"id":"sql"},{"id":"gg","scale":0}]`,
		`"model":"gg"`, // the same adapter, from its GGUF file
	} {
		if got := completionText(t, f, fields); got != sql {
			t.Errorf("%s: %q, want %q", fields, got, sql)
		}
	}
	if got := completionText(t, f, `"model":"stories260K","lora":[{"id":"sql","scale":0}]`); got != base {
		t.Errorf("scale 0: %q, want the base model's %q", got, base)
	}
	half := completionText(t, f, `"lora":[{"id":"sql","scale":0.5}]`)
	if got := completionText(t, f, `"experts":[{"name":"sql","weight":0.5}]`); got != half {
		t.Errorf("experts weight 0.5 %q, lora scale 0.5 %q", got, half)
	}
	code, out, _ = do(t, f.srv, "POST", "/v1/completions", `{"prompt":"Once","max_tokens":2,"lora":[{"id":"sql","scale":0.5}]}`, "k")
	if info := out["roe"].(map[string]any); code != 200 || info["mode"] != "expert" || info["merge"] != nil ||
		info["experts"].([]any)[0].(map[string]any)["weight"] != 0.5 {
		t.Errorf("scaled expert: %d %v", code, out["roe"])
	}
	for _, c := range []struct{ fields, param string }{
		{`"model":"gg","adapter_id":"sql"`, "adapter_id"},
		{`"adapter_id":"sql","experts":["gg"]`, "adapter_id"},
		{`"model":"auto","lora":[{"id":"sql"}]`, "lora"},
		{`"lora":[{"id":"sql"}],"experts":["gg"]`, "lora"},
		{`"lora":[{"id":true}]`, "lora[0].id"},
		{`"lora":[{"id":"sql","scale":1e9}]`, "lora[0].scale"},
		{`"lora":{"id":"sql"}`, "lora"},
		{`"lora":[{"id":"sql","weight":0.5}]`, "lora[0].weight"},
	} {
		code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"prompt":"Once","max_tokens":2,`+c.fields+`}`, "k")
		e, _ := out["error"].(map[string]any)
		if code != 400 || e == nil || e["param"] != c.param {
			t.Errorf("%s: %d %v (want 400 naming %s)", c.fields, code, out, c.param)
		}
	}
	if code, _, _ := do(t, f.srv, "POST", "/v1/completions", `{"prompt":"Once","max_tokens":2,"lora":[{"id":99}]}`, "k"); code != 404 {
		t.Errorf("lora id out of range: %d", code)
	}

	// /v1/route says which experts auto routing cannot pick.
	_, out, _ = do(t, f.srv, "POST", "/v1/route", `{"model":"sql","prompt":"a dragon"}`, "k")
	if u := fmt.Sprint(out["roe"].(map[string]any)["unroutable"]); u != "[sql]" {
		t.Errorf("route by name: unroutable %s", u)
	}
	_, out, _ = do(t, f.srv, "POST", "/v1/route", `{"prompt":"a dragon flew over the castle"}`, "k")
	info := out["roe"].(map[string]any)
	if fmt.Sprint(info["unroutable"]) != "[abs gg sql]" || info["unroutable_count"] != 3.0 {
		t.Errorf("route auto: %v", info)
	}
	if ex := info["experts"].([]any); len(ex) != 1 || ex[0].(map[string]any)["name"] != "routed" {
		t.Errorf("auto routed to %v, want the only expert with instances", ex)
	}

	// Instances make an expert routable.
	code, out, _ = do(t, f.srv, "PUT", "/v1/experts/sql/instances", `{"input":"SELECT name FROM users WHERE id = 1"}`+"\n"+`{"input":"SELECT count(*) FROM orders"}`, "k")
	if code != 200 || out["routable"] != true || out["num_instances"] != 2.0 {
		t.Fatalf("PUT instances: %d %v", code, out)
	}
	code, out, _ = do(t, f.srv, "PUT", "/v1/experts/gg/instances", `{"instances":[{"input":"once upon a time"}]}`, "k")
	if code != 200 || out["routable"] != true {
		t.Fatalf("PUT instances (JSON): %d %v", code, out)
	}
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/v1/experts/nope/instances", `{"input":"x"}`, 404},
		{"/v1/experts/sql", `{"input":"x"}`, 404},
		{"/v1/experts/sql/instances", ``, 400},
		{"/v1/experts/sql/instances", `{"instances":[]}`, 400},
		{"/v1/experts/sql/instances", `not json`, 422},
	} {
		if code, out, _ := do(t, f.srv, "PUT", c.path, c.body, "k"); code != c.code {
			t.Errorf("PUT %s %q: %d %v (want %d)", c.path, c.body, code, out, c.code)
		}
	}
	_, out, _ = do(t, f.srv, "POST", "/v1/route", `{"prompt":"SELECT name FROM users WHERE id = 7"}`, "k")
	if ex := out["roe"].(map[string]any)["experts"].([]any); len(ex) != 1 || ex[0].(map[string]any)["name"] != "sql" {
		t.Errorf("auto after PUT instances: %v", out["roe"])
	}

	// Unload.
	if code, out, _ := do(t, f.srv, "POST", "/v1/unload_lora_adapter", `{"lora_name":"sql"}`, "k"); code != 200 || out["_raw"] != "Success: LoRA adapter 'sql' removed successfully." {
		t.Fatalf("unload: %d %v", code, out)
	}
	if f.ex.Has("sql") {
		t.Fatal("unloaded but served")
	}
	for body, want := range map[string]int{`{"lora_name":"sql"}`: 404, `{}`: 400, `{"lora_name":"gg","lora_int_id":1}`: 400} {
		if code, out, _ := do(t, f.srv, "POST", "/v1/unload_lora_adapter", body, "k"); code != want {
			t.Errorf("unload %s: %d %v (want %d)", body, code, out, want)
		}
	}
}

func getRaw(t *testing.T, f *fixture, path string) (int, []byte) {
	t.Helper()
	code, out, _ := do(t, f.srv, "GET", path, "", "k")
	if raw, ok := out["_raw"].(string); ok {
		return code, []byte(raw)
	}
	b, _ := json.Marshal(out)
	return code, b
}

// Without --adapter-root, loading by path is refused; an upload without
// instances.jsonl is served by name only.
func TestLoadLoRAAdapterOff(t *testing.T) {
	f := newFixture(t, "")
	code, out, _ := do(t, f.srv, "POST", "/v1/load_lora_adapter", `{"lora_name":"x","lora_path":"/etc"}`, "")
	if code != 403 || !strings.Contains(fmt.Sprint(out["error"]), "--adapter-root") {
		t.Errorf("load without an adapter root: %d %v", code, out)
	}
	dir := t.TempDir()
	if err := randomLoRA(f.m.Config, 2).Save(dir); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("name", "plain")
	for _, fn := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(dir, fn))
		if err != nil {
			t.Fatal(err)
		}
		fw, _ := w.CreateFormFile(fn, fn)
		fw.Write(b)
	}
	w.Close()
	code, out, _ = do(t, f.srv, "POST", "/v1/experts", buf.String(), "", "Content-Type", w.FormDataContentType())
	if code != 201 || out["routable"] != false || out["num_instances"] != 0.0 {
		t.Errorf("upload without instances: %d %v", code, out)
	}
}

// adapterRel never lets a path out of the root: whatever lora_path is, the
// answer is an error or a local, slash-separated path.
func FuzzAdapterRel(f *testing.F) {
	for _, s := range []string{"peft", "a/b.gguf", "../x", "/srv/adapters/x", "/srv/adapters/../etc", "/etc/passwd", ".", "", "a/../../b", "a\x00b", `..\x`} {
		f.Add(s)
	}
	s := &Server{cfg: Config{AdapterRoot: "/srv/adapters"}, adapterRootReal: "/real/adapters"}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := s.adapterRel(p)
		if err != nil {
			return
		}
		if !filepath.IsLocal(filepath.FromSlash(rel)) {
			t.Fatalf("adapterRel(%q) = %q", p, rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if seg == ".." {
				t.Fatalf("adapterRel(%q) = %q leaves the root", p, rel)
			}
		}
	})
}

// The lora and adapter_id fields never panic and are refused or read.
func FuzzAdapterFields(f *testing.F) {
	for _, s := range []string{`[{"id":0,"scale":1}]`, `[{"id":"a"}]`, `{"id":1}`, `[{"id":-1}]`, `[{"id":1e99,"scale":1e309}]`, `null`, `[]`, `[{"id":"a"},{"id":"a"}]`} {
		f.Add(s, "", "stories260K")
	}
	f.Add("", "a", "b")
	s := &Server{cfg: Config{ModelID: "stories260K"}}
	f.Fuzz(func(t *testing.T, lora, adapterID, model string) {
		r := &commonRequest{Model: model, AdapterID: adapterID, Lora: json.RawMessage(lora)}
		refs, err := s.adapterRefs(r, nil)
		if err == nil {
			for _, ref := range refs {
				if ref.Name == "" || ref.Weight == 0 {
					t.Fatalf("ref %+v from lora %q", ref, lora)
				}
			}
		}
	})
}
