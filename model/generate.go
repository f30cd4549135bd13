package model

import (
	"context"
	"fmt"
	"strings"
)

// TextDecoder turns generated ids into text as it becomes complete UTF-8;
// tokenizer.StreamDecoder implements it.
type TextDecoder interface {
	Next(id int) string
	Flush() string
}

// GenerateOptions control one generation.
type GenerateOptions struct {
	MaxTokens   int           // new tokens at most; 0 means up to the context length
	Sample      SampleOptions // greedy, temperature, top-k, top-p, seed
	StopTokens  []int         // ids that end generation (not emitted); nil means the model's EOS
	StopStrings []string      // texts that end generation (not emitted)
	Adapter     Adapter       // nil for the base model
}

// Generation is the result of Generate.
type Generation struct {
	PromptTokens []int  // the prompt as fed to the model
	Tokens       []int  // generated ids, without a final stop token
	Text         string // generated text, cut before any stop string
	FinishReason string // "stop" (stop token or string) or "length"
}

// Generate decodes from prompt, calling emit with each piece of new text as soon
// as it is complete UTF-8 and cannot be the start of a stop string.
func (m *Model) Generate(ctx context.Context, dec TextDecoder, prompt []int, o GenerateOptions, emit func(string) error) (*Generation, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: empty prompt (no BOS either)", ErrInput)
	}
	limit := m.Config.ContextLength()
	if len(prompt) > limit {
		return nil, fmt.Errorf("%w: prompt has %d tokens, the model allows %d", ErrContext, len(prompt), limit)
	}
	maxNew := limit - len(prompt)
	if o.MaxTokens > 0 && o.MaxTokens < maxNew {
		maxNew = o.MaxTokens
	}
	stopIDs := o.StopTokens
	if stopIDs == nil {
		stopIDs = m.Config.EOS
	}
	isStop := make(map[int]bool, len(stopIDs))
	for _, id := range stopIDs {
		isStop[id] = true
	}
	g := &Generation{PromptTokens: prompt, FinishReason: "length"}
	sampler := NewSampler(o.Sample)
	cache := m.NewCache()
	var text strings.Builder // everything decoded so far
	emitted := 0             // bytes of text already passed to emit
	maxStop := 0
	for _, s := range o.StopStrings {
		maxStop = max(maxStop, len(s))
	}

	flush := func(upto int) error {
		if upto > emitted {
			piece := text.String()[emitted:upto]
			emitted = upto
			if emit != nil {
				return emit(piece)
			}
		}
		return nil
	}
	next := prompt
	for len(g.Tokens) < maxNew {
		if err := ctx.Err(); err != nil {
			return g, err
		}
		out, err := m.Forward([]Step{{Cache: cache, Tokens: next, Adapter: o.Adapter}})
		if err != nil {
			return g, err
		}
		id := sampler.Sample(out[0].Logits)
		if isStop[id] {
			g.FinishReason = "stop"
			break
		}
		g.Tokens = append(g.Tokens, id)
		next = []int{id}
		text.WriteString(dec.Next(id))
		if maxStop == 0 {
			if err := flush(text.Len()); err != nil {
				return g, err
			}
			continue
		}
		full := text.String()
		from := max(0, emitted-maxStop)
		if cut, ok := findStop(full, from, o.StopStrings); ok {
			if err := flush(cut); err != nil {
				return g, err
			}
			g.Text = full[:cut]
			g.FinishReason = "stop"
			return g, nil
		}
		if err := flush(len(full) - heldBack(full, o.StopStrings)); err != nil {
			return g, err
		}
	}
	text.WriteString(dec.Flush())
	full := text.String()
	if cut, ok := findStop(full, max(0, emitted-maxStop), o.StopStrings); ok {
		full = full[:cut]
		g.FinishReason = "stop"
	}
	if err := flush(len(full)); err != nil {
		return g, err
	}
	g.Text = full
	return g, nil
}

// findStop returns where the earliest stop string begins at or after from.
func findStop(s string, from int, stops []string) (int, bool) {
	best := -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s[from:], st); i >= 0 && (best < 0 || from+i < best) {
			best = from + i
		}
	}
	return best, best >= 0
}

// heldBack is the length of the longest suffix of s that starts some stop string.
func heldBack(s string, stops []string) int {
	hold := 0
	for _, st := range stops {
		for n := min(len(st)-1, len(s)); n > hold; n-- {
			if strings.HasSuffix(s, st[:n]) {
				hold = n
				break
			}
		}
	}
	return hold
}

// LogLikelihood returns Σ log p(continuation | prompt) and the number of scored tokens.
// The prompt must be non-empty (it normally starts with BOS).
func (m *Model) LogLikelihood(prompt, continuation []int, a Adapter) (float64, error) {
	if len(prompt) == 0 {
		return 0, fmt.Errorf("%w: empty prompt", ErrInput)
	}
	if len(continuation) == 0 {
		return 0, fmt.Errorf("%w: empty continuation", ErrInput)
	}
	all := append(append([]int(nil), prompt...), continuation...)
	out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: all, Adapter: a, AllLogits: true}})
	if err != nil {
		return 0, err
	}
	V := m.Config.VocabSize
	var lp float64
	for t := len(prompt) - 1; t < len(all)-1; t++ {
		lp += logSoftmaxAt(out[0].Logits[t*V:(t+1)*V], all[t+1])
	}
	return lp, nil
}

// Embed returns the mean of the final-norm hidden states over all positions
// (BOS included): roe's default retrieval embedding.
//
//	result: [H]
func (m *Model) Embed(tokens []int, a Adapter) ([]float32, error) {
	return m.EmbedLayer(tokens, 0, a)
}

// EmbedLayer is Embed over the hidden states of one layer (see Step.HiddenLayer).
//
//	result: [H]
func (m *Model) EmbedLayer(tokens []int, layer int, a Adapter) ([]float32, error) {
	out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: tokens, Adapter: a, NoLogits: true, Hidden: true, HiddenLayer: layer}})
	if err != nil {
		return nil, err
	}
	H := m.Config.HiddenSize
	mean := make([]float64, H)
	for t := 0; t < len(tokens); t++ {
		for j, v := range out[0].Hidden[t*H : (t+1)*H] {
			mean[j] += float64(v)
		}
	}
	e := make([]float32, H)
	for j := range e {
		e[j] = float32(mean[j] / float64(len(tokens)))
	}
	return e, nil
}
