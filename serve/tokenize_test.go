package serve

import (
	"encoding/json"
	"fmt"
	"testing"

	"roe/adapters"
)

// vLLM's /tokenize and /detokenize: a prompt or chat messages (tokenized as
// chat completions does), and back.
func TestTokenizeDetokenize(t *testing.T) {
	f := newFixture(t, "k")
	tok := f.srv.cfg.Tokenizer
	var r struct {
		Count       int      `json:"count"`
		MaxModelLen int      `json:"max_model_len"`
		Tokens      []int    `json:"tokens"`
		TokenStrs   []string `json:"token_strs"`
	}
	code, out, _ := do(t, f.srv, "POST", "/tokenize", `{"model":"stories260K","prompt":"Once upon a time","return_token_strs":true}`, "k")
	b, _ := json.Marshal(out)
	json.Unmarshal(b, &r)
	want := tok.Encode("Once upon a time", true)
	if code != 200 || fmt.Sprint(r.Tokens) != fmt.Sprint(want) || r.Count != len(want) || r.MaxModelLen != f.srv.cfg.MaxContext || len(r.TokenStrs) != len(want) {
		t.Errorf("tokenize: %d %v", code, out)
	}
	_, out, _ = do(t, f.srv, "POST", "/tokenize", `{"prompt":"Once upon a time","add_special_tokens":false}`, "k")
	if fmt.Sprint(out["tokens"]) != fmt.Sprint(toAny(tok.Encode("Once upon a time", false))) || out["token_strs"] != nil {
		t.Errorf("without special tokens: %v", out)
	}
	// Messages give the prompt chat completions counts.
	_, out, _ = do(t, f.srv, "POST", "/tokenize", `{"messages":[{"role":"user","content":"Tell me a story."}]}`, "k")
	_, chat, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":1}`, "k")
	if out["count"] != chat["usage"].(map[string]any)["prompt_tokens"] {
		t.Errorf("messages: %v tokens, chat prompt_tokens %v", out["count"], chat["usage"])
	}
	// Tools and a tool-call history too.
	msgs := `"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_time","arguments":"{\"zone\":\"UTC\"}"}}]},{"role":"tool","tool_call_id":"c1","name":"get_time","content":"noon"}],"tools":` + weatherTools
	_, out, _ = do(t, f.srv, "POST", "/tokenize", `{`+msgs+`}`, "k")
	_, chat, _ = do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","max_tokens":1,`+msgs+`}`, "k")
	if out["count"] == nil || out["count"] != chat["usage"].(map[string]any)["prompt_tokens"] {
		t.Errorf("messages with tools: %v tokens, chat %v", out, chat)
	}
	code, out, _ = do(t, f.srv, "POST", "/detokenize", `{"tokens":`+fmt.Sprint(jsonInts(want))+`}`, "k")
	if code != 200 || out["prompt"] != tok.Decode(want, false) {
		t.Errorf("detokenize: %d %v", code, out)
	}
	for _, c := range []struct{ path, body, param string }{
		{"/tokenize", `{}`, "prompt"},
		{"/tokenize", `{"prompt":"x","messages":[{"role":"user","content":"x"}]}`, "messages"},
		{"/tokenize", `{"prompt":"x","chat_template":"{{x}}"}`, "chat_template"},
		{"/tokenize", `{"prompt":"x","frob":1}`, "frob"},
		{"/tokenize", `{"prompt":"x","tools":[]}`, "tools"},
		{"/detokenize", `{"tokens":[1,-5]}`, "tokens"},
	} {
		code, out, _ := do(t, f.srv, "POST", c.path, c.body, "k")
		if e, _ := out["error"].(map[string]any); code != 400 || e["param"] != c.param {
			t.Errorf("%s %s: %d %v", c.path, c.body, code, out)
		}
	}
	if code, _, _ := do(t, f.srv, "POST", "/tokenize", `{"model":"ghost","prompt":"x"}`, "k"); code != 404 {
		t.Errorf("unknown model: %d", code)
	}
	if code, _, _ := do(t, f.srv, "POST", "/tokenize", `{"prompt":"x"}`, ""); code != 401 {
		t.Errorf("tokenize without the key: %d", code)
	}
	code, out, _ = do(t, f.srv, "GET", "/tokenizer_info", "", "k")
	if code != 200 || out["eos_token"] != "</s>" || out["bos_token"] != "<s>" {
		t.Errorf("tokenizer_info: %d %v", code, out)
	}
	if code, out, _ := do(t, f.srv, "GET", "/health", "", ""); code != 200 || out["status"] != "ok" {
		t.Errorf("/health: %d %v", code, out)
	}
}

// system_fingerprint names the model and build: the same on every answer.
func TestSystemFingerprint(t *testing.T) {
	f := newFixture(t, "")
	a := complete(t, f.srv, map[string]any{"prompt": "x", "max_tokens": 1})
	_, chat, _ := do(t, f.srv, "POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"x"}],"max_tokens":1}`, "")
	if len(a.SystemFingerprint) != 15 || a.SystemFingerprint != chat["system_fingerprint"] || a.SystemFingerprint != systemFingerprint(f.m) {
		t.Errorf("fingerprints %q %v", a.SystemFingerprint, chat["system_fingerprint"])
	}
	// Rounded expert factors answer differently: another fingerprint.
	defer adapters.SetDecodeDType(adapters.DecodeAuto)
	if err := adapters.SetDecodeDType("bfloat16"); err != nil {
		t.Fatal(err)
	}
	if systemFingerprint(f.m) == a.SystemFingerprint {
		t.Error("--lora-dtype bfloat16 kept the exact fingerprint")
	}
}

func toAny(ids []int) []any {
	out := make([]any, len(ids))
	for i, v := range ids {
		out[i] = float64(v)
	}
	return out
}

func jsonInts(ids []int) string {
	b, _ := json.Marshal(ids)
	return string(b)
}
