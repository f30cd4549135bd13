package train

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

// ErrEmpty reports a prompt or target that tokenizes to nothing.
var ErrEmpty = errors.New("train: empty prompt or target")

// Item is one rendered training (or evaluation) example.
type Item struct {
	Rendered
	Template string // the template's name
	Task     int    // index of its task (0 = the target task in multi-task runs)
}

// Sequence is one tokenized training example.
type Sequence struct {
	Tokens   []int
	LossMask []bool
	Task     int
	// Weight scales the example's loss contribution (multi-task weighting);
	// 0 counts as 1.
	Weight float64
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

// EncodeItem makes the training sequence of one example: prompt = the rendered
// Input, target = " " + Target followed by EOS (when the tokenizer has one and
// addEOS), tokenized with BOS; the loss mask is true on target tokens only;
// inputs longer than maxLen are cut from the left (see SplitTokens; the EOS
// counts in maxLen).
func EncodeItem(tok Tokenizer, it Item, maxLen int, addEOS bool) (Sequence, error) {
	eos, hasEOS := tok.EOS()
	addEOS = addEOS && hasEOS
	room := maxLen
	if addEOS && room > 0 {
		room--
	}
	ctx, tgt, err := SplitTokens(tok, it.Input, it.Target, room)
	if err != nil {
		return Sequence{}, err
	}
	toks := append(ctx, tgt...)
	if addEOS {
		toks = append(toks, eos)
	}
	mask := make([]bool, len(toks))
	for t := len(ctx); t < len(toks); t++ {
		mask[t] = true
	}
	return Sequence{Tokens: toks, LossMask: mask, Task: it.Task}, nil
}

// EncodeItems encodes every item (see EncodeItem, with EOS unless noEOS),
// skipping those whose prompt or target is empty; it returns how many were
// skipped.
func EncodeItems(tok Tokenizer, items []Item, maxLen int, noEOS bool) ([]Sequence, int, error) {
	var out []Sequence
	skipped := 0
	for _, it := range items {
		s, err := EncodeItem(tok, it, maxLen, !noEOS)
		if errors.Is(err, ErrEmpty) {
			skipped++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(items) > 0 {
		return nil, skipped, fmt.Errorf("%w: all %d examples", ErrEmpty, len(items))
	}
	return out, skipped, nil
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

// MakeBatch puts sequences into one Batch (their tokens and masks are shared).
func MakeBatch(seqs []Sequence) Batch {
	b := Batch{Tokens: make([][]int, len(seqs)), LossMask: make([][]bool, len(seqs))}
	for i, s := range seqs {
		b.Tokens[i], b.LossMask[i] = s.Tokens, s.LossMask
	}
	return b
}

// Batches cuts sequences into batches of size (the last may be shorter), in order.
func Batches(seqs []Sequence, size int) []Batch {
	if size < 1 {
		size = 1
	}
	var out []Batch
	for i := 0; i < len(seqs); i += size {
		out = append(out, MakeBatch(seqs[i:min(i+size, len(seqs))]))
	}
	return out
}
