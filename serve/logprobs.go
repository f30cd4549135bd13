package serve

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"roe/model"
	"roe/model/tokenizer"
)

// lpToken is one token of a choice's log-probabilities, before it takes the
// completions or the chat shape.
type lpToken struct {
	tok    string // as shown: its text, "bytes:\xNN…" for part of a character, a special token's name
	bytes  []byte
	offset int                 // in code points, into the choice's text
	start  int                 // in bytes, into the text of its stream
	lp     *model.TokenLogprob // nil for a prompt's first token
	alts   []lpAlt
}

type lpAlt struct {
	tok     string
	bytes   []byte
	logprob float64
}

// tokenStream follows the text that a run of tokens decodes to, as the
// server's stream decoder makes it: where each token starts, and how a token
// reads at its position (decoders drop a leading space at the start).
type tokenStream struct {
	tok     *tokenizer.Tokenizer
	started bool   // a token that is not special has been seen
	runes   int    // code points of complete text so far
	nbytes  int    // bytes of text so far
	tail    []byte // an incomplete UTF-8 sequence carried to the next token
}

func newTokenStream(tok *tokenizer.Tokenizer, offset int) *tokenStream {
	return &tokenStream{tok: tok, runes: offset}
}

// piece is how id reads at the stream's position, without advancing it.
func (ts *tokenStream) piece(id int) (string, []byte, bool) {
	if ts.tok.IsSpecial(id) {
		s, _ := ts.tok.TokenString(id)
		return s, []byte(s), true
	}
	b := ts.tok.TokenBytes(id, !ts.started)
	return showBytes(b), b, false
}

// add appends one token (lp nil: a prompt's first token, which has none).
func (ts *tokenStream) add(id int, lp *model.TokenLogprob) lpToken {
	s, b, special := ts.piece(id)
	t := lpToken{tok: s, bytes: b, offset: ts.runes, start: ts.nbytes, lp: lp}
	if lp != nil {
		for _, a := range lp.Top {
			as, ab, _ := ts.piece(a.ID)
			t.alts = append(t.alts, lpAlt{as, ab, a.Logprob})
		}
	}
	if special {
		return t // skipped in the text
	}
	ts.started = true
	ts.nbytes += len(b)
	buf := append(ts.tail, b...)
	n := 0
	for len(buf) > 0 && utf8.FullRune(buf) {
		_, size := utf8.DecodeRune(buf)
		buf = buf[size:]
		n++
	}
	ts.runes += n
	ts.tail = append([]byte(nil), buf...)
	return t
}

// showBytes is a token's text, or "bytes:\xNN…" when it is not valid UTF-8
// (part of a character), as the OpenAI API shows such tokens.
func showBytes(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.WriteString("bytes:")
	for _, c := range b {
		fmt.Fprintf(&sb, "\\x%02x", c)
	}
	return sb.String()
}

// finite keeps a log-probability encodable: JSON has no -Inf (vLLM's -9999).
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, -1) || x < -9999 {
		return -9999
	}
	return x
}

// choiceTokens are the log-probability tokens of one choice: the prompt's
// when echoed (from offset 0), then the completion's (from offset base).
// A completion cut at a stop string loses the tokens past the cut.
func (s *Server) choiceTokens(p *plan, pr promptIn, seq *model.Sequence, base int) []lpToken {
	var out []lpToken
	if p.echo && len(seq.PromptLogprobs) == len(pr.ids)-1 {
		ts := newTokenStream(s.cfg.Tokenizer, 0)
		out = append(out, ts.add(pr.ids[0], nil))
		for k, id := range pr.ids[1:] {
			out = append(out, ts.add(id, &seq.PromptLogprobs[k]))
		}
	}
	ts := newTokenStream(s.cfg.Tokenizer, base)
	text := len(seq.Text())
	for k := range seq.Logprobs {
		t := ts.add(seq.Tokens[k], &seq.Logprobs[k])
		if t.start >= text && seq.FinishReason == "stop" && len(p.stops) > 0 {
			break // past a stop string
		}
		out = append(out, t)
	}
	return out
}

// completionLogprobs is the legacy completions shape.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// completionShape lists the tokens; each top_logprobs entry has the most
// likely tokens and the chosen one (so up to logprobs+1 entries, as OpenAI's).
func completionShape(toks []lpToken) *completionLogprobs {
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, t.tok)
		out.TextOffset = append(out.TextOffset, t.offset)
		if t.lp == nil {
			out.TokenLogprobs = append(out.TokenLogprobs, nil)
			out.TopLogprobs = append(out.TopLogprobs, nil)
			continue
		}
		v := finite(t.lp.Logprob)
		out.TokenLogprobs = append(out.TokenLogprobs, &v)
		top := make(map[string]float64, len(t.alts)+1)
		for _, a := range t.alts {
			if _, ok := top[a.tok]; !ok { // two ids that read the same: the likelier
				top[a.tok] = finite(a.logprob)
			}
		}
		if _, ok := top[t.tok]; !ok {
			top[t.tok] = v
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
	}
	return out
}

// chatLogprobs is the chat shape: choices[].logprobs.
type chatLogprobs struct {
	Content []chatLogprob `json:"content"`
	Refusal []chatLogprob `json:"refusal"`
}

type chatLogprob struct {
	Token       string           `json:"token"`
	Logprob     float64          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

func intBytes(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func chatShape(toks []lpToken) *chatLogprobs {
	out := &chatLogprobs{Content: []chatLogprob{}}
	for _, t := range toks {
		if t.lp == nil {
			continue
		}
		e := chatLogprob{Token: t.tok, Logprob: finite(t.lp.Logprob), Bytes: intBytes(t.bytes), TopLogprobs: []chatTopLogprob{}}
		for _, a := range t.alts {
			e.TopLogprobs = append(e.TopLogprobs, chatTopLogprob{a.tok, finite(a.logprob), intBytes(a.bytes)})
		}
		out.Content = append(out.Content, e)
	}
	return out
}
