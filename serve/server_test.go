package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"roe/internal/testenv"
	"roe/internal/testmodel"
	"strings"
	"testing"
	"time"

	"roe/adapters"
	"roe/experts"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// fixture is a server over the embedded model and an in-memory library.
type fixture struct {
	srv *Server
	lib *library.Library
	m   *model.Model
	ex  *experts.Catalog
	emb retriever.Embedder
}

func newFixture(t testing.TB, key string, mutate ...func(*Config)) *fixture {
	t.Helper()
	return newFixtureExperts(t, key, nil, mutate...)
}

// newFixtureExperts is newFixture with the catalog's config changed by ex.
func newFixtureExperts(t testing.TB, key string, ex func(*experts.Config), mutate ...func(*Config)) *fixture {
	t.Helper()
	m, tok := testmodel.Stories260K(t)
	lib, err := library.Open(library.DefaultOptions("").WithInMemory(true).WithFingerprint(m.Fingerprint()))
	if err != nil {
		t.Fatal(err)
	}
	emb := retriever.NewModelEmbedder(m, tok, 0, 0)
	ecfg := experts.Config{Library: lib, Base: m, BaseID: "stories260K", Embedder: emb, Logger: quietLogger()}
	if ex != nil {
		ex(&ecfg)
	}
	cat, err := experts.Open(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ModelID: "stories260K", Model: m, Tokenizer: tok, Experts: cat, APIKey: key, Logger: quietLogger()}
	for _, f := range mutate {
		f(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		cat.Close()
		lib.Close()
	})
	return &fixture{srv, lib, m, cat, emb}
}

// randomLoRA is an adapter that really changes the output.
func randomLoRA(base model.Config, seed uint64) *adapters.LoRA {
	r := rand.New(rand.NewPCG(seed, 1))
	l := adapters.New(base, adapters.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "down_proj"}})
	for layer := 0; layer < base.NumLayers; layer++ {
		for _, p := range []model.Proj{model.ProjQ, model.ProjV, model.ProjDown} {
			out, in := base.ProjShape(p)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for i := range a {
				a[i] = float32(r.NormFloat64() * 0.3)
			}
			for i := range b {
				b[i] = float32(r.NormFloat64() * 0.3)
			}
			l.SetPair(layer, p, &adapters.Pair{A: a, B: b, Rank: 4, In: in, Out: out, Alpha: 8})
		}
	}
	return l
}

// uploadBody builds the multipart form of POST /v1/experts.
func uploadBody(t testing.TB, name string, l *adapters.LoRA, instances []string, corrupt bool) (*bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	if err := l.Save(dir); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("name", name)
	w.WriteField("kind", "dataset")
	w.WriteField("description", "test expert "+name)
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := readFile(dir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if corrupt && f == "adapter_model.safetensors" {
			b = b[:len(b)/2]
		}
		fw, _ := w.CreateFormFile(f, f)
		fw.Write(b)
	}
	var ins strings.Builder
	for _, s := range instances {
		b, _ := json.Marshal(map[string]any{"input": s})
		ins.Write(b)
		ins.WriteByte('\n')
	}
	fw, _ := w.CreateFormFile("instances.jsonl", "instances.jsonl")
	fw.Write([]byte(ins.String()))
	w.Close()
	return &buf, w.FormDataContentType()
}

func do(t testing.TB, srv *Server, method, path, body, key string, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"_raw": string(b)}
	}
	return resp.StatusCode, out, resp.Header
}

func TestCompletionsBase(t *testing.T) {
	f := newFixture(t, "")
	code, out, hdr := do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":12,"temperature":0}`, "")
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	text := out["choices"].([]any)[0].(map[string]any)["text"].(string)
	if !strings.HasPrefix(text, ", there was a little girl named Lily") {
		t.Errorf("greedy text %q", text)
	}
	if out["object"] != "text_completion" || out["usage"].(map[string]any)["completion_tokens"].(float64) != 12 {
		t.Errorf("response shape: %v", out)
	}
	if hdr.Get("X-Roe-Experts") != "none" || out["roe"].(map[string]any)["mode"] != "base" {
		t.Errorf("roe info: %v %v", hdr, out["roe"])
	}
}

func TestStreamingAndChat(t *testing.T) {
	f := newFixture(t, "")
	req := httptest.NewRequest("POST", "/v1/completions", strings.NewReader(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":12,"temperature":0,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream does not end in [DONE]: %q", b)
	}
	var text string
	var last map[string]any
	for _, e := range events[:len(events)-1] {
		var ev map[string]any
		if err := json.Unmarshal([]byte(strings.TrimPrefix(e, "data: ")), &ev); err != nil {
			t.Fatalf("bad event %q", e)
		}
		text += ev["choices"].([]any)[0].(map[string]any)["text"].(string)
		last = ev
	}
	if !strings.HasPrefix(text, ", there was a little girl named Lily") {
		t.Errorf("streamed text %q", text)
	}
	if last["roe"] == nil || last["choices"].([]any)[0].(map[string]any)["finish_reason"] != "length" {
		t.Errorf("final chunk %v", last)
	}
	code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."}],"max_tokens":5}`, "")
	if code != 200 || out["object"] != "chat.completion" {
		t.Fatalf("chat: %d %v", code, out)
	}
	msg := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	if msg["role"] != "assistant" || msg["content"] == "" {
		t.Errorf("chat message %v", msg)
	}
}

func TestEmbeddingsAndModels(t *testing.T) {
	f := newFixture(t, "")
	code, out, _ := do(t, f.srv, "POST", "/v1/embeddings", `{"model":"stories260K","input":["Once upon a time","Lily"]}`, "")
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	data := out["data"].([]any)
	if len(data) != 2 || len(data[0].(map[string]any)["embedding"].([]any)) != 64 {
		t.Errorf("embeddings: %v", out)
	}
	code, out, _ = do(t, f.srv, "GET", "/v1/models", "", "")
	ids := fmt.Sprint(out["data"])
	if code != 200 || !strings.Contains(ids, "stories260K") || !strings.Contains(ids, "auto") {
		t.Errorf("models: %v", out)
	}
}

// An uploaded expert is stored, listed, routable at once, and removable; a
// corrupt upload changes nothing.
func TestExpertLifecycleAndRouting(t *testing.T) {
	f := newFixture(t, "")
	cats := []string{"The cat sat on the mat and purred.", "A small cat chased a mouse.", "The cat drank milk.", "Cats like to sleep in the sun."}
	dogs := []string{"Dollars and bonds fell on the stock market today.", "The bank raised its interest rate.", "Shares of the company rose 5 percent.", "Investors sold stocks."}
	for i, c := range []struct {
		name string
		ins  []string
	}{{"stories", cats}, {"finance", dogs}} {
		body, ct := uploadBody(t, c.name, randomLoRA(f.m.Config, uint64(i+1)), c.ins, false)
		req := httptest.NewRequest("POST", "/v1/experts", body)
		req.Header.Set("Content-Type", ct)
		resp, err := f.srv.App().Test(req, 60_000)
		if err != nil || resp.StatusCode != 201 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("upload %s: %v %d %s", c.name, err, resp.StatusCode, b)
		}
	}
	code, out, hdr := do(t, f.srv, "POST", "/v1/completions", `{"model":"auto","prompt":"The cat played with a ball of wool.","max_tokens":4}`, "")
	if code != 200 || hdr.Get("X-Roe-Experts") != "stories" {
		t.Fatalf("auto routing: %d %v %v", code, hdr.Get("X-Roe-Experts"), out["roe"])
	}
	code, out, _ = do(t, f.srv, "POST", "/v1/route", `{"prompt":"Stocks and bonds fell; the bank sold shares.","routing":{"top_k":2}}`, "")
	if code != 200 || out["roe"].(map[string]any)["experts"].([]any)[0].(map[string]any)["name"] != "finance" {
		t.Fatalf("route: %d %v", code, out)
	}
	// A named expert changes the output; a composition is served and reported.
	_, base, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":"Once","max_tokens":6,"temperature":0}`, "")
	_, exp, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"finance","prompt":"Once","max_tokens":6,"temperature":0}`, "")
	if fmt.Sprint(base["choices"]) == fmt.Sprint(exp["choices"]) {
		t.Error("the expert's adapter did not change the output")
	}
	code, out, _ = do(t, f.srv, "POST", "/v1/completions", `{"model":"auto","prompt":"Once","max_tokens":3,"experts":[{"name":"finance","weight":0.5},{"name":"stories","weight":0.5}],"merge":"linear"}`, "")
	if code != 200 || out["roe"].(map[string]any)["mode"] != "compose" {
		t.Fatalf("compose: %d %v", code, out)
	}
	// Corrupt upload: rejected, library unchanged.
	before, _ := f.lib.List()
	body, ct := uploadBody(t, "broken", randomLoRA(f.m.Config, 9), cats, true)
	req := httptest.NewRequest("POST", "/v1/experts", body)
	req.Header.Set("Content-Type", ct)
	resp, _ := f.srv.App().Test(req, 60_000)
	if resp.StatusCode != 422 {
		t.Errorf("corrupt upload: %d", resp.StatusCode)
	}
	after, _ := f.lib.List()
	if len(after) != len(before) {
		t.Errorf("a corrupt upload changed the library: %d → %d experts", len(before), len(after))
	}
	// Remove: gone from models and routing.
	if code, out, _ := do(t, f.srv, "DELETE", "/v1/experts/finance", "", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, out)
	}
	if code, _, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"finance","prompt":"x","max_tokens":1}`, ""); code != 404 {
		t.Errorf("removed expert still served: %d", code)
	}
	_, out, hdr = do(t, f.srv, "POST", "/v1/completions", `{"model":"auto","prompt":"Stocks fell.","max_tokens":1}`, "")
	if hdr.Get("X-Roe-Experts") == "finance" {
		t.Error("removed expert still routed")
	}
}

func TestBadInputs(t *testing.T) {
	f := newFixture(t, "")
	cases := []struct {
		path, body string
		code       int
		mention    string
	}{
		{"/v1/completions", `{"model":`, 400, "malformed JSON"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":"ten"}`, 400, "max_tokens"},
		{"/v1/completions", `{"model":"nope","prompt":"x"}`, 404, "nope"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":100000}`, 422, "max_tokens"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":0}`, 400, "max_tokens"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","temperature":9}`, 400, "temperature"},
		{"/v1/completions", `{"prompt":"x"}`, 400, "model"},
		{"/v1/completions", ``, 400, "empty"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[]}`, 400, "messages"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"wizard","content":"x"}]}`, 400, "wizard"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","experts":["ghost"]}`, 404, "ghost"},
		{"/v1/embeddings", `{"model":"stories260K","input":""}`, 400, "empty"},
		{"/v1/completions", `{"model":"stories260K","prompt":"` + strings.Repeat("a ", 2000) + `"}`, 422, "context"},
	}
	for _, c := range cases {
		code, out, _ := do(t, f.srv, "POST", c.path, c.body, "")
		e, _ := out["error"].(map[string]any)
		if code != c.code || e == nil || !strings.Contains(fmt.Sprint(e["message"]), c.mention) {
			t.Errorf("%s %.60s: %d %v (want %d naming %q)", c.path, c.body, code, out, c.code, c.mention)
		}
	}
	// Oversize upload: 413 naming the limit.
	small := newFixture(t, "", func(c *Config) { c.UploadLimit = 1000 })
	body, ct := uploadBody(t, "big", randomLoRA(small.m.Config, 1), []string{"x"}, false)
	req := httptest.NewRequest("POST", "/v1/experts", body)
	req.Header.Set("Content-Type", ct)
	resp, _ := small.srv.App().Test(req, 60_000)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), "limit") {
		t.Errorf("oversize upload: %d %s", resp.StatusCode, b)
	}
}

func TestAPIKey(t *testing.T) {
	f := newFixture(t, "sekret")
	body := `{"model":"stories260K","prompt":"x","max_tokens":1}`
	if code, out, _ := do(t, f.srv, "POST", "/v1/completions", body, ""); code != 401 || !strings.Contains(fmt.Sprint(out), "missing") {
		t.Errorf("no key: %d %v", code, out)
	}
	if code, _, _ := do(t, f.srv, "POST", "/v1/completions", body, "wrong"); code != 401 {
		t.Errorf("wrong key: %d", code)
	}
	if code, _, _ := do(t, f.srv, "POST", "/v1/completions", body, "sekret"); code != 200 {
		t.Errorf("right key: %d", code)
	}
	if code, _, _ := do(t, f.srv, "GET", "/v1/experts", "", ""); code != 401 {
		t.Errorf("admin without key: %d", code)
	}
	if code, _, _ := do(t, f.srv, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz must stay open: %d", code)
	}
}

// A full queue answers 429 with Retry-After; a cancelled sequence stops.
func TestSchedulerBackpressureAndCancel(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	s := NewScheduler(m, 1, 1, NewMetrics())
	defer s.Close(context.Background())
	newSeq := func(n int) *model.Sequence {
		seq, err := m.NewSequence([]int{1}, tok.NewStreamDecoder(true), model.GenerateOptions{MaxTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	ctx, cancel := context.WithCancel(context.Background())
	// As long as the context allows: a fast machine decodes stories260K in
	// tens of µs a token.
	n := m.Config.ContextLength() - 1
	long, err := s.Submit(ctx, newSeq(n))
	if err != nil {
		t.Fatal(err)
	}
	for s.QueueLen() > 0 { // let it join the batch
		time.Sleep(50 * time.Microsecond)
	}
	var full error
	for i := 0; i < 3 && full == nil; i++ {
		_, full = s.Submit(context.Background(), newSeq(n))
	}
	if full != ErrQueueFull {
		t.Errorf("expected ErrQueueFull, got %v", full)
	}
	cancel()
	done := make(chan struct{})
	go func() { long.Wait(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled sequence did not stop")
	}
	if long.Sequence().FinishReason != "cancelled" || len(long.Sequence().Tokens) >= n {
		t.Errorf("cancelled sequence: %q after %d tokens", long.Sequence().FinishReason, len(long.Sequence().Tokens))
	}
}

// Sequences batched together give what they give alone.
func TestBatchedGenerationMatchesAlone(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	s := NewScheduler(m, 8, 16, NewMetrics())
	defer s.Close(context.Background())
	prompts := []string{"Once upon a time", "Lily", "The dog", "One day"}
	jobs := make([]*Job, len(prompts))
	for i, p := range prompts {
		seq, _ := m.NewSequence(tok.Encode(p, true), tok.NewStreamDecoder(true), model.GenerateOptions{MaxTokens: 20})
		j, err := s.Submit(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = j
	}
	for i, p := range prompts {
		got, err := jobs[i].Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Generate(context.Background(), tok.NewStreamDecoder(true), tok.Encode(p, true), model.GenerateOptions{MaxTokens: 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != want.Text {
			t.Errorf("%q batched %q, alone %q", p, got, want.Text)
		}
	}
}

// Shutdown finishes in-flight sequences before the deadline, refuses new ones,
// and stops what is left when the deadline passes.
func TestGracefulShutdown(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	newSeq := func(n int) *model.Sequence {
		seq, err := m.NewSequence([]int{1}, tok.NewStreamDecoder(true), model.GenerateOptions{MaxTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	s := NewScheduler(m, 4, 4, NewMetrics())
	j, err := s.Submit(context.Background(), newSeq(50))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j.Sequence().FinishReason != "length" || len(j.Sequence().Tokens) != 50 {
		t.Errorf("in-flight sequence: %q after %d tokens", j.Sequence().FinishReason, len(j.Sequence().Tokens))
	}
	if _, err := s.Submit(context.Background(), newSeq(1)); err != ErrShuttingDown {
		t.Errorf("submit after close: %v", err)
	}
	// A deadline that passes stops long sequences.
	s2 := NewScheduler(m, 4, 4, NewMetrics())
	j2, _ := s2.Submit(context.Background(), newSeq(450))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s2.Close(ctx); err == nil {
		t.Log("the long sequence finished before the deadline")
	}
	if !j2.Sequence().Done() {
		t.Error("the sequence is still running after Close returned")
	}
}

// POST /v1/jobs/train trains an expert in the server; it lands in the library
// and is routable when the job ends. DELETE cancels a job.
func TestTrainJob(t *testing.T) {
	const data, templates = "../../shared/data/tasks", "../../shared/data/templates"
	if _, err := os.Stat(data); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	f := newFixture(t, "", func(c *Config) { c.Train = experts.TrainData{DataDir: data, TemplatesDir: templates} })
	code, out, _ := do(t, f.srv, "POST", "/v1/jobs/train", `{"name":"sst2/fpn","task":"sst2","prompt":"following positive negative","steps":3,"batch":2,"max_len":64,"no_eos":true}`, "")
	if code != 202 {
		t.Fatalf("create: %d %v", code, out)
	}
	id := out["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, out, _ = do(t, f.srv, "GET", "/v1/jobs/"+id, "", "")
		if st := out["status"]; st == "succeeded" || st == "failed" || st == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not finish: %v", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out["status"] != "succeeded" || out["progress"].(map[string]any)["step"].(float64) != 3 {
		t.Fatalf("job: %v", out)
	}
	if ls, _ := out["losses"].([]any); len(ls) != 3 || ls[2].([]any)[0] != 3.0 || !(ls[2].([]any)[1].(float64) > 0) {
		t.Errorf("loss curve %v", out["losses"])
	}
	if code, _, hdr := do(t, f.srv, "POST", "/v1/completions", `{"model":"auto","prompt":"a gorgeous, witty film. Question: positive or negative?","max_tokens":1}`, ""); code != 200 || hdr.Get("X-Roe-Experts") != "sst2/fpn" {
		t.Errorf("the trained expert is not routed: %d %q", code, hdr.Get("X-Roe-Experts"))
	}
	// Refusals name the problem; a cancelled job stores nothing.
	for body, want := range map[string]string{
		`{"name":"x","task":"../etc","all_prompts":true}`:           "unknown task",
		`{"name":"x","task":"sst2"}`:                                "prompt",
		`{"name":"x","task":"sst2","all_prompts":true,"steps":1e9}`: "steps",
	} {
		if code, out, _ := do(t, f.srv, "POST", "/v1/jobs/train", body, ""); code < 400 || !strings.Contains(fmt.Sprint(out), want) {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}
	_, out, _ = do(t, f.srv, "POST", "/v1/jobs/train", `{"name":"slow","task":"sst2","all_prompts":true,"steps":5000,"batch":2,"max_len":64}`, "")
	id = out["id"].(string)
	time.Sleep(100 * time.Millisecond)
	do(t, f.srv, "DELETE", "/v1/jobs/"+id, "", "")
	for i := 0; i < 200; i++ {
		_, out, _ = do(t, f.srv, "GET", "/v1/jobs/"+id, "", "")
		if out["status"] == "cancelled" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out["status"] != "cancelled" || f.ex.Has("slow") {
		t.Errorf("cancel: %v", out)
	}
	// GET /v1/jobs lists both, newest first.
	_, out, _ = do(t, f.srv, "GET", "/v1/jobs", "", "")
	if js, _ := out["data"].([]any); len(js) != 2 || js[0].(map[string]any)["id"] != id {
		t.Errorf("job list %v", out)
	}
}
