package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"roe/internal/testenv"
	"strings"
	"sync"
	"testing"
	"time"

	"roe/experts"
	"roe/retriever"
)

// upload posts an expert with instances (JSONL) and extra form fields
// (name, value pairs) and returns the status and the JSON answer.
func upload(t testing.TB, f *fixture, name, instances string, fields ...string) (int, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	if err := randomLoRA(f.m.Config, 1).Save(dir); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"instances.jsonl": []byte(instances)}
	for _, fn := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := readFile(dir + "/" + fn)
		if err != nil {
			t.Fatal(err)
		}
		files[fn] = b
	}
	code, b := postExpert(t, f, append([]string{"name", name, "kind", "dataset"}, fields...), files)
	var out map[string]any
	json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"_raw": string(b)}
	}
	return code, out
}

// postExpert posts a multipart POST /v1/experts of form fields (name, value
// pairs) and files, and returns the status and the body.
func postExpert(t testing.TB, f *fixture, fields []string, files map[string][]byte) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		w.WriteField(fields[i], fields[i+1])
	}
	for fn, b := range files {
		fw, _ := w.CreateFormFile(fn, fn)
		fw.Write(b)
	}
	w.Close()
	req := httptest.NewRequest("POST", "/v1/experts", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := f.srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// instanceLine is one instances.jsonl line with an embedding.
func instanceLine(text string, emb []float32) string {
	b, _ := json.Marshal(map[string]any{"input": text, "embedding": emb})
	return string(b) + "\n"
}

func filled(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Client embeddings are kept only when the form names the server's embedder;
// then they must be sane, else the upload is refused and nothing is stored.
func TestUploadedEmbeddingsTrusted(t *testing.T) {
	f := newFixture(t, "")
	dim, text := f.emb.Dim(), "The cat sat on the mat."
	absurd := instanceLine(text, filled(dim, 3e38))

	// No embedder: the absurd vectors are dropped and remade by the server.
	if code, out := upload(t, f, "untrusted", absurd); code != 201 {
		t.Fatalf("upload without embedder: %d %v", code, out)
	}
	ins, err := f.lib.Instances("untrusted")
	if err != nil || len(ins) != 1 {
		t.Fatalf("stored instances: %v %v", ins, err)
	}
	want, _ := f.emb.Embed([]string{retriever.FormatInstance(retriever.DefaultInstanceFormat, text, nil)})
	for i, x := range ins[0].Embedding {
		if math.Abs(float64(x-want[0][i])) > 1e-4 {
			t.Fatalf("stored embedding[%d] = %g, the server's is %g", i, x, want[0][i])
		}
	}

	// The server's embedder named: the vectors are used, so they are checked.
	for _, c := range []struct {
		name, ins, mention string
	}{
		{"forged", absurd, "3e+38"},
		{"wrongdim", instanceLine(text, filled(dim+1, 0.5)), "dimension"},
	} {
		code, out := upload(t, f, c.name, c.ins, "embedder", f.emb.ID())
		msg := fmt.Sprint(out["error"])
		if code != 422 || !strings.Contains(msg, c.mention) {
			t.Errorf("%s: %d %v (want 422 naming %q)", c.name, code, out, c.mention)
		}
		if f.ex.Has(c.name) {
			t.Errorf("%s: stored although refused", c.name)
		}
		if _, err := f.lib.Manifest(c.name); err == nil {
			t.Errorf("%s: in the library although refused", c.name)
		}
	}
}

// Concurrent deletes of one expert: one succeeds, the others find nothing,
// none fails (the library used to answer the race's losers with a conflict).
func TestConcurrentDelete(t *testing.T) {
	f := newFixture(t, "")
	addr := listen(t, f) // app.Test's per-request setup spreads the requests out
	const rounds, same, others = 6, 16, 4
	for r := range rounds {
		names := []string{fmt.Sprintf("doomed-%d", r)}
		for i := range others {
			names = append(names, fmt.Sprintf("other-%d-%d", r, i))
		}
		for _, n := range names {
			if code, out := upload(t, f, n, `{"input":"x"}`+"\n"); code != 201 {
				t.Fatalf("upload: %d %v", code, out)
			}
		}
		codes := make([]int, same+others)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range codes {
			name := names[0]
			if i >= same {
				name = names[1+i-same]
			}
			req, _ := http.NewRequest("DELETE", "http://"+addr+"/v1/experts/"+name, nil)
			wg.Go(func() {
				<-start
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		count := map[int]int{}
		for _, c := range codes[:same] {
			count[c]++
		}
		if count[200] != 1 || count[404] != same-1 {
			t.Errorf("round %d: %d concurrent deletes of one expert answered %v, want one 200 and %d 404", r, same, count, same-1)
		}
		for i, c := range codes[same:] {
			if c != 200 {
				t.Errorf("round %d: delete of %s alongside: %d", r, names[1+i], c)
			}
		}
	}
}

// gateEmbedder blocks embeddings of texts containing "HOLD" until gate closes.
type gateEmbedder struct {
	retriever.Embedder
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateEmbedder) Embed(texts []string) ([][]float32, error) {
	for _, t := range texts {
		if strings.Contains(t, "HOLD") {
			g.entered <- struct{}{}
			<-g.gate
			break
		}
	}
	return g.Embedder.Embed(texts)
}

// A routed request that cannot get embedding budget in time is answered 429
// with Retry-After; so is an embeddings request when all slots are taken.
func TestEmbeddingBudgetBusy(t *testing.T) {
	g := &gateEmbedder{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	f := newFixtureExperts(t, "", func(c *experts.Config) {
		g.Embedder = c.Embedder
		c.Embedder, c.MaxQueries, c.EmbedBudget, c.EmbedWait = g, 2, 2, 20*time.Millisecond
	}, func(c *Config) { c.MaxBatch = 1 })
	if code, out := upload(t, f, "cats", `{"input":"The cat sat."}`+"\n"); code != 201 {
		t.Fatalf("upload: %d %v", code, out)
	}
	held := make(chan int)
	go func() {
		code, _, _ := do(t, f.srv, "POST", "/v1/route", `{"prompt":["HOLD one","HOLD two"]}`, "")
		held <- code
	}()
	select {
	case <-g.entered: // the whole budget is taken
	case code := <-held:
		t.Fatalf("the holding request was not embedded through the gate: %d", code)
	}
	code, out, hdr := do(t, f.srv, "POST", "/v1/route", `{"prompt":"The cat"}`, "")
	e, _ := out["error"].(map[string]any)
	if code != 429 || hdr.Get("Retry-After") == "" || e == nil || e["type"] != "rate_limit_error" {
		t.Errorf("route without budget: %d Retry-After=%q %v", code, hdr.Get("Retry-After"), out)
	}
	close(g.gate)
	if code := <-held; code != 200 {
		t.Errorf("the request holding the budget: %d", code)
	}
	if code, out, _ := do(t, f.srv, "POST", "/v1/route", `{"prompt":"The cat"}`, ""); code != 200 {
		t.Errorf("route once the budget is free: %d %v", code, out)
	}

	f.srv.embedSem <- struct{}{} // MaxBatch 1: the one embedding slot is taken
	code, out, hdr = do(t, f.srv, "POST", "/v1/embeddings", `{"model":"stories260K","input":"x"}`, "")
	<-f.srv.embedSem
	e, _ = out["error"].(map[string]any)
	if code != 429 || hdr.Get("Retry-After") == "" || e == nil || e["type"] != "rate_limit_error" {
		t.Errorf("embeddings with every slot taken: %d Retry-After=%q %v", code, hdr.Get("Retry-After"), out)
	}
}

// errorOf is the error object of an answer, failing the test when there is none.
func errorOf(t testing.TB, what string, out map[string]any) map[string]any {
	t.Helper()
	e, ok := out["error"].(map[string]any)
	if !ok {
		t.Errorf("%s: no error object in %v", what, out)
		return map[string]any{}
	}
	return e
}

const trainData, trainTemplates = "../../shared/data/tasks", "../../shared/data/templates"

func needTrainData(t *testing.T) {
	if _, err := os.Stat(trainData); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
}

// Every field a training job could fail on is checked before 202: each bad
// request is a 4xx naming its field, and nothing is queued.
func TestTrainJobValidatedUpFront(t *testing.T) {
	needTrainData(t)
	f := newFixture(t, "", func(c *Config) { c.Train = experts.TrainData{DataDir: trainData, TemplatesDir: trainTemplates} })
	ok := `"task":"sst2","all_prompts":true`
	for _, c := range []struct{ body, param string }{
		{`{"name":"x",` + ok + `,"steps":0}`, "steps"},
		{`{"name":"x",` + ok + `,"steps":-5}`, "steps"},
		{`{"name":"x",` + ok + `,"rank":0}`, "rank"},
		{`{"name":"x",` + ok + `,"lr":2}`, "lr"},
		{`{"name":"x","task":"nope","all_prompts":true}`, "task"},
		{`{"name":"x","task":"sst2","prompt":"no such template"}`, "prompt"},
		{`{"name":"../x",` + ok + `}`, "name"},
		{`{"name":"auto",` + ok + `}`, "name"},
		{`{"name":"x",` + ok + `,"stepz":3}`, "stepz"},
		{`{"name":"x",` + ok + `,"steps":"ten"}`, "steps"},
	} {
		code, out, _ := do(t, f.srv, "POST", "/v1/jobs/train", c.body, "")
		e := errorOf(t, c.body, out)
		if code < 400 || code >= 500 || e["param"] != c.param {
			t.Errorf("%s: %d %v (want 4xx with param %q)", c.body, code, out, c.param)
		}
	}
	f.srv.jobs.mu.Lock()
	n, queued := len(f.srv.jobs.byID), len(f.srv.jobs.queue)
	f.srv.jobs.mu.Unlock()
	if n != 0 || queued != 0 {
		t.Errorf("refused requests left %d jobs, %d queued", n, queued)
	}
}

// Names that are model ids (auto, the base model) are refused everywhere an
// expert is named.
func TestReservedNames(t *testing.T) {
	needTrainData(t)
	f := newFixture(t, "", func(c *Config) { c.Train = experts.TrainData{DataDir: trainData, TemplatesDir: trainTemplates} })
	if code, out := upload(t, f, "src", `{"input":"x"}`+"\n"); code != 201 {
		t.Fatalf("upload: %d %v", code, out)
	}
	for _, name := range []string{"auto", "Auto", "stories260K"} {
		check := func(what string, code int, out map[string]any) {
			t.Helper()
			e := errorOf(t, what, out)
			if code != 400 || e["code"] != "reserved_name" || e["param"] != "name" {
				t.Errorf("%s named %q: %d %v (want 400 reserved_name, param name)", what, name, code, out)
			}
		}
		code, out := upload(t, f, name, `{"input":"x"}`+"\n")
		check("upload", code, out)
		code, out, _ = do(t, f.srv, "POST", "/v1/experts/merge", `{"name":"`+name+`","experts":["src","src"]}`, "")
		check("merge", code, out)
		code, out, _ = do(t, f.srv, "POST", "/v1/jobs/train", `{"name":"`+name+`","task":"sst2","all_prompts":true}`, "")
		check("train job", code, out)
	}
	if ms, _ := f.lib.List(); len(ms) != 1 {
		t.Errorf("the library holds %d experts, want only src", len(ms))
	}
}

// A deleted expert leaves no series in /metrics.
func TestDeletedExpertLeavesMetrics(t *testing.T) {
	f := newFixture(t, "")
	if code, out := upload(t, f, "ephemeral", `{"input":"x"}`+"\n"); code != 201 {
		t.Fatalf("upload: %d %v", code, out)
	}
	if code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"ephemeral","prompt":"Once","max_tokens":1}`, ""); code != 200 {
		t.Fatalf("completion: %d %v", code, out)
	}
	series := `roe_expert_selections_total{expert="ephemeral"}`
	if _, out, _ := do(t, f.srv, "GET", "/metrics", "", ""); !strings.Contains(fmt.Sprint(out["_raw"]), series) {
		t.Fatalf("no series %s before the delete", series)
	}
	if code, out, _ := do(t, f.srv, "DELETE", "/v1/experts/ephemeral", "", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, out)
	}
	if _, out, _ := do(t, f.srv, "GET", "/metrics", "", ""); strings.Contains(fmt.Sprint(out["_raw"]), `expert="ephemeral"`) {
		t.Errorf("the deleted expert's series is still exported")
	}
}
