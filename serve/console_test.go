package serve

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// The console's files are served at /ui/ without the key (they hold no
// data) under a strict content security policy; / and /ui lead there.
func TestConsoleFiles(t *testing.T) {
	f := newFixture(t, "k")
	for _, p := range []string{"/", "/ui"} {
		code, _, hdr := do(t, f.srv, "GET", p, "", "")
		if code != 302 || hdr.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q", p, code, hdr.Get("Location"))
		}
	}
	for p, typ := range map[string]string{"/ui/": "text/html", "/ui/console.js": "javascript", "/ui/console.css": "text/css"} {
		code, out, hdr := do(t, f.srv, "GET", p, "", "")
		if code != 200 || !strings.Contains(hdr.Get("Content-Type"), typ) || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %d %s %q", p, code, hdr.Get("Content-Type"), hdr.Get("Content-Security-Policy"))
		}
		if raw, _ := out["_raw"].(string); p == "/ui/" && !strings.Contains(raw, "console.js") {
			t.Errorf("index.html: %.200s", raw)
		}
	}
	if code, _, _ := do(t, f.srv, "GET", "/ui/nothing.js", "", ""); code != 404 {
		t.Errorf("a missing console file: %d", code)
	}
	// The data behind it needs the key, as for any client.
	for _, r := range [][2]string{{"GET", "/v1/experts"}, {"POST", "/v1/experts/map"}, {"GET", "/v1/jobs"}} {
		if code, _, _ := do(t, f.srv, r[0], r[1], "", ""); code != 401 {
			t.Errorf("%s %s without the key: %d", r[0], r[1], code)
		}
	}
}

// What the console reads: listings with rank and selections, an expert's
// page with its adapter configuration and instances, a zip export, the map
// with queries placed, the job list.
func TestConsoleAPI(t *testing.T) {
	f := newFixture(t, "k")
	ins := []string{"Is this review positive? great film", "Is this review positive? dull plot", "Is this review positive? fine acting"}
	body, ct := uploadBody(t, "films", randomLoRA(f.m.Config, 1), ins, false)
	req := httptest.NewRequest("POST", "/v1/experts", body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer k")
	if resp, err := f.srv.App().Test(req, 60_000); err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload: %v %v", resp.StatusCode, err)
	}
	if code, out, _ := do(t, f.srv, "POST", "/v1/route", `{"model":"auto","prompt":"Is this review positive? a great film"}`, "k"); code != 200 {
		t.Fatalf("route: %d %v", code, out)
	}
	code, out, _ := do(t, f.srv, "GET", "/v1/experts", "", "k")
	if code != 200 {
		t.Fatalf("list: %d %v", code, out)
	}
	l := out["data"].([]any)[0].(map[string]any)
	st, _ := l["stats"].(map[string]any)
	if l["rank"] != 4.0 || l["alpha"] != 8.0 || st == nil || st["selections"] != 1.0 || st["routed"] != 1.0 {
		t.Errorf("listing: %v", l)
	}

	code, out, _ = do(t, f.srv, "GET", "/v1/experts/films?instances=2", "", "k")
	cfg, _ := out["adapter_config"].(map[string]any)
	got, _ := out["instances"].([]any)
	if code != 200 || cfg == nil || cfg["r"] != 4.0 || len(got) != 2 || got[0].(map[string]any)["input"] == nil || got[0].(map[string]any)["embedding"] != nil {
		t.Errorf("detail: %d %v", code, out)
	}
	for _, q := range []string{"?instances=-1", "?instances=101", "?instances=x", "?download=tar"} {
		if code, _, _ := do(t, f.srv, "GET", "/v1/experts/films"+q, "", "k"); code != 400 {
			t.Errorf("GET %s: %d, want 400", q, code)
		}
	}

	req = httptest.NewRequest("GET", "/v1/experts/films?download=zip", nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := f.srv.App().Test(req, 60_000)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("zip: %v %v", resp.StatusCode, err)
	}
	b, _ := io.ReadAll(resp.Body)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
	}
	if strings.Join(names, " ") != "films/adapter_config.json films/adapter_model.safetensors films/instances.jsonl films/expert.json" {
		t.Errorf("zip holds %v", names)
	}

	code, out, _ = do(t, f.srv, "POST", "/v1/experts/map", `{"queries":["Is this review positive? lovely", " "]}`, "k")
	pts, _ := out["instances"].([]any)
	qs, _ := out["queries"].([]any)
	if code != 200 || len(pts) != 3 || len(qs) != 1 || out["total"] != 3.0 || pts[0].(map[string]any)["expert"] != "films" {
		t.Errorf("map: %d %v", code, out)
	}
	for _, bad := range []string{`{"max_points":0}`, `{"max_points":20001}`, `{"queries":"x"}`, `{"color":"red"}`} {
		if code, _, _ := do(t, f.srv, "POST", "/v1/experts/map", bad, "k"); code != 400 {
			t.Errorf("map %s: %d, want 400", bad, code)
		}
	}
	code, out, _ = do(t, f.srv, "GET", "/v1/jobs", "", "k")
	if data, ok := out["data"].([]any); code != 200 || !ok || len(data) != 0 {
		t.Errorf("jobs: %d %v", code, out)
	}
}

// An expert uploads as a llama.cpp GGUF LoRA (adapter.gguf) as well as a
// PEFT pair, and serves the same text; both at once, or a broken file, are
// refused.
func TestUploadGGUFAdapter(t *testing.T) {
	f := newFixture(t, "")
	l := randomLoRA(f.m.Config, 3)
	var g bytes.Buffer
	if err := l.WriteGGUF(&g, f.m.Config); err != nil {
		t.Fatal(err)
	}
	post := func(name string, files map[string][]byte) (int, string) {
		code, b := postExpert(t, f, []string{"name", name}, files)
		return code, string(b)
	}
	ins := []byte(`{"input":"Once upon a time there was a dog"}` + "\n")
	if code, body := post("from-gguf", map[string][]byte{"adapter.gguf": g.Bytes(), "instances.jsonl": ins}); code != 201 {
		t.Fatalf("GGUF upload: %d %s", code, body)
	}
	dir := t.TempDir()
	if err := l.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg, _ := readFile(dir + "/adapter_config.json")
	st, _ := readFile(dir + "/adapter_model.safetensors")
	if code, body := post("from-peft", map[string][]byte{"adapter_config.json": cfg, "adapter_model.safetensors": st}); code != 201 {
		t.Fatalf("PEFT upload: %d %s", code, body)
	}
	var texts []string
	for _, m := range []string{"from-gguf", "from-peft"} {
		code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"`+m+`","prompt":"Once upon a time","max_tokens":12,"temperature":0}`, "")
		if code != 200 {
			t.Fatalf("%s: %d %v", m, code, out)
		}
		texts = append(texts, out["choices"].([]any)[0].(map[string]any)["text"].(string))
	}
	if texts[0] != texts[1] {
		t.Errorf("the GGUF and PEFT uploads of one adapter differ: %q vs %q", texts[0], texts[1])
	}
	if code, body := post("both", map[string][]byte{"adapter.gguf": g.Bytes(), "adapter_config.json": cfg, "adapter_model.safetensors": st}); code != 400 || !strings.Contains(body, "either") {
		t.Errorf("both adapters: %d %s", code, body)
	}
	if code, body := post("broken", map[string][]byte{"adapter.gguf": g.Bytes()[:g.Len()/2]}); code != 422 || !strings.Contains(body, "adapter.gguf") {
		t.Errorf("a cut GGUF: %d %s", code, body)
	}
	if f.ex.Has("both") || f.ex.Has("broken") {
		t.Error("a refused upload was stored")
	}
}
