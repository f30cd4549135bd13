package train

import (
	"errors"
	"fmt"
	"roe/tasks"
)

// Sequence is one tokenized training example.
type Sequence struct {
	Tokens   []int
	LossMask []bool
	Task     int
	// Weight scales the example's loss contribution (multi-task weighting);
	// 0 counts as 1.
	Weight float64
}

// EncodeItem makes the training sequence of one example: prompt = the rendered
// Input, target = " " + Target followed by EOS (when the tokenizer has one and
// addEOS), tokenized with BOS; the loss mask is true on target tokens only;
// inputs longer than maxLen are cut from the left (see SplitTokens; the EOS
// counts in maxLen).
func EncodeItem(tok tasks.Tokenizer, it tasks.Item, maxLen int, addEOS bool) (Sequence, error) {
	eos, hasEOS := tok.EOS()
	addEOS = addEOS && hasEOS
	room := maxLen
	if addEOS && room > 0 {
		room--
	}
	ctx, tgt, err := tasks.SplitTokens(tok, it.Input, it.Target, room)
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
func EncodeItems(tok tasks.Tokenizer, items []tasks.Item, maxLen int, noEOS bool) ([]Sequence, int, error) {
	var out []Sequence
	skipped := 0
	for _, it := range items {
		s, err := EncodeItem(tok, it, maxLen, !noEOS)
		if errors.Is(err, tasks.ErrEmpty) {
			skipped++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(items) > 0 {
		return nil, skipped, fmt.Errorf("%w: all %d examples", tasks.ErrEmpty, len(items))
	}
	return out, skipped, nil
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
