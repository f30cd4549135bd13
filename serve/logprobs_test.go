package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

// post sends a JSON body and decodes the answer into out.
func post(t testing.TB, srv *Server, path string, body any, out any) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, raw)
		}
	}
	return resp.StatusCode
}

// sse sends a streaming request and returns its events (before [DONE]).
func sse(t testing.TB, srv *Server, path, body string) []map[string]any {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, b)
	}
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream does not end in [DONE]: %q", b)
	}
	var out []map[string]any
	for _, e := range events[:len(events)-1] {
		var ev map[string]any
		if err := json.Unmarshal([]byte(strings.TrimPrefix(e, "data: ")), &ev); err != nil {
			t.Fatalf("bad event %q", e)
		}
		out = append(out, ev)
	}
	return out
}

// lmEvalResponse is what lm-evaluation-harness reads of a completions answer.
type lmEvalResponse struct {
	Choices []struct {
		Index    int    `json:"index"`
		Text     string `json:"text"`
		Logprobs struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

// lmEvalParse is lm-evaluation-harness's LocalCompletionsAPI.parse_logprobs:
// Σ token_logprobs[ctxlen:end] and whether each is its position's maximum.
func lmEvalParse(t *testing.T, r lmEvalResponse, ctxlens []int, end int) (sums []float64, greedy []bool) {
	t.Helper()
	for i, ch := range r.Choices {
		if ch.Index != i {
			t.Fatalf("choice %d has index %d", i, ch.Index)
		}
		lps, tops := ch.Logprobs.TokenLogprobs, ch.Logprobs.TopLogprobs
		var sum float64
		g := true
		for k := ctxlens[i]; k < len(lps)+end; k++ {
			sum += *lps[k]
			best := math.Inf(-1)
			for _, v := range tops[k] {
				best = math.Max(best, v)
			}
			g = g && *lps[k] == best
		}
		sums, greedy = append(sums, sum), append(greedy, g)
	}
	return sums, greedy
}

// lm-evaluation-harness's local-completions loglikelihood request, exactly as
// it sends it (token ids, batched; and as text), gives roe score's numbers.
func TestLMEvalLoglikelihood(t *testing.T) {
	f := newFixture(t, "")
	tok := f.srv.cfg.Tokenizer
	pairs := [][2]string{{"Once upon a time", ", there was a little girl"}, {"Lily liked", " to play outside"}, {"The dog", " ate the moon"}}
	var prompts [][]int
	var ctxlens []int
	var want []float64
	var wantGreedy []bool
	for _, p := range pairs {
		ctx := tok.Encode(p[0], true)
		all := tok.Encode(p[0]+p[1], true)
		cont := all[len(ctx):]
		lp, err := f.m.LogLikelihood(ctx, cont, nil)
		if err != nil {
			t.Fatal(err)
		}
		// is_greedy: every continuation token is the argmax after its prefix.
		g := true
		out, err := f.m.Forward([]modelStep{{Cache: f.m.NewCache(), Tokens: all, AllLogits: true}})
		if err != nil {
			t.Fatal(err)
		}
		V := f.m.Config.VocabSize
		for k := len(ctx) - 1; k < len(all)-1; k++ {
			g = g && argmax(out[0].Logits[k*V:(k+1)*V]) == all[k+1]
		}
		prompts, ctxlens, want, wantGreedy = append(prompts, all), append(ctxlens, len(ctx)), append(want, lp), append(wantGreedy, g)
	}
	if !wantGreedy[0] || wantGreedy[2] {
		t.Fatalf("test pairs should include a greedy and a non-greedy continuation: %v", wantGreedy)
	}
	check := func(name string, r lmEvalResponse, end int) {
		t.Helper()
		sums, greedy := lmEvalParse(t, r, ctxlens, end)
		for i := range want {
			if math.Abs(sums[i]-want[i]) > 1e-4 || greedy[i] != wantGreedy[i] {
				t.Errorf("%s %d: sum %v greedy %v; roe score %v greedy %v", name, i, sums[i], greedy[i], want[i], wantGreedy[i])
			}
		}
	}
	// Today's harness: max_tokens 1, the generated token dropped ([ctxlen:-1]).
	var r lmEvalResponse
	body := map[string]any{"model": "stories260K", "prompt": prompts, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": true}
	if code := post(t, f.srv, "/v1/completions", body, &r); code != 200 || len(r.Choices) != len(prompts) {
		t.Fatalf("%d %+v", code, r)
	}
	check("max_tokens 1", r, -1)
	for i, ch := range r.Choices {
		if n := len(ch.Logprobs.TokenLogprobs); n != len(prompts[i])+1 || ch.Logprobs.TokenLogprobs[0] != nil || ch.Logprobs.TopLogprobs[0] != nil {
			t.Errorf("choice %d: %d logprobs for %d prompt tokens + 1, first %v", i, n, len(prompts[i]), ch.Logprobs.TokenLogprobs[0])
		}
	}
	// Scoring only: max_tokens 0 (older harnesses, and the OpenAI idiom).
	body["max_tokens"] = 0
	r = lmEvalResponse{}
	if code := post(t, f.srv, "/v1/completions", body, &r); code != 200 {
		t.Fatalf("%d %+v", code, r)
	}
	check("max_tokens 0", r, 0)
	for i, ch := range r.Choices {
		if ch.Text != tok.Decode(prompts[i], true) || ch.FinishReason != "length" {
			t.Errorf("echo-only choice %d: %q %q", i, ch.Text, ch.FinishReason)
		}
	}
	// One text prompt (tokenized_requests=False), BOS added by the server.
	r = lmEvalResponse{}
	body["prompt"] = pairs[0][0] + pairs[0][1]
	if code := post(t, f.srv, "/v1/completions", body, &r); code != 200 || len(r.Choices) != 1 {
		t.Fatalf("%d %+v", code, r)
	}
	sums, greedy := lmEvalParse(t, r, ctxlens[:1], 0)
	if math.Abs(sums[0]-want[0]) > 1e-4 || greedy[0] != wantGreedy[0] {
		t.Errorf("text prompt: sum %v greedy %v; roe score %v %v", sums[0], greedy[0], want[0], wantGreedy[0])
	}
}

// logprobs lists the completion's tokens, their offsets into its text and the
// top alternatives with the chosen token; the stream carries the same.
func TestCompletionLogprobs(t *testing.T) {
	f := newFixture(t, "")
	var r lmEvalResponse
	body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":12,"temperature":0,"logprobs":3}`
	if code := post(t, f.srv, "/v1/completions", json.RawMessage(body), &r); code != 200 {
		t.Fatalf("%d", code)
	}
	ch := r.Choices[0]
	lp := ch.Logprobs
	if len(lp.Tokens) != 12 || len(lp.TokenLogprobs) != 12 || len(lp.TopLogprobs) != 12 || len(lp.TextOffset) != 12 {
		t.Fatalf("lengths: %+v", lp)
	}
	if strings.Join(lp.Tokens, "") != ch.Text {
		t.Errorf("tokens %q do not make the text %q", lp.Tokens, ch.Text)
	}
	for k, tokText := range lp.Tokens {
		if !strings.HasPrefix(string([]rune(ch.Text)[lp.TextOffset[k]:]), tokText) {
			t.Errorf("token %d %q is not at offset %d of %q", k, tokText, lp.TextOffset[k], ch.Text)
		}
		top := lp.TopLogprobs[k]
		if len(top) < 3 || len(top) > 4 || top[tokText] != *lp.TokenLogprobs[k] {
			t.Errorf("token %d: top %v, chosen %q %v", k, top, tokText, *lp.TokenLogprobs[k])
		}
		for _, v := range top {
			if v > 0 || v > *lp.TokenLogprobs[k] {
				t.Errorf("token %d (greedy): alternative %v above %v", k, v, *lp.TokenLogprobs[k])
			}
		}
	}
	// Streamed: the same tokens, offsets and values, chunk by chunk.
	events := sse(t, f.srv, "/v1/completions", strings.Replace(body, `"logprobs":3`, `"logprobs":3,"stream":true`, 1))
	var toks []string
	var offs []int
	var vals []float64
	for _, ev := range events {
		c := ev["choices"].([]any)[0].(map[string]any)
		l, ok := c["logprobs"].(map[string]any)
		if !ok {
			continue
		}
		for k, s := range l["tokens"].([]any) {
			toks = append(toks, s.(string))
			offs = append(offs, int(l["text_offset"].([]any)[k].(float64)))
			vals = append(vals, l["token_logprobs"].([]any)[k].(float64))
		}
	}
	if fmt.Sprint(toks) != fmt.Sprint(lp.Tokens) || fmt.Sprint(offs) != fmt.Sprint(lp.TextOffset) {
		t.Errorf("streamed tokens %q at %v, whole %q at %v", toks, offs, lp.Tokens, lp.TextOffset)
	}
	for k := range vals {
		if math.Abs(vals[k]-*lp.TokenLogprobs[k]) > 1e-9 {
			t.Errorf("streamed logprob %d: %v, whole %v", k, vals[k], *lp.TokenLogprobs[k])
		}
	}
	// Echo streamed: the prompt comes first, its first token without a logprob.
	events = sse(t, f.srv, "/v1/completions", `{"model":"stories260K","prompt":"Once upon","max_tokens":2,"temperature":0,"logprobs":0,"echo":true,"stream":true}`)
	first := events[0]["choices"].([]any)[0].(map[string]any)
	l := first["logprobs"].(map[string]any)
	if !strings.HasPrefix(first["text"].(string), "Once upon") || l["token_logprobs"].([]any)[0] != nil || len(l["tokens"].([]any)) < 3 {
		t.Errorf("streamed echo: %v", first)
	}
}

type chatLP struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []byte  `json:"-"`
				RawBytes    []int   `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
					Bytes   []int   `json:"bytes"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

// Chat log-probabilities: one entry per token with its bytes and exactly
// top_logprobs alternatives, the text their concatenation; streamed too.
func TestChatLogprobs(t *testing.T) {
	f := newFixture(t, "")
	body := `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":10,"temperature":0,"logprobs":true,"top_logprobs":2}`
	var r chatLP
	if code := post(t, f.srv, "/v1/chat/completions", json.RawMessage(body), &r); code != 200 || r.Choices[0].Logprobs == nil {
		t.Fatalf("%d %+v", code, r)
	}
	var text []byte
	for k, e := range r.Choices[0].Logprobs.Content {
		for _, b := range e.RawBytes {
			text = append(text, byte(b))
		}
		if len(e.TopLogprobs) != 2 || e.TopLogprobs[0].Logprob < e.Logprob || e.Logprob > 0 {
			t.Errorf("entry %d: %+v", k, e)
		}
	}
	if len(r.Choices[0].Logprobs.Content) != 10 || string(text) != r.Choices[0].Message.Content {
		t.Errorf("%d entries, bytes %q, content %q", len(r.Choices[0].Logprobs.Content), text, r.Choices[0].Message.Content)
	}
	var streamed []string
	for _, ev := range sse(t, f.srv, "/v1/chat/completions", strings.Replace(body, `"logprobs":true`, `"logprobs":true,"stream":true`, 1)) {
		c := ev["choices"].([]any)[0].(map[string]any)
		if l, ok := c["logprobs"].(map[string]any); ok {
			for _, e := range l["content"].([]any) {
				streamed = append(streamed, e.(map[string]any)["token"].(string))
			}
		}
	}
	var whole []string
	for _, e := range r.Choices[0].Logprobs.Content {
		whole = append(whole, e.Token)
	}
	if fmt.Sprint(streamed) != fmt.Sprint(whole) {
		t.Errorf("streamed %q, whole %q", streamed, whole)
	}
	// Without logprobs: null.
	var plain map[string]any
	post(t, f.srv, "/v1/chat/completions", json.RawMessage(`{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}`), &plain)
	if c := plain["choices"].([]any)[0].(map[string]any); c["logprobs"] != nil {
		t.Errorf("logprobs without asking: %v", c["logprobs"])
	}
}
