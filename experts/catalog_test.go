package experts

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"roe/internal/testmodel"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// randomExpert is a rank-4 LoRA on q, v and down with random factors.
func randomExpert(t testing.TB, base model.Config, name string, seed uint64, texts ...string) *library.Expert {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	l := adapters.New(base, adapters.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "down_proj"}})
	for layer := 0; layer < base.NumLayers; layer++ {
		for _, p := range []model.Proj{model.ProjQ, model.ProjV, model.ProjDown} {
			out, in := base.ProjShape(p)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for i := range a {
				a[i] = float32(r.NormFloat64() * 0.3)
			}
			for i := range b {
				b[i] = float32(r.NormFloat64() * 0.3)
			}
			l.SetPair(layer, p, &adapters.Pair{A: a, B: b, Rank: 4, In: in, Out: out, Alpha: 8})
		}
	}
	cfg, tensors, err := library.ExpertFromLoRA(l)
	if err != nil {
		t.Fatal(err)
	}
	x := &library.Expert{Manifest: library.Manifest{Name: name, Kind: library.KindImported}, AdapterConfig: cfg, Tensors: tensors}
	for _, tx := range texts {
		x.Instances = append(x.Instances, library.Instance{Text: tx})
	}
	return x
}

type fixture struct {
	m   *model.Model
	emb retriever.Embedder
	lib *library.Library
	c   *Catalog
}

func newFixture(t testing.TB, mutate ...func(*Config)) *fixture {
	t.Helper()
	m, tok := testmodel.Stories260K(t)
	lib, err := library.Open(library.DefaultOptions("").WithInMemory(true).WithFingerprint(m.Fingerprint()))
	if err != nil {
		t.Fatal(err)
	}
	emb := retriever.NewModelEmbedder(m, tok, 0, 0)
	cfg := Config{Library: lib, Base: m, BaseID: "stories260K", Embedder: emb, Logger: quiet()}
	for _, f := range mutate {
		f(&cfg)
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); lib.Close() })
	return &fixture{m, emb, lib, c}
}

// movieAndStockTexts returns two experts' worth of instance contents, six
// film reviews and six market reports (fresh slices: callers edit them).
func movieAndStockTexts() (movies, stocks []string) {
	movies = []string{"the film was a wonderful movie with great acting", "a boring movie, the film dragged on",
		"this film has great actors and a fine plot", "the movie plot was silly but the acting fine",
		"an awful film, the worst movie of the year", "great movie, I loved the film and its actors"}
	stocks = []string{"stocks fell on wall street as markets slid", "the stock market rallied and shares rose",
		"shares of the bank fell after weak earnings", "markets rose as stocks of tech firms climbed",
		"wall street closed lower, stock prices fell", "bank shares rallied on strong earnings"}
	return movies, stocks
}

// setInstanceIDF weighs enc's features by the texts of sets formatted as
// instances are, so the instance format's words weigh nothing, as in a
// trained encoder.
func setInstanceIDF(enc *retriever.Encoder, sets ...[]string) {
	var all []string
	for _, s := range sets {
		for _, t := range s {
			all = append(all, retriever.FormatInstance(retriever.DefaultInstanceFormat, t, nil))
		}
	}
	enc.SetIDF(all)
}

// addTextExperts adds an expert of random weights per name, whose instances
// are the texts of the matching set (seeds 1, 2, … in order).
func addTextExperts(t testing.TB, f *fixture, names []string, sets ...[]string) {
	t.Helper()
	for i, name := range names {
		if _, err := f.c.Add(randomExpert(t, f.m.Config, name, uint64(i+1), sets[i]...), AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// An expert trained on another base model (a library kept from an earlier
// default) is left out of the catalog instead of failing later.
func TestSkipOtherBase(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	lib, err := library.Open(library.DefaultOptions("").WithInMemory(true))
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	emb := retriever.NewModelEmbedder(m, tok, 0, 0)
	for i, c := range []struct{ name, fp string }{{"ours", m.Fingerprint()}, {"theirs", "0123456789abcdef"}} {
		x := randomExpert(t, m.Config, c.name, uint64(i), "a story about "+c.name)
		if x.Instances, err = PrepareInstances(emb, "", x.Instances, 0, 0); err != nil {
			t.Fatal(err)
		}
		x.BaseFingerprint, x.Embedder = c.fp, emb.ID()
		if _, err := lib.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(Config{Library: lib, Base: m, Embedder: emb, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var names []string
	for _, x := range c.List() {
		names = append(names, x.Name)
	}
	if len(names) != 1 || names[0] != "ours" {
		t.Errorf("served experts %v, want [ours]", names)
	}
}

// Experts cannot take a name that is a model id: they would be unreachable.
func TestReservedNames(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"auto", "AUTO", "stories260K"} {
		_, err := f.c.Add(randomExpert(t, f.m.Config, name, 1, "text"), AddOptions{})
		var fe *FieldError
		if !errors.Is(err, ErrReserved) || !errors.As(err, &fe) || fe.Field != "name" {
			t.Errorf("Add(%q) = %v, want ErrReserved on name", name, err)
		}
		_, err = f.c.Merge(MergeSpec{Name: name, Experts: []Ref{{"x", 1}}})
		if !errors.Is(err, ErrReserved) {
			t.Errorf("Merge(%q) = %v, want ErrReserved", name, err)
		}
	}
	if ms, _ := f.lib.List(); len(ms) != 0 {
		t.Errorf("library has %d experts after refused adds", len(ms))
	}
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "autos", 1, "text"), AddOptions{}); err != nil {
		t.Errorf("a name that only contains auto: %v", err)
	}
}

// Client embeddings are kept only when they come from the catalog's embedder;
// foreign or absurd ones are remade, never stored as given.
func TestAddRemakesForeignEmbeddings(t *testing.T) {
	f := newFixture(t)
	huge := make([]float32, f.emb.Dim())
	for i := range huge {
		huge[i] = 3e38
	}
	x := randomExpert(t, f.m.Config, "huge", 1, "once upon a time")
	x.Instances[0].Embedding = huge
	x.Embedder = "someone-else"
	m, err := f.c.Add(x, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := f.lib.Instances(m.Name)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.emb.Embed([]string{retriever.FormatInstance(retriever.DefaultInstanceFormat, "once upon a time", nil)})
	for i, v := range ins[0].Embedding {
		if v != want[0][i] {
			t.Fatalf("stored embedding[%d] = %g, want the embedder's %g", i, v, want[0][i])
		}
	}
	// Claiming the catalog's embedder does not let absurd values in.
	for name, bad := range map[string][]float32{"huge2": huge, "short": {1, 2}, "zero": make([]float32, f.emb.Dim())} { // the library refuses the values, Prepare the dimension
		x := randomExpert(t, f.m.Config, name, 2, "a dragon")
		x.Instances[0].Embedding, x.Embedder = bad, f.emb.ID()
		if _, err := f.c.Add(x, AddOptions{}); !errors.Is(err, library.ErrInvalid) {
			t.Errorf("%s: Add = %v, want ErrInvalid", name, err)
		}
		if f.c.Has(name) {
			t.Errorf("%s was stored", name)
		}
	}
}

// Routing embeddings are bounded: with the budget taken, auto routing waits
// EmbedWait and answers ErrBusy instead of piling up on request goroutines.
func TestRoutingEmbeddingsBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxQueries, c.EmbedBudget, c.EmbedWait = 4, 4, 20*time.Millisecond })
	ctx := context.Background()
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "stories", 1, "once upon a time"), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.embedQ.Acquire(ctx, 3); err != nil { // routing embeddings in progress
		t.Fatal(err)
	}
	two := &Routing{Queries: []string{"a tale"}}
	if _, err := f.c.Select(ctx, Request{Model: Auto, Routing: two, Queries: []string{"a tale"}}); !errors.Is(err, ErrBusy) {
		t.Errorf("over the budget: %v, want ErrBusy", err)
	}
	if sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{"a tale"}}); err != nil || sel.Names() != "stories" {
		t.Errorf("within the budget: %v %v", sel, err)
	}
	f.c.embedQ.Release(3)
	if sel, err := f.c.Select(ctx, Request{Model: Auto, Routing: two, Queries: []string{"a tale"}}); err != nil || sel.Names() != "stories" {
		t.Errorf("budget free: %v %v", sel, err)
	}
	if _, err := f.c.Select(ctx, Request{Model: Auto, Routing: &Routing{Queries: make([]string, 65)}, Queries: []string{"x"}}); err != nil {
		t.Errorf("blank queries do not count: %v", err)
	}
	_, err := f.c.Select(ctx, Request{Model: Auto, Routing: &Routing{Queries: []string{"a", "b", "c", "d", "e"}}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "routing.queries" {
		t.Errorf("5 queries: %v, want a FieldError on routing.queries", err)
	}
}

// A removed expert's selections series is deleted; served ones keep theirs.
func TestSelectionSeriesFollowLibrary(t *testing.T) {
	f := newFixture(t)
	for i, n := range []string{"a", "b"} {
		if _, err := f.c.Add(randomExpert(t, f.m.Config, n, uint64(i), "text "+n), AddOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Select(context.Background(), Request{Model: n}); err != nil {
			t.Fatal(err)
		}
	}
	if got := seriesCount(t, f.c); got != 2 {
		t.Fatalf("%d series, want 2", got)
	}
	if err := f.c.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if got := seriesCount(t, f.c); got != 1 {
		t.Errorf("%d series after removing a, want 1", got)
	}
}

func seriesCount(t *testing.T, c *Catalog) int {
	t.Helper()
	ch := make(chan prometheusMetric, 100)
	c.metrics.selections.Collect(ch)
	close(ch)
	n := 0
	for range ch {
		n++
	}
	return n
}

// Fields that do not apply are refused by name, never ignored.
func TestSelectRefusesFieldsThatDoNotApply(t *testing.T) {
	f := newFixture(t)
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "a", 1, "text"), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r     Request
		field string
	}{
		{Request{Model: "a", Merge: "ties"}, "merge"},
		{Request{Model: "stories260K", Routing: &Routing{}}, "routing"},
		{Request{Model: "a", Routing: &Routing{TopK: 2}}, "routing"},
		{Request{Experts: []Ref{{"a", 1}}, Routing: &Routing{}}, "routing"},
		{Request{Model: Auto, Routing: &Routing{TopK: 99}}, "routing.top_k"},
		{Request{Experts: []Ref{{"a", 1}, {"b", 1}}}, "experts[1].name"},
		{Request{Experts: []Ref{{"a", 2e3}}}, "experts[0].weight"},
		{Request{Model: "nope"}, "model"},
		{Request{Model: Auto, Merge: "bogus", Queries: []string{"text"}}, "merge"},
	} {
		_, err := f.c.Select(context.Background(), c.r)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want an error on %s", c.r, err, c.field)
		}
	}
}

type prometheusMetric = prometheus.Metric

// A composition is exact by default; under a rank cap it is compressed and
// the selection says so, with the error.
func TestComposeReportsCompression(t *testing.T) {
	for _, capRank := range []int{0, 4} {
		f := newFixture(t, func(c *Config) { c.MaxMergeRank = capRank })
		for i, n := range []string{"a", "b"} {
			if _, err := f.c.Add(randomExpert(t, f.m.Config, n, uint64(i+1), "text "+n), AddOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sel, err := f.c.Select(context.Background(), Request{Experts: []Ref{{"a", 0.5}, {"b", 0.5}}})
		if err != nil {
			t.Fatal(err)
		}
		cm := sel.Info.Compression
		switch {
		case capRank == 0 && cm != nil:
			t.Errorf("exact by default, got %+v", cm)
		case capRank == 4 && (cm == nil || cm.Rank != 4 || cm.ExactRank != 8 || !(cm.RelError > 0)):
			t.Errorf("cap 4: compression %+v, want rank 4 of 8 with an error", cm)
		}
	}
}

// Auto routing falls back to the base model, saying why, when a request is
// less like the library than the library's own instances written otherwise;
// a request like an expert's instances is served with a calibrated confidence.
func TestCalibratedFallback(t *testing.T) {
	enc, err := retriever.NewEncoder(retriever.EncoderConfig{Name: "t", Buckets: 1 << 14, Dim: 64, MinChar: 3, MaxChar: 4, MaxWords: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Embedder = enc })
	movies, stocks := movieAndStockTexts()
	// Instances share their expert's instruction, as rendered templates do.
	for i := range movies {
		movies[i] = "Movie review: " + movies[i] + ". Did the reviewer like the movie, positive or negative?"
		stocks[i] = "Financial news: " + stocks[i] + ". Which market moved, stocks or bonds?"
	}
	setInstanceIDF(enc, movies, stocks)
	addTextExperts(t, f, []string{"movies", "stocks"}, movies, stocks)
	ctx := context.Background()
	sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{"was the movie any good? great acting in this film"}})
	if err != nil {
		t.Fatal(err)
	}
	if sel.Info.Fallback || sel.Names() != "movies" || !(sel.Info.Confidence > 0.1) || len(sel.Info.Candidates) < 2 {
		t.Errorf("in-domain request: %+v", sel.Info)
	}
	sel, err = f.c.Select(ctx, Request{Model: Auto, Queries: []string{"quantum lasagna zebra xylophone"}})
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Info.Fallback || sel.Adapter != nil || sel.Info.Reason == "" {
		t.Errorf("unlike anything in the library: %+v", sel.Info)
	}
	never := -1.0
	if _, err := f.c.Select(ctx, Request{Model: Auto, Routing: &Routing{Fallback: &never}, Queries: []string{"x"}}); err == nil {
		t.Error("routing.fallback -1 accepted")
	}
	zero := 0.0
	sel, err = f.c.Select(ctx, Request{Model: Auto, Routing: &Routing{Fallback: &zero}, Queries: []string{"quantum lasagna zebra xylophone"}})
	if err != nil || sel.Info.Fallback {
		t.Errorf("routing.fallback 0 never falls back: %+v %v", sel.Info, err)
	}
}

// Task signatures follow the library: an expert added live is routed by its
// task words, and once removed it is gone from the signatures too.
func TestSignaturesFollowLibrary(t *testing.T) {
	enc, err := retriever.NewEncoder(retriever.EncoderConfig{Name: "t", Buckets: 1 << 14, Dim: 64, MinChar: 3, MaxChar: 4, MaxWords: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Embedder = enc; c.FallbackQuantile = -1 })
	texts := func(instr string, xs ...string) []string {
		var out []string
		for _, x := range xs {
			out = append(out, x+" "+instr)
		}
		return out
	}
	content := []string{"Anna thanked Maria because she helped.", "The dog chased the cat until it was tired.",
		"Tom called Bill because he was late.", "The cup fell off the table because it was wobbly."}
	for i, x := range []struct{ name, instr string }{
		{"sentiment", "Is this review positive or negative?"},
		{"grammar", "Is this sentence grammatical or not?"},
	} {
		if _, err := f.c.Add(randomExpert(t, f.m.Config, x.name, uint64(i+1), texts(x.instr, content...)...), AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	// The query's content is the other experts'; its task words are the pronoun expert's.
	q := []string{"Tom called Bill because he was late. who does the pronoun 'he' refer to?"}
	other := []string{"Sam met Joe after he left work.", "The bird ate the worm because it was hungry.",
		"Lisa hugged Kim when she arrived.", "The box broke the shelf because it was heavy."}
	if _, err := f.c.Add(randomExpert(t, f.m.Config, "pronoun", 3, texts("Which noun does the pronoun refer to?", other...)...), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	sel, err := f.c.Select(ctx, Request{Model: Auto, Queries: q})
	if err != nil || sel.Names() != "pronoun" || f.c.sigs.Len() != 3 {
		t.Fatalf("after adding pronoun: %+v %v (%d signatures)", sel.Info, err, f.c.sigs.Len())
	}
	if err := f.c.Remove("pronoun"); err != nil {
		t.Fatal(err)
	}
	if f.c.sigs.Len() != 2 {
		t.Errorf("signatures after remove: %d experts, want 2", f.c.sigs.Len())
	}
	sel, err = f.c.Select(ctx, Request{Model: Auto, Queries: q})
	if err != nil || sel.Names() == "pronoun" {
		t.Fatalf("after removing pronoun: %+v %v", sel.Info, err)
	}
}

// Each expert's typical score follows the library: computed from its own
// calibration queries as routing scores them, the library's median for an
// expert with one instance, gone with the expert; a negative weight turns
// them off.
func TestTypicalScoresFollowLibrary(t *testing.T) {
	enc, err := retriever.NewEncoder(retriever.EncoderConfig{Name: "t", Buckets: 1 << 14, Dim: 64, MinChar: 3, MaxChar: 4, MaxWords: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Embedder = enc })
	tight := []string{"rate this review: great film", "rate this review: bad film", "rate this review: fine film", "rate this review: dull film"}
	loose := []string{"the cat sat on a mat today", "stocks rose sharply in early trading", "who wrote this old poem", "bake bread at two hundred degrees"}
	for i, x := range []struct {
		name  string
		texts []string
	}{{"tight", tight}, {"loose", loose}, {"lone", []string{"a single instance"}}} {
		if _, err := f.c.Add(randomExpert(t, f.m.Config, x.name, uint64(i+1), x.texts...), AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ref := f.c.reference()
	if len(ref.typical) != 3 {
		t.Fatalf("typical scores %v", ref.typical)
	}
	f.c.mu.RLock()
	cals := maps.Clone(f.c.calib)
	f.c.mu.RUnlock()
	if want := typicalScores(f.c.index, f.c.sigs, f.c.cfg.SignatureWeight, cals); !maps.Equal(ref.typical, want) {
		t.Errorf("typical scores %v, want %v", ref.typical, want)
	}
	if !(ref.typical["tight"] > ref.typical["loose"]) {
		t.Errorf("instances sharing an instruction should be typically closer: %v", ref.typical)
	}
	if mid := (ref.typical["tight"] + ref.typical["loose"]) / 2; math.Abs(ref.typical["lone"]-mid) > 1e-6 {
		t.Errorf("lone: %v, want the median %v", ref.typical["lone"], mid)
	}
	if err := f.c.Remove("loose"); err != nil {
		t.Fatal(err)
	}
	if ref := f.c.reference(); len(ref.typical) != 2 || ref.typical["lone"] != ref.typical["tight"] {
		t.Errorf("after removing loose: %v", ref.typical)
	}
	g := newFixture(t, func(c *Config) { c.Embedder = enc; c.TypicalWeight = -1 })
	if _, err := g.c.Add(randomExpert(t, g.m.Config, "tight", 1, tight...), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if ref := g.c.reference(); ref.typical != nil || len(ref.loo) != len(tight) {
		t.Errorf("weight -1: %+v", ref)
	}
}

// Map places every instance and the queries on the index's principal plane;
// Stats counts an expert's selections and routed margins while it is served.
func TestMapAndStats(t *testing.T) {
	enc, err := retriever.NewEncoder(retriever.EncoderConfig{Name: "t", Buckets: 1 << 14, Dim: 64, MinChar: 3, MaxChar: 4, MaxWords: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Embedder = enc; c.FallbackQuantile = -1 })
	for i, x := range []struct {
		name  string
		texts []string
	}{{"films", []string{"rate this film: great", "rate this film: dull", "rate this film: fine"}},
		{"stocks", []string{"did stocks rise: shares up", "did stocks rise: markets fell"}}} {
		if _, err := f.c.Add(randomExpert(t, f.m.Config, x.name, uint64(i+1), x.texts...), AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := f.c.Select(ctx, Request{Model: Auto, Queries: []string{"rate this film: lovely"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Select(ctx, Request{Model: "films"}); err != nil {
		t.Fatal(err)
	}
	st, ok := f.c.Stats("films")
	if !ok || st.Selections != 2 || st.Routed != 1 || st.LastSelected.IsZero() {
		t.Errorf("films: %+v %v", st, ok)
	}
	if st, ok := f.c.Stats("stocks"); !ok || st.Selections != 0 {
		t.Errorf("stocks: %+v %v", st, ok)
	}
	if _, ok := f.c.Stats("nobody"); ok {
		t.Error("stats of an expert not served")
	}
	m, err := f.c.Map(ctx, []string{"rate this film: superb", "  "}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Instances) != 5 || m.Total != 5 || len(m.Queries) != 1 || m.Queries[0].Text != "rate this film: superb" || m.Embedder != enc.ID() {
		t.Errorf("map: %+v", m)
	}
	if !(m.Variance[0] >= m.Variance[1] && m.Variance[0] > 0 && m.Variance[0]+m.Variance[1] <= 1+1e-9) {
		t.Errorf("variance shares %v", m.Variance)
	}
	if got := clip("héllo wörld", 5); got != "héllo…" || clip("short", 5) != "short" {
		t.Errorf("clip: %q", got)
	}
	if _, err := f.c.Map(ctx, make([]string, maxMapQueries+1), 0); err == nil {
		t.Error("too many queries placed")
	}
	if err := f.c.Remove("films"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.c.Stats("films"); ok {
		t.Error("stats outlive the expert")
	}
}

func TestSharePercent(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 0.5: "50", 0.123: "12.3", 0.9996: "99.9", 1: "100", 0.995: "99.5"} {
		if got := sharePercent(x); got != want {
			t.Errorf("sharePercent(%v) = %q, want %q", x, got, want)
		}
	}
}
