package main

import (
	"fmt"
	"math"
	"strings"
)

// Bar is one of the routing work's acceptance bars, judged on this run: the
// test split at Q = 1 (never tuned on) and the template-rendered queries.
type Bar struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// The bars' targets. The template-rendered floor is quality.md section 2 as
// it stood before routing was reworked for user prompts (the plain vote over
// the base model's embeddings): routing on the library's own templates must
// not get worse.
const (
	barTop1        = 0.75 // in-domain top-1
	barFamily      = 0.50 // every family's top-1
	barFallbackOut = 0.75 // out-of-domain prompts that fall back
	barFallbackIn  = 0.10 // in-domain prompts that fall back, at most
	barAUROC       = 0.85
	barHeldOut     = 0.70 // prompts of the held-out families, their experts added live
)

var barTemplated = map[int]float64{1: 0.823, 8: 0.942, 32: 0.979}

// bars judges rep against the targets; nil without a test split.
func bars(rep *Report) []Bar {
	var q1 *QReport
	for i := range rep.Splits {
		if rep.Splits[i].Split != "test" {
			continue
		}
		for j := range rep.Splits[i].Q {
			if rep.Splits[i].Q[j].Q == 1 {
				q1 = &rep.Splits[i].Q[j]
			}
		}
	}
	if q1 == nil {
		return nil
	}
	atLeast := func(name string, target, got float64) Bar {
		return Bar{name, "≥ " + pct(num(target)) + "%", pct(num(got)) + "%", got >= target}
	}
	out := []Bar{atLeast("in-domain top-1", barTop1, float64(q1.Top1))}

	worst, worstName := math.Inf(1), ""
	var below []string
	for _, f := range families {
		v, ok := q1.ByFamily[f]
		if !ok {
			continue
		}
		if float64(v) < worst {
			worst, worstName = float64(v), f
		}
		if float64(v) < barFamily {
			below = append(below, fmt.Sprintf("%s %s%%", f, pct(v)))
		}
	}
	b := Bar{"every family's top-1", "≥ " + pct(num(barFamily)) + "%", fmt.Sprintf("lowest: %s %s%%", worstName, pct(num(worst))), len(below) == 0}
	if len(below) > 0 {
		b.Measured = "below: " + strings.Join(below, ", ")
	}
	out = append(out, b,
		atLeast("out-of-domain fallback", barFallbackOut, float64(q1.FallbackOut)),
		Bar{"in-domain fallback", "≤ " + pct(num(barFallbackIn)) + "%", pct(q1.FallbackIn) + "%", float64(q1.FallbackIn) <= barFallbackIn},
		Bar{"AUROC of the confidence", fmt.Sprintf("≥ %.2f", barAUROC), fmt.Sprintf("%.3f", float64(q1.AUROC)), float64(q1.AUROC) >= barAUROC})

	// The held-out families' prompts, pooled: a share of prompts, not a mean of families.
	right, n := 0, 0
	var each []string
	for _, f := range heldOut {
		k := 0
		for _, d := range q1.Decisions {
			if d.Family == f {
				k++
				if d.Routed == f {
					right++
				}
			}
		}
		n += k
		each = append(each, fmt.Sprintf("%s %s%%", f, pct(q1.ByFamily[f])))
	}
	if n > 0 {
		b := atLeast("held-out families, experts added live", barHeldOut, float64(right)/float64(n))
		b.Measured = fmt.Sprintf("%s (%d of %d: %s)", b.Measured, right, n, strings.Join(each, ", "))
		out = append(out, b)
	}

	if tr := rep.Templated; tr != nil {
		for _, q := range tr.Qs {
			t, ok := barTemplated[q]
			if !ok {
				continue
			}
			out = append(out, atLeast(fmt.Sprintf("template-rendered, Q = %d", q), t, float64(tr.Mean[fmt.Sprintf("q%d", q)])))
		}
	}
	return out
}

// barsMarkdown is the bars' table.
func barsMarkdown(sb *strings.Builder, bs []Bar) {
	if len(bs) == 0 {
		return
	}
	sb.WriteString("## Bars (test split, Q = 1; template-rendered means)\n\n")
	sb.WriteString("The acceptance bars of the routing work, judged on this run. Two more live elsewhere: the embedder's " +
		"share of time-to-first-token (`make bench`, perf.md) and the seen-task accuracy of `auto` (`make bench-quality`, quality.md section 1).\n\n")
	sb.WriteString("| bar | target | this run | met |\n|---|---|---|---|\n")
	for _, b := range bs {
		met := "no"
		if b.Met {
			met = "yes"
		}
		fmt.Fprintf(sb, "| %s | %s | %s | %s |\n", b.Name, b.Target, b.Measured, met)
	}
	sb.WriteString("\n")
}
