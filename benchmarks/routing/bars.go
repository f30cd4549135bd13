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
	// Interval is the 95% Wilson score interval of a share counted over
	// prompts: on a dozen prompts a family, one prompt moves a share by 8
	// points, and the interval says how much a bar's verdict rests on that.
	Interval string `json:"interval_95,omitempty"`
	Met      bool   `json:"met"`
}

// wilson is the 95% Wilson score interval of k successes in n trials.
func wilson(k, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.959964
	p, nn := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nn
	c := (p + z*z/(2*nn)) / d
	h := z * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn)) / d
	return max(0, c-h), min(1, c+h)
}

// interval formats wilson(k, n) with the counts.
func interval(k, n int) string {
	lo, hi := wilson(k, n)
	return fmt.Sprintf("%s–%s%% (%d of %d)", pct(num(lo)), pct(num(hi)), k, n)
}

// count returns how many of q's decisions on prompts of family fam (none:
// out of domain; "" every in-domain family) were routed as ok says.
func count(q *QReport, fam string, ok func(d decision) bool) (k, n int) {
	for _, d := range q.Decisions {
		in := d.Family != none
		if (fam == "" && in) || (fam != "" && d.Family == fam) {
			n++
			if ok(d) {
				k++
			}
		}
	}
	return k, n
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

// bars judges split of rep against the targets (with the template-rendered
// means when templated); nil without that split.
func bars(rep *Report, split string, templated bool) []Bar {
	var q1 *QReport
	for i := range rep.Splits {
		if rep.Splits[i].Split != split {
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
		return Bar{name, "≥ " + pct(num(target)) + "%", pct(num(got)) + "%", "", got >= target}
	}
	right := func(d decision) bool { return d.Routed == d.Family }
	fellBack := func(d decision) bool { return d.Routed == "fallback" }
	counted := func(b Bar, k, n int) Bar {
		b.Interval = interval(k, n)
		return b
	}
	k, n := count(q1, "", right)
	out := []Bar{counted(atLeast("in-domain top-1", barTop1, float64(q1.Top1)), k, n)}

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
	b := Bar{"every family's top-1", "≥ " + pct(num(barFamily)) + "%", fmt.Sprintf("lowest: %s %s%%", worstName, pct(num(worst))), "", len(below) == 0}
	if len(below) > 0 {
		b.Measured = "below: " + strings.Join(below, ", ")
	}
	if worstName != "" {
		k, n := count(q1, worstName, right)
		b.Interval = worstName + " " + interval(k, n)
	}
	kOut, nOut := count(q1, none, fellBack)
	kIn, nIn := count(q1, "", fellBack)
	out = append(out, b,
		counted(atLeast("out-of-domain fallback", barFallbackOut, float64(q1.FallbackOut)), kOut, nOut),
		counted(Bar{"in-domain fallback", "≤ " + pct(num(barFallbackIn)) + "%", pct(q1.FallbackIn) + "%", "", float64(q1.FallbackIn) <= barFallbackIn}, kIn, nIn),
		Bar{"AUROC of the confidence", fmt.Sprintf("≥ %.2f", barAUROC), fmt.Sprintf("%.3f", float64(q1.AUROC)), "", float64(q1.AUROC) >= barAUROC})

	// The held-out families' prompts, pooled: a share of prompts, not a mean of families.
	kh, nh := 0, 0
	var each []string
	for _, f := range heldOut {
		k, n := count(q1, f, right)
		kh, nh = kh+k, nh+n
		each = append(each, fmt.Sprintf("%s %s%%", f, pct(q1.ByFamily[f])))
	}
	if nh > 0 {
		b := counted(atLeast("held-out families, experts added live", barHeldOut, float64(kh)/float64(nh)), kh, nh)
		b.Measured = fmt.Sprintf("%s (%s)", b.Measured, strings.Join(each, ", "))
		out = append(out, b)
	}

	if tr := rep.Templated; tr != nil && templated {
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

// barsMarkdown is the bars' table: of the test split (fresh false) or the
// fresh one.
func barsMarkdown(sb *strings.Builder, bs []Bar, fresh bool) {
	if len(bs) == 0 {
		return
	}
	if fresh {
		sb.WriteString("## The same bars on the fresh split (Q = 1)\n\n")
		sb.WriteString("Prompts written later, by someone who saw neither the library's templates and data nor the dev and test prompts " +
			"(prompts/README.md): a second check that the test split's verdicts are not the product of having looked at it.\n\n")
	} else {
		sb.WriteString("## Bars (test split, Q = 1; template-rendered means)\n\n")
		sb.WriteString("The acceptance bars of the routing work, judged on this run. Two more live elsewhere: the embedder's " +
			"share of time-to-first-token (`make bench`, perf.md) and the seen-task accuracy of `auto` (`make bench-quality`, quality.md section 1).\n\n")
		sb.WriteString("The 95% interval is the Wilson score interval of the share over the prompts counted: with a dozen prompts a family, " +
			"one prompt moves a share by 8 points, so a verdict whose interval straddles the target rests on a prompt or two.\n\n")
	}
	sb.WriteString("| bar | target | this run | 95% interval | met |\n|---|---|---|---|---|\n")
	for _, b := range bs {
		met := "no"
		if b.Met {
			met = "yes"
		}
		iv := b.Interval
		if iv == "" {
			iv = "—"
		}
		fmt.Fprintf(sb, "| %s | %s | %s | %s | %s |\n", b.Name, b.Target, b.Measured, iv, met)
	}
	sb.WriteString("\n")
}
