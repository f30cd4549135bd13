package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// markdown is routing.md.
func markdown(rep *Report) string {
	var sb strings.Builder
	sb.WriteString("# Routing on user-written prompts\n\n")
	fmt.Fprintf(&sb, "Produced by `%s` in %s on %d threads. Commit: `%s`. Date: %s.\n"+
		"Model: %s. Embedder: `%s` (-embedder %s). Experts: %d (the starter library; those of the families %s, "+
		"which the routing encoder never trained on, added live after the catalog opened). Fallback quantile: %g "+
		"(roe serve --fallback; negative: never). min-score: %g. Signature weight: %g, typical-score weight: %g "+
		"(roe serve --signature-weight, --typical-weight). Background: %s (roe serve --background).\n\n",
		rep.Command, time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second), rep.GoMaxProcs, rep.Commit,
		rep.Date, rep.Model, rep.Embedder, rep.EmbedderFlag, rep.Experts, strings.Join(heldOut, ", "), rep.Fallback, rep.MinScore, rep.Signature, rep.Typical, backgroundNote(rep.Background))
	sb.WriteString("Prompts (benchmarks/routing/prompts, see its README) were written by hand the way people write to a " +
		"chat or completions API, not rendered from the library's templates: in-domain ones of the starter library's " +
		"ten task families, and out-of-domain ones (`none`) that no expert fits. Each is routed as `model: \"auto\"` " +
		"through experts.Catalog.Select, as the server does. **Q = 1**: each prompt alone. **Q = " +
		fmt.Sprint(rep.GroupSize) + "**: a family's prompts in file order, in groups of " + fmt.Sprint(rep.GroupSize) +
		" (the first as the prompt, the rest as `routing.queries`). Correct: not a fallback and the top expert is of " +
		"the prompt's family (families.json). AUROC: P(confidence of an in-domain decision > that of an " +
		"out-of-domain one), ties ½; confidence is the routing's calibrated confidence (roe.confidence). With 12 prompts a family per split, " +
		"Q = 1 per-family numbers move in steps of about 8 points and Q = 4 ones (3 groups) in steps of 33.\n\n")
	barsMarkdown(&sb, rep.Bars, false)
	barsMarkdown(&sb, rep.FreshBars, true)
	for _, sr := range rep.Splits {
		splitMarkdown(&sb, sr)
	}
	if rep.Templated != nil {
		templatedMarkdown(&sb, rep.Templated, rep.Experts)
	}
	return sb.String()
}

func splitMarkdown(sb *strings.Builder, sr SplitReport) {
	note := "tuned on"
	if !sr.TunedOn {
		note = "never tuned on"
	}
	fmt.Fprintf(sb, "## Split %s (%s)\n\n", sr.Split, note)
	var counts []string
	for _, f := range append(families, none) {
		counts = append(counts, fmt.Sprintf("%s %d", f, sr.Prompts[f]))
	}
	fmt.Fprintf(sb, "Prompts: %s.\n\n", strings.Join(counts, ", "))
	sb.WriteString("| Q | in-domain decisions | in-domain top-1 | fallback in domain | out-of-domain decisions | fallback out of domain | AUROC |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, q := range sr.Q {
		fmt.Fprintf(sb, "| %d | %d | %s | %s | %d | %s | %.3f |\n", q.Q, q.InDomain, pct(q.Top1), pct(q.FallbackIn),
			q.OutOfDomain, pct(q.FallbackOut), float64(q.AUROC))
	}
	sb.WriteString("\nIn-domain top-1 by family:\n\n| family |")
	for _, q := range sr.Q {
		fmt.Fprintf(sb, " Q = %d |", q.Q)
	}
	sb.WriteString("\n|---|" + strings.Repeat("---:|", len(sr.Q)) + "\n")
	for _, f := range families {
		name := f
		if slices.Contains(heldOut, f) {
			name += " (held out, added live)"
		}
		fmt.Fprintf(sb, "| %s |", name)
		for _, q := range sr.Q {
			fmt.Fprintf(sb, " %s |", pct(q.ByFamily[f]))
		}
		sb.WriteString("\n")
	}
	for _, q := range sr.Q {
		confusionMarkdown(sb, q)
	}
	for _, q := range sr.Q {
		thresholdMarkdown(sb, q)
	}
}

// thresholdMarkdown is a Q's table of client thresholds on roe.confidence.
func thresholdMarkdown(sb *strings.Builder, q QReport) {
	if len(q.Thresholds) == 0 {
		return
	}
	fmt.Fprintf(sb, "\nA client's own threshold on `roe.confidence` at Q = %d: serving the routed expert only at or above it, "+
		"the base model otherwise (0: the server's decision alone). Precision: the share of expert-served requests that got "+
		"their family's expert; recall: in-domain requests served right; out of domain served: requests no expert fits that "+
		"still got one.\n\n| min confidence | served by an expert | precision | in-domain recall | out of domain served |\n|---:|---:|---:|---:|---:|\n", q.Q)
	for _, r := range q.Thresholds {
		fmt.Fprintf(sb, "| %g | %d | %s | %s | %s |\n", r.Min, r.Served, pct(r.Precision), pct(r.InDomain), pct(r.OutServed))
	}
}

// confusionMarkdown is a Q's confusion table (rows: true family, columns:
// routed family or fallback) and each row's most frequent wrong experts.
func confusionMarkdown(sb *strings.Builder, q QReport) {
	cols := append(append([]string{}, families...), extraCols(q)...)
	cols = append(cols, "fallback")
	fmt.Fprintf(sb, "\nConfusion at Q = %d (rows: the prompts' family; columns: the routed expert's family):\n\n| family |", q.Q)
	for _, c := range cols {
		fmt.Fprintf(sb, " %s |", c)
	}
	sb.WriteString(" top wrong experts |\n|---|" + strings.Repeat("---:|", len(cols)) + "---|\n")
	for _, f := range append(families, none) {
		row := q.Confusion[f]
		if row == nil {
			continue
		}
		fmt.Fprintf(sb, "| %s |", f)
		for _, c := range cols {
			if n := row[c]; n > 0 {
				fmt.Fprintf(sb, " %d |", n)
			} else {
				sb.WriteString(" · |")
			}
		}
		fmt.Fprintf(sb, " %s |\n", topN(q.Wrong[f], 3))
	}
}

// extraCols are routed families outside the ten (boolq), sorted.
func extraCols(q QReport) []string {
	known := map[string]bool{"fallback": true}
	for _, f := range families {
		known[f] = true
	}
	set := map[string]bool{}
	for _, row := range q.Confusion {
		for c := range row {
			if !known[c] {
				set[c] = true
			}
		}
	}
	var out []string
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// topN is the n largest counts as "name: count", largest first, ties by name.
func topN(m map[string]int, n int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	var parts []string
	for _, k := range ks[:min(n, len(ks))] {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// templatedMarkdown is section 2 of quality.md, measured here.
func templatedMarkdown(sb *strings.Builder, tr *TemplatedReport, nExperts int) {
	sb.WriteString("## Template-rendered queries (section 2 of quality.md)\n\n")
	fmt.Fprintf(sb, "For reference, routing on the library's own templates: how often the vote of Q query instances "+
		"picks the task's own expert (dataset or prompt expert of the task; `merged/*` count as wrong) over all %d "+
		"experts. Queries are each task's validation (else test) examples rendered with a seeded random template "+
		"(benchmarks/internal/templated, as quality does); %d single queries at Q = 1 and %d draws at larger Q, seed %d.\n\n",
		nExperts, tr.Singles, tr.Trials, tr.Seed)
	sb.WriteString("| task | split |")
	for _, q := range tr.Qs {
		fmt.Fprintf(sb, " Q = %d |", q)
	}
	sb.WriteString(" Q = 1 mistakes (task: count) |\n|---|---|" + strings.Repeat("---:|", len(tr.Qs)) + "---|\n")
	for _, t := range tr.Tasks {
		fmt.Fprintf(sb, "| %s | %s |", t.Task, t.Split)
		for _, q := range tr.Qs {
			fmt.Fprintf(sb, " %s |", pct(num(t.At(q))))
		}
		fmt.Fprintf(sb, " %s |\n", topN(t.Confusion, len(t.Confusion)))
	}
	sb.WriteString("| **mean** | |")
	for _, q := range tr.Qs {
		fmt.Fprintf(sb, " %s |", pct(tr.Mean[fmt.Sprintf("q%d", q)]))
	}
	sb.WriteString(" |\n")
}

// backgroundNote says which general requests the fallback measured requests against.
func backgroundNote(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d general requests (models/background unless -background named a file); the fallback compares the best expert's score less the request's mean score against its 10 nearest of them", n)
}
