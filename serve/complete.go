package serve

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"roe/adapters"
	"roe/experts"
	"roe/model"
)

// promptIn is one prompt of a request.
type promptIn struct {
	ids    []int
	text   string // the prompt as text: echoed, and routed on
	tokens bool   // given as token ids
	maxNew int    // 0: score only (echo)
}

// plan is a validated generation request: what to run and how to answer.
type plan struct {
	chat         bool
	model        string
	prompts      []promptIn
	n, bestOf    int // choices returned and run per prompt
	sample       model.SampleOptions
	stops        []string
	stream       bool
	includeUsage bool
	echo         bool
	logprobs     int // alternatives per token; -1: no log-probabilities
	sel          *experts.Selection
	user         string
	serviceTier  string
	spec         *outputSpec // response_format or tools (structured.go, tools.go); nil: free text
}

// tools are the plan's tools, whose calls are read back from the text; nil: none.
func (p *plan) tools() *toolSet {
	if p.spec == nil {
		return nil
	}
	return p.spec.tools
}

// choiceSeed is completion j's seed: the request's seed for the first, a
// mix of it for the others, so that a prompt's completions differ and each
// depends only on the seed and j, never on the rest of the batch.
func choiceSeed(seed *uint64, j int) *uint64 {
	if seed == nil || j == 0 {
		return seed
	}
	z := *seed + uint64(j)*0x9e3779b97f4a7c15 // SplitMix64
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return &z
}

// systemFingerprint names the configuration that produced an answer: the
// base model's weights fingerprint, the lossy options in force and roe's
// build (module version and VCS revision), hashed.
func systemFingerprint(m *model.Model) string {
	h := sha256.New()
	h.Write([]byte(m.Fingerprint()))
	if a := m.Activations(); a != model.ActivationsF32 { // lossy int8 activations answer differently
		fmt.Fprintf(h, "\x00activations=%s", a)
	}
	if d := adapters.DecodeDType(); d == adapters.DecodeBFloat16 { // so do experts' rounded decode factors
		fmt.Fprintf(h, "\x00lora_dtype=%s", d)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(h, "\x00%s", bi.Main.Version)
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" || st.Key == "vcs.modified" {
				fmt.Fprintf(h, "\x00%s=%s", st.Key, st.Value)
			}
		}
	}
	return "fp_" + hex.EncodeToString(h.Sum(nil))[:12]
}

// groups builds each prompt's sequences: a lead, forked into best_of
// completions after its prefill.
func (s *Server) groups(p *plan) ([]Group, error) {
	out := make([]Group, len(p.prompts))
	for i, pr := range p.prompts {
		o := model.GenerateOptions{MaxTokens: pr.maxNew, Sample: p.sample, StopStrings: p.stops, Adapter: p.sel.Adapter,
			Logprobs: p.logprobs >= 0 || p.bestOf > p.n, TopLogprobs: max(p.logprobs, 0),
			PromptLogprobs: p.echo && p.logprobs >= 0, ScoreOnly: pr.maxNew == 0}
		o.Sample.Seed = choiceSeed(p.sample.Seed, 0)
		var err error
		if o.Constraint, err = s.newConstraint(p.spec); err != nil {
			return nil, err
		}
		lead, err := s.cfg.Model.NewSequence(pr.ids, s.cfg.Tokenizer.NewStreamDecoder(true), o)
		if err != nil {
			return nil, unprocessable("prompt", "invalid_prompt", "%v", err)
		}
		sample := o.Sample
		out[i] = Group{Lead: lead, N: p.bestOf, Fork: func(lead *model.Sequence, j int) (*model.Sequence, error) {
			so := sample
			so.Seed = choiceSeed(p.sample.Seed, j)
			c, err := s.newConstraint(p.spec) // a fork's own: a constraint has state
			if err != nil {
				return nil, err
			}
			return lead.Fork(s.cfg.Tokenizer.NewStreamDecoder(true), so, c)
		}}
	}
	return out, nil
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             any                `json:"usage,omitempty"` // *usage, or null on chunks with include_usage
	Roe               *experts.Info      `json:"roe,omitempty"`
}

type chatOut struct {
	Role      string     `json:"role,omitempty"`
	Content   string     `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"` // content is then null (tools.go)
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      *chatOut      `json:"message,omitempty"`
	Delta        *chatOut      `json:"delta,omitempty"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatResponse struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	ServiceTier       string        `json:"service_tier,omitempty"`
	Choices           []chatChoice  `json:"choices"`
	Usage             any           `json:"usage,omitempty"`
	Roe               *experts.Info `json:"roe,omitempty"`
}

// run submits the plan's sequences and answers, whole or streamed.
func (s *Server) run(c *fiber.Ctx, p *plan) error {
	groups, err := s.groups(p)
	if err != nil {
		return err
	}
	p.sel.Info.Neighbors = nil // stored instances are shown by /v1/route only
	c.Set("X-Roe-Experts", p.sel.Names())
	if p.user != "" {
		c.Locals("user", p.user)
	}
	if p.stream {
		return s.stream(c, p, groups)
	}
	conn := c.Context().Conn()
	job, err := s.sched.SubmitGroups(c.UserContext(), groups, func() bool { return !peerGone(conn) })
	if err != nil {
		return err
	}
	for {
		_, done, err := job.Pieces(c.UserContext())
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	seqs := job.Sequences()
	for _, seq := range seqs {
		if seq.Err != nil {
			return seq.Err
		}
	}
	u := &usage{}
	for _, pr := range p.prompts {
		u.PromptTokens += len(pr.ids)
	}
	for _, seq := range seqs {
		u.CompletionTokens += len(seq.Tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	var comps []completionChoice
	var chats []chatChoice
	for i, pr := range p.prompts {
		for j, seq := range best(seqs[i*p.bestOf:(i+1)*p.bestOf], p.n) {
			fin := seq.FinishReason
			idx := i*p.n + j
			text, base := seq.Text(), 0
			if p.echo {
				text, base = pr.text+text, utf8.RuneCountInString(pr.text)
			}
			if p.chat {
				msg := &chatOut{Role: "assistant", Content: text}
				if ts := p.tools(); ts != nil {
					if msg.ToolCalls, msg.Content = ts.parseCalls(text); len(msg.ToolCalls) > 0 {
						fin = "tool_calls"
					}
				}
				ch := chatChoice{Index: idx, Message: msg, FinishReason: &fin}
				if p.logprobs >= 0 {
					ch.Logprobs = chatShape(s.choiceTokens(p, pr, seq, 0))
				}
				chats = append(chats, ch)
				continue
			}
			ch := completionChoice{Text: text, Index: idx, FinishReason: &fin}
			if p.logprobs >= 0 {
				ch.Logprobs = completionShape(s.choiceTokens(p, pr, seq, base))
			}
			comps = append(comps, ch)
		}
	}
	if p.chat {
		return c.JSON(chatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: p.model,
			SystemFingerprint: s.fingerprint, ServiceTier: p.serviceTier, Choices: chats, Usage: u, Roe: p.sel.Info})
	}
	return c.JSON(completionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: p.model,
		SystemFingerprint: s.fingerprint, Choices: comps, Usage: u, Roe: p.sel.Info})
}

// best keeps the n of a prompt's completions with the highest mean token
// log-probability (best_of), most likely first; all of them, in order, when
// there are n.
func best(seqs []*model.Sequence, n int) []*model.Sequence {
	if len(seqs) <= n {
		return seqs
	}
	mean := func(s *model.Sequence) float64 {
		if len(s.Logprobs) == 0 {
			return 0
		}
		var sum float64
		for _, lp := range s.Logprobs {
			sum += lp.Logprob
		}
		return sum / float64(len(s.Logprobs))
	}
	out := append([]*model.Sequence(nil), seqs...)
	sort.SliceStable(out, func(a, b int) bool { return mean(out[a]) > mean(out[b]) })
	return out[:n]
}

// stream answers as server-sent events: per choice, its text as it comes
// (after the echoed prompt), then a chunk with its finish_reason; the last
// of those carries the roe object. With tools, a choice's message (a call or
// text) comes whole in one delta before its finish chunk. With
// stream_options.include_usage a final chunk with no choices has the usage,
// and every other chunk has usage: null.
func (s *Server) stream(c *fiber.Ctx, p *plan, groups []Group) error {
	// The request context is not tied to the connection in fasthttp, so a
	// failed write is what tells us the client left.
	ctx, cancel := context.WithCancel(context.Background())
	job, err := s.sched.SubmitGroups(ctx, groups, nil)
	if err != nil {
		cancel()
		return err
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	if p.chat {
		id = newID("chatcmpl-")
	}
	var nullUsage any
	if p.includeUsage {
		nullUsage = json.RawMessage("null")
	}
	total := len(p.prompts) * p.n
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		send := func(v any) bool {
			b, err := json.Marshal(v)
			if err != nil {
				return false
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		chunk := func(ch chatChoice, fin bool) chatResponse {
			return chatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: p.model,
				SystemFingerprint: s.fingerprint, ServiceTier: p.serviceTier, Choices: []chatChoice{ch}, Usage: nullUsage}
		}
		text := func(ch completionChoice) completionResponse {
			return completionResponse{ID: id, Object: "text_completion", Created: created, Model: p.model,
				SystemFingerprint: s.fingerprint, Choices: []completionChoice{ch}, Usage: nullUsage}
		}
		if p.chat {
			for i := range total {
				if !send(chunk(chatChoice{Index: i, Delta: &chatOut{Role: "assistant"}}, false)) {
					return
				}
			}
		}
		streams := make([]*tokenStream, total) // the completion's tokens, by choice
		tools := p.tools()
		var held []heldChoice // with tools: each choice's text and tokens until it ends
		if tools != nil {
			held = make([]heldChoice, total)
		}
		fail := func(err error) {
			var b errorBody
			b.Error.Message, b.Error.Type = err.Error(), "server_error"
			send(b)
		}
		finished := 0
		for {
			pieces, done, err := job.Pieces(ctx)
			for _, pc := range pieces {
				if pc.Err != nil {
					fail(pc.Err)
					return
				}
				i := pc.Index / p.n
				pr := p.prompts[i]
				txt := pc.Text
				var toks []lpToken
				if streams[pc.Index] == nil {
					base := 0
					if p.echo {
						txt, base = pr.text+txt, utf8.RuneCountInString(pr.text)
						if p.logprobs >= 0 && len(pc.PromptLogprobs) == len(pr.ids)-1 {
							ts := newTokenStream(s.cfg.Tokenizer, 0)
							toks = append(toks, ts.add(pr.ids[0], nil))
							for k, tid := range pr.ids[1:] {
								toks = append(toks, ts.add(tid, &pc.PromptLogprobs[k]))
							}
						}
					}
					streams[pc.Index] = newTokenStream(s.cfg.Tokenizer, base)
				}
				for k := range pc.Logprobs {
					toks = append(toks, streams[pc.Index].add(pc.Logprobs[k].ID, &pc.Logprobs[k]))
				}
				if held != nil {
					held[pc.Index].text.WriteString(txt)
					held[pc.Index].toks = append(held[pc.Index].toks, toks...)
					txt, toks = "", nil
				}
				if txt != "" || len(toks) > 0 {
					var ok bool
					if p.chat {
						ch := chatChoice{Index: pc.Index, Delta: &chatOut{Content: txt}}
						if p.logprobs >= 0 {
							ch.Logprobs = chatShape(toks)
						}
						ok = send(chunk(ch, false))
					} else {
						ch := completionChoice{Text: txt, Index: pc.Index}
						if p.logprobs >= 0 {
							ch.Logprobs = completionShape(toks)
						}
						ok = send(text(ch))
					}
					if !ok {
						return // client gone: cancel stops the sequences
					}
				}
				if pc.Done {
					finished++
					fin := pc.Finish
					if held != nil {
						h := &held[pc.Index]
						delta := &chatOut{}
						if delta.ToolCalls, delta.Content = tools.parseCalls(h.text.String()); len(delta.ToolCalls) > 0 {
							fin = "tool_calls"
							for k := range delta.ToolCalls {
								delta.ToolCalls[k].Index = &k
							}
						}
						if delta.Content != "" || len(delta.ToolCalls) > 0 || len(h.toks) > 0 {
							ch := chatChoice{Index: pc.Index, Delta: delta}
							if p.logprobs >= 0 {
								ch.Logprobs = chatShape(h.toks)
							}
							if !send(chunk(ch, false)) {
								return
							}
						}
					}
					var ok bool
					if p.chat {
						r := chunk(chatChoice{Index: pc.Index, Delta: &chatOut{}, FinishReason: &fin}, true)
						if finished == total {
							r.Roe = p.sel.Info
						}
						ok = send(r)
					} else {
						r := text(completionChoice{Index: pc.Index, FinishReason: &fin})
						if finished == total {
							r.Roe = p.sel.Info
						}
						ok = send(r)
					}
					if !ok {
						return
					}
				}
			}
			if done {
				if err != nil {
					fail(err)
					return
				}
				break
			}
		}
		if p.includeUsage {
			u := &usage{}
			for _, pr := range p.prompts {
				u.PromptTokens += len(pr.ids)
			}
			for _, seq := range job.Sequences() {
				u.CompletionTokens += len(seq.Tokens)
			}
			u.TotalTokens = u.PromptTokens + u.CompletionTokens
			if p.chat {
				send(chatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: p.model,
					SystemFingerprint: s.fingerprint, ServiceTier: p.serviceTier, Choices: []chatChoice{}, Usage: u})
			} else {
				send(completionResponse{ID: id, Object: "text_completion", Created: created, Model: p.model,
					SystemFingerprint: s.fingerprint, Choices: []completionChoice{}, Usage: u})
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		w.Flush()
	})
	return nil
}

// heldChoice is a streamed choice's output held back until it ends.
type heldChoice struct {
	text strings.Builder
	toks []lpToken
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
