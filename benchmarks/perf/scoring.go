package main

import (
	"fmt"
	"time"

	"roe/kernels"
	"roe/model"
)

// ScoringRun is what scoring costs over the forward pass it rides on, on
// the random 135M-shape model: a 128-token context and an 8-token
// continuation (rank classification, `roe score`, lm-eval's loglikelihood).
type ScoringRun struct {
	Threads int `json:"threads"`
	// PrefillMS: the forward over all 136 tokens with the last logits only.
	PrefillMS float64 `json:"prefill_ms"`
	// ScoreMS: model.LogLikelihood of the continuation (logits from the
	// context's last token on, log-softmax per position).
	ScoreMS float64 `json:"score_ms"`
	// AllLogitsMS: the forward with logits at every position (echo).
	AllLogitsMS float64 `json:"all_logits_ms"`
	// EchoMS: that forward plus the log-probability of every prompt token
	// (/v1/completions with echo and logprobs).
	EchoMS float64 `json:"echo_ms"`
}

const scoringCtx, scoringCont = 128, 8

// measureScoring times, best of reps, each way of scoring at each thread count.
func measureScoring(rep *Report, m *model.Model, threads []int, reps int) {
	V := m.Config.VocabSize
	all := ids(scoringCtx+scoringCont, V)
	best := func(f func()) float64 {
		b := time.Duration(1 << 62)
		for range reps + 1 { // the first run warms up
			t0 := time.Now()
			f()
			b = min(b, time.Since(t0))
		}
		return float64(b) / 1e6
	}
	forward := func(s model.Step) []model.Output {
		out, err := m.Forward([]model.Step{s})
		if err != nil {
			fatal(err)
		}
		return out
	}
	for _, t := range threads {
		kernels.SetThreads(t)
		r := ScoringRun{Threads: t}
		r.PrefillMS = best(func() { forward(model.Step{Cache: m.NewCache(), Tokens: all}) })
		r.ScoreMS = best(func() {
			if _, err := m.LogLikelihood(all[:scoringCtx], all[scoringCtx:], nil); err != nil {
				fatal(err)
			}
		})
		r.AllLogitsMS = best(func() { forward(model.Step{Cache: m.NewCache(), Tokens: all, AllLogits: true}) })
		r.EchoMS = best(func() {
			out := forward(model.Step{Cache: m.NewCache(), Tokens: all, AllLogits: true})
			for p := 0; p+1 < len(all); p++ {
				model.LogprobOf(out[0].Logits[p*V:(p+1)*V], all[p+1], 0)
			}
		})
		logf("scoring %d thread(s): prefill %.1f ms, score %.1f ms (%.2f×), all logits %.1f ms, echo %.1f ms (%.2f×)",
			t, r.PrefillMS, r.ScoreMS, r.ScoreMS/r.PrefillMS, r.AllLogitsMS, r.EchoMS, r.EchoMS/r.AllLogitsMS)
		rep.Scoring = append(rep.Scoring, r)
	}
}

func mdScoring(p mdPrinter, rep *Report) {
	if len(rep.Scoring) == 0 {
		return
	}
	p("## Scoring over the forward pass")
	p("")
	p("The random 135M-shape model (float32), a %d-token context and a %d-token continuation, best of several runs. "+
		"Score: `model.LogLikelihood` (what `roe score`, rank-classification eval and lm-eval's loglikelihood run): the LM head only from the context's last token on, then a vectorised log-sum-exp per position. "+
		"Echo: the logits of every position and each prompt token's log-probability (`/v1/completions` with `echo` and `logprobs`), against the same forward with all logits.", scoringCtx, scoringCont)
	p("")
	p("| threads | forward, last logits | score | score ÷ forward | forward, all logits | echo + logprobs | echo ÷ forward (all logits) |")
	p("|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Scoring {
		p("| %d | %.1f ms | %.1f ms | %.2f× | %.1f ms | %.1f ms | %.2f× |", r.Threads, r.PrefillMS, r.ScoreMS, r.ScoreMS/r.PrefillMS, r.AllLogitsMS, r.EchoMS, r.EchoMS/r.AllLogitsMS)
	}
	p("")
}

// scoringGoals: scoring costs at most 10% over the forward pass it needs.
func scoringGoals(rep *Report) []Goal {
	var g []Goal
	for _, r := range rep.Scoring {
		ratio := 1.10 / (r.ScoreMS / r.PrefillMS)
		g = append(g, Goal{fmt.Sprintf("score a continuation, %d thread(s): ≤ 1.10 × the forward", r.Threads), "≤ 1.10×",
			fmt.Sprintf("%.2f×", r.ScoreMS/r.PrefillMS), ratio, ratio >= 1})
		ratio = 1.10 / (r.EchoMS / r.AllLogitsMS)
		g = append(g, Goal{fmt.Sprintf("echo + logprobs, %d thread(s): ≤ 1.10 × the forward with all logits", r.Threads), "≤ 1.10×",
			fmt.Sprintf("%.2f×", r.EchoMS/r.AllLogitsMS), ratio, ratio >= 1})
	}
	return g
}

// writeScoringOnly writes scoring.{json,md} for -only scoring.
func writeScoringOnly(rep *Report) {
	writeOnly(rep, "scoring", "Scoring cost", scoringGoals(rep), mdScoring)
}
