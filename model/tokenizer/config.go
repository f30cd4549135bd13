package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
)

const fileConfig = "tokenizer_config.json"

// tokenField is a special-token entry of tokenizer_config.json: a string, an object with
// "content", or null.
type tokenField struct {
	set   bool // the key is present
	null  bool // explicitly null
	value string
}

func (f *tokenField) UnmarshalJSON(b []byte) error {
	f.set = true
	if isNull(b) {
		f.null = true
		return nil
	}
	if err := json.Unmarshal(b, &f.value); err == nil {
		return nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil || obj.Content == nil {
		return fmt.Errorf("special token must be a string, null or an object with content")
	}
	f.value = *obj.Content
	return nil
}

type tokenizerConfig struct {
	AddBOS         *bool           `json:"add_bos_token"`
	AddEOS         *bool           `json:"add_eos_token"`
	BOS            tokenField      `json:"bos_token"`
	EOS            tokenField      `json:"eos_token"`
	Pad            tokenField      `json:"pad_token"`
	Unk            tokenField      `json:"unk_token"`
	ChatTemplate   json.RawMessage `json:"chat_template"`
	ModelMaxLength *float64        `json:"model_max_length"`
	TokenizerClass string          `json:"tokenizer_class"`

	chatTemplate string
}

func parseConfig(b []byte) (*tokenizerConfig, error) {
	if b == nil {
		return nil, nil
	}
	cfg := &tokenizerConfig{}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, &LoadError{File: fileConfig, Msg: "invalid JSON: " + err.Error(), Err: ErrMalformed}
	}
	if !isNull(cfg.ChatTemplate) {
		var s string
		if err := json.Unmarshal(cfg.ChatTemplate, &s); err == nil {
			cfg.chatTemplate = s
		} else {
			// a list of named templates: take "default", else the first
			var list []struct {
				Name     string `json:"name"`
				Template string `json:"template"`
			}
			if err := json.Unmarshal(cfg.ChatTemplate, &list); err != nil {
				return nil, &LoadError{File: fileConfig, Msg: "chat_template must be a string or a list of {name, template}", Err: ErrMalformed}
			}
			for i, x := range list {
				if i == 0 || x.Name == "default" {
					cfg.chatTemplate = x.Template
				}
				if x.Name == "default" {
					break
				}
			}
		}
	}
	return cfg, nil
}

// llamaClasses are the transformers tokenizer classes whose fast tokenizer rebuilds the
// post-processor from add_bos_token/add_eos_token (update_post_processor).
var llamaClasses = map[string]bool{
	"LlamaTokenizer": true, "LlamaTokenizerFast": true,
	"CodeLlamaTokenizer": true, "CodeLlamaTokenizerFast": true,
	"GemmaTokenizer": true, "GemmaTokenizerFast": true,
}

func (t *Tokenizer) applyConfig() error {
	c := t.cfg
	if c == nil || !llamaClasses[c.TokenizerClass] || (c.AddBOS == nil && c.AddEOS == nil) {
		return nil
	}
	addBOS, addEOS := true, false
	if c.AddBOS != nil {
		addBOS = *c.AddBOS
	}
	if c.AddEOS != nil {
		addEOS = *c.AddEOS
	}
	var parts [][]int
	if addBOS {
		if id, ok := t.configToken(c.BOS); ok {
			parts = append(parts, []int{id})
		}
	}
	parts = append(parts, nil)
	if addEOS {
		if id, ok := t.configToken(c.EOS); ok {
			parts = append(parts, []int{id})
		}
	}
	t.post = postTemplate{parts: parts}
	return nil
}

func (t *Tokenizer) configToken(f tokenField) (int, bool) {
	if !f.set || f.null {
		return 0, false
	}
	return t.TokenID(f.value)
}

// specialFromConfig resolves a token from tokenizer_config.json: decided reports whether the
// config settles the question (the key is present: null means "none").
func (t *Tokenizer) specialFromConfig(f func(*tokenizerConfig) tokenField) (id int, ok, decided bool) {
	if t.cfg == nil {
		return 0, false, false
	}
	tf := f(t.cfg)
	if !tf.set {
		return 0, false, false
	}
	if tf.null {
		return 0, false, true
	}
	id, ok = t.TokenID(tf.value)
	return id, ok, ok
}

func (t *Tokenizer) firstKnown(names ...string) (int, bool) {
	for _, n := range names {
		if id, ok := t.TokenID(n); ok {
			return id, true
		}
	}
	return 0, false
}

func templateOf(p postProcessor) (postTemplate, bool) {
	switch x := p.(type) {
	case postTemplate:
		return x, true
	case postSequence:
		for _, y := range x {
			if tp, ok := templateOf(y); ok {
				return tp, true
			}
		}
	}
	return postTemplate{}, false
}

// BOS returns the beginning-of-sequence token: tokenizer_config.json's bos_token (null
// there means none), else the first special token the post-processor puts before the
// text, else the first of "<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>" found.
func (t *Tokenizer) BOS() (int, bool) {
	if id, ok, decided := t.specialFromConfig(func(c *tokenizerConfig) tokenField { return c.BOS }); decided {
		return id, ok
	}
	if tp, ok := templateOf(t.post); ok {
		if p := tp.prefixIDs(); len(p) > 0 {
			return p[0], true
		}
	}
	return t.firstKnown("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>")
}

// EOS returns the end-of-sequence token: tokenizer_config.json's eos_token, else the last
// special token the post-processor puts after the text, else the first of "</s>",
// "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "<|eot_id|>" found.
func (t *Tokenizer) EOS() (int, bool) {
	if id, ok, decided := t.specialFromConfig(func(c *tokenizerConfig) tokenField { return c.EOS }); decided {
		return id, ok
	}
	if tp, ok := templateOf(t.post); ok {
		if s := tp.suffixIDs(); len(s) > 0 {
			return s[len(s)-1], true
		}
	}
	return t.firstKnown("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "<|eot_id|>")
}

// Pad returns tokenizer_config.json's pad_token, if any.
func (t *Tokenizer) Pad() (int, bool) {
	id, ok, _ := t.specialFromConfig(func(c *tokenizerConfig) tokenField { return c.Pad })
	return id, ok
}

// Unk returns tokenizer_config.json's unk_token, else the model's unk_token.
func (t *Tokenizer) Unk() (int, bool) {
	if id, ok, decided := t.specialFromConfig(func(c *tokenizerConfig) tokenField { return c.Unk }); decided {
		return id, ok
	}
	if t.model.unkID >= 0 {
		return t.model.unkID, true
	}
	return 0, false
}

// ChatTemplate returns the raw chat_template of tokenizer_config.json ("" if none).
func (t *Tokenizer) ChatTemplate() string {
	if t.cfg == nil {
		return ""
	}
	return t.cfg.chatTemplate
}

// ModelMaxLength returns tokenizer_config.json's model_max_length, or 0 when it is absent
// or a "no limit" placeholder (transformers writes 1e30).
func (t *Tokenizer) ModelMaxLength() int {
	if t.cfg == nil || t.cfg.ModelMaxLength == nil {
		return 0
	}
	v := *t.cfg.ModelMaxLength
	if v <= 0 || v > 1<<40 || math.IsNaN(v) {
		return 0
	}
	return int(v)
}

// AddsBOS reports whether Encode(text, true) starts with the BOS token.
func (t *Tokenizer) AddsBOS() bool {
	bos, ok := t.BOS()
	if !ok || t.post == nil {
		return false
	}
	ids := t.post.process(nil)
	return len(ids) > 0 && ids[0] == bos
}
