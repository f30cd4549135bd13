package serve

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape parses /metrics as a Prometheus scraper (the endpoint picker) does.
func scrape(t *testing.T, srv *Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := srv.App().Test(httptest.NewRequest("GET", "/metrics", nil), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// The Inference Extension's endpoint picker reads these by name and type.
func TestEngineMetrics(t *testing.T) {
	f := newFixture(t, "")
	if code, out := upload(t, f, "m/one", "{\"input\":\"a story about a cat\"}\n"); code != 201 {
		t.Fatalf("upload: %d %v", code, out)
	}
	for _, model := range []string{"stories260K", "m/one"} {
		if code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"`+model+`","prompt":"Once upon a time","max_tokens":6,"temperature":0}`, ""); code != 200 {
			t.Fatalf("completion: %d %v", code, out)
		}
	}
	// A finished sequence is counted when the scheduler next looks at its
	// batch, which may be just after the response reached the client.
	fams := scrape(t, f.srv)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if h := fams["roe_e2e_request_latency_seconds"]; h != nil && h.GetMetric()[0].GetHistogram().GetSampleCount() >= 2 {
			break
		}
		fams = scrape(t, f.srv)
	}
	want := map[string]dto.MetricType{
		"roe_num_requests_waiting":          dto.MetricType_GAUGE,
		"roe_num_requests_running":          dto.MetricType_GAUGE,
		"roe_kv_cache_usage_perc":           dto.MetricType_GAUGE,
		"roe_lora_requests_info":            dto.MetricType_GAUGE,
		"roe_e2e_request_latency_seconds":   dto.MetricType_HISTOGRAM,
		"roe_time_per_output_token_seconds": dto.MetricType_HISTOGRAM,
		"roe_prompt_tokens_total":           dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		fam := fams[name]
		if fam == nil {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		if fam.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, fam.GetType(), typ)
		}
	}
	if t.Failed() {
		return
	}
	one := func(name string) *dto.Metric { return fams[name].GetMetric()[0] }
	if v := one("roe_kv_cache_usage_perc").GetGauge().GetValue(); v < 0 || v > 1 {
		t.Errorf("KV usage %v outside [0, 1]", v)
	}
	if n := one("roe_e2e_request_latency_seconds").GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("e2e latency has %d samples, want 2", n)
	}
	if n := one("roe_time_per_output_token_seconds").GetHistogram().GetSampleCount(); n == 0 {
		t.Error("time per output token has no samples")
	}
	if v := one("roe_prompt_tokens_total").GetCounter().GetValue(); v < 2 {
		t.Errorf("prompt tokens %v", v)
	}
	labels := map[string]string{}
	for _, l := range one("roe_lora_requests_info").GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for _, k := range []string{"running_lora_adapters", "waiting_lora_adapters", "max_lora"} {
		if _, ok := labels[k]; !ok {
			t.Errorf("roe_lora_requests_info lacks the label %s: %v", k, labels)
		}
	}
	if labels["max_lora"] != "8" {
		t.Errorf("max_lora %q, want the max batch 8", labels["max_lora"])
	}
	if one("roe_lora_requests_info").GetGauge().GetValue() < 1e9 {
		t.Error("roe_lora_requests_info's value is not a Unix time")
	}
}

func TestReadinessHook(t *testing.T) {
	ready := false
	f := newFixture(t, "", func(c *Config) {
		c.Readiness = func() (bool, any) { return ready, map[string]any{"bucket_reachable": ready} }
	})
	code, out, _ := do(t, f.srv, "GET", "/readyz", "", "")
	if code != 503 || out["status"] != "syncing" || out["library"] == nil {
		t.Fatalf("before the first sync: %d %v", code, out)
	}
	ready = true
	if code, out, _ = do(t, f.srv, "GET", "/readyz", "", ""); code != 200 || out["status"] != "ready" {
		t.Fatalf("after: %d %v", code, out)
	}
}

// The adapters' info metric changes its label set as adapters come and go;
// a scrape at any moment must find it (two series only while the set
// changes), never none.
func TestLoRAInfoNeverMissing(t *testing.T) {
	e := newEngineMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.collectors()...)
	e.setLimits(4, 64, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sets := [][]string{{"a", "", "4"}, {"a,b", "c", "4"}, {"", "", "4"}}
		for i := 0; i < 2000; i++ {
			e.mu.Lock()
			e.setLoRA(sets[i%len(sets)], false, time.Now())
			e.mu.Unlock()
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fams {
			if f.GetName() == "roe_lora_requests_info" {
				n = len(f.GetMetric())
			}
		}
		if n < 1 || n > 2 {
			t.Fatalf("a scrape found %d roe_lora_requests_info series, want 1 (2 while it changes)", n)
		}
	}
}
