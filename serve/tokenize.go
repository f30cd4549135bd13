package serve

import (
	"encoding/json"
	"reflect"

	"github.com/gofiber/fiber/v2"
)

// tokenizeRequest is vLLM's POST /tokenize: a prompt, or chat messages
// rendered as /v1/chat/completions renders them.
type tokenizeRequest struct {
	Model               string          `json:"model"`
	Prompt              *string         `json:"prompt"`
	Messages            []chatMessage   `json:"messages"`
	AddSpecialTokens    *bool           `json:"add_special_tokens"`
	AddGenerationPrompt *bool           `json:"add_generation_prompt"`
	ReturnTokenStrs     bool            `json:"return_token_strs"`
	Tools               json.RawMessage `json:"tools"` // rendered with messages, as chat renders them
}

var tokenizeRules = fieldRules{
	reflect.TypeFor[tokenizeRequest](): {
		"continue_final_message": "continue_final_message is not supported",
		"chat_template":          "a per-request chat_template is not supported",
		"chat_template_kwargs":   "chat_template_kwargs are not supported",
		"mm_processor_kwargs":    "multimodal inputs are not supported",
	},
	reflect.TypeFor[chatMessage](): refusedMessage,
}

type detokenizeRequest struct {
	Model  string `json:"model"`
	Tokens []int  `json:"tokens"`
}

// checkModel accepts an empty model or one this server serves.
func (s *Server) checkModel(name string) error {
	if name == "" {
		return nil
	}
	for _, m := range s.models() {
		if m.ID == name {
			return nil
		}
	}
	return notFound("the model %q does not exist", name)
}

func (s *Server) tokenize(c *fiber.Ctx) error {
	var r tokenizeRequest
	if err := s.decodeRequest(c, &r, tokenizeRules); err != nil {
		return err
	}
	if err := s.checkModel(r.Model); err != nil {
		return err
	}
	var ids []int
	switch {
	case r.Prompt != nil && r.Messages != nil:
		return badRequest("messages", "send prompt or messages, not both")
	case r.Prompt != nil:
		if !isNull(r.Tools) {
			return badRequest("tools", "tools apply to messages only")
		}
		if r.AddGenerationPrompt != nil {
			return badRequest("add_generation_prompt", "add_generation_prompt applies to messages only")
		}
		special := r.AddSpecialTokens == nil || *r.AddSpecialTokens
		ids = s.cfg.Tokenizer.Encode(*r.Prompt, special)
	case r.Messages != nil:
		if r.AddGenerationPrompt != nil && !*r.AddGenerationPrompt {
			return badRequest("add_generation_prompt", "add_generation_prompt: false is not supported: chat prompts end with the assistant's turn")
		}
		turns, err := s.parseTurns(r.Messages)
		if err != nil {
			return err
		}
		ts, err := s.parseTools(r.Tools, nil, nil)
		if err != nil {
			return err
		}
		prompt, err := s.renderChat(turns, ts)
		if err != nil {
			return badRequest("messages", "%v", err)
		}
		// By default as chat completions tokenizes it: with the fallback
		// format's BOS, none around a model's own template.
		special := s.tmpl.addSpecial
		if r.AddSpecialTokens != nil {
			special = *r.AddSpecialTokens
		}
		ids = s.cfg.Tokenizer.Encode(prompt, special)
	default:
		return badRequest("prompt", "send prompt (a string) or messages")
	}
	out := fiber.Map{"count": len(ids), "max_model_len": s.cfg.MaxContext, "tokens": ids, "token_strs": nil}
	if r.ReturnTokenStrs {
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i], _ = s.cfg.Tokenizer.TokenString(id)
		}
		out["token_strs"] = strs
	}
	return c.JSON(out)
}

func (s *Server) detokenize(c *fiber.Ctx) error {
	var r detokenizeRequest
	if err := s.decodeRequest(c, &r, nil); err != nil {
		return err
	}
	if err := s.checkModel(r.Model); err != nil {
		return err
	}
	V := s.cfg.Model.Config.VocabSize
	for i, id := range r.Tokens {
		if id < 0 || id >= V {
			return badRequest("tokens", "tokens[%d]: token id %d outside the vocabulary [0, %d)", i, id, V)
		}
	}
	return c.JSON(fiber.Map{"prompt": s.cfg.Tokenizer.Decode(r.Tokens, false)})
}

// tokenizerInfo is vLLM's GET /tokenizer_info: the special tokens and chat
// template, which lm-evaluation-harness reads to tokenize on the server.
func (s *Server) tokenizerInfo(c *fiber.Ctx) error {
	tok := s.cfg.Tokenizer
	name := func(id int, ok bool) any {
		if !ok {
			return nil
		}
		v, _ := tok.TokenString(id)
		return v
	}
	out := fiber.Map{
		"bos_token":        name(tok.BOS()),
		"eos_token":        name(tok.EOS()),
		"pad_token":        name(tok.Pad()),
		"unk_token":        name(tok.Unk()),
		"model_max_length": s.cfg.MaxContext,
		"vocab_size":       s.cfg.Model.Config.VocabSize,
		"add_bos_token":    tok.AddsBOS(),
	}
	if t := tok.ChatTemplate(); t != "" {
		out["chat_template"] = t
	}
	return c.JSON(out)
}
