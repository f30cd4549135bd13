package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"roe/internal/testmodel"
	"roe/model"
)

type compResp struct {
	Choices []struct {
		Index    int    `json:"index"`
		Text     string `json:"text"`
		Logprobs *struct {
			Tokens        []string  `json:"tokens"`
			TokenLogprobs []float64 `json:"token_logprobs"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	SystemFingerprint string `json:"system_fingerprint"`
}

// complete posts a completions body (a JSON object in Go syntax) and fails on non-200.
func complete(t testing.TB, srv *Server, body map[string]any) compResp {
	t.Helper()
	if body["model"] == nil {
		body["model"] = "stories260K"
	}
	var r compResp
	if code := post(t, srv, "/v1/completions", body, &r); code != 200 {
		t.Fatalf("%v: %d", body, code)
	}
	return r
}

// Penalties, bias and min_p change what greedy and sampled decoding produce.
func TestSamplingControls(t *testing.T) {
	f := newFixture(t, "")
	base := func(extra map[string]any) string {
		b := map[string]any{"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}
		for k, v := range extra {
			b[k] = v
		}
		return complete(t, f.srv, b).Choices[0].Text
	}
	greedy := base(nil)
	// distinct is the number of different tokens in a greedy completion.
	distinct := func(extra map[string]any) (string, int) {
		b := map[string]any{"prompt": "Once upon a time", "max_tokens": 120, "temperature": 0, "logprobs": 0}
		for k, v := range extra {
			b[k] = v
		}
		c := complete(t, f.srv, b).Choices[0]
		seen := map[string]bool{}
		for _, s := range c.Logprobs.Tokens {
			seen[strings.TrimSpace(s)] = true
		}
		return c.Text, len(seen)
	}
	plain, n0 := distinct(nil)
	for _, c := range []struct {
		field string
		value any
		more  bool // more distinct tokens than greedy
	}{{"frequency_penalty", 1.5, true}, {"presence_penalty", 1.5, true}, {"repetition_penalty", 1.5, true}, {"presence_penalty", -2, false}, {"repetition_penalty", 0.5, false}} {
		got, n := distinct(map[string]any{c.field: c.value})
		if got == plain || (n > n0) != c.more {
			t.Errorf("%s %v: %d distinct tokens, greedy %d:\n%q\n%q", c.field, c.value, n, n0, got, plain)
		}
	}
	// logit_bias +100 on one token: it is all the model says.
	r := complete(t, f.srv, map[string]any{"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0.8, "logit_bias": map[string]any{"300": 100}, "logprobs": 0})
	if w := strings.Fields(r.Choices[0].Text); len(w) != 5 || w[0] != w[4] {
		t.Errorf("logit_bias +100: %q", r.Choices[0].Text)
	}
	// logit_bias -100 on greedy's first token: another one comes first.
	out, err := f.m.Forward([]modelStep{{Cache: f.m.NewCache(), Tokens: f.srv.cfg.Tokenizer.Encode("Once upon a time", true)}})
	if err != nil {
		t.Fatal(err)
	}
	first := argmax(out[0].Logits)
	if got := base(map[string]any{"logit_bias": map[string]any{fmt.Sprint(first): -100}}); got[0] == greedy[0] {
		t.Errorf("logit_bias -100 on %d: %q", first, got)
	}
	// min_p 1 keeps only the most likely token: greedy, at any temperature.
	if got := base(map[string]any{"temperature": 1.5, "min_p": 1, "seed": 3}); got != greedy {
		t.Errorf("min_p 1: %q, greedy %q", got, greedy)
	}
	// top_k 1 likewise.
	if got := base(map[string]any{"temperature": 1.5, "top_k": 1, "seed": 3}); got != greedy {
		t.Errorf("top_k 1: %q, greedy %q", got, greedy)
	}
}

// The same seed gives the same text, whatever else shares the batch; n
// completions of one prompt differ, the first being the n=1 completion.
func TestSeedAcrossBatches(t *testing.T) {
	f := newFixture(t, "")
	req := map[string]any{"prompt": "Lily went to the park", "max_tokens": 30, "temperature": 1, "seed": 42}
	alone := complete(t, f.srv, req).Choices[0].Text
	var wg sync.WaitGroup
	texts := make([]string, 6)
	for i := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := map[string]any{"prompt": "Lily went to the park", "max_tokens": 30, "temperature": 1, "seed": 42}
			if i%2 == 1 { // others in the batch: different prompts and seeds
				b = map[string]any{"prompt": fmt.Sprintf("The %d dogs", i), "max_tokens": 20 + i, "temperature": 1, "seed": i}
			}
			texts[i] = complete(t, f.srv, b).Choices[0].Text
		}()
	}
	wg.Wait()
	for i := 0; i < len(texts); i += 2 {
		if texts[i] != alone {
			t.Errorf("seed 42 in a batch: %q, alone %q", texts[i], alone)
		}
	}
	// In a prompt array, among other prompts, and as the first of n.
	r := complete(t, f.srv, map[string]any{"prompt": []string{"The cat", "Lily went to the park"}, "max_tokens": 30, "temperature": 1, "seed": 42, "n": 3})
	if len(r.Choices) != 6 || r.Choices[3].Text != alone {
		t.Fatalf("prompt array with n=3: %+v (want choice 3 = %q)", r.Choices, alone)
	}
	if r.Choices[3].Text == r.Choices[4].Text && r.Choices[4].Text == r.Choices[5].Text {
		t.Errorf("n=3 sampled the same text three times: %q", r.Choices[3].Text)
	}
	again := complete(t, f.srv, map[string]any{"prompt": []string{"The cat", "Lily went to the park"}, "max_tokens": 30, "temperature": 1, "seed": 42, "n": 3})
	for i := range r.Choices {
		if r.Choices[i].Text != again.Choices[i].Text {
			t.Errorf("choice %d differs between two runs with seed 42: %q %q", i, r.Choices[i].Text, again.Choices[i].Text)
		}
	}
}

// Prompt arrays and token-id prompts: each prompt's completions are choices
// prompt_i*n + j, in order.
func TestPromptArraysAndTokenIDs(t *testing.T) {
	f := newFixture(t, "")
	tok := f.srv.cfg.Tokenizer
	prompts := []string{"Once upon a time", "Lily", "The dog"}
	want := make([]string, len(prompts))
	for i, p := range prompts {
		want[i] = complete(t, f.srv, map[string]any{"prompt": p, "max_tokens": 8, "temperature": 0}).Choices[0].Text
	}
	ids := make([][]int, len(prompts))
	for i, p := range prompts {
		ids[i] = tok.Encode(p, true)
	}
	for name, prompt := range map[string]any{"strings": prompts, "token lists": ids} {
		r := complete(t, f.srv, map[string]any{"prompt": prompt, "max_tokens": 8, "temperature": 0, "n": 2})
		if len(r.Choices) != 6 {
			t.Fatalf("%s: %d choices", name, len(r.Choices))
		}
		for k, c := range r.Choices {
			if c.Index != k || c.Text != want[k/2] {
				t.Errorf("%s: choice %d (index %d) %q, want %q", name, k, c.Index, c.Text, want[k/2])
			}
		}
		if r.Usage.CompletionTokens != 6*8 || r.Usage.PromptTokens != len(ids[0])+len(ids[1])+len(ids[2]) {
			t.Errorf("%s: usage %+v", name, r.Usage)
		}
	}
	r := complete(t, f.srv, map[string]any{"prompt": ids[1], "max_tokens": 8, "temperature": 0})
	if r.Choices[0].Text != want[1] {
		t.Errorf("one token-id prompt: %q, want %q", r.Choices[0].Text, want[1])
	}
	for _, bad := range []struct {
		prompt any
		param  string
	}{{[]any{}, "prompt"}, {[]any{"a", 1}, "prompt"}, {[]int{1, 999999}, "prompt"}, {[][]int{{1}, {}}, "prompt[1]"}, {[]int{-1}, "prompt"}} {
		var e struct {
			Error struct{ Param, Message string }
		}
		if code := post(t, f.srv, "/v1/completions", map[string]any{"model": "stories260K", "prompt": bad.prompt}, &e); code != 400 || e.Error.Param != bad.param {
			t.Errorf("prompt %v: %d %+v", bad.prompt, code, e)
		}
	}
}

// best_of runs best_of completions and returns the n with the highest mean
// token log-probability.
func TestBestOf(t *testing.T) {
	f := newFixture(t, "")
	all := complete(t, f.srv, map[string]any{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.5, "seed": 7, "n": 4, "logprobs": 0})
	best, bestMean := "", -1e9
	for _, c := range all.Choices {
		var s float64
		for _, v := range c.Logprobs.TokenLogprobs {
			s += v
		}
		if m := s / float64(len(c.Logprobs.TokenLogprobs)); m > bestMean {
			best, bestMean = c.Text, m
		}
	}
	r := complete(t, f.srv, map[string]any{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.5, "seed": 7, "best_of": 4})
	if len(r.Choices) != 1 || r.Choices[0].Text != best || r.Choices[0].Logprobs != nil {
		t.Errorf("best_of 4: %+v, want %q", r.Choices, best)
	}
	if r.Usage.CompletionTokens != 4*12 {
		t.Errorf("best_of 4 usage: %+v (all four are generated)", r.Usage)
	}
}

// n completions of a prompt compute it once: the first step runs the prompt
// alone, then the n sequences decode together.
func TestNSharesPrefill(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	metrics := NewMetrics()
	s := NewScheduler(m, 8, 4, metrics)
	defer s.Close(context.Background())
	seed := uint64(1)
	o := model.GenerateOptions{MaxTokens: 5, Sample: model.SampleOptions{Temperature: 1, Seed: &seed}}
	lead, err := m.NewSequence(tok.Encode("Once upon a time", true), tok.NewStreamDecoder(true), o)
	if err != nil {
		t.Fatal(err)
	}
	forks := 0
	job, err := s.SubmitGroups(context.Background(), []Group{{Lead: lead, N: 4, Fork: func(l *model.Sequence, j int) (*model.Sequence, error) {
		forks++
		sd := uint64(j + 1)
		return l.Fork(tok.NewStreamDecoder(true), model.SampleOptions{Temperature: 1, Seed: &sd}, nil)
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	var d dto.Metric
	metrics.batchSize.Write(&d)
	h := d.GetHistogram()
	// One prefill of 1 sequence, then 4 more steps of 4 sequences.
	if forks != 3 || h.GetSampleCount() != 5 || h.GetSampleSum() != 1+4*4 {
		t.Errorf("forks %d, steps %d, Σ batch %v", forks, h.GetSampleCount(), h.GetSampleSum())
	}
	for i, seq := range job.Sequences() {
		if seq == nil || len(seq.Tokens) != 5 {
			t.Errorf("sequence %d: %v", i, seq)
		}
	}
}

// The old refusals of n and prompt lists are gone; the limits name their field.
func TestChoiceLimits(t *testing.T) {
	f := newFixture(t, "")
	for _, c := range []struct {
		body, param string
	}{
		{`{"model":"stories260K","prompt":"x","n":9}`, "n"},
		{`{"model":"stories260K","prompt":"x","n":0}`, "n"},
		{`{"model":"stories260K","prompt":"x","n":3,"best_of":2}`, "best_of"},
		{`{"model":"stories260K","prompt":"x","best_of":3,"stream":true}`, "best_of"},
		{`{"model":"stories260K","prompt":"x","logprobs":21}`, "logprobs"},
		{`{"model":"stories260K","prompt":"x","frequency_penalty":2.5}`, "frequency_penalty"},
		{`{"model":"stories260K","prompt":"x","presence_penalty":-3}`, "presence_penalty"},
		{`{"model":"stories260K","prompt":"x","repetition_penalty":0}`, "repetition_penalty"},
		{`{"model":"stories260K","prompt":"x","min_p":1.5}`, "min_p"},
		{`{"model":"stories260K","prompt":"x","logit_bias":{"cat":1}}`, "logit_bias"},
		{`{"model":"stories260K","prompt":"x","logit_bias":{"5":101}}`, "logit_bias"},
		{`{"model":"stories260K","prompt":"x","logit_bias":{"999999":1}}`, "logit_bias"},
		{`{"model":"stories260K","prompt":"x","max_tokens":0}`, "max_tokens"},
		{`{"model":"stories260K","prompt":"x","stream_options":{"include_usage":true}}`, "stream_options"},
		{`{"model":"stories260K","messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, "top_logprobs"},
		{`{"model":"stories260K","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":30}`, "top_logprobs"},
	} {
		path := "/v1/completions"
		if strings.Contains(c.body, "messages") {
			path = "/v1/chat/completions"
		}
		var e struct {
			Error struct{ Param, Message string }
		}
		if code := post(t, f.srv, path, json.RawMessage(c.body), &e); code != 400 || e.Error.Param != c.param || !strings.Contains(e.Error.Message, c.param) {
			t.Errorf("%s: %d %+v (want 400 naming %s)", c.body, code, e, c.param)
		}
	}
}

// A batch holds at most max-batch sequences, forks included, unless one
// prompt's n alone is more.
func TestBatchBoundWithForks(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	metrics := NewMetrics()
	s := NewScheduler(m, 5, 8, metrics)
	defer s.Close(context.Background())
	var groups []Group
	for i := range 3 {
		lead, err := m.NewSequence(tok.Encode(fmt.Sprint("Prompt ", i), true), tok.NewStreamDecoder(true), model.GenerateOptions{MaxTokens: 4})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, Group{Lead: lead, N: 3, Fork: func(l *model.Sequence, j int) (*model.Sequence, error) {
			return l.Fork(tok.NewStreamDecoder(true), model.SampleOptions{}, nil)
		}})
	}
	job, err := s.SubmitGroups(context.Background(), groups, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	var d dto.Metric
	metrics.batchSize.Write(&d)
	for _, b := range d.GetHistogram().GetBucket() {
		if b.GetUpperBound() >= 5 && b.GetUpperBound() < 6 && b.GetCumulativeCount() != d.GetHistogram().GetSampleCount() {
			t.Errorf("a step ran more than 5 sequences: %v", d.GetHistogram())
		}
	}
	for i, seq := range job.Sequences() {
		if seq == nil || len(seq.Tokens) != 4 {
			t.Errorf("sequence %d: %v", i, seq)
		}
	}
}
