package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"roe/experts"
	"roe/model"
)

// The request fields shared by completions, chat and route. Every field of
// the OpenAI schemas is either here (and honoured) or in a refusal table of
// fields.go; anything else is refused as unknown.
type commonRequest struct {
	Model         string             `json:"model"`
	MaxTokens     *int               `json:"max_tokens"`
	MaxComplete   *int               `json:"max_completion_tokens"`
	Temperature   *float64           `json:"temperature"`
	TopP          *float64           `json:"top_p"`
	TopK          *int               `json:"top_k"`
	MinP          *float64           `json:"min_p"`
	Seed          *int64             `json:"seed"`
	Stop          json.RawMessage    `json:"stop"`
	Stream        bool               `json:"stream"`
	StreamOptions *streamOptions     `json:"stream_options"`
	N             *int               `json:"n"`
	FrequencyPen  *float64           `json:"frequency_penalty"`
	PresencePen   *float64           `json:"presence_penalty"`
	RepetitionPen *float64           `json:"repetition_penalty"`
	LogitBias     map[string]float64 `json:"logit_bias"`
	User          string             `json:"user"`
	Experts       json.RawMessage    `json:"experts"` // ["a","b"] or [{"name":"a","weight":0.5}]
	Merge         string             `json:"merge"`
	Routing       *experts.Routing   `json:"routing"`
	AdapterID     string             `json:"adapter_id"` // LoRAX: an expert by name (lora.go)
	Lora          json.RawMessage    `json:"lora"`       // llama.cpp: [{"id", "scale"}] (lora.go)

	ResponseFormat json.RawMessage `json:"response_format"` // text, json_object or json_schema (structured.go)
}

type streamOptions struct {
	IncludeUsage       bool  `json:"include_usage"`
	IncludeObfuscation *bool `json:"include_obfuscation"`
}

type completionRequest struct {
	commonRequest
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	BestOf   *int            `json:"best_of"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`   // assistant (tools.go)
	ToolCallID string          `json:"tool_call_id"` // tool
	Name       string          `json:"name"`         // tool: the function's name
}

type chatRequest struct {
	commonRequest
	Messages          []chatMessage   `json:"messages"`
	Logprobs          *bool           `json:"logprobs"`
	TopLogprobs       *int            `json:"top_logprobs"`
	Store             *bool           `json:"store"`
	ServiceTier       *string         `json:"service_tier"`
	Modalities        []string        `json:"modalities"`
	SafetyIdentifier  string          `json:"safety_identifier"`
	Tools             json.RawMessage `json:"tools"` // tools.go
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
}

// decode parses a JSON object body, naming the field when a type is wrong.
func decode(c *fiber.Ctx, v any) error {
	body := bytes.TrimSpace(c.Body())
	if len(body) == 0 {
		return badRequest("", "empty request body: send a JSON object")
	}
	if body[0] != '{' && json.Valid(body) {
		return badRequest("", "the body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonError(err, reflect.TypeOf(v))
	}
	return nil
}

// jsonError is a decoding error in the client's terms: the field's JSON
// path and JSON types, not Go's names (commonRequest.max_tokens, *int).
func jsonError(err error, t reflect.Type) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		param := jsonPath(t, te.Field)
		got := strings.Replace(te.Value, "bool", "boolean", 1)
		if param == "" {
			return badRequest("", "the body must be a JSON object, got %s", got)
		}
		return badRequest(param, "%s must be %s, got %s", param, jsonKind(te.Type), got)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("", "malformed JSON body at byte %d: %v", se.Offset, err)
	}
	return badRequest("", "malformed JSON body")
}

// jsonPath turns encoding/json's dotted Field, which names embedded structs
// by their Go type, into the JSON path of t's field (routing.top_k).
func jsonPath(t reflect.Type, field string) string {
	var out []string
	for _, seg := range strings.Split(field, ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if seg == "" || t.Kind() != reflect.Struct {
			continue
		}
		f, ok := jsonField(t, seg)
		if !ok {
			continue // an embedded struct's Go name
		}
		out = append(out, seg)
		t = f.Type
	}
	return strings.Join(out, ".")
}

// jsonField finds the field whose JSON name is name, in t or its embedded structs.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" {
			if g, ok := jsonField(f.Type, name); ok {
				return g, true
			}
			continue
		}
		if tag == name || (tag == "" && strings.EqualFold(f.Name, name)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// jsonKind is the JSON type a Go type decodes from, as "a string", "an integer".
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another JSON type"
}

// decodeStrict is decode for bodies whose every field is roe's own: an
// unknown field is refused by name rather than ignored.
func decodeStrict(c *fiber.Ctx, v any) error {
	if err := decode(c, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return badRequest(f, "unknown field %q", f)
		}
		return jsonError(err, reflect.TypeOf(v))
	}
	return nil
}

// stringOrList reads a JSON string or list of strings.
func stringOrList(raw json.RawMessage, param string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest(param, "%q must be a string or a list of strings", param)
	}
	return many, nil
}

// Limits of one generation request.
const (
	maxChoices     = 8   // n and best_of
	maxPrompts     = 256 // prompts × best_of in one completions request
	maxLogitBias   = 1024
	maxStopStrings = 4
)

// Field rules of the two generation endpoints (fields.go).
var (
	completionRules = fieldRules{reflect.TypeFor[completionRequest](): refusedCompletion}
	chatRules       = fieldRules{reflect.TypeFor[chatRequest](): refusedChat, reflect.TypeFor[chatMessage](): refusedMessage}
)

// decodeRequest decodes a generation request and checks its fields against
// the rules: refused and unknown fields are 400s naming them.
func (s *Server) decodeRequest(c *fiber.Ctx, v any, rules fieldRules) error {
	if err := decode(c, v); err != nil {
		return err
	}
	var ignored []string
	if err := checkFields(c.Body(), reflect.TypeOf(v), "", rules, s.cfg.IgnoreUnknownFields, &ignored); err != nil {
		return err
	}
	if len(ignored) > 0 {
		s.log.Info("ignored unknown fields", "path", c.Path(), "fields", ignored, "request_id", c.Locals("requestid"))
	}
	return nil
}

// sampling validates the sampling options shared by completions and chat.
func (s *Server) sampling(r *commonRequest) (model.SampleOptions, error) {
	o := model.SampleOptions{Temperature: 1}
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 || bad(*r.Temperature) {
			return o, badRequest("temperature", "temperature must be in [0, 2], got %g", *r.Temperature)
		}
		o.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		if *r.TopP <= 0 || *r.TopP > 1 || bad(*r.TopP) {
			return o, badRequest("top_p", "top_p must be in (0, 1], got %g", *r.TopP)
		}
		o.TopP = *r.TopP
	}
	if r.TopK != nil {
		if *r.TopK < -1 {
			return o, badRequest("top_k", "top_k must be ≥ 0 (0 or -1: all tokens), got %d", *r.TopK)
		}
		o.TopK = max(*r.TopK, 0)
	}
	if r.MinP != nil {
		if *r.MinP < 0 || *r.MinP > 1 || bad(*r.MinP) {
			return o, badRequest("min_p", "min_p must be in [0, 1], got %g", *r.MinP)
		}
		o.MinP = *r.MinP
	}
	for _, p := range []struct {
		name string
		v    *float64
		dst  *float64
	}{{"frequency_penalty", r.FrequencyPen, &o.FrequencyPenalty}, {"presence_penalty", r.PresencePen, &o.PresencePenalty}} {
		if p.v == nil {
			continue
		}
		if *p.v < -2 || *p.v > 2 || bad(*p.v) {
			return o, badRequest(p.name, "%s must be in [-2, 2], got %g", p.name, *p.v)
		}
		*p.dst = *p.v
	}
	if r.RepetitionPen != nil {
		if *r.RepetitionPen <= 0 || bad(*r.RepetitionPen) {
			return o, badRequest("repetition_penalty", "repetition_penalty must be > 0 (1 is off), got %g", *r.RepetitionPen)
		}
		o.RepetitionPenalty = *r.RepetitionPen
	}
	if len(r.LogitBias) > maxLogitBias {
		return o, badRequest("logit_bias", "at most %d logit_bias entries, got %d", maxLogitBias, len(r.LogitBias))
	}
	if len(r.LogitBias) > 0 {
		o.LogitBias = make(map[int]float32, len(r.LogitBias))
		V := s.cfg.Model.Config.VocabSize
		for k, v := range r.LogitBias {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= V {
				return o, badRequest("logit_bias", "logit_bias keys are token ids in [0, %d), got %q", V, k)
			}
			if v < -100 || v > 100 || bad(v) {
				return o, badRequest("logit_bias", "logit_bias values must be in [-100, 100], got %g for %s", v, k)
			}
			o.LogitBias[id] = float32(v)
		}
	}
	if r.Seed != nil {
		seed := uint64(*r.Seed)
		o.Seed = &seed
	}
	return o, nil
}

// maxTokens is the completion budget of one prompt. zeroOK allows 0 (echo
// scores the prompt and generates nothing).
func (s *Server) maxTokens(r *commonRequest, promptLen int, zeroOK bool) (int, error) {
	maxTok := 16
	if r.MaxComplete != nil {
		r.MaxTokens = r.MaxComplete
	}
	if r.MaxTokens != nil {
		maxTok = *r.MaxTokens
		if maxTok < 0 || (maxTok == 0 && !zeroOK) {
			return 0, badRequest("max_tokens", "max_tokens must be at least 1 (0 only with echo), got %d", maxTok)
		}
		if maxTok > s.cfg.MaxTokens {
			return 0, unprocessable("max_tokens", "max_tokens_exceeded", "max_tokens %d exceeds the server limit of %d", maxTok, s.cfg.MaxTokens)
		}
	}
	if promptLen+maxTok > s.cfg.MaxContext {
		if promptLen >= s.cfg.MaxContext {
			return 0, unprocessable("prompt", "context_length_exceeded", "the prompt has %d tokens; the context length is %d", promptLen, s.cfg.MaxContext)
		}
		if r.MaxTokens != nil {
			return 0, unprocessable("max_tokens", "context_length_exceeded",
				"the prompt (%d tokens) plus max_tokens (%d) exceeds the context length of %d", promptLen, maxTok, s.cfg.MaxContext)
		}
		maxTok = s.cfg.MaxContext - promptLen
	}
	return maxTok, nil
}

// basePlan validates what completions and chat share.
func (s *Server) basePlan(r *commonRequest) (*plan, error) {
	p := &plan{model: r.Model, n: 1, stream: r.Stream, logprobs: -1, user: r.User}
	if r.N != nil {
		if *r.N < 1 || *r.N > maxChoices {
			return nil, badRequest("n", "n must be in [1, %d], got %d", maxChoices, *r.N)
		}
		p.n = *r.N
	}
	p.bestOf = p.n
	var err error
	if p.sample, err = s.sampling(r); err != nil {
		return nil, err
	}
	stops, err := stringOrList(r.Stop, "stop")
	if err != nil {
		return nil, err
	}
	if len(stops) > maxStopStrings {
		return nil, badRequest("stop", "at most %d stop sequences, got %d", maxStopStrings, len(stops))
	}
	p.stops = stops
	if o := r.StreamOptions; o != nil {
		if !r.Stream {
			return nil, badRequest("stream_options", "stream_options is only allowed with stream: true")
		}
		if o.IncludeObfuscation != nil && *o.IncludeObfuscation {
			return nil, badRequest("stream_options.include_obfuscation", "stream_options.include_obfuscation is not supported (false is what roe sends)")
		}
		p.includeUsage = o.IncludeUsage
	}
	return p, nil
}

// parsePrompts reads a completions prompt: a string, a list of strings, a
// list of token ids, or a list of lists of token ids.
func (s *Server) parsePrompts(raw json.RawMessage) ([]promptIn, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest("prompt", "prompt is required: a string, a list of strings, a list of token ids or a list of such lists")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return s.textPrompts([]string{one})
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, badRequest("prompt", "prompt must be a string, a list of strings, a list of token ids or a list of such lists")
	}
	if len(items) == 0 {
		return nil, badRequest("prompt", "prompt is an empty list")
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		return s.textPrompts(texts)
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		p, err := s.idPrompt(ids, "prompt")
		return []promptIn{p}, err
	}
	var lists [][]int
	if json.Unmarshal(raw, &lists) != nil {
		return nil, badRequest("prompt", "prompt must be a string, a list of strings, a list of token ids or a list of such lists (not a mix)")
	}
	out := make([]promptIn, len(lists))
	for i, l := range lists {
		p, err := s.idPrompt(l, fmt.Sprintf("prompt[%d]", i))
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func (s *Server) textPrompts(texts []string) ([]promptIn, error) {
	out := make([]promptIn, len(texts))
	for i, t := range texts {
		ids := s.cfg.Tokenizer.Encode(t, true)
		if len(ids) == 0 || (t == "" && len(ids) == 1 && !s.startsWithBOS(ids)) {
			param := "prompt"
			if len(texts) > 1 {
				param = fmt.Sprintf("prompt[%d]", i)
			}
			return nil, badRequest(param, "%s is empty", param)
		}
		out[i] = promptIn{ids: ids, text: t}
	}
	return out, nil
}

func (s *Server) idPrompt(ids []int, param string) (promptIn, error) {
	if len(ids) == 0 {
		return promptIn{}, badRequest(param, "%s is an empty list of token ids", param)
	}
	V := s.cfg.Model.Config.VocabSize
	for _, id := range ids {
		if id < 0 || id >= V {
			return promptIn{}, badRequest(param, "%s: token id %d outside the vocabulary [0, %d)", param, id, V)
		}
	}
	return promptIn{ids: ids, text: s.cfg.Tokenizer.Decode(ids, true), tokens: true}, nil
}

func (s *Server) completions(c *fiber.Ctx) error {
	var r completionRequest
	if err := s.decodeRequest(c, &r, completionRules); err != nil {
		return err
	}
	p, err := s.basePlan(&r.commonRequest)
	if err != nil {
		return err
	}
	if r.BestOf != nil {
		if *r.BestOf < p.n || *r.BestOf > maxChoices {
			return badRequest("best_of", "best_of must be in [n, %d] (n is %d), got %d", maxChoices, p.n, *r.BestOf)
		}
		if *r.BestOf > p.n && r.Stream {
			return badRequest("best_of", "best_of > n cannot be streamed: the best completions are known only at the end")
		}
		p.bestOf = *r.BestOf
	}
	if r.Logprobs != nil {
		if *r.Logprobs < 0 || *r.Logprobs > model.MaxTopLogprobs {
			return badRequest("logprobs", "logprobs must be in [0, %d], got %d", model.MaxTopLogprobs, *r.Logprobs)
		}
		p.logprobs = *r.Logprobs
	}
	p.echo = r.Echo
	if p.prompts, err = s.parsePrompts(r.Prompt); err != nil {
		return err
	}
	if len(p.prompts)*p.bestOf > maxPrompts {
		return badRequest("prompt", "at most %d completions per request (prompts × best_of or n), got %d", maxPrompts, len(p.prompts)*p.bestOf)
	}
	if p.spec, err = s.responseFormatSpec(r.ResponseFormat); err != nil {
		return err
	}
	for i := range p.prompts {
		if p.prompts[i].maxNew, err = s.maxTokens(&r.commonRequest, len(p.prompts[i].ids), r.Echo); err != nil {
			return err
		}
		if err := s.constrainBudget(p, &r.commonRequest, i); err != nil {
			return err
		}
	}
	queries := make([]string, len(p.prompts))
	for i, q := range p.prompts {
		queries[i] = q.text
	}
	if p.sel, err = s.selectFor(c.UserContext(), &r.commonRequest, queries); err != nil {
		return err
	}
	p.model = r.Model // adapter_id may have named the expert
	return s.run(c, p)
}

func (s *Server) startsWithBOS(ids []int) bool {
	bos, ok := s.cfg.Tokenizer.BOS()
	return ok && len(ids) > 0 && ids[0] == bos
}

func (s *Server) chatCompletions(c *fiber.Ctx) error {
	var r chatRequest
	if err := s.decodeRequest(c, &r, chatRules); err != nil {
		return err
	}
	p, err := s.basePlan(&r.commonRequest)
	if err != nil {
		return err
	}
	p.chat = true
	if r.Logprobs != nil && *r.Logprobs {
		p.logprobs = 0
	}
	if r.TopLogprobs != nil {
		if *r.TopLogprobs < 0 || *r.TopLogprobs > model.MaxTopLogprobs {
			return badRequest("top_logprobs", "top_logprobs must be in [0, %d], got %d", model.MaxTopLogprobs, *r.TopLogprobs)
		}
		if p.logprobs < 0 {
			return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		p.logprobs = *r.TopLogprobs
	}
	if r.Store != nil && *r.Store {
		return badRequest("store", "store: true is not supported: roe does not store completions")
	}
	if t := r.ServiceTier; t != nil {
		if *t != "auto" && *t != "default" {
			return badRequest("service_tier", "service_tier %q is not supported: roe has one tier (auto or default)", *t)
		}
		p.serviceTier = "default"
	}
	for i, m := range r.Modalities {
		if m != "text" {
			return badRequest(fmt.Sprintf("modalities[%d]", i), "modalities[%d]: %q is not supported: roe writes text", i, m)
		}
	}
	if r.SafetyIdentifier != "" {
		p.user = r.SafetyIdentifier
	}
	turns, err := s.parseTurns(r.Messages)
	if err != nil {
		return err
	}
	if p.spec, err = s.responseFormatSpec(r.ResponseFormat); err != nil {
		return err
	}
	ts, err := s.parseTools(r.Tools, r.ToolChoice, r.ParallelToolCalls)
	if err != nil {
		return err
	}
	if ts != nil {
		if p.spec != nil {
			return badRequest("response_format", "response_format cannot be combined with tools (unless tool_choice is none)")
		}
		if p.spec, err = s.toolSpec(ts); err != nil {
			return err
		}
	}
	prompt, err := s.renderChat(turns, ts)
	if err != nil {
		return badRequest("messages", "%v", err)
	}
	ids := s.cfg.Tokenizer.Encode(prompt, s.tmpl.addSpecial)
	if len(ids) == 0 {
		return badRequest("messages", "the conversation renders to an empty prompt")
	}
	maxNew, err := s.maxTokens(&r.commonRequest, len(ids), false)
	if err != nil {
		return err
	}
	p.prompts = []promptIn{{ids: ids, text: prompt, maxNew: maxNew}}
	if err := s.constrainBudget(p, &r.commonRequest, 0); err != nil {
		return err
	}
	if p.sel, err = s.selectFor(c.UserContext(), &r.commonRequest, []string{lastUser(turns)}); err != nil {
		return err
	}
	p.model = r.Model // adapter_id may have named the expert
	return s.run(c, p)
}

// message is one chat turn with its content flattened to text.
type message struct{ Role, Content string }

// lastUser is the last user message, the query instance for routing.
func lastUser(turns []turn) string {
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].Role == "user" {
			return turns[i].Content
		}
	}
	return ""
}

func (s *Server) parseMessages(in []chatMessage) ([]message, error) {
	if len(in) == 0 {
		return nil, badRequest("messages", "messages must be a non-empty list")
	}
	out := make([]message, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "user", "assistant", "developer":
		default:
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "unknown role %q", m.Role)
		}
		param := fmt.Sprintf("messages[%d].content", i)
		var text string
		if json.Unmarshal(m.Content, &text) != nil {
			var parts []map[string]json.RawMessage
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				return nil, badRequest(param, "content must be a string or a list of text parts")
			}
			var b strings.Builder
			for k, part := range parts {
				var typ, txt string
				json.Unmarshal(part["type"], &typ)
				if typ != "text" {
					return nil, badRequest(fmt.Sprintf("%s[%d].type", param, k), "content part type %q is not supported (text only)", typ)
				}
				if err := json.Unmarshal(part["text"], &txt); err != nil {
					return nil, badRequest(fmt.Sprintf("%s[%d].text", param, k), "a text part needs a string text")
				}
				for key := range part {
					if key != "type" && key != "text" && !s.cfg.IgnoreUnknownFields {
						name := fmt.Sprintf("%s[%d].%s", param, k, key)
						return nil, badRequest(name, "unknown field %q: roe refuses fields it does not implement rather than ignore them (serve --ignore-unknown-fields to ignore them)", name)
					}
				}
				b.WriteString(txt)
			}
			text = b.String()
		}
		out[i] = message{m.Role, text}
	}
	return out, nil
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

type embeddingData struct {
	Object    string `json:"object"`
	Embedding any    `json:"embedding"` // []float32, or base64 of little-endian float32
	Index     int    `json:"index"`
}

// base64Floats encodes v as the official API's base64 embedding format.
func base64Floats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) embeddings(c *fiber.Ctx) error {
	var r embeddingRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.EncodingFormat != "" && r.EncodingFormat != "float" && r.EncodingFormat != "base64" {
		return badRequest("encoding_format", "encoding_format must be float or base64, got %q", r.EncodingFormat)
	}
	inputs, err := stringOrList(r.Input, "input")
	if err != nil {
		return err
	}
	if len(inputs) == 0 {
		return badRequest("input", "input must be a non-empty string or list of strings")
	}
	if len(inputs) > 256 {
		return badRequest("input", "at most 256 inputs per request, got %d", len(inputs))
	}
	sel, err := s.selectFor(c.UserContext(), &commonRequest{Model: r.Model}, nil)
	if err != nil {
		return err
	}
	// Embeddings run on the request's goroutine, outside the scheduler: bound them.
	select {
	case s.embedSem <- struct{}{}:
		defer func() { <-s.embedSem }()
	default:
		return ErrQueueFull
	}
	data := make([]embeddingData, len(inputs))
	total := 0
	for i, text := range inputs {
		if text == "" {
			return badRequest(fmt.Sprintf("input[%d]", i), "input %d is empty", i)
		}
		ids := s.cfg.Tokenizer.Encode(text, true)
		if len(ids) > s.cfg.MaxContext {
			return unprocessable(fmt.Sprintf("input[%d]", i), "context_length_exceeded", "input %d has %d tokens; the context length is %d", i, len(ids), s.cfg.MaxContext)
		}
		total += len(ids)
		e, err := s.cfg.Model.Embed(ids, sel.Adapter)
		if err != nil {
			return err
		}
		data[i] = embeddingData{"embedding", e, i}
		if r.EncodingFormat == "base64" {
			data[i].Embedding = base64Floats(e)
		}
	}
	return c.JSON(fiber.Map{"object": "list", "data": data, "model": r.Model,
		"usage": fiber.Map{"prompt_tokens": total, "total_tokens": total}})
}

type modelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Kind    string `json:"roe_kind,omitempty"`
	Parent  string `json:"parent,omitempty"` // an expert's base model (vLLM's LoRA cards)
	// Routable (experts only) says whether auto routing can pick the
	// expert; one without instances is served only by name.
	Routable *bool `json:"roe_routable,omitempty"`
	// Activations (base only) is "q8" when the server was started with
	// --activations q8: its quantized products use int8 activations (lossy).
	Activations string `json:"roe_activations,omitempty"`
}

func (s *Server) models() []modelCard {
	t := s.started.Unix()
	out := []modelCard{{ID: s.cfg.ModelID, Object: "model", Created: t, OwnedBy: "roe", Kind: "base"}}
	if s.cfg.Model != nil && s.cfg.Model.Activations() == model.ActivationsQ8 {
		out[0].Activations = string(model.ActivationsQ8)
	}
	if s.cfg.Experts != nil {
		out = append(out, modelCard{ID: experts.Auto, Object: "model", Created: t, OwnedBy: "roe", Kind: "router"})
		for _, m := range s.cfg.Experts.List() {
			routable := m.NumInstances > 0
			out = append(out, modelCard{ID: m.Name, Object: "model", Created: m.Created.Unix(), OwnedBy: "roe",
				Kind: "expert:" + string(m.Kind), Parent: s.cfg.ModelID, Routable: &routable})
		}
	}
	return out
}

func (s *Server) listModels(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"object": "list", "data": s.models()})
}

func (s *Server) getModel(c *fiber.Ctx) error {
	id, err := url.PathUnescape(c.Params("*"))
	if err != nil {
		return badRequest("model", "malformed model id in the path")
	}
	for _, m := range s.models() {
		if m.ID == id {
			return c.JSON(m)
		}
	}
	return notFound("the model %q does not exist", id)
}

func (s *Server) route(c *fiber.Ctx) error {
	var r struct {
		completionRequest
		Messages []chatMessage `json:"messages"`
	}
	if err := decode(c, &r); err != nil {
		return err
	}
	var queries []string
	if len(r.Messages) > 0 {
		turns, err := s.parseTurns(r.Messages)
		if err != nil {
			return err
		}
		if q := lastUser(turns); q != "" {
			queries = []string{q}
		}
	} else {
		ps, err := stringOrList(r.Prompt, "prompt")
		if err != nil {
			return err
		}
		queries = ps
	}
	if r.Model == "" {
		r.Model = experts.Auto
	}
	sel, err := s.selectFor(c.UserContext(), &r.commonRequest, queries)
	if err != nil {
		return err
	}
	c.Set("X-Roe-Experts", sel.Names())
	return c.JSON(fiber.Map{"object": "route", "model": r.Model, "roe": sel.Info})
}
