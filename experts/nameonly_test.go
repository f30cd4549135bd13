package experts

import (
	"context"
	"errors"
	"slices"
	"testing"

	"roe/library"
)

// An expert added by name only is served by name, never picked by auto
// routing (the lexical index included), said so in Info, and becomes
// routable once SetInstances gives it instances.
func TestNameOnlyExpert(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Lexical = true; c.FallbackQuantile = -1 })
	ctx := context.Background()
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "bare", 1), AddOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add without instances nor NameOnly: %v", err)
	}
	bare := randomExpert(t, f.m.Config, "bare", 1)
	bare.Description = "the dragon story expert"
	m, err := f.c.Add(bare, AddOptions{NameOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.NumInstances != 0 || !f.c.Has("bare") || f.c.Routable("bare") {
		t.Fatalf("manifest %+v, has %v, routable %v", m, f.c.Has("bare"), f.c.Routable("bare"))
	}
	// Auto with only a name-only expert: nothing to route to.
	sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{"the dragon story"}})
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Info.Fallback || sel.Adapter != nil || !slices.Equal(sel.Info.Unroutable, []string{"bare"}) {
		t.Fatalf("auto over a name-only library: %+v", sel.Info)
	}
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "cats", 2, "a story about cats", "the cat sat"), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"the dragon story expert", "a story about cats"} {
		sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{q}})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range append(sel.Info.Experts, sel.Info.Candidates...) {
			if u.Name == "bare" {
				t.Fatalf("auto routing considered the name-only expert for %q: %+v", q, sel.Info)
			}
		}
		if sel.Info.UnroutableCount != 1 {
			t.Errorf("auto Info.Unroutable %v (%d)", sel.Info.Unroutable, sel.Info.UnroutableCount)
		}
	}
	sel, err = f.c.Select(ctx, Request{Model: "bare"})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Adapter == nil || sel.Info.Mode != "expert" || !slices.Equal(sel.Info.Unroutable, []string{"bare"}) {
		t.Fatalf("by name: %+v", sel.Info)
	}
	// One expert at a scale is that expert, applied unmerged.
	sel, err = f.c.Select(ctx, Request{Experts: []Ref{{"bare", 0.5}}})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Info.Mode != "expert" || sel.Info.Merge != "" || sel.Info.Experts[0].Weight != 0.5 || sel.Adapter == nil {
		t.Fatalf("scaled: %+v", sel.Info)
	}
	m2, err := f.c.SetInstances("bare", []library.Instance{{Text: "a dragon flew over the castle"}, {Text: "the dragon breathed fire"}}, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID == m.ID || m2.NumInstances != 2 || !f.c.Routable("bare") || m2.Description != bare.Description {
		t.Fatalf("after SetInstances: %+v", m2)
	}
	sel, err = f.c.Select(ctx, Request{Model: Auto, Queries: []string{"the dragon breathed fire"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Info.Experts) != 1 || sel.Info.Experts[0].Name != "bare" || sel.Info.Unroutable != nil {
		t.Fatalf("auto after SetInstances: %+v", sel.Info)
	}
	if _, err := f.c.SetInstances("nope", []library.Instance{{Text: "x"}}, AddOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetInstances of a missing expert: %v", err)
	}
}
