package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nikolalohinski/gonja/v2"
)

func choice0(t *testing.T, out map[string]any) map[string]any {
	t.Helper()
	cs, ok := out["choices"].([]any)
	if !ok || len(cs) == 0 {
		t.Fatalf("no choices: %v", out)
	}
	return cs[0].(map[string]any)
}

const personSchema = `{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"},"pets":{"type":"array","items":{"enum":["cat","dog"]},"maxItems":2}},"required":["name","age","pets"],"additionalProperties":false}`

func TestResponseFormat(t *testing.T) {
	f := newFixture(t, "")
	for i := 0; i < 4; i++ {
		body := fmt.Sprintf(`{"model":"stories260K","messages":[{"role":"user","content":"Who is Lily?"}],"temperature":1,"seed":%d,
			"response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":%s}}}`, i, personSchema)
		code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", body, "")
		if code != 200 {
			t.Fatalf("%d %v", code, out)
		}
		text := choice0(t, out)["message"].(map[string]any)["content"].(string)
		var p struct {
			Name *string
			Age  *int
			Pets []string
		}
		if err := json.Unmarshal([]byte(text), &p); err != nil || p.Name == nil || p.Age == nil || p.Pets == nil {
			t.Fatalf("output %q does not follow the schema: %v", text, err)
		}
	}
	// completions, json_object
	code, out, _ := do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":40,"seed":1,"response_format":{"type":"json_object"}}`, "")
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	text := choice0(t, out)["text"].(string)
	var obj map[string]any
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		t.Fatalf("json_object output %q: %v", text, err)
	}
	// text is the default
	code, out, _ = do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":12,"temperature":0,"response_format":{"type":"text"}}`, "")
	if code != 200 || !strings.HasPrefix(choice0(t, out)["text"].(string), ", there was a little girl named Lily") {
		t.Fatalf("text format: %d %v", code, out)
	}
	// streaming
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"stream":true,"seed":3,
		"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":`+personSchema+`}}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	var streamed strings.Builder
	for _, e := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
		var ev struct {
			Choices []struct {
				Delta struct{ Content string }
			}
		}
		if json.Unmarshal([]byte(strings.TrimPrefix(e, "data: ")), &ev) == nil && len(ev.Choices) > 0 {
			streamed.WriteString(ev.Choices[0].Delta.Content)
		}
	}
	if !json.Valid([]byte(streamed.String())) {
		t.Fatalf("streamed output %q is not JSON", streamed.String())
	}
}

func TestResponseFormatRefusals(t *testing.T) {
	f := newFixture(t, "")
	cases := []struct{ body, param, says string }{
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"a"}}}`, "response_format.json_schema.schema", `"pattern"`},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/a"}}}`, "response_format.json_schema.schema", `"$ref"`},
		{`"response_format":{"type":"yaml"}`, "response_format.type", "yaml"},
		{`"response_format":{"type":"json_schema"}`, "response_format.json_schema", "json_schema"},
		{`"response_format":{"type":"json_object","extra":1}`, "response_format.extra", "unknown"},
		{`"response_format":{"type":"json_object"},"stop":["}"]`, "stop", "stop"},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + personSchema + `}},"max_tokens":5`, "max_tokens", "too small"},
	}
	for _, c := range cases {
		code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],`+c.body+`}`, "")
		e, _ := out["error"].(map[string]any)
		if code != 400 || e == nil || e["param"] != c.param || !strings.Contains(e["message"].(string), c.says) {
			t.Errorf("%s: %d %v", c.body, code, out)
		}
	}
}

const weatherTools = `[{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["c","f"]}},"required":["city","unit"]}}},
	{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string","maxLength":6}},"required":["zone"]}}}]`

func toolCalls(t *testing.T, out map[string]any) (calls []map[string]any, fin string) {
	t.Helper()
	c := choice0(t, out)
	msg := c["message"].(map[string]any)
	for _, x := range msg["tool_calls"].([]any) {
		calls = append(calls, x.(map[string]any))
	}
	if msg["content"] != nil {
		t.Errorf("content %v beside tool calls", msg["content"])
	}
	return calls, c["finish_reason"].(string)
}

func TestToolsFallback(t *testing.T) {
	f := newFixture(t, "")
	for _, tc := range []struct{ choice, want string }{{`"required"`, ""}, {`{"type":"function","function":{"name":"get_time"}}`, "get_time"}, {`{"type":"function","function":{"name":"get_weather"}}`, "get_weather"}} {
		body := `{"model":"stories260K","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":` + weatherTools + `,"tool_choice":` + tc.choice + `,"seed":2}`
		code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", body, "")
		if code != 200 {
			t.Fatalf("%d %v", code, out)
		}
		calls, fin := toolCalls(t, out)
		if len(calls) != 1 || fin != "tool_calls" {
			t.Fatalf("calls %v, finish %s", calls, fin)
		}
		fn := calls[0]["function"].(map[string]any)
		if tc.want != "" && fn["name"] != tc.want {
			t.Errorf("called %v, want %s", fn["name"], tc.want)
		}
		if calls[0]["type"] != "function" || !strings.HasPrefix(calls[0]["id"].(string), "call_") {
			t.Errorf("call shape %v", calls[0])
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(fn["arguments"].(string)), &args); err != nil {
			t.Fatalf("arguments %q: %v", fn["arguments"], err)
		}
		if fn["name"] == "get_weather" && (args["city"] == nil || (args["unit"] != "c" && args["unit"] != "f")) {
			t.Errorf("arguments %v", args)
		}
	}
	// auto: the tiny model answers in text
	code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"tools":`+weatherTools+`,"max_tokens":8,"temperature":0}`, "")
	if code != 200 || choice0(t, out)["finish_reason"] == "tool_calls" {
		t.Fatalf("auto: %d %v", code, out)
	}
	// a history with a call and its result; tool_choice none
	hist := `[{"role":"user","content":"Weather in Paris?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"18 degrees"}]`
	code, out, _ = do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":`+hist+`,"tools":`+weatherTools+`,"tool_choice":"none","max_tokens":4}`, "")
	if code != 200 {
		t.Fatalf("history: %d %v", code, out)
	}
	turns, err := f.srv.parseTurns(mustMessages(t, hist))
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := f.srv.parseTools(json.RawMessage(weatherTools), nil, nil)
	prompt, err := f.srv.renderChat(turns, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"System: You can call these tools.", `{"name":"get_weather","description":"Weather in a city","parameters":`, `Assistant: {"name": "get_weather", "arguments": {"city":"Paris","unit":"c"}}`, "Tool: 18 degrees\nAssistant:"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, prompt)
		}
	}
	// streaming a forced call: one delta with the call, then finish_reason tool_calls
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"stories260K","messages":[{"role":"user","content":"Time?"}],"stream":true,"tools":`+weatherTools+`,"tool_choice":"required"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.App().Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"tool_calls":[{"index":0,"id":"call_`) || !strings.Contains(string(b), `"finish_reason":"tool_calls"`) {
		t.Errorf("stream %s", b)
	}
}

func mustMessages(t *testing.T, s string) []chatMessage {
	var m []chatMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestToolRefusals(t *testing.T) {
	f := newFixture(t, "")
	msgs := `"messages":[{"role":"user","content":"Hi"}]`
	cases := []struct{ body, param, says string }{
		{msgs + `,"tool_choice":"required"`, "tool_choice", "needs tools"},
		{msgs + `,"tools":` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}`, "tool_choice.function.name", "nope"},
		{msgs + `,"tools":` + weatherTools + `,"tool_choice":"sometimes"`, "tool_choice", "sometimes"},
		{msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"d":{"type":"string","format":"date"}}}}}]`, "tools[0].function.parameters", `"format"`},
		{msgs + `,"tools":[{"type":"retrieval"}]`, "tools[0].type", "retrieval"},
		{msgs + `,"tools":[{"type":"function","function":{"name":"bad name"}}]`, "tools[0].function.name", "bad name"},
		{msgs + `,"tools":` + weatherTools + `,"response_format":{"type":"json_object"}`, "response_format", "tools"},
		{`"messages":[{"role":"tool","content":"x"}]`, "messages[0].tool_call_id", "tool_call_id"},
		{`"messages":[{"role":"user","content":"x","tool_calls":[]}]`, "messages[0].tool_calls", "assistant"},
		{`"messages":[{"role":"user","content":"x","name":"bob"}]`, "messages[0].name", "names"},
	}
	for _, c := range cases {
		code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K",`+c.body+`}`, "")
		e, _ := out["error"].(map[string]any)
		if code != 400 || e == nil || e["param"] != c.param || !strings.Contains(e["message"].(string), c.says) {
			t.Errorf("%s: %d %v", c.body, code, out)
		}
	}
}

// A Hermes-style template (tools in the system turn, calls in <tool_call>
// tags): the tools go through it, and forced calls are written in its tags.
const hermesTemplate = `{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
Return calls within <tool_call></tool_call> tags.<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.tool_calls %}<|im_start|>assistant
{% for tc in message.tool_calls %}<tool_call>
{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif not (tools and message.role == 'system') %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}`

func TestToolsTemplate(t *testing.T) {
	f := newFixture(t, "")
	tmpl, err := gonja.FromString(hermesTemplate)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.tmpl = &chatTemplate{tmpl: tmpl, source: hermesTemplate}
	hist := `[{"role":"system","content":"Be exact."},{"role":"user","content":"Weather?"},
		{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{\"zone\":\"UTC\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"noon"}]`
	turns, err := f.srv.parseTurns(mustMessages(t, hist))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := f.srv.parseTools(json.RawMessage(weatherTools), json.RawMessage(`"required"`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ts.template || ts.pre != "<tool_call>\n" {
		t.Fatalf("template tools not detected: %+v", ts)
	}
	prompt, err := f.srv.renderChat(turns, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<|im_start|>system\nBe exact.\n\n# Tools\n<tools>\n{", `"name":"get_weather"`, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\":\"UTC\"}}\n</tool_call>",
		"<tool_response>\nnoon\n</tool_response>", "<|im_start|>assistant\n"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, prompt)
		}
	}
	small := `[{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string","maxLength":6}},"required":["zone"]}}}]`
	code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":`+hist+`,"tools":`+small+`,"tool_choice":"required","seed":4}`, "")
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if calls, fin := toolCalls(t, out); len(calls) != 1 || fin != "tool_calls" {
		t.Fatalf("calls %v %s", calls, fin)
	}
	// parsing an auto answer with tags and text around them
	got, rest := ts.parseCalls("Let me check.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>")
	if len(got) != 1 || got[0].Function.Arguments != `{"zone":"CET"}` || rest != "Let me check." {
		t.Errorf("parsed %+v, rest %q", got, rest)
	}
}

// FuzzParseCalls: reading calls back from any model text never panics, and
// every call read has a declared name and an object as arguments.
func FuzzParseCalls(f *testing.F) {
	for _, s := range []string{`{"name":"get_time","arguments":{"zone":"UTC"}}`, `{"name":"get_time","parameters":"{\"a\":1}"}`,
		"x<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>y<tool_call>", `<tool_call>{"name":1}</tool_call>`, `{"name":"nope","arguments":{}}`} {
		f.Add(s, true)
		f.Add(s, false)
	}
	defs := []toolDef{{Type: "function", Function: toolFunction{Name: "get_time", Parameters: json.RawMessage(noArguments)}}}
	f.Fuzz(func(t *testing.T, text string, tags bool) {
		ts := &toolSet{defs: defs, choice: "auto"}
		if tags {
			ts.pre, ts.suf = "<tool_call>\n", "\n</tool_call>"
		}
		calls, _ := ts.parseCalls(text)
		for _, c := range calls {
			var args map[string]any
			if c.Function.Name != "get_time" || json.Unmarshal([]byte(c.Function.Arguments), &args) != nil {
				t.Fatalf("%q: call %+v", text, c)
			}
		}
	})
}

// n, best_of and prompt arrays under a grammar: every completion has its own
// constraint (forks of one prefill included), so each one parses.
func TestStructuredChoices(t *testing.T) {
	f := newFixture(t, "")
	person := func(text string) error {
		var p struct {
			Name *string
			Age  *int
			Pets []string
		}
		if err := json.Unmarshal([]byte(text), &p); err != nil || p.Name == nil || p.Age == nil || p.Pets == nil {
			return fmt.Errorf("output %q does not follow the schema: %v", text, err)
		}
		return nil
	}
	rf := `"response_format":{"type":"json_schema","json_schema":{"name":"person","schema":` + personSchema + `}}`
	code, out, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Who is Lily?"}],"temperature":1,"seed":7,"n":3,`+rf+`}`, "")
	if code != 200 {
		t.Fatalf("chat n=3: %d %v", code, out)
	}
	texts := map[string]bool{}
	for _, c := range out["choices"].([]any) {
		text := c.(map[string]any)["message"].(map[string]any)["content"].(string)
		if err := person(text); err != nil {
			t.Error(err)
		}
		texts[text] = true
	}
	if len(out["choices"].([]any)) != 3 || len(texts) < 2 {
		t.Errorf("n=3: %v", out["choices"])
	}
	code, out, _ = do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":["Once upon a time","Lily"],"temperature":1,"seed":2,"n":2,"logprobs":1,`+rf+`}`, "")
	if code != 200 || len(out["choices"].([]any)) != 4 {
		t.Fatalf("completions, 2 prompts × n=2: %d %v", code, out)
	}
	for _, c := range out["choices"].([]any) {
		c := c.(map[string]any)
		if err := person(c["text"].(string)); err != nil {
			t.Error(err)
		}
		if lp, _ := c["logprobs"].(map[string]any); lp == nil || len(lp["tokens"].([]any)) == 0 {
			t.Errorf("no logprobs: %v", c)
		}
	}
	code, out, _ = do(t, f.srv, "POST", "/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","temperature":1,"seed":3,"best_of":3,`+rf+`}`, "")
	if code != 200 || len(out["choices"].([]any)) != 1 {
		t.Fatalf("best_of 3: %d %v", code, out)
	}
	if err := person(choice0(t, out)["text"].(string)); err != nil {
		t.Error(err)
	}
	// Streamed, n=2: each index's deltas join into a valid document.
	parts := map[float64]*strings.Builder{}
	for _, ev := range sse(t, f.srv, "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"stream":true,"temperature":1,"seed":4,"n":2,`+rf+`}`) {
		for _, c := range ev["choices"].([]any) {
			c := c.(map[string]any)
			i := c["index"].(float64)
			if parts[i] == nil {
				parts[i] = &strings.Builder{}
			}
			if d, _ := c["delta"].(map[string]any); d != nil && d["content"] != nil {
				parts[i].WriteString(d["content"].(string))
			}
		}
	}
	if len(parts) != 2 {
		t.Fatalf("streamed choices: %v", parts)
	}
	for i, b := range parts {
		if err := person(b.String()); err != nil {
			t.Errorf("streamed choice %v: %v", i, err)
		}
	}
}

// Forced tool calls with n=2, streamed with log-probabilities: each choice's
// call comes whole in one delta (with its tokens' log-probabilities), then
// its finish chunk says tool_calls.
func TestToolsStreamChoices(t *testing.T) {
	f := newFixture(t, "")
	events := sse(t, f.srv, "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Weather in Paris?"}],"stream":true,"temperature":1,"seed":5,"n":2,
		"logprobs":true,"tools":`+weatherTools+`,"tool_choice":"required"}`)
	calls, finishes, lps := map[float64]int{}, map[float64]any{}, map[float64]int{}
	for _, ev := range events {
		for _, c := range ev["choices"].([]any) {
			c := c.(map[string]any)
			i := c["index"].(float64)
			d, _ := c["delta"].(map[string]any)
			if tc, _ := d["tool_calls"].([]any); len(tc) > 0 {
				calls[i] += len(tc)
				fn := tc[0].(map[string]any)["function"].(map[string]any)
				var args map[string]any
				if json.Unmarshal([]byte(fn["arguments"].(string)), &args) != nil || (fn["name"] != "get_weather" && fn["name"] != "get_time") {
					t.Errorf("choice %v: call %v", i, fn)
				}
			}
			if lp, _ := c["logprobs"].(map[string]any); lp != nil {
				lps[i] += len(lp["content"].([]any))
			}
			if c["finish_reason"] != nil {
				finishes[i] = c["finish_reason"]
			}
		}
	}
	for i := range 2 {
		k := float64(i)
		if calls[k] != 1 || finishes[k] != "tool_calls" || lps[k] == 0 {
			t.Errorf("choice %d: %d calls, finish %v, %d logprobs", i, calls[k], finishes[k], lps[k])
		}
	}
}

// parallel_tool_calls false keeps an answer's first call.
func TestParallelToolCalls(t *testing.T) {
	defs := []toolDef{{Type: "function", Function: toolFunction{Name: "get_time", Parameters: json.RawMessage(noArguments)}}}
	text := "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"
	for _, single := range []bool{false, true} {
		ts := &toolSet{defs: defs, choice: "auto", pre: "<tool_call>\n", suf: "\n</tool_call>", single: single}
		calls, rest := ts.parseCalls(text)
		if want := map[bool]int{false: 2, true: 1}[single]; len(calls) != want || rest != "" {
			t.Errorf("single %v: %d calls (want %d), rest %q", single, len(calls), want, rest)
		}
	}
	f := newFixture(t, "")
	for _, v := range []string{"true", "false"} {
		ts, err := f.srv.parseTools(json.RawMessage(weatherTools), nil, func() *bool { b := v == "true"; return &b }())
		if err != nil || ts.single != (v == "false") {
			t.Errorf("parallel_tool_calls %s: %+v %v", v, ts, err)
		}
	}
}
