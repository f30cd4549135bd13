package experts

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"roe/retriever"
)

// A request closer to general requests than to its best expert falls back,
// with the reason and its background score in the roe object; the library's
// own tasks are still served. Without the background the same request is
// served the expert its words match.
func TestBackgroundFallback(t *testing.T) {
	movies, stocks := movieAndStockTexts()
	general := "recommend a great movie with fine acting and a good plot to watch tonight"
	// The background holds the general request itself and requests like it
	// (its score is the mean over a request's BackgroundNeighbors nearest).
	background := []string{general, "recommend a good movie to watch with my kids this weekend",
		"what movie should we watch tonight, something funny", "suggest a film for a date night",
		"recommend a movie with great acting to watch tonight", "a good plot and fine acting: which movie should I watch",
		"recommend a fine movie to watch tonight with a good plot", "what is a great movie to watch tonight",
		"recommend a movie with a good plot", "which film has fine acting and a great plot to watch",
		"recommend a great film to watch tonight",
		"how do I start investing in the stock market with little money", "write a poem about the sea",
		"explain how a mortgage works", "what's a good recipe for banana bread"}
	open := func(bg []string) *fixture {
		enc, err := retriever.NewEncoder(retriever.EncoderConfig{Name: "t", Buckets: 1 << 14, Dim: 64, MinChar: 3, MaxChar: 4, MaxWords: 64, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		setInstanceIDF(enc, movies, stocks, background)
		f := newFixture(t, func(c *Config) { c.Embedder, c.Background, c.FallbackQuantile = enc, bg, 0.5 })
		addTextExperts(t, f, []string{"movies", "stocks"}, movies, stocks)
		return f
	}
	ctx := context.Background()
	review := "great acting, I loved this film and the movie plot"

	f := open(nil)
	sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{general}})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Info.Fallback || sel.Names() != "movies" || sel.Info.Background != nil {
		t.Fatalf("without a background the general request goes to the expert its words match: %+v", sel.Info)
	}

	f = open(background)
	sel, err = f.c.Select(ctx, Request{Model: Auto, Queries: []string{general}})
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Info.Fallback || sel.Adapter != nil || !strings.Contains(sel.Info.Reason, "general requests") || sel.Info.Background == nil || !(*sel.Info.Background > 0) {
		t.Errorf("general request with a background: %+v", sel.Info)
	}
	sel, err = f.c.Select(ctx, Request{Model: Auto, Queries: []string{review}})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Info.Fallback || sel.Names() != "movies" {
		t.Errorf("in-domain request with a background: %+v", sel.Info)
	}
}

func TestReadBackground(t *testing.T) {
	got, err := ReadBackground(strings.NewReader("{\"prompt\": \"a\", \"kind\": \"x\"}\n\n  {\"prompt\": \"b c\"}\n"))
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "b c" {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range []string{"{\"prompt\": \"\"}", "{\"kind\": \"x\"}", "not json", "{\"prompt\": 3}"} {
		if _, err := ReadBackground(strings.NewReader(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	def, err := LoadBackground("", []byte("{\"prompt\": \"z\"}\n"))
	if err != nil || len(def) != 1 {
		t.Errorf("default: %q %v", def, err)
	}
	if none, err := LoadBackground("none", nil); err != nil || none != nil {
		t.Errorf("none: %q %v", none, err)
	}
}

func FuzzReadBackground(f *testing.F) {
	f.Add([]byte("{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"kind\": \"k\"}\n"))
	f.Add([]byte("\n\n{\"prompt\": null}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ReadBackground(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, p := range ps {
			if strings.TrimSpace(p) == "" {
				t.Fatal("an empty prompt read")
			}
		}
	})
}

// A candidate's background score is the mean over the queries its score is
// the mean over: its voters, or every query when it has none.
func TestBackgroundOf(t *testing.T) {
	bgs := []float32{0.1, 0.5, 0.3}
	voted := []string{"a", "b", "a"}
	for _, c := range []struct {
		x    retriever.ExpertScore
		want float64
	}{
		{retriever.ExpertScore{Name: "a", Votes: 2}, 0.2},
		{retriever.ExpertScore{Name: "b", Votes: 1}, 0.5},
		{retriever.ExpertScore{Name: "c"}, 0.3},
	} {
		if got := backgroundOf(bgs, voted, c.x); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: %v, want %v", c.x.Name, got, c.want)
		}
	}
	if got := backgroundOf(nil, voted, retriever.ExpertScore{Name: "a", Votes: 2}); got != 0 {
		t.Errorf("no background: %v", got)
	}
}
