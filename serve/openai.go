package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"roe/experts"
	"roe/model"
)

// The request fields shared by completions, chat and route.
type commonRequest struct {
	Model       string           `json:"model"`
	MaxTokens   *int             `json:"max_tokens"`
	MaxComplete *int             `json:"max_completion_tokens"`
	Temperature *float64         `json:"temperature"`
	TopP        *float64         `json:"top_p"`
	TopK        *int             `json:"top_k"`
	Seed        *int64           `json:"seed"`
	Stop        json.RawMessage  `json:"stop"`
	Stream      bool             `json:"stream"`
	N           *int             `json:"n"`
	Experts     json.RawMessage  `json:"experts"` // ["a","b"] or [{"name":"a","weight":0.5}]
	Merge       string           `json:"merge"`
	Routing     *experts.Routing `json:"routing"`
	AdapterID   string           `json:"adapter_id"` // LoRAX: an expert by name (serve/lora.go)
	Lora        json.RawMessage  `json:"lora"`       // llama.cpp: [{"id", "scale"}] (serve/lora.go)

	ResponseFormat json.RawMessage `json:"response_format"` // text, json_object or json_schema (structured.go)
}

type completionRequest struct {
	commonRequest
	Prompt json.RawMessage `json:"prompt"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`   // assistant
	ToolCallID string          `json:"tool_call_id"` // tool
	Name       string          `json:"name"`         // tool (the function's name)
}

type chatRequest struct {
	commonRequest
	Messages          []chatMessage   `json:"messages"`
	Tools             json.RawMessage `json:"tools"`
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

// genParams validates sampling options against the server's limits.
func (s *Server) genParams(r *commonRequest, promptLen int) (model.GenerateOptions, error) {
	var o model.GenerateOptions
	if r.N != nil && *r.N != 1 {
		return o, badRequest("n", "only n=1 is supported")
	}
	maxTok := 16
	if r.MaxComplete != nil {
		r.MaxTokens = r.MaxComplete
	}
	if r.MaxTokens != nil {
		maxTok = *r.MaxTokens
		if maxTok < 1 {
			return o, badRequest("max_tokens", "max_tokens must be at least 1, got %d", maxTok)
		}
		if maxTok > s.cfg.MaxTokens {
			return o, unprocessable("max_tokens", "max_tokens_exceeded", "max_tokens %d exceeds the server limit of %d", maxTok, s.cfg.MaxTokens)
		}
	}
	if promptLen+maxTok > s.cfg.MaxContext {
		if promptLen >= s.cfg.MaxContext {
			return o, unprocessable("prompt", "context_length_exceeded", "the prompt has %d tokens; the context length is %d", promptLen, s.cfg.MaxContext)
		}
		if r.MaxTokens != nil {
			return o, unprocessable("max_tokens", "context_length_exceeded",
				"the prompt (%d tokens) plus max_tokens (%d) exceeds the context length of %d", promptLen, maxTok, s.cfg.MaxContext)
		}
		maxTok = s.cfg.MaxContext - promptLen
	}
	o.MaxTokens = maxTok
	o.Sample.Temperature = 1
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 || math.IsNaN(*r.Temperature) {
			return o, badRequest("temperature", "temperature must be in [0, 2], got %g", *r.Temperature)
		}
		o.Sample.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		if *r.TopP <= 0 || *r.TopP > 1 {
			return o, badRequest("top_p", "top_p must be in (0, 1], got %g", *r.TopP)
		}
		o.Sample.TopP = *r.TopP
	}
	if r.TopK != nil {
		if *r.TopK < 0 {
			return o, badRequest("top_k", "top_k must be ≥ 0, got %d", *r.TopK)
		}
		o.Sample.TopK = *r.TopK
	}
	if r.Seed != nil {
		seed := uint64(*r.Seed)
		o.Sample.Seed = &seed
	}
	stops, err := stringOrList(r.Stop, "stop")
	if err != nil {
		return o, err
	}
	if len(stops) > 4 {
		return o, badRequest("stop", "at most 4 stop sequences, got %d", len(stops))
	}
	o.StopStrings = stops
	return o, nil
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     *string `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
	Roe     *experts.Info      `json:"roe,omitempty"`
}

func (s *Server) completions(c *fiber.Ctx) error {
	var r completionRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	prompts, err := stringOrList(r.Prompt, "prompt")
	if err != nil {
		return err
	}
	if len(prompts) != 1 {
		return badRequest("prompt", "prompt must be one string (got %d)", len(prompts))
	}
	ids := s.cfg.Tokenizer.Encode(prompts[0], true)
	if len(ids) == 0 || (len(ids) == 1 && prompts[0] == "" && !s.startsWithBOS(ids)) {
		return badRequest("prompt", "the prompt is empty")
	}
	spec, err := s.responseFormatSpec(r.ResponseFormat)
	if err != nil {
		return err
	}
	sel, err := s.selectFor(c.UserContext(), &r.commonRequest, []string{prompts[0]})
	if err != nil {
		return err
	}
	return s.generate(c, &r.commonRequest, ids, sel, false, spec)
}

func (s *Server) startsWithBOS(ids []int) bool {
	bos, ok := s.cfg.Tokenizer.BOS()
	return ok && len(ids) > 0 && ids[0] == bos
}

// generate runs one sequence and answers as a completion or a chat completion.
func (s *Server) generate(c *fiber.Ctx, r *commonRequest, ids []int, sel *experts.Selection, chat bool, spec *outputSpec) error {
	o, err := s.genParams(r, len(ids))
	if err != nil {
		return err
	}
	if err := s.constrainOptions(&o, r, spec, len(ids)); err != nil {
		return err
	}
	var tools *toolSet
	if spec != nil {
		tools = spec.tools
	}
	o.Adapter = sel.Adapter
	seq, err := s.cfg.Model.NewSequence(ids, s.cfg.Tokenizer.NewStreamDecoder(true), o)
	if err != nil {
		return unprocessable("prompt", "invalid_prompt", "%v", err)
	}
	modelName := r.Model
	sel.Info.Neighbors = nil // stored instances are shown by /v1/route only
	c.Set("X-Roe-Experts", sel.Names())
	if !r.Stream {
		conn := c.Context().Conn()
		job, err := s.sched.SubmitWatched(c.UserContext(), seq, func() bool { return !peerGone(conn) })
		if err != nil {
			return err
		}
		text, err := job.Wait(c.UserContext())
		if err != nil {
			return err
		}
		if seq.Err != nil {
			return seq.Err
		}
		fin := seq.FinishReason
		u := &usage{len(ids), len(seq.Tokens), len(ids) + len(seq.Tokens)}
		if chat {
			msg := &chatOut{Role: "assistant", Content: text}
			if tools != nil {
				if msg.ToolCalls, msg.Content = tools.parseCalls(text); len(msg.ToolCalls) > 0 {
					fin = "tool_calls"
				}
			}
			return c.JSON(chatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: modelName,
				Choices: []chatChoice{{Index: 0, Message: msg, FinishReason: &fin}}, Usage: u, Roe: sel.Info})
		}
		return c.JSON(completionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: modelName,
			Choices: []completionChoice{{Text: text, FinishReason: &fin}}, Usage: u, Roe: sel.Info})
	}
	// Streaming: the request context is not tied to the connection in fasthttp,
	// so a failed write is what tells us the client left.
	ctx, cancel := context.WithCancel(context.Background())
	job, err := s.sched.Submit(ctx, seq)
	if err != nil {
		cancel()
		return err
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	if chat {
		id = newID("chatcmpl-")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		send := func(v any) bool {
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		if chat && !send(chatChunk(id, created, modelName, &chatOut{Role: "assistant"}, nil, nil)) {
			return
		}
		var held strings.Builder // with tools, the message is sent whole at the end
		for {
			text, done, err := job.Next(ctx)
			if text != "" && tools != nil {
				held.WriteString(text)
			} else if text != "" {
				var ok bool
				if chat {
					ok = send(chatChunk(id, created, modelName, &chatOut{Content: text}, nil, nil))
				} else {
					ok = send(completionResponse{ID: id, Object: "text_completion", Created: created, Model: modelName,
						Choices: []completionChoice{{Text: text}}})
				}
				if !ok {
					return // client gone: cancel stops the sequence
				}
			}
			if done {
				if err != nil {
					var b errorBody
					b.Error.Message, b.Error.Type = err.Error(), "server_error"
					send(b)
					return
				}
				break
			}
		}
		fin := seq.FinishReason
		u := &usage{len(ids), len(seq.Tokens), len(ids) + len(seq.Tokens)}
		if tools != nil {
			delta := &chatOut{}
			if delta.ToolCalls, delta.Content = tools.parseCalls(held.String()); len(delta.ToolCalls) > 0 {
				fin = "tool_calls"
				for i := range delta.ToolCalls {
					delta.ToolCalls[i].Index = &i
				}
			}
			if (delta.Content != "" || len(delta.ToolCalls) > 0) && !send(chatChunk(id, created, modelName, delta, nil, nil)) {
				return
			}
		}
		if chat {
			send(chatChunk(id, created, modelName, &chatOut{}, &fin, sel.Info, u))
		} else {
			send(completionResponse{ID: id, Object: "text_completion", Created: created, Model: modelName,
				Choices: []completionChoice{{FinishReason: &fin}}, Usage: u, Roe: sel.Info})
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		w.Flush()
	})
	return nil
}

type chatOut struct {
	Role      string     `json:"role,omitempty"`
	Content   string     `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"` // content is then null (tools.go)
}

type chatChoice struct {
	Index        int      `json:"index"`
	Message      *chatOut `json:"message,omitempty"`
	Delta        *chatOut `json:"delta,omitempty"`
	Logprobs     *string  `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type chatResponse struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chatChoice  `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
	Roe     *experts.Info `json:"roe,omitempty"`
}

func chatChunk(id string, created int64, modelName string, delta *chatOut, fin *string, info *experts.Info, u ...*usage) chatResponse {
	r := chatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: modelName,
		Choices: []chatChoice{{Delta: delta, FinishReason: fin}}, Roe: info}
	if len(u) > 0 {
		r.Usage = u[0]
	}
	return r
}

func (s *Server) chatCompletions(c *fiber.Ctx) error {
	var r chatRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	turns, err := parseTurns(r.Messages)
	if err != nil {
		return err
	}
	spec, err := s.responseFormatSpec(r.ResponseFormat)
	if err != nil {
		return err
	}
	ts, err := s.parseTools(r.Tools, r.ToolChoice, r.ParallelToolCalls)
	if err != nil {
		return err
	}
	if ts != nil {
		if spec != nil {
			return badRequest("response_format", "response_format cannot be combined with tools (unless tool_choice is none)")
		}
		if spec, err = s.toolSpec(ts); err != nil {
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
	// The last user message is the query instance for routing.
	query := ""
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].Role == "user" {
			query = turns[i].Content
			break
		}
	}
	sel, err := s.selectFor(c.UserContext(), &r.commonRequest, []string{query})
	if err != nil {
		return err
	}
	return s.generate(c, &r.commonRequest, ids, sel, true, spec)
}

// message is one chat turn with its content flattened to text.
type message struct{ Role, Content string }

func parseMessages(in []chatMessage) ([]message, error) {
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
		var text string
		if json.Unmarshal(m.Content, &text) != nil {
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				return nil, badRequest(fmt.Sprintf("messages[%d].content", i), "content must be a string or a list of text parts")
			}
			var b strings.Builder
			for _, p := range parts {
				if p.Type != "text" {
					return nil, badRequest(fmt.Sprintf("messages[%d].content", i), "content part type %q is not supported (text only)", p.Type)
				}
				b.WriteString(p.Text)
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
}

func (s *Server) models() []modelCard {
	t := s.started.Unix()
	out := []modelCard{{ID: s.cfg.ModelID, Object: "model", Created: t, OwnedBy: "roe", Kind: "base"}}
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
		msgs, err := parseMessages(r.Messages)
		if err != nil {
			return err
		}
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Role == "user" {
				queries = []string{msgs[i].Content}
				break
			}
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
