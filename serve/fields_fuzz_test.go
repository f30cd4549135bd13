package serve

import (
	"encoding/json"
	"reflect"
	"testing"

	"roe/internal/testmodel"
)

// The request parsers (field checks, prompts, messages with tool turns, sampling options)
// never panic, and refuse with 4xx errors only.
func FuzzGenerationRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","prompt":"x","logit_bias":{"1":5},"stream_options":{"include_usage":true},"stream":true}`,
		`{"prompt":[[1,2],[3]],"n":2,"best_of":3,"echo":true,"logprobs":1,"max_tokens":0}`,
		`{"prompt":[1,-1]}`, `{"prompt":["a",[1]]}`, `{"prompt":[]}`, `{"prompt":null}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"x","k":1}]}],"logprobs":true,"top_logprobs":2}`,
		`{"messages":[{"role":"user","content":"x","name":null,"tool_calls":[]}],"tools":null,"routing":{"top_k":1}}`,
		`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","name":"f","content":"1"}]}`,
		`{"frequency_penalty":1e309,"temperature":-0,"top_k":-1,"min_p":0.5,"repetition_penalty":1}`,
		`{"a":{"b":[{"c":null}]}}`, `[]`, `"x"`, `{`,
	} {
		f.Add([]byte(s))
	}
	m, tok := testmodel.Stories260K(f)
	s := &Server{cfg: Config{Model: m, Tokenizer: tok, MaxContext: 512, MaxTokens: 512}}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) {
			if err == nil {
				return
			}
			ae, ok := err.(*apiError)
			if !ok || ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("%q: %v", body, err)
			}
		}
		var cr completionRequest
		if json.Unmarshal(body, &cr) == nil {
			var ignored []string
			check(checkFields(body, reflect.TypeOf(&cr), "", completionRules, false, &ignored))
			check(checkFields(body, reflect.TypeOf(&cr), "", completionRules, true, &ignored))
			p, err := s.basePlan(&cr.commonRequest)
			check(err)
			if err == nil {
				_, err = s.parsePrompts(cr.Prompt)
				check(err)
				_ = p
			}
			_, err = s.maxTokens(&cr.commonRequest, 5, cr.Echo)
			check(err)
		}
		var hr chatRequest
		if json.Unmarshal(body, &hr) == nil {
			var ignored []string
			check(checkFields(body, reflect.TypeOf(&hr), "", chatRules, false, &ignored))
			_, err := s.parseTurns(hr.Messages)
			check(err)
		}
	})
}
