package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The request fields of the OpenAI API reference: CreateCompletionRequest and
// CreateChatCompletionRequest, and a chat message's fields.
var (
	openAICompletionFields = []string{"model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
		"max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix", "temperature", "top_p", "user"}
	openAIChatFields = []string{"messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
		"logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
		"presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier",
		"seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs",
		"top_p", "user", "verbosity", "web_search_options"}
	openAIMessageFields = []string{"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "audio", "refusal"}
)

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type answer struct {
	code int
	body map[string]any
	raw  string
	hdr  map[string]string
}

func (a answer) choices() []map[string]any {
	var out []map[string]any
	cs, _ := a.body["choices"].([]any)
	for _, c := range cs {
		out = append(out, c.(map[string]any))
	}
	return out
}

func (a answer) text() string {
	cs := a.choices()
	if len(cs) == 0 {
		return ""
	}
	if t, ok := cs[0]["text"].(string); ok {
		return t
	}
	if m, ok := cs[0]["message"].(map[string]any); ok {
		return fmt.Sprint(m["content"])
	}
	return ""
}

// Every field of both schemas is sent at least once: it is honoured, with an
// effect the test observes, or refused with a 400 that names it.
func TestEveryOpenAIField(t *testing.T) {
	logs := &logBuffer{}
	f := newFixture(t, "", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	send := func(path, body string) answer {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.srv.App().Test(req, 60_000)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return answer{resp.StatusCode, m, string(raw), map[string]string{"Content-Type": resp.Header.Get("Content-Type")}}
	}
	const comp, chat = "/v1/completions", "/v1/chat/completions"
	cbody := func(extra string) string {
		return `{"model":"stories260K","prompt":"Once upon a time","max_tokens":6,"temperature":0` + extra + `}`
	}
	hbody := func(extra string) string {
		return `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":6,"temperature":0` + extra + `}`
	}
	greedyC, greedyH := send(comp, cbody("")), send(chat, hbody(""))
	if greedyC.code != 200 || greedyH.code != 200 {
		t.Fatalf("plain requests: %v %v", greedyC.raw, greedyH.raw)
	}
	if code, out := upload(t, f, "tale", `{"input":"a dragon flew over the castle"}`+"\n"); code != 201 {
		t.Fatalf("upload: %d %v", code, out)
	}
	differs := func(base answer) func(a answer) error {
		return func(a answer) error {
			if a.code != 200 || a.text() == base.text() {
				return fmt.Errorf("no effect: %d %q", a.code, a.text())
			}
			return nil
		}
	}
	pt := func(x answer) any { u, _ := x.body["usage"].(map[string]any); return u["prompt_tokens"] }
	promptVs := func(base answer) func(a answer) error {
		return func(a answer) error {
			if a.code != 200 || base.code != 200 || pt(a) == pt(base) {
				return fmt.Errorf("the prompt did not change: %d %.300s", a.code, a.raw)
			}
			return nil
		}
	}
	promptDiffers := promptVs(greedyH)
	ok := func(check func(a answer) bool) func(a answer) error {
		return func(a answer) error {
			if a.code != 200 || !check(a) {
				return fmt.Errorf("not honoured: %d %.300s", a.code, a.raw)
			}
			return nil
		}
	}
	logged := func(s string) func(a answer) error {
		return func(a answer) error {
			if a.code != 200 || !strings.Contains(logs.String(), s) {
				return fmt.Errorf("%q not in the request log: %d", s, a.code)
			}
			return nil
		}
	}
	refused := func(field string) func(a answer) error {
		return func(a answer) error {
			e, _ := a.body["error"].(map[string]any)
			if a.code != 400 || e == nil || e["param"] != field || !strings.Contains(fmt.Sprint(e["message"]), field) {
				return fmt.Errorf("not refused by name: %d %.300s", a.code, a.raw)
			}
			return nil
		}
	}
	isJSON := func(a answer) bool {
		var v map[string]any
		return json.Unmarshal([]byte(a.text()), &v) == nil
	}
	calls := func(a answer) []any {
		m, _ := a.choices()[0]["message"].(map[string]any)
		c, _ := m["tool_calls"].([]any)
		return c
	}
	calledF := func(a answer) bool {
		c := calls(a)
		if len(c) != 1 || a.choices()[0]["finish_reason"] != "tool_calls" {
			return false
		}
		fn := c[0].(map[string]any)["function"].(map[string]any)
		var args map[string]any
		return fn["name"] == "f" && json.Unmarshal([]byte(fn["arguments"].(string)), &args) == nil
	}
	const toolF = `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}}}]`
	// A history with a call and its result; the last message is the tool's.
	history := func(toolMsg string) string {
		return `{"model":"stories260K","max_tokens":6,"temperature":0,"messages":[{"role":"user","content":"Tell me a story."},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"n\":1}"}}]},` + toolMsg + `]}`
	}
	usageChunk := func(a answer) bool {
		return strings.Contains(a.raw, `"choices":[],"usage":{"prompt_tokens"`) && strings.Contains(a.raw, `"usage":null`)
	}
	cases := []struct {
		path, field, body string
		want              func(answer) error
	}{
		// Completions.
		{comp, "model", `{"model":"ghost","prompt":"x"}`, func(a answer) error {
			if a.code != 404 || !strings.Contains(a.raw, "ghost") {
				return fmt.Errorf("%d %s", a.code, a.raw)
			}
			return nil
		}},
		{comp, "prompt", `{"model":"stories260K","prompt":"Lily","max_tokens":6,"temperature":0}`, differs(greedyC)},
		{comp, "best_of", cbody(`,"best_of":3,"temperature":1,"seed":1`), ok(func(a answer) bool {
			return len(a.choices()) == 1 && a.body["usage"].(map[string]any)["completion_tokens"].(float64) == 18
		})},
		{comp, "echo", cbody(`,"echo":true`), ok(func(a answer) bool { return a.text() == "Once upon a time"+greedyC.text() })},
		{comp, "frequency_penalty", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"frequency_penalty":2}`, differs(send(comp, `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0}`))},
		{comp, "presence_penalty", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"presence_penalty":2}`, differs(send(comp, `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0}`))},
		{comp, "logit_bias", cbody(`,"logit_bias":{"300":100}`), differs(greedyC)},
		{comp, "logprobs", cbody(`,"logprobs":2`), ok(func(a answer) bool { return a.choices()[0]["logprobs"] != nil })},
		{comp, "max_tokens", cbody(`,"max_tokens":3`), ok(func(a answer) bool {
			return a.body["usage"].(map[string]any)["completion_tokens"].(float64) == 3
		})},
		{comp, "n", cbody(`,"n":3`), ok(func(a answer) bool { return len(a.choices()) == 3 })},
		{comp, "seed", cbody(`,"temperature":1.5,"seed":5,"max_tokens":20`), func(a answer) error {
			b := send(comp, cbody(`,"temperature":1.5,"seed":5,"max_tokens":20`))
			c := send(comp, cbody(`,"temperature":1.5,"seed":6,"max_tokens":20`))
			if a.code != 200 || a.text() != b.text() || a.text() == c.text() {
				return fmt.Errorf("seed 5: %q and %q, seed 6: %q", a.text(), b.text(), c.text())
			}
			return nil
		}},
		{comp, "stop", cbody(`,"stop":[" was"]`), ok(func(a answer) bool {
			return a.text() == ", there" && a.choices()[0]["finish_reason"] == "stop"
		})},
		{comp, "stream", cbody(`,"stream":true`), ok(func(a answer) bool { return a.hdr["Content-Type"] == "text/event-stream" })},
		{comp, "stream_options", cbody(`,"stream":true,"stream_options":{"include_usage":true}`), ok(usageChunk)},
		{comp, "suffix", cbody(`,"suffix":"The end."`), refused("suffix")},
		{comp, "temperature", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":6,"temperature":0}`, ok(func(a answer) bool {
			return strings.HasPrefix(a.text(), ", there was a")
		})},
		{comp, "top_p", cbody(`,"temperature":2,"top_p":0.000001,"seed":9`), ok(func(a answer) bool { return a.text() == greedyC.text() })},
		{comp, "user", cbody(`,"user":"user-7731"`), logged("user=user-7731")},
		// Chat.
		{chat, "messages", `{"model":"stories260K","messages":[{"role":"user","content":"Where is the cat today?"}],"max_tokens":6,"temperature":0}`, promptDiffers},
		{chat, "model", `{"model":"ghost","messages":[{"role":"user","content":"x"}]}`, func(a answer) error {
			if a.code != 404 {
				return fmt.Errorf("%d %s", a.code, a.raw)
			}
			return nil
		}},
		{chat, "audio", hbody(`,"audio":{"voice":"alloy","format":"wav"}`), refused("audio")},
		{chat, "frequency_penalty", `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":60,"temperature":0,"frequency_penalty":2}`, differs(send(chat, `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":60,"temperature":0}`))},
		{chat, "function_call", hbody(`,"function_call":"auto"`), refused("function_call")},
		{chat, "functions", hbody(`,"functions":[{"name":"f"}]`), refused("functions")},
		{chat, "logit_bias", hbody(`,"logit_bias":{"300":100}`), differs(greedyH)},
		{chat, "logprobs", hbody(`,"logprobs":true`), ok(func(a answer) bool { return a.choices()[0]["logprobs"] != nil })},
		{chat, "max_completion_tokens", hbody(`,"max_completion_tokens":2`), ok(func(a answer) bool {
			return a.body["usage"].(map[string]any)["completion_tokens"].(float64) == 2
		})},
		{chat, "max_tokens", hbody(`,"max_tokens":3`), ok(func(a answer) bool {
			return a.body["usage"].(map[string]any)["completion_tokens"].(float64) == 3
		})},
		{chat, "metadata", hbody(`,"metadata":{"k":"v"}`), refused("metadata")},
		{chat, "modalities", hbody(`,"modalities":["text","audio"]`), refused("modalities[1]")},
		{chat, "modalities", hbody(`,"modalities":["text"]`), ok(func(a answer) bool { return a.text() == greedyH.text() })},
		{chat, "n", hbody(`,"n":2`), ok(func(a answer) bool { return len(a.choices()) == 2 && a.choices()[1]["index"].(float64) == 1 })},
		{chat, "parallel_tool_calls", hbody(`,"max_tokens":64` + toolF + `,"tool_choice":"required","parallel_tool_calls":false`), ok(calledF)},
		{chat, "prediction", hbody(`,"prediction":{"type":"content","content":"x"}`), refused("prediction")},
		{chat, "presence_penalty", `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":60,"temperature":0,"presence_penalty":2}`, differs(send(chat, `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":60,"temperature":0}`))},
		{chat, "prompt_cache_key", hbody(`,"prompt_cache_key":"k"`), refused("prompt_cache_key")},
		{chat, "prompt_cache_retention", hbody(`,"prompt_cache_retention":"24h"`), refused("prompt_cache_retention")},
		{chat, "reasoning_effort", hbody(`,"reasoning_effort":"low"`), refused("reasoning_effort")},
		{chat, "response_format", hbody(`,"response_format":{"type":"json_object"}`), ok(func(a answer) bool { return isJSON(a) && !isJSON(greedyH) })},
		{chat, "response_format", hbody(`,"max_tokens":40,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}}}`), ok(func(a answer) bool {
			var v struct{ N *int }
			return json.Unmarshal([]byte(a.text()), &v) == nil && v.N != nil
		})},
		{chat, "safety_identifier", hbody(`,"safety_identifier":"sid-4411"`), logged("user=sid-4411")},
		{chat, "seed", hbody(`,"temperature":1.5,"seed":5,"max_tokens":20`), func(a answer) error {
			b := send(chat, hbody(`,"temperature":1.5,"seed":5,"max_tokens":20`))
			if a.code != 200 || a.text() != b.text() {
				return fmt.Errorf("seed 5: %q and %q", a.text(), b.text())
			}
			return nil
		}},
		{chat, "service_tier", hbody(`,"service_tier":"auto"`), ok(func(a answer) bool { return a.body["service_tier"] == "default" })},
		{chat, "service_tier", hbody(`,"service_tier":"flex"`), refused("service_tier")},
		{chat, "stop", hbody(`,"stop":"n"`), ok(func(a answer) bool {
			return a.text() == "A" && a.choices()[0]["finish_reason"] == "stop"
		})},
		{chat, "store", hbody(`,"store":true`), refused("store")},
		{chat, "store", hbody(`,"store":false`), ok(func(a answer) bool { return a.text() == greedyH.text() })},
		{chat, "stream", hbody(`,"stream":true`), ok(func(a answer) bool { return strings.Contains(a.raw, "chat.completion.chunk") })},
		{chat, "stream_options", hbody(`,"stream":true,"stream_options":{"include_usage":true}`), ok(usageChunk)},
		{chat, "temperature", hbody(`,"temperature":0`), ok(func(a answer) bool { return a.text() == greedyH.text() })},
		{chat, "tool_choice", hbody(`,"max_tokens":64` + toolF + `,"tool_choice":{"type":"function","function":{"name":"f"}}`), ok(calledF)},
		{chat, "tool_choice", hbody(toolF + `,"tool_choice":"none"`), ok(func(a answer) bool { return pt(a) == pt(greedyH) && a.text() == greedyH.text() })},
		{chat, "tool_choice", hbody(`,"tool_choice":"auto"`), refused("tool_choice")}, // without tools
		{chat, "tools", hbody(toolF), promptDiffers},
		{chat, "top_logprobs", hbody(`,"logprobs":true,"top_logprobs":3`), ok(func(a answer) bool {
			c := a.choices()[0]["logprobs"].(map[string]any)["content"].([]any)[0].(map[string]any)
			return len(c["top_logprobs"].([]any)) == 3
		})},
		{chat, "top_p", hbody(`,"temperature":2,"top_p":0.000001,"seed":9`), ok(func(a answer) bool { return a.text() == greedyH.text() })},
		{chat, "user", hbody(`,"user":"user-9120"`), logged("user=user-9120")},
		{chat, "verbosity", hbody(`,"verbosity":"low"`), refused("verbosity")},
		{chat, "web_search_options", hbody(`,"web_search_options":{}`), refused("web_search_options")},
		// A message's fields.
		{chat, "messages[].role", `{"model":"stories260K","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."}],"max_tokens":6,"temperature":0}`, promptDiffers},
		{chat, "messages[].content", `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"Tell me "},{"type":"text","text":"a story."}]}],"max_tokens":6,"temperature":0}`, ok(func(a answer) bool { return a.text() == greedyH.text() })},
		{chat, "messages[].name", history(`{"role":"tool","tool_call_id":"call_1","name":"f","content":"42"}`), promptVs(send(chat, history(`{"role":"tool","tool_call_id":"call_1","content":"42"}`)))},
		{chat, "messages[].name", `{"model":"stories260K","messages":[{"role":"user","content":"x","name":"ann"}]}`, refused("messages[0].name")}, // participant names
		{chat, "messages[].tool_calls", history(`{"role":"tool","tool_call_id":"call_1","content":"42"}`), promptVs(send(chat,
			`{"model":"stories260K","max_tokens":6,"temperature":0,"messages":[{"role":"user","content":"Tell me a story."},{"role":"tool","tool_call_id":"call_1","content":"42"}]}`))},
		{chat, "messages[].tool_calls", `{"model":"stories260K","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y","tool_calls":[{"id":"1"}]}]}`, refused("messages[1].tool_calls[0]")},
		{chat, "messages[].tool_call_id", history(`{"role":"tool","tool_call_id":"call_1","content":"42"}`), ok(func(a answer) bool {
			return send(chat, history(`{"role":"tool","content":"42"}`)).code == 400
		})},
		{chat, "messages[].tool_call_id", `{"model":"stories260K","messages":[{"role":"user","content":"x","tool_call_id":"1"}]}`, refused("messages[0].tool_call_id")},
		{chat, "messages[].function_call", `{"model":"stories260K","messages":[{"role":"assistant","content":"x","function_call":{"name":"f"}}]}`, refused("messages[0].function_call")},
		{chat, "messages[].audio", `{"model":"stories260K","messages":[{"role":"assistant","content":"x","audio":{"id":"a"}}]}`, refused("messages[0].audio")},
		{chat, "messages[].refusal", `{"model":"stories260K","messages":[{"role":"assistant","content":"x","refusal":"no"}]}`, refused("messages[0].refusal")},
		// Peers' names for adapters: LoRAX's adapter_id, llama.cpp's lora.
		{comp, "adapter_id", cbody(`,"adapter_id":"tale"`), func(a answer) error {
			if err := differs(greedyC)(a); err != nil || a.body["model"] != "tale" || a.text() != send(comp, `{"model":"tale","prompt":"Once upon a time","max_tokens":6,"temperature":0}`).text() {
				return fmt.Errorf("not the expert's output: %v %.300s", err, a.raw)
			}
			return nil
		}},
		{comp, "lora", cbody(`,"lora":[{"id":"tale","scale":1}]`), differs(greedyC)},
		{comp, "lora", cbody(`,"lora":[{"id":0,"scale":0}]`), ok(func(a answer) bool { return a.text() == greedyC.text() })},
		{comp, "adapter_source", cbody(`,"adapter_id":"tale","adapter_source":"hub"`), refused("adapter_source")},
		{chat, "adapter_id", hbody(`,"adapter_id":"tale"`), differs(greedyH)},
		{chat, "lora", hbody(`,"lora":[{"id":"tale","scale":1}]`), differs(greedyH)},
		// Structured output on completions too.
		{comp, "response_format", cbody(`,"response_format":{"type":"json_object"}`), ok(func(a answer) bool { return isJSON(a) && !isJSON(greedyC) })},
		// roe's and vLLM's extensions.
		{comp, "top_k", cbody(`,"temperature":2,"top_k":1,"seed":9`), ok(func(a answer) bool { return a.text() == greedyC.text() })},
		{comp, "min_p", cbody(`,"temperature":2,"min_p":1,"seed":9`), ok(func(a answer) bool { return a.text() == greedyC.text() })},
		{comp, "repetition_penalty", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"repetition_penalty":1.5}`, differs(send(comp, `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0}`))},
		{comp, "max_completion_tokens", cbody(`,"max_completion_tokens":2`), ok(func(a answer) bool {
			return a.body["usage"].(map[string]any)["completion_tokens"].(float64) == 2
		})},
	}
	sent := map[string]map[string]bool{comp: {}, chat: {}}
	for _, c := range cases {
		if err := c.want(send(c.path, c.body)); err != nil {
			t.Errorf("%s %s: %v\n  body %s", c.path, c.field, err, c.body)
		}
		sent[c.path][c.field] = true
	}
	for path, fields := range map[string][]string{comp: openAICompletionFields, chat: openAIChatFields} {
		for _, fld := range fields {
			if !sent[path][fld] {
				t.Errorf("%s: field %s is never sent", path, fld)
			}
		}
	}
	for _, fld := range openAIMessageFields {
		if !sent[chat]["messages[]."+fld] {
			t.Errorf("message field %s is never sent", fld)
		}
	}
}

// Unknown fields are refused by name, anywhere in the body, unless the server
// ignores them; null is the same as absent.
func TestUnknownFields(t *testing.T) {
	strict := newFixture(t, "")
	lax := newFixture(t, "", func(c *Config) { c.IgnoreUnknownFields = true })
	cases := []struct{ path, body, param string }{
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":1,"frobnicate":1}`, "frobnicate"},
		{"/v1/completions", `{"model":"stories260K","prompt":"x","max_tokens":1,"stream":true,"stream_options":{"include_usage":true,"extra":1}}`, "stream_options.extra"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"x","colour":"red"}],"max_tokens":1}`, "messages[0].colour"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{}}]}],"max_tokens":1}`, "messages[0].content[0].cache_control"},
		{"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"x"}],"max_tokens":1,"echo":true}`, "echo"},
		{"/v1/completions", `{"model":"auto","prompt":"x","max_tokens":1,"routing":{"top_k":1,"topk":2}}`, "routing.topk"},
	}
	for _, c := range cases {
		var e struct {
			Error struct{ Param, Message string }
		}
		if code := post(t, strict.srv, c.path, json.RawMessage(c.body), &e); code != 400 || e.Error.Param != c.param || !strings.Contains(e.Error.Message, "--ignore-unknown-fields") {
			t.Errorf("strict %s: %d %+v (want 400 naming %s)", c.body, code, e, c.param)
		}
		if code := post(t, lax.srv, c.path, json.RawMessage(c.body), nil); code != 200 {
			t.Errorf("--ignore-unknown-fields %s: %d", c.body, code)
		}
	}
	// Refused fields stay refused with the flag; null or empty is absent.
	if code := post(t, lax.srv, "/v1/chat/completions", json.RawMessage(`{"model":"stories260K","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]}`), nil); code != 400 {
		t.Errorf("functions with --ignore-unknown-fields: %d", code)
	}
	nulls := `{"model":"stories260K","messages":[{"role":"assistant","content":"x","refusal":null,"tool_calls":[],"audio":null,"function_call":null},{"role":"user","content":"y"}],"max_tokens":1,"tools":null,"tool_choice":null,"response_format":null,"logit_bias":null,"stream_options":null,"user":null,"metadata":null,"n":null}`
	if code := post(t, strict.srv, "/v1/chat/completions", json.RawMessage(nulls), nil); code != 200 {
		t.Errorf("nulls: %d", code)
	}
	// The refusal tables name only fields that are not in the structs.
	for _, rules := range []fieldRules{completionRules, chatRules} {
		for typ, refused := range rules {
			var names []string
			for k := range refused {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				if _, ok := jsonField(typ, k); ok {
					t.Errorf("%s: %s is both a field and refused", typ, k)
				}
			}
		}
	}
}

// include_usage: usage only when asked, in a last chunk with no choices, and
// null on every other chunk; never without it.
func TestStreamIncludeUsage(t *testing.T) {
	f := newFixture(t, "")
	for _, path := range []string{"/v1/completions", "/v1/chat/completions"} {
		body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":5,"stream":true,"n":2%s}`
		if strings.Contains(path, "chat") {
			body = `{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stream":true,"n":2%s}`
		}
		for _, ev := range sse(t, f.srv, path, fmt.Sprintf(body, "")) {
			if _, ok := ev["usage"]; ok {
				t.Errorf("%s without include_usage: usage in %v", path, ev)
			}
			if ev["system_fingerprint"] != f.srv.fingerprint {
				t.Errorf("%s: system_fingerprint %v", path, ev["system_fingerprint"])
			}
		}
		events := sse(t, f.srv, path, fmt.Sprintf(body, `,"stream_options":{"include_usage":true}`))
		last := events[len(events)-1]
		u, _ := last["usage"].(map[string]any)
		if len(last["choices"].([]any)) != 0 || u == nil || u["completion_tokens"].(float64) != 10 {
			t.Errorf("%s: last chunk %v", path, last)
		}
		finishes := 0
		for _, ev := range events[:len(events)-1] {
			if v, ok := ev["usage"]; !ok || v != nil {
				t.Errorf("%s: chunk without usage: null: %v", path, ev)
			}
			for _, c := range ev["choices"].([]any) {
				if c.(map[string]any)["finish_reason"] != nil {
					finishes++
				}
			}
		}
		if finishes != 2 {
			t.Errorf("%s: %d finish chunks for n=2", path, finishes)
		}
	}
}
