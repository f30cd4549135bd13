package main

import (
	"math"
	"strings"
	"testing"
)

func TestBars(t *testing.T) {
	var ds []decision
	add := func(fam, routed string, n int) {
		for range n {
			ds = append(ds, decision{Family: fam, Routed: routed})
		}
	}
	for _, f := range families {
		add(f, f, 9)
		add(f, "fallback", 1)
	}
	// The held-out families: 27 of 40 prompts right (67.5%), the last 9 of 20 (45%).
	add(heldOut[2], "sentiment", 10)
	add(none, "fallback", 8)
	add(none, "sentiment", 2)
	q1 := score(1, ds)
	rep := &Report{Splits: []SplitReport{{Split: "test", Q: []QReport{q1}}},
		Templated: &TemplatedReport{Qs: []int{1, 32}, Mean: map[string]num{"q1": 0.9, "q32": 0.95}}}
	got := map[string]Bar{}
	for _, b := range bars(rep, "test", true) {
		got[b.Name] = b
	}
	want := map[string]bool{
		"in-domain top-1":                       true,  // 90 of 110
		"every family's top-1":                  false, // heldOut[2]: 9 of 20
		"out-of-domain fallback":                true,  // 8 of 10
		"in-domain fallback":                    true,  // 10 of 110
		"held-out families, experts added live": false,
		"template-rendered, Q = 1":              true,
		"template-rendered, Q = 32":             false,
	}
	for name, met := range want {
		b, ok := got[name]
		if !ok {
			t.Errorf("no bar %q", name)
			continue
		}
		if b.Met != met {
			t.Errorf("%s: met %v, want %v (%s against %s)", name, b.Met, met, b.Measured, b.Target)
		}
	}
	if b := got["held-out families, experts added live"]; !strings.HasPrefix(b.Measured, "67.5%") || !strings.HasSuffix(b.Interval, "(27 of 40)") {
		t.Errorf("held-out pooled share %q, interval %q, want 67.5%% of 27 of 40", b.Measured, b.Interval)
	}
	if b := got["every family's top-1"]; !strings.HasPrefix(b.Interval, heldOut[2]+" ") || !strings.HasSuffix(b.Interval, "(9 of 20)") {
		t.Errorf("lowest family's interval %q, want %s's 9 of 20", b.Interval, heldOut[2])
	}
	if b := got["out-of-domain fallback"]; !strings.HasSuffix(b.Interval, "(8 of 10)") {
		t.Errorf("out-of-domain fallback interval %q, want 8 of 10", b.Interval)
	}
	rep.Splits[0].Split = "fresh"
	fb := bars(rep, "fresh", false)
	if len(fb) != len(got)-2 {
		t.Errorf("fresh split: %d bars, want %d (no template-rendered ones)", len(fb), len(got)-2)
	}
	for _, b := range fb {
		if strings.HasPrefix(b.Name, "template") {
			t.Errorf("fresh split judged on %q", b.Name)
		}
	}
	if bars(&Report{}, "test", true) != nil {
		t.Error("bars without a test split")
	}
}

// TestWilson checks the interval against values computed independently
// (the closed form evaluated in Python).
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{{4, 12, 0.13812, 0.60938}, {0, 10, 0, 0.27753}, {10, 10, 0.72247, 1}, {27, 40, 0.52018, 0.79915}} {
		lo, hi := wilson(c.k, c.n)
		if math.Abs(lo-c.lo) > 1e-4 || math.Abs(hi-c.hi) > 1e-4 {
			t.Errorf("wilson(%d, %d) = %.5f–%.5f, want %.5f–%.5f", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

// TestThresholds counts a client threshold by hand: a request is served by
// an expert only when the server did not fall back and its confidence is at
// or above the threshold.
func TestThresholds(t *testing.T) {
	ds := []decision{
		{Family: "sentiment", Routed: "sentiment", Confidence: 0.4},
		{Family: "sentiment", Routed: "topic", Confidence: 0.1},
		{Family: "topic", Routed: "fallback", Confidence: 0.6},
		{Family: none, Routed: "grammar", Confidence: 0.05},
		{Family: none, Routed: "fallback", Confidence: 0.01},
	}
	rows := thresholds(ds, 3, 2)
	want := map[float64][3]int{0: {3, 1, 1}, 0.05: {3, 1, 1}, 0.1: {2, 1, 0}, 0.5: {0, 0, 0}} // served, right, out of domain served
	for _, r := range rows {
		w, ok := want[r.Min]
		if !ok {
			continue
		}
		out := int(math.Round(float64(r.OutServed) * 2))
		if r.Served != w[0] || r.Right != w[1] || out != w[2] {
			t.Errorf("threshold %g: served %d, right %d, out of domain served %d; want %v", r.Min, r.Served, r.Right, out, w)
		}
		if r.Served > 0 && math.Abs(float64(r.Precision)-float64(r.Right)/float64(r.Served)) > 1e-12 {
			t.Errorf("threshold %g: precision %v", r.Min, r.Precision)
		}
	}
	if r := rows[0]; math.Abs(float64(r.InDomain)-1.0/3) > 1e-12 {
		t.Errorf("recall at 0: %v, want 1/3", r.InDomain)
	}
}
