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
	Constraint  Constraint    // nil, or what the output must match (one per sequence: it has state)

	Logprobs       bool // record each generated token's log-probability (Sequence.Logprobs)
	PromptLogprobs bool // score the prompt's tokens after the first (Sequence.PromptLogprobs)
	TopLogprobs    int  // alternatives listed with each (at most MaxTopLogprobs)
	ScoreOnly      bool // score the prompt and generate nothing (echo with max_tokens 0)
}

// Generation is the result of Generate.
type Generation struct {
	PromptTokens []int  // the prompt as fed to the model
	Tokens       []int  // generated ids, without a final stop token
	Text         string // generated text, cut before any stop string
	FinishReason string // "stop" (stop token or string) or "length"
}

// Sequence is one generation in progress: its cache, sampler and text so far.
// Generate drives one; a scheduler drives many through one batched Forward.
type Sequence struct {
	Prompt       []int  // the prompt as fed to the model
	Tokens       []int  // generated ids, without a final stop token
	FinishReason string // "" while running, then "stop" or "length"
	Err          error  // set when the constraint refused the sampled token (a bug, not user input)

	Logprobs       []TokenLogprob // one per token of Tokens, with GenerateOptions.Logprobs
	PromptLogprobs []TokenLogprob // one per prompt token after the first, with PromptLogprobs

	vocab   int
	lp      GenerateOptions // the log-probability options
	scored  bool            // the prompt's logits have been seen
	cache   *Cache
	adapter Adapter
	constr  Constraint
	masked  []float32 // the logits under the constraint's mask (reused)
	sampler *Sampler
	dec     TextDecoder
	stops   []string
	maxStop int
	stopIDs map[int]bool
	maxNew  int
	next    []int
	text    strings.Builder // everything decoded so far
	emitted int             // bytes of text already handed out
}

// reserveAhead is how many new positions a sequence's first KV allocation
// covers beyond its prompt when the request bounds its length; past it the
// cache grows by doubling.
const reserveAhead = 256

// NewSequence validates a prompt and prepares its generation.
func (m *Model) NewSequence(prompt []int, dec TextDecoder, o GenerateOptions) (*Sequence, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: empty prompt (no BOS either)", ErrInput)
	}
	limit := m.Config.ContextLength()
	if len(prompt) >= limit {
		return nil, fmt.Errorf("%w: prompt has %d tokens, the model allows %d in all", ErrContext, len(prompt), limit)
	}
	for _, t := range prompt {
		if t < 0 || t >= m.Config.VocabSize {
			return nil, fmt.Errorf("%w: token id %d outside vocabulary [0, %d)", ErrInput, t, m.Config.VocabSize)
		}
	}
	maxNew := limit - len(prompt)
	if o.MaxTokens > 0 && o.MaxTokens < maxNew {
		maxNew = o.MaxTokens
	}
	stopIDs := o.StopTokens
	if stopIDs == nil {
		stopIDs = m.Config.EOS
	}
	s := &Sequence{Prompt: prompt, cache: m.NewCache(), adapter: o.Adapter, constr: o.Constraint, sampler: NewSampler(o.Sample),
		dec: dec, stops: o.StopStrings, stopIDs: make(map[int]bool, len(stopIDs)), maxNew: maxNew, next: prompt,
		vocab: m.Config.VocabSize, lp: GenerateOptions{Logprobs: o.Logprobs, PromptLogprobs: o.PromptLogprobs, TopLogprobs: o.TopLogprobs, ScoreOnly: o.ScoreOnly}}
	if o.MaxTokens > 0 {
		// The length is bounded by the request: allocate its KV once, but
		// never hold more than reserveAhead positions it may not use (a
		// client asking for 4096 tokens often stops after 50).
		s.cache.Reserve(len(prompt) + min(maxNew, reserveAhead))
	}
	s.sampler.Prime(prompt)
	for _, id := range stopIDs {
		s.stopIDs[id] = true
	}
	for _, st := range o.StopStrings {
		s.maxStop = max(s.maxStop, len(st))
	}
	return s, nil
}

// Step is what the sequence feeds to the next Forward: the prompt first (with
// logits for every position when the prompt is scored), then its last token.
func (s *Sequence) Step() Step {
	return Step{Cache: s.cache, Tokens: s.next, Adapter: s.adapter, AllLogits: s.lp.PromptLogprobs && !s.scored}
}

// Done reports whether the sequence has finished.
func (s *Sequence) Done() bool { return s.FinishReason != "" }

// Text is the text generated so far, up to what has been handed out.
func (s *Sequence) Text() string { return s.text.String()[:s.emitted] }

// Accept samples the next token from this sequence's logits (from the Forward
// of Step: [V], or [len(Prompt), V] when the prompt is scored) and returns the
// new text that is safe to show: complete UTF-8 that cannot be the start of a
// stop string. It leaves logits as they are (forks draw from the same row).
func (s *Sequence) Accept(logits []float32) string {
	if s.Done() {
		return ""
	}
	if !s.scored {
		s.scored = true
		if V := s.vocab; s.lp.PromptLogprobs && len(logits) > V {
			n := len(logits) / V // rows for the last n prompt tokens; row r predicts the next
			for r := 0; r+1 < n; r++ {
				s.PromptLogprobs = append(s.PromptLogprobs, LogprobOf(logits[r*V:(r+1)*V], s.Prompt[len(s.Prompt)-n+r+1], s.lp.TopLogprobs))
			}
			logits = logits[(n-1)*V : n*V]
		}
		if s.lp.ScoreOnly {
			return s.finish("length")
		}
	}
	raw := logits
	if s.constr != nil {
		// The mask goes on a copy: the logits stay the model's, for
		// log-probabilities and for the forks that draw from the same row.
		s.masked = append(s.masked[:0], logits...)
		logits = s.masked
		s.constr.Mask(logits, s.maxNew-len(s.Tokens))
	}
	id := s.sampler.Sample(logits)
	if s.constr != nil {
		if err := s.constr.Accept(id); err != nil {
			s.Err = err
			return s.finish("stop")
		}
	}
	if s.stopIDs[id] {
		return s.finish("stop")
	}
	if s.lp.Logprobs {
		s.Logprobs = append(s.Logprobs, LogprobOf(raw, id, s.lp.TopLogprobs))
	}
	s.sampler.Observe(id)
	s.Tokens = append(s.Tokens, id)
	s.next = []int{id}
	s.text.WriteString(s.dec.Next(id))
	if s.maxStop > 0 {
		full := s.text.String()
		if cut, ok := findStop(full, max(0, s.emitted-s.maxStop), s.stops); ok {
			return s.cut(cut, "stop")
		}
	}
	if len(s.Tokens) >= s.maxNew {
		return s.finish("length")
	}
	return s.release(s.text.Len() - heldBack(s.text.String(), s.stops))
}

// Stop ends the sequence early (a client went away) and returns nothing more.
func (s *Sequence) Stop(reason string) {
	if !s.Done() {
		s.FinishReason = reason
	}
}

// finish flushes the decoder and ends the sequence.
func (s *Sequence) finish(reason string) string {
	s.text.WriteString(s.dec.Flush())
	full := s.text.String()
	if cut, ok := findStop(full, max(0, s.emitted-s.maxStop), s.stops); ok {
		return s.cut(cut, "stop")
	}
	s.FinishReason = reason
	return s.release(len(full))
}

// cut ends the sequence with its text truncated at a stop string.
func (s *Sequence) cut(at int, reason string) string {
	out := s.release(at)
	full := s.text.String()[:at]
	s.text.Reset()
	s.text.WriteString(full)
	s.FinishReason = reason
	return out
}

func (s *Sequence) release(upto int) string {
	if upto <= s.emitted {
		return ""
	}
	piece := s.text.String()[s.emitted:upto]
	s.emitted = upto
	return piece
}

// Generate decodes from prompt, calling emit with each piece of new text as soon
// as it is complete UTF-8 and cannot be the start of a stop string.
func (m *Model) Generate(ctx context.Context, dec TextDecoder, prompt []int, o GenerateOptions, emit func(string) error) (*Generation, error) {
	s, err := m.NewSequence(prompt, dec, o)
	if err != nil {
		return nil, err
	}
	g := &Generation{PromptTokens: prompt}
	steps, out := make([]Step, 1), make([]Output, 1) // reused: no logits allocation per token
	for !s.Done() {
		if err := ctx.Err(); err != nil {
			g.Tokens, g.Text = s.Tokens, s.Text()
			return g, err
		}
		steps[0] = s.Step()
		if err := m.ForwardInto(steps, out); err != nil {
			return g, err
		}
		if piece := s.Accept(out[0].Logits); piece != "" && emit != nil {
			if err := emit(piece); err != nil {
				return g, err
			}
		}
	}
	g.Tokens, g.Text, g.FinishReason = s.Tokens, s.Text(), s.FinishReason
	return g, s.Err
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
	from := len(prompt) - 1 // the logits that predict the continuation
	out, err := m.Forward([]Step{{Cache: m.NewCache(), Tokens: all, Adapter: a, AllLogits: true, LogitsFrom: from}})
	if err != nil {
		return 0, err
	}
	V := m.Config.VocabSize
	var lp float64
	for t := from; t < len(all)-1; t++ {
		lp += logSoftmaxAt(out[0].Logits[(t-from)*V:(t-from+1)*V], all[t+1])
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
