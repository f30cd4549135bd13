package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// TestOpenAIGoClient drives the server over loopback with the official Go SDK,
// so what the SDK sends is accepted and what roe answers decodes into its types.
func TestOpenAIGoClient(t *testing.T) {
	f := newFixture(t, "test-key")
	addr := listen(t, f)
	// Options given here win over OPENAI_* in the environment; no retries, so a
	// refused request fails at once.
	client := openai.NewClient(
		option.WithBaseURL("http://"+addr+"/v1/"),
		option.WithAPIKey("test-key"),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(60*time.Second),
	)
	ctx := context.Background()
	const model = "stories260K"
	const greedy = ", there was a little girl named Lily"
	prompt := openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}

	t.Run("completions", func(t *testing.T) {
		r, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model: model, Prompt: prompt, MaxTokens: openai.Int(12), Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Choices) != 1 || !strings.HasPrefix(r.Choices[0].Text, greedy) {
			t.Fatalf("choices %+v", r.Choices)
		}
		if r.Choices[0].FinishReason != openai.CompletionChoiceFinishReasonLength || r.Usage.CompletionTokens != 12 || r.Model != model {
			t.Errorf("finish %q, usage %+v, model %q", r.Choices[0].FinishReason, r.Usage, r.Model)
		}
		var info struct{ Mode string }
		if err := json.Unmarshal([]byte(r.JSON.ExtraFields["roe"].Raw()), &info); err != nil || info.Mode != "base" {
			t.Errorf("roe extension %q: %v", r.JSON.ExtraFields["roe"].Raw(), err)
		}
	})

	t.Run("auto", func(t *testing.T) {
		r, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model: "auto", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("The cat sat.")},
			MaxTokens: openai.Int(4), Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		// No experts: auto falls back to the base model.
		var info struct {
			Mode     string
			Fallback *bool
		}
		raw := r.JSON.ExtraFields["roe"].Raw()
		if err := json.Unmarshal([]byte(raw), &info); err != nil || info.Mode != "auto" || info.Fallback == nil || !*info.Fallback {
			t.Errorf("roe extension %q: %v", raw, err)
		}
		if r.Usage.CompletionTokens != 4 {
			t.Errorf("usage %+v", r.Usage)
		}
	})

	t.Run("completions stream", func(t *testing.T) {
		s := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model: model, Prompt: prompt, MaxTokens: openai.Int(12), Temperature: openai.Float(0),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		defer s.Close()
		var text string
		var finish openai.CompletionChoiceFinishReason
		var last openai.Completion
		for s.Next() {
			last = s.Current()
			for _, c := range last.Choices {
				text += c.Text
				if c.FinishReason != "" {
					finish = c.FinishReason
				}
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text, greedy) || finish != openai.CompletionChoiceFinishReasonLength {
			t.Errorf("streamed %q, finish %q", text, finish)
		}
		if len(last.Choices) != 0 || last.Usage.CompletionTokens != 12 {
			t.Errorf("last chunk %s", last.RawJSON())
		}
	})

	t.Run("logprobs", func(t *testing.T) {
		r, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model: model, Prompt: prompt, MaxTokens: openai.Int(4), Temperature: openai.Float(0), Logprobs: openai.Int(2),
		})
		if err != nil {
			t.Fatal(err)
		}
		c := r.Choices[0]
		lp := c.Logprobs
		if len(lp.Tokens) != 4 || strings.Join(lp.Tokens, "") != c.Text || len(lp.TokenLogprobs) != 4 || len(lp.TopLogprobs) != 4 || len(lp.TextOffset) != 4 {
			t.Fatalf("logprobs %s", lp.RawJSON())
		}
		for i, tok := range lp.Tokens {
			top, ok := lp.TopLogprobs[i][tok]
			if lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) < 2 || !ok || top != lp.TokenLogprobs[i] {
				t.Errorf("token %d %q: logprob %v, top %v", i, tok, lp.TokenLogprobs[i], lp.TopLogprobs[i])
			}
		}
		if lp.TextOffset[0] != 0 || lp.TextOffset[1] != int64(len(lp.Tokens[0])) {
			t.Errorf("text_offset %v", lp.TextOffset)
		}
	})

	messages := []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("Be brief."),
		openai.UserMessage("Tell me a story."),
	}

	t.Run("chat", func(t *testing.T) {
		r, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: messages, MaxTokens: openai.Int(6), Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Choices) != 1 || r.Choices[0].Message.Content == "" || r.Choices[0].Message.Role != "assistant" {
			t.Fatalf("choices %s", r.RawJSON())
		}
		if r.Choices[0].FinishReason != "length" || r.Usage.CompletionTokens != 6 || r.Usage.PromptTokens == 0 {
			t.Errorf("finish %q, usage %+v", r.Choices[0].FinishReason, r.Usage)
		}
	})

	t.Run("chat stream", func(t *testing.T) {
		plain, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: messages, MaxTokens: openai.Int(6), Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		s := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: messages, MaxTokens: openai.Int(6), Temperature: openai.Float(0),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		defer s.Close()
		var acc openai.ChatCompletionAccumulator
		var last openai.ChatCompletionChunk
		n := 0
		for s.Next() {
			last = s.Current()
			if !acc.AddChunk(last) {
				t.Fatalf("accumulator refused chunk %s", last.RawJSON())
			}
			n++
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if n < 2 || len(acc.Choices) != 1 {
			t.Fatalf("%d chunks, accumulated %+v", n, acc.Choices)
		}
		got := acc.Choices[0]
		if got.Message.Content != plain.Choices[0].Message.Content || got.FinishReason != "length" {
			t.Errorf("streamed %q finish %q, plain %q", got.Message.Content, got.FinishReason, plain.Choices[0].Message.Content)
		}
		if len(last.Choices) != 0 || last.Usage.CompletionTokens != 6 || acc.Usage.CompletionTokens != 6 {
			t.Errorf("last chunk %s, accumulated usage %+v", last.RawJSON(), acc.Usage)
		}
	})

	t.Run("json_schema", func(t *testing.T) {
		schema := map[string]any{
			"type": "object",
			"properties": map[string]any{
				"name": map[string]any{"type": "string", "maxLength": 12},
				"age":  map[string]any{"type": "integer"},
				"pets": map[string]any{"type": "array", "items": map[string]any{"enum": []string{"cat", "dog"}}, "maxItems": 2},
			},
			"required":             []string{"name", "age", "pets"},
			"additionalProperties": false,
		}
		r, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Who is Lily?")},
			Temperature: openai.Float(0),
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Strict: openai.Bool(true), Schema: schema},
			}},
		})
		if err != nil {
			t.Fatal(describe(err))
		}
		var p struct {
			Name string
			Age  int
			Pets []string
		}
		content := r.Choices[0].Message.Content
		dec := json.NewDecoder(strings.NewReader(content))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("content %q: %v", content, err)
		}
		if len([]rune(p.Name)) > 12 || len(p.Pets) > 2 || r.Choices[0].FinishReason != "stop" {
			t.Errorf("outside the schema: %q, finish %q", content, r.Choices[0].FinishReason)
		}
		for _, pet := range p.Pets {
			if pet != "cat" && pet != "dog" {
				t.Errorf("pet %q in %q", pet, content)
			}
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		r, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"Once upon a time", "Lily"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 2 || r.Data[0].Index != 0 || r.Data[1].Index != 1 {
			t.Fatalf("data %s", r.RawJSON())
		}
		for _, d := range r.Data {
			if len(d.Embedding) != 64 {
				t.Errorf("embedding %d has %d dims", d.Index, len(d.Embedding))
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		apiErr := func(t *testing.T, err error, status int, param string) {
			t.Helper()
			var e *openai.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *openai.Error, got %T %v", err, err)
			}
			if e.StatusCode != status || (param != "" && e.Param != param) || e.Message == "" {
				t.Errorf("status %d param %q message %q, want %d %q", e.StatusCode, e.Param, e.Message, status, param)
			}
		}
		_, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "no-such-expert", Prompt: prompt, MaxTokens: openai.Int(1)})
		apiErr(t, err, http.StatusNotFound, "")
		bad := openai.CompletionNewParams{Model: model, Prompt: prompt, MaxTokens: openai.Int(1)}
		bad.SetExtraFields(map[string]any{"frobnicate": true})
		_, err = client.Completions.New(ctx, bad)
		apiErr(t, err, http.StatusBadRequest, "frobnicate")
		_, err = client.Completions.New(ctx, openai.CompletionNewParams{Model: model, Prompt: prompt, N: openai.Int(99)})
		apiErr(t, err, http.StatusBadRequest, "n")
		// A stream refused before it starts is an error from the stream too.
		s := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "no-such-expert", Messages: messages})
		for s.Next() {
		}
		apiErr(t, s.Err(), http.StatusNotFound, "")
		s.Close()
		wrong := openai.NewClient(option.WithBaseURL("http://"+addr+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
		_, err = wrong.Completions.New(ctx, openai.CompletionNewParams{Model: model, Prompt: prompt, MaxTokens: openai.Int(1)})
		apiErr(t, err, http.StatusUnauthorized, "")
	})
}

// describe adds the server's message to an SDK error, whose Error() has only
// the status.
func describe(err error) string {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.Error() + ": " + e.Param + ": " + e.Message
	}
	return err.Error()
}
