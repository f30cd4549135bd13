package model

import "math"

// MaxTopLogprobs is the most alternatives a TokenLogprob lists.
const MaxTopLogprobs = 20

// TokenLogprob is one token's log-probability under the model, with the most
// likely tokens at its position. Log-probabilities are the log-softmax of the
// model's own logits, before logit bias, penalties and temperature (vLLM's
// default "raw" log-probabilities).
type TokenLogprob struct {
	ID      int
	Logprob float64
	Top     []Alternative // most likely first; ties by lower id
}

// Alternative is one of the most likely tokens at a position.
type Alternative struct {
	ID      int
	Logprob float64
}

// LogprobOf scores token id against logits: [V], with the top most likely
// tokens (at most MaxTopLogprobs).
func LogprobOf(logits []float32, id, top int) TokenLogprob {
	lse := logSumExp(logits)
	t := TokenLogprob{ID: id, Logprob: float64(logits[id]) - lse}
	top = min(max(top, 0), MaxTopLogprobs, len(logits))
	if top == 0 {
		return t
	}
	// Insertion into a short sorted list: most logits fail the first
	// comparison, so this is one pass over V.
	best := make([]Alternative, 0, top)
	for i, v := range logits {
		x := float64(v)
		if math.IsNaN(x) {
			continue
		}
		if len(best) == top && x <= best[top-1].Logprob {
			continue
		}
		j := len(best)
		if j < top {
			best = append(best, Alternative{})
		} else {
			j = top - 1
		}
		for j > 0 && best[j-1].Logprob < x {
			best[j] = best[j-1]
			j--
		}
		best[j] = Alternative{i, x}
	}
	for i := range best {
		best[i].Logprob -= lse
	}
	t.Top = best
	return t
}
