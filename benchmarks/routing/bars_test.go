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
	for _, b := range bars(rep) {
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
	if bars(&Report{}) != nil {
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
