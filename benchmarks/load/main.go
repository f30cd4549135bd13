// Command load runs roe's load test against a real `roe serve` process on
// loopback: concurrent streaming clients to model auto while experts are
// uploaded and removed through the admin API. It writes
// benchmarks/results/load.{json,md}.
//
//	go run ./benchmarks/load [-clients 8] [-duration 30s] [-roe bin/roe]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"roe/adapters"
	"roe/benchmarks/internal/results"
	"roe/internal/loadtest"
	"roe/model"
	"roe/models"
)

func main() {
	clients := flag.Int("clients", 8, "concurrent streaming clients")
	duration := flag.Duration("duration", 30*time.Second, "how long clients send")
	maxTokens := flag.Int("max-tokens", 32, "tokens per completion")
	churn := flag.Duration("churn", 500*time.Millisecond, "upload/remove an expert this often")
	roe := flag.String("roe", "bin/roe", "the roe binary")
	out := flag.String("out", "benchmarks/results", "results folder")
	flag.Parse()
	commit := results.Commit()

	work, err := os.MkdirTemp("", "roe-load-")
	check(err)
	defer os.RemoveAll(work)
	m, err := model.LoadFS(models.Default())
	check(err)
	adapterDir := filepath.Join(work, "adapter")
	check(randomLoRA(m.Config).Save(adapterDir))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(*roe, "serve", "--addr", addr, "--library", filepath.Join(work, "library"), "--api-key", "load", "--max-batch", "16")
	cmd.Stderr = nil
	check(cmd.Start())
	defer cmd.Process.Kill()
	base := "http://" + addr
	for i := 0; ; i++ {
		if r, err := http.Get(base + "/readyz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 100 {
			log.Fatal("roe serve did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	served := servedModel(base, "load")
	res, err := loadtest.Run(context.Background(), loadtest.Options{
		BaseURL: base, Clients: *clients, Duration: *duration, MaxTokens: *maxTokens,
		Prompts:    []string{"Once upon a time", "The cat sat on the mat.", "Lily went to the park.", "Tom had a red ball."},
		AdapterDir: adapterDir, Instances: []string{"Zebras graze quietly on the savanna grass.", "A zebra has black and white stripes."},
		ChurnEvery: *churn, APIKey: "load",
	})
	check(err)
	check(os.MkdirAll(*out, 0o755))
	b, _ := json.MarshalIndent(struct {
		Commit    string          `json:"commit"`
		Model     string          `json:"model"`
		Clients   int             `json:"clients"`
		Duration  string          `json:"duration"`
		MaxTokens int             `json:"max_tokens"`
		Result    loadtest.Result `json:"result"`
	}{commit, served, *clients, duration.String(), *maxTokens, res}, "", "  ")
	check(os.WriteFile(filepath.Join(*out, "load.json"), append(b, '\n'), 0o644))
	md := fmt.Sprintf(`# Load test (roe serve, base model %s, loopback)

Command: `+"`go run ./benchmarks/load -clients %d -duration %s -max-tokens %d`"+`. %s

%d streaming clients sent completions to model `+"`auto`"+` for %s while an expert was uploaded
(POST /v1/experts) and the previous one removed every %s.

| requests | failed | tokens/s | TTFT p50 | TTFT p99 | experts added / removed | slowest upload→routable | not routable in 1 s |
|---|---|---|---|---|---|---|---|
| %d | %d | %.0f | %.1f ms | %.1f ms | %d / %d | %.1f ms | %d |
`, served, *clients, *duration, *maxTokens, results.Markdown(commit, ""), *clients, *duration, *churn, res.Requests, res.Failed, res.TokensPerSecond,
		res.TTFTp50ms, res.TTFTp99ms, res.ExpertsAdded, res.ExpertsRemoved, res.RoutableMaxMS, res.NotRoutable)
	check(os.WriteFile(filepath.Join(*out, "load.md"), []byte(md), 0o644))
	fmt.Print(md)
	if res.Failed > 0 {
		log.Fatalf("%d failed requests: %v", res.Failed, res.Errors)
	}
}

// servedModel is the id of the base model the server serves (GET /v1/models),
// so the results say what was measured.
func servedModel(base, key string) string {
	req, _ := http.NewRequest("GET", base+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID   string `json:"id"`
			Kind string `json:"roe_kind"`
		} `json:"data"`
	}
	check(json.NewDecoder(resp.Body).Decode(&list))
	for _, m := range list.Data {
		if m.Kind == "base" {
			return m.ID
		}
	}
	log.Fatal("GET /v1/models lists no base model")
	return ""
}

func randomLoRA(base model.Config) *adapters.LoRA {
	r := rand.New(rand.NewPCG(3, 1))
	l := adapters.New(base, adapters.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}})
	for layer := 0; layer < base.NumLayers; layer++ {
		for _, p := range []model.Proj{model.ProjQ, model.ProjV} {
			out, in := base.ProjShape(p)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for i := range a {
				a[i] = float32(r.NormFloat64() * 0.2)
			}
			for i := range b {
				b[i] = float32(r.NormFloat64() * 0.2)
			}
			l.SetPair(layer, p, &adapters.Pair{A: a, B: b, Rank: 4, In: in, Out: out, Alpha: 8})
		}
	}
	return l
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
