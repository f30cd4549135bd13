package serve

import (
	"context"
	"net"
	"testing"
	"time"

	"roe/internal/loadtest"
)

// A bounded load test on loopback: streaming clients for a few seconds while
// experts are uploaded and removed. No request may fail, and each new expert
// must be routable within a second of its upload returning.
func TestLoadWhileChangingExperts(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped with -short")
	}
	f := newFixture(t, "k")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(ln)
	dir := t.TempDir()
	if err := randomLoRA(f.m.Config, 3).Save(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := loadtest.Run(ctx, loadtest.Options{
		BaseURL: "http://" + ln.Addr().String(), Clients: 6, Duration: 4 * time.Second, MaxTokens: 24,
		Prompts:    []string{"Once upon a time", "The cat sat on the mat.", "Lily went to the park.", "Stocks fell today."},
		AdapterDir: dir, Instances: []string{"Zebras graze quietly on the savanna grass.", "A zebra has black and white stripes."},
		ChurnEvery: 300 * time.Millisecond, APIKey: "k",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Failed != 0 {
		t.Errorf("%d failed requests: %v", res.Failed, res.Errors)
	}
	if res.Requests == 0 || res.ExpertsAdded < 3 {
		t.Errorf("too little happened: %+v", res)
	}
	if res.NotRoutable != 0 {
		t.Errorf("%d uploaded experts were not routable within 1 s", res.NotRoutable)
	}
}
