package serve

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/exec"

	"roe/model/tokenizer"
)

// chatTemplate turns messages into a prompt: the model's own Jinja chat_template
// from tokenizer_config.json when it has one (rendered as transformers'
// apply_chat_template does, with add_generation_prompt), or else roe's
// documented fallback:
//
//	System: {system}\n\nUser: {user}\nAssistant: {assistant}\n...\nAssistant:
type chatTemplate struct {
	tmpl       *exec.Template // nil: the fallback
	source     string         // the template's text (tools support is read from it)
	bos, eos   string
	addSpecial bool // tokenize the prompt with special tokens (the fallback adds BOS)
}

func newChatTemplate(tok *tokenizer.Tokenizer) (*chatTemplate, error) {
	ct := &chatTemplate{addSpecial: true}
	if id, ok := tok.BOS(); ok {
		ct.bos, _ = tok.TokenString(id)
	}
	if id, ok := tok.EOS(); ok {
		ct.eos, _ = tok.TokenString(id)
	}
	return compileChatTemplate(tok.ChatTemplate(), ct.bos, ct.eos)
}

// compileChatTemplate is newChatTemplate for a template's text ("" for the
// fallback) and the BOS and EOS strings.
func compileChatTemplate(src, bos, eos string) (*chatTemplate, error) {
	ct := &chatTemplate{addSpecial: true, bos: bos, eos: eos}
	if src == "" {
		return ct, nil
	}
	// A template the engine cannot run falls back (with an error for the log)
	// rather than keeping the model from being served.
	t, err := gonja.FromString(rewriteCondExprs(src))
	if err != nil {
		return ct, fmt.Errorf("tokenizer_config.json chat_template does not parse, using the fallback format: %w", err)
	}
	// The probe has no system message: some templates refuse one (Gemma 2),
	// as transformers does; such a request then fails, not every request.
	probe := &chatTemplate{tmpl: t, bos: ct.bos, eos: ct.eos}
	if _, err := probe.render([]message{{"user", "u"}, {"assistant", "a"}, {"user", "u"}}); err != nil {
		return ct, fmt.Errorf("tokenizer_config.json chat_template fails on a test conversation, using the fallback format: %w", err)
	}
	ct.tmpl, ct.addSpecial, ct.source = t, false, src
	return ct, nil
}

func (ct *chatTemplate) render(msgs []message) (string, error) {
	if ct.tmpl == nil {
		var b strings.Builder
		for _, m := range msgs {
			switch m.Role {
			case "system", "developer":
				fmt.Fprintf(&b, "System: %s\n\n", m.Content)
			case "user":
				fmt.Fprintf(&b, "User: %s\n", m.Content)
			case "assistant":
				fmt.Fprintf(&b, "Assistant: %s\n", m.Content)
			case "tool":
				fmt.Fprintf(&b, "Tool: %s\n", m.Content)
			}
		}
		b.WriteString("Assistant:")
		return b.String(), nil
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return ct.renderVars(list, nil)
}

// renderVars runs the template on messages as transformers passes them, and
// tools when there are some.
func (ct *chatTemplate) renderVars(list []any, tools []any) (string, error) {
	var raised error
	vars := map[string]any{
		"messages":              list,
		"add_generation_prompt": true,
		"bos_token":             ct.bos,
		"eos_token":             ct.eos,
		"raise_exception": func(msg string) string {
			if raised == nil { // Jinja stops at the first
				raised = errors.New(msg)
			}
			return ""
		},
		condFunc: cond,
	}
	if tools != nil {
		vars["tools"] = tools
	}
	ctx := exec.NewContext(vars)
	out, err := ct.tmpl.ExecuteToString(ctx)
	if raised != nil {
		return "", fmt.Errorf("chat template: %v", raised)
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}
