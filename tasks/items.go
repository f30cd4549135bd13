package tasks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// DefaultMaxLen is the default length (in tokens, BOS included) of a training
// sequence; longer prompts lose their beginning.
const DefaultMaxLen = 256

// Tokenizer is what turning text into training sequences needs
// (*tokenizer.Tokenizer has it).
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int
	EOS() (int, bool)
}

// Item is one rendered training (or evaluation) example.
type Item struct {
	Rendered
	Template string // the template's name
	Task     int    // index of its task (0 = the target task in multi-task runs)
}

// SplitTokens tokenizes a prompt and its continuation the way lm-eval-harness
// does: the context is Encode(prompt) with BOS, the continuation is what
// Encode(prompt + " " + cont) adds after the context's length. (Encoding
// " "+cont on its own would get a SentencePiece tokenizer's dummy prefix
// wrong.) The prompt is cut from the left, keeping its first token (BOS), so
// that context and continuation fit in maxLen (≤ 0: no limit); a continuation
// longer than maxLen−1 is cut from the right.
func SplitTokens(tok Tokenizer, prompt, cont string, maxLen int) (ctx, tgt []int, err error) {
	ctx = tok.Encode(prompt, true)
	whole := tok.Encode(prompt+" "+cont, true)
	if len(ctx) == 0 {
		return nil, nil, fmt.Errorf("%w: prompt %q", ErrEmpty, prompt)
	}
	if len(whole) <= len(ctx) || !equalPrefix(whole, ctx) {
		// The joint tokenization merged across the boundary: fall back to
		// the longest common prefix.
		n := 0
		for n < len(ctx) && n < len(whole) && ctx[n] == whole[n] {
			n++
		}
		if n == 0 || n == len(whole) {
			return nil, nil, fmt.Errorf("%w: continuation %q", ErrEmpty, cont)
		}
		ctx = whole[:n]
	}
	tgt = append([]int(nil), whole[len(ctx):]...)
	ctx = append([]int(nil), ctx...)
	if maxLen > 0 {
		if len(tgt) > maxLen-1 {
			tgt = tgt[:max(1, maxLen-1)]
		}
		if over := len(ctx) + len(tgt) - maxLen; over > 0 {
			// Keep ctx[0] (BOS) and drop the oldest prompt tokens after it.
			keep := max(1, len(ctx)-over)
			ctx = append(ctx[:1:1], ctx[len(ctx)-(keep-1):]...)
		}
	}
	return ctx, tgt, nil
}

func equalPrefix(a, prefix []int) bool {
	if len(a) < len(prefix) {
		return false
	}
	for i, v := range prefix {
		if a[i] != v {
			return false
		}
	}
	return true
}

// RenderItems renders examples for training. With one template every example
// uses it (a prompt expert); with several, each example is rendered by a
// template drawn with the seed (a dataset expert: all templates of the
// dataset, mixed). Examples a template gives no target for (ErrNoTarget), or
// an empty input, are skipped and counted; other render errors are returned.
// fm (may be nil) is applied to every example first.
func RenderItems(ex []Example, ts []Template, fm FieldMap, task int, seed uint64) (items []Item, skipped int, err error) {
	if len(ts) == 0 {
		return nil, 0, fmt.Errorf("%w: no templates", ErrBadTemplate)
	}
	r := rand.New(rand.NewPCG(seed, 0x7e3a))
	for _, e := range ex {
		t := ts[0]
		if len(ts) > 1 {
			t = ts[r.IntN(len(ts))]
		}
		rd, err := t.Render(fm.Apply(e))
		if errors.Is(err, ErrNoTarget) || (err == nil && (strings.TrimSpace(rd.Input) == "" || rd.Target == "")) {
			skipped++
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("template %q: %w", t.Name, err)
		}
		items = append(items, Item{Rendered: rd, Template: t.Name, Task: task})
	}
	return items, skipped, nil
}
