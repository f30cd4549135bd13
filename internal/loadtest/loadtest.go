// Package loadtest drives a running roe server over loopback HTTP: concurrent
// streaming clients for a fixed time while experts are added and removed
// through the admin API. The serve tests and benchmarks/load use it.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a run.
type Options struct {
	BaseURL   string        // e.g. http://127.0.0.1:8080
	Clients   int           // concurrent streaming clients
	Duration  time.Duration // how long clients keep sending
	MaxTokens int           // per request
	Prompts   []string
	// Expert churn: every ChurnEvery, upload the expert in AdapterDir under a
	// fresh name (with its Instances) and remove the previous one.
	AdapterDir string
	Instances  []string
	ChurnEvery time.Duration
	APIKey     string
	// Replicas are more servers sharing BaseURL's library (roe serve
	// --library s3://…). Clients send round-robin over BaseURL and Replicas;
	// experts are uploaded and removed through BaseURL only, and each upload
	// must become routable on every server within RoutableWithin.
	Replicas       []string
	RoutableWithin time.Duration // [1 s]
}

// Result sums a run up.
type Result struct {
	Requests        int      `json:"requests"`
	Failed          int      `json:"failed"`
	Errors          []string `json:"errors,omitempty"`
	Tokens          int      `json:"tokens"`
	Seconds         float64  `json:"seconds"`
	TokensPerSecond float64  `json:"tokens_per_second"`
	TTFTp50ms       float64  `json:"ttft_p50_ms"`
	TTFTp99ms       float64  `json:"ttft_p99_ms"`
	ExpertsAdded    int      `json:"experts_added"`
	ExpertsRemoved  int      `json:"experts_removed"`
	// RoutableMaxMS is the longest time from an upload's response to the first
	// /v1/route that picked the new expert, on the server written to.
	RoutableMaxMS float64 `json:"routable_max_ms"`
	// ReplicaRoutableMaxMS is the same on the other replicas (Options.Replicas).
	ReplicaRoutableMaxMS float64 `json:"replica_routable_max_ms,omitempty"`
	NotRoutable          int     `json:"not_routable"` // uploads a server never routed to within RoutableWithin
}

// Run drives the server and returns when Duration has passed and all clients finished.
func Run(ctx context.Context, o Options) (Result, error) {
	var mu sync.Mutex
	var res Result
	var ttfts []float64
	fail := func(err error) {
		mu.Lock()
		res.Failed++
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, err.Error())
		}
		mu.Unlock()
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	if o.RoutableWithin <= 0 {
		o.RoutableWithin = time.Second
	}
	servers := append([]string{o.BaseURL}, o.Replicas...)
	deadline := time.Now().Add(o.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < o.Clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				prompt := o.Prompts[(c+i)%len(o.Prompts)]
				ttft, n, err := stream(ctx, client, o, servers[(c+i)%len(servers)], prompt)
				mu.Lock()
				res.Requests++
				if err == nil {
					res.Tokens += n
					ttfts = append(ttfts, ttft.Seconds()*1000)
				}
				mu.Unlock()
				if err != nil {
					fail(fmt.Errorf("client %d: %w", c, err))
				}
			}
		}(c)
	}
	if o.AdapterDir != "" && o.ChurnEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := ""
			for k := 0; time.Now().Add(o.ChurnEvery).Before(deadline) && ctx.Err() == nil; k++ {
				time.Sleep(o.ChurnEvery)
				// Remove the previous churn expert first, so the new one is the
				// only expert with these instances and routing must find it.
				if prev != "" {
					if err := remove(client, o, prev); err != nil {
						fail(fmt.Errorf("remove %s: %w", prev, err))
					} else {
						mu.Lock()
						res.ExpertsRemoved++
						mu.Unlock()
					}
				}
				name := fmt.Sprintf("churn-%d-%d", time.Now().UnixNano()%1e6, k)
				if err := upload(client, o, name); err != nil {
					fail(fmt.Errorf("upload %s: %w", name, err))
					prev = ""
					continue
				}
				posted := time.Now()
				var rw sync.WaitGroup
				for si, s := range servers {
					rw.Add(1)
					go func() {
						defer rw.Done()
						routed := false
						for time.Since(posted) < o.RoutableWithin {
							got, err := route(client, o, s, o.Instances[0])
							if err == nil && got == name {
								routed = true
								break
							}
							time.Sleep(5 * time.Millisecond)
						}
						ms := float64(time.Since(posted).Microseconds()) / 1000
						mu.Lock()
						defer mu.Unlock()
						switch {
						case !routed:
							res.NotRoutable++
						case si == 0:
							res.RoutableMaxMS = max(res.RoutableMaxMS, ms)
						default:
							res.ReplicaRoutableMaxMS = max(res.ReplicaRoutableMaxMS, ms)
						}
					}()
				}
				rw.Wait()
				mu.Lock()
				res.ExpertsAdded++
				mu.Unlock()
				prev = name
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.TokensPerSecond = float64(res.Tokens) / res.Seconds
	sort.Float64s(ttfts)
	if len(ttfts) > 0 {
		res.TTFTp50ms = ttfts[len(ttfts)/2]
		res.TTFTp99ms = ttfts[min(len(ttfts)-1, len(ttfts)*99/100)]
	}
	return res, nil
}

func authorize(req *http.Request, o Options) {
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
}

// stream sends one streaming completion to model auto and reads it to [DONE].
func stream(ctx context.Context, client *http.Client, o Options, server, prompt string) (time.Duration, int, error) {
	body, _ := json.Marshal(map[string]any{"model": "auto", "prompt": prompt, "max_tokens": o.MaxTokens, "stream": true,
		"stream_options": map[string]any{"include_usage": true}})
	req, _ := http.NewRequestWithContext(ctx, "POST", server+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	authorize(req, o)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var ttft time.Duration
	n := 0
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return 0, 0, fmt.Errorf("bad event %q", data)
		}
		if ev.Error != nil {
			return 0, 0, fmt.Errorf("stream error: %s", ev.Error.Message)
		}
		if ttft == 0 && len(ev.Choices) > 0 && ev.Choices[0].Text != "" {
			ttft = time.Since(t0)
		}
		if ev.Usage != nil {
			n = ev.Usage.CompletionTokens
		}
	}
	if !done {
		return 0, 0, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
	}
	if ttft == 0 {
		ttft = time.Since(t0)
	}
	return ttft, n, nil
}

func upload(client *http.Client, o Options, name string) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("name", name)
	w.WriteField("kind", "imported")
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(o.AdapterDir, f))
		if err != nil {
			return err
		}
		fw, _ := w.CreateFormFile(f, f)
		fw.Write(b)
	}
	fw, _ := w.CreateFormFile("instances.jsonl", "instances.jsonl")
	for _, s := range o.Instances {
		b, _ := json.Marshal(map[string]string{"input": s})
		fw.Write(append(b, '\n'))
	}
	w.Close()
	req, _ := http.NewRequest("POST", o.BaseURL+"/v1/experts", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	authorize(req, o)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return nil
}

func route(client *http.Client, o Options, server, text string) (string, error) {
	body, _ := json.Marshal(map[string]any{"prompt": text})
	req, _ := http.NewRequest("POST", server+"/v1/route", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	authorize(req, o)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Roe struct {
			Experts []struct {
				Name string `json:"name"`
			} `json:"experts"`
		} `json:"roe"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if len(out.Roe.Experts) == 0 {
		return "", nil
	}
	return out.Roe.Experts[0].Name, nil
}

func remove(client *http.Client, o Options, name string) error {
	req, _ := http.NewRequest("DELETE", o.BaseURL+"/v1/experts/"+name, nil)
	authorize(req, o)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return nil
}
