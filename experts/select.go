package experts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// maxComposed bounds a composition: each distinct one costs a merge.
const maxComposed = 16

// Ref is one expert of an explicit composition.
type Ref struct {
	Name   string
	Weight float64
}

// Routing are a request's routing options (the `routing` body field).
type Routing struct {
	TopK     int      `json:"top_k"`
	MinScore *float64 `json:"min_score"`
	Fallback *float64 `json:"fallback"` // the fallback quantile of this request (Config.FallbackQuantile)
	Queries  []string `json:"queries"`  // extra query instances that vote, as in the paper
	Compose  bool     `json:"compose"`  // merge the top-k experts
}

// Request is what Select needs of a request.
type Request struct {
	Model   string   // the base model's id, Auto or an expert's name
	Experts []Ref    // an explicit composition (overrides Model)
	Merge   string   // the composition's method [Config.MergeMethod]
	Routing *Routing // auto routing options
	Queries []string // the request's own query instances (its prompt)
}

// Selection is the adapter chosen for a request (nil: the base model) and how.
type Selection struct {
	Adapter model.Adapter
	Info    *Info
}

// Names are the experts used, comma-separated ("none" for the base model).
func (s *Selection) Names() string {
	if len(s.Info.Experts) == 0 {
		return "none"
	}
	names := make([]string, len(s.Info.Experts))
	for i, x := range s.Info.Experts {
		names[i] = x.Name
	}
	return strings.Join(names, ",")
}

// Used is one expert in a response's roe object.
type Used struct {
	Name      string  `json:"name"`
	Weight    float64 `json:"weight"`
	Votes     int     `json:"votes,omitempty"`
	Score     float64 `json:"score,omitempty"`
	VoteShare float64 `json:"vote_share,omitempty"`
	// Confidence (auto) is calibrated on the library: the share of the
	// expert's own instances that sit no closer to the library than the
	// request sits to the expert, times the expert's vote share.
	Confidence float64 `json:"confidence"`
}

// Compression says a composition was cut below its exact rank (MaxMergeRank).
type Compression struct {
	Rank      int     `json:"rank"`       // the rank it was cut to
	ExactRank int     `json:"exact_rank"` // the rank at which it is exact
	RelError  float64 `json:"rel_error"`  // ‖ΔW − ΔŴ‖_F / ‖ΔW‖_F over all modules
	MaxError  float64 `json:"max_module_rel_error"`
}

// Info says what served a request: the `roe` object of every response.
type Info struct {
	Mode        string       `json:"mode"` // base, expert, compose, auto or auto-compose
	Experts     []Used       `json:"experts"`
	Merge       string       `json:"merge,omitempty"`
	Compression *Compression `json:"compression,omitempty"` // the merge was lossy (MaxMergeRank)
	Fallback    bool         `json:"fallback"`
	Reason      string       `json:"fallback_reason,omitempty"` // why the base model serves an auto request
	Queries     int          `json:"queries,omitempty"`
	// Background (auto, with a background set) is the request's mean score
	// against its 10 nearest general requests no expert is for (of the
	// catalog's background), subtracted from each
	// candidate's score before its confidence is calibrated.
	Background *float64     `json:"background,omitempty"`
	Confidence float64      `json:"confidence,omitempty"` // auto: the best candidate's
	VoteShare  float64      `json:"vote_share,omitempty"`
	Margin     float64      `json:"margin,omitempty"` // auto: best minus runner-up confidence
	RoutingMS  float64      `json:"routing_ms"`
	Candidates []Used       `json:"candidates,omitempty"` // auto: the ranking the choice came from
	Neighbors  [][]Neighbor `json:"neighbors,omitempty"`  // Route only
	// Unroutable names experts without instances, which auto routing cannot
	// pick: those chosen by name, or (auto) the library's, at most
	// maxUnroutableShown of them, of UnroutableCount.
	Unroutable      []string `json:"unroutable,omitempty"`
	UnroutableCount int      `json:"unroutable_count,omitempty"`
}

// maxUnroutableShown bounds the names an auto response lists in Info.Unroutable.
const maxUnroutableShown = 16

// noteUnroutable fills info's Unroutable with those of names that have no
// instances (names nil: the library's, for auto).
func (c *Catalog) noteUnroutable(info *Info, names []string) {
	var out []string
	if names == nil {
		out = c.Unroutable()
	} else {
		for _, n := range names {
			if c.Has(n) && !c.Routable(n) {
				out = append(out, n)
			}
		}
	}
	info.UnroutableCount = len(out)
	if len(out) > maxUnroutableShown {
		out = out[:maxUnroutableShown]
	}
	info.Unroutable = out
}

// Neighbor is one stored instance near a query.
type Neighbor struct {
	Expert string  `json:"expert"`
	Text   string  `json:"text"`
	Score  float32 `json:"score"`
}

// Select picks the adapter for a request: the base model, a named expert, an
// explicit composition, or auto routing over the request's queries.
func (c *Catalog) Select(ctx context.Context, r Request) (*Selection, error) {
	if err := checkRefs(r.Experts); err != nil {
		return nil, err
	}
	if len(r.Experts) > 0 {
		if r.Routing != nil {
			return nil, invalid("routing", "routing does not apply to an explicit composition (experts)")
		}
		return c.compose(r.Experts, r.Merge)
	}
	if r.Model != Auto {
		if r.Merge != "" {
			return nil, invalid("merge", "merge applies to a composition (experts) or to model %q", Auto)
		}
		if r.Routing != nil && r.Model != "" {
			return nil, invalid("routing", "routing applies to model %q, not to %q", Auto, r.Model)
		}
	}
	switch r.Model {
	case "":
		return nil, invalid("model", "model is required: %q, %q or an expert's name", c.cfg.BaseID, Auto)
	case c.cfg.BaseID:
		return &Selection{Info: &Info{Mode: "base", Experts: []Used{}}}, nil
	case Auto:
		sel, err := c.route(ctx, r.Routing, r.Queries, r.Merge)
		if err == nil {
			c.noteUnroutable(sel.Info, nil)
		}
		return sel, err
	}
	if !c.Has(r.Model) {
		return nil, notFound("model", "the model %q does not exist: use %q, %q or an expert from GET /v1/models", r.Model, c.cfg.BaseID, Auto)
	}
	l, err := c.Adapter(r.Model)
	if err != nil {
		return nil, err
	}
	c.selected(r.Model)
	info := &Info{Mode: "expert", Experts: []Used{{Name: r.Model, Weight: 1}}}
	c.noteUnroutable(info, []string{r.Model})
	return &Selection{Adapter: l, Info: info}, nil
}

func checkRefs(refs []Ref) error {
	if len(refs) > maxComposed {
		return invalid("experts", "at most %d experts in a composition, got %d", maxComposed, len(refs))
	}
	seen := map[string]bool{}
	for i, r := range refs {
		if r.Name == "" {
			return invalid(fmt.Sprintf("experts[%d].name", i), "experts[%d] has no name", i)
		}
		if seen[r.Name] {
			return invalid("experts", "expert %q is listed twice", r.Name)
		}
		seen[r.Name] = true
		if math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) || math.Abs(r.Weight) > 1e3 {
			return invalid(fmt.Sprintf("experts[%d].weight", i), "weight of %q must be a finite number of magnitude ≤ 1000", r.Name)
		}
	}
	return nil
}

// MergeOptions validates a merge method name ("" is the configured default).
func (c *Catalog) MergeOptions(method string) (adapters.MergeOptions, error) {
	m := c.cfg.MergeMethod
	if method != "" {
		m = adapters.Method(method)
	}
	for _, ok := range adapters.Methods() {
		if ok == m {
			return adapters.MergeOptions{Method: m, Rank: c.cfg.MaxMergeRank}, nil
		}
	}
	return adapters.MergeOptions{}, invalid("merge", "unknown merge method %q (known: %v)", method, adapters.Methods())
}

// compression is the Info of a lossy merge, nil for an exact one.
func compression(rep adapters.MergeReport) *Compression {
	if !rep.Compressed {
		return nil
	}
	return &Compression{Rank: rep.Rank, ExactRank: rep.ExactRank, RelError: rep.RelFrobError, MaxError: rep.MaxModuleRelError}
}

func (c *Catalog) compose(refs []Ref, method string) (*Selection, error) {
	o, err := c.MergeOptions(method)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(refs))
	weights := make([]float64, len(refs))
	info := &Info{Mode: "compose", Merge: string(o.Method)}
	for i, r := range refs {
		if !c.Has(r.Name) {
			return nil, notFound(fmt.Sprintf("experts[%d].name", i), "the expert %q does not exist", r.Name)
		}
		names[i], weights[i] = r.Name, r.Weight
		info.Experts = append(info.Experts, Used{Name: r.Name, Weight: r.Weight})
	}
	c.noteUnroutable(info, names)
	if len(refs) == 1 {
		// One expert at a scale: its adapter with the delta scaled as it
		// runs, never a scaled copy.
		l, err := c.Adapter(names[0])
		if err != nil {
			return nil, err
		}
		c.selected(names[0])
		info.Mode, info.Merge = "expert", ""
		if refs[0].Weight == 1 {
			return &Selection{Adapter: l, Info: info}, nil
		}
		return &Selection{Adapter: adapters.Scaled(l, float32(refs[0].Weight)), Info: info}, nil
	}
	l, rep, err := c.merged(names, weights, o)
	if err != nil {
		if errors.Is(err, adapters.ErrMerge) {
			return nil, invalid("experts", "merge: %v", err)
		}
		return nil, err
	}
	info.Compression = compression(rep)
	for _, n := range names {
		c.selected(n)
	}
	return &Selection{Adapter: l, Info: info}, nil
}

// route embeds the query instances, votes, and picks or merges experts.
func (c *Catalog) route(ctx context.Context, rr *Routing, queries []string, method string) (*Selection, error) {
	t0 := time.Now()
	if rr == nil {
		rr = &Routing{}
	}
	if rr.TopK < 0 || rr.TopK > maxComposed {
		return nil, invalid("routing.top_k", "routing.top_k must be in [1, %d], got %d", maxComposed, rr.TopK)
	}
	if rr.MinScore != nil && (math.IsNaN(*rr.MinScore) || math.IsInf(*rr.MinScore, 0)) {
		return nil, invalid("routing.min_score", "routing.min_score must be a finite number")
	}
	alpha := c.cfg.FallbackQuantile
	if rr.Fallback != nil {
		if !(*rr.Fallback >= 0 && *rr.Fallback < 1) {
			return nil, invalid("routing.fallback", "routing.fallback is a share of the library's instances, in [0, 1); got %v", *rr.Fallback)
		}
		alpha = *rr.Fallback
	}
	if method != "" {
		if _, err := c.MergeOptions(method); err != nil {
			return nil, err // refused even when routing picks one expert
		}
	}
	qs := append(append([]string(nil), queries...), rr.Queries...)
	var texts []string
	for _, q := range qs {
		if strings.TrimSpace(q) != "" {
			texts = append(texts, retriever.FormatInstance(c.cfg.InstanceFormat, q, nil))
		}
	}
	info := &Info{Mode: "auto", Experts: []Used{}, Queries: len(texts)}
	if len(texts) == 0 {
		info.Fallback, info.Reason = true, "the request has no text to route by"
		c.metrics.fallbacks.Inc()
		return &Selection{Info: info}, nil
	}
	if len(texts) > c.cfg.MaxQueries {
		return nil, invalid("routing.queries", "at most %d query instances, got %d", c.cfg.MaxQueries, len(texts))
	}
	embs, err := c.embedQueries(ctx, texts)
	if err != nil {
		return nil, err
	}
	// An expert removed between the search and loading its adapter is not an
	// error of the request: decide again on the index as it is now.
	for attempt := 1; ; attempt++ {
		sel, err := c.decide(t0, info, rr, embs, texts, alpha, method)
		if attempt < 4 && (errors.Is(err, ErrNotFound) || errors.Is(err, library.ErrNotFound)) {
			info = &Info{Mode: "auto", Experts: []Used{}, Queries: len(texts)}
			continue
		}
		return sel, err
	}
}

// decide searches the index with the queries' embeddings, votes, calibrates
// and picks (or merges) the experts of an auto request.
func (c *Catalog) decide(t0 time.Time, info *Info, rr *Routing, embs [][]float32, texts []string, alpha float64, method string) (*Selection, error) {
	k := c.cfg.TopK
	if rr.TopK > 0 {
		k = rr.TopK
	}
	opts := retriever.RouteOptions{TopK: max(k, 3), MinScore: c.cfg.MinScore, RunnersUp: true}
	if rr.MinScore != nil {
		opts.MinScore = *rr.MinScore
	}
	if c.lexical != nil {
		opts.Lexical, opts.QueryTexts = c.lexical, texts
	}
	if c.sigs != nil {
		opts.Signatures, opts.SignatureWeight, opts.QueryTexts = c.sigs, c.cfg.SignatureWeight, texts
	}
	ref := c.reference()
	if ref.typical != nil {
		opts.Typical, opts.TypicalWeight, opts.SignatureBoosts = ref.typical, c.cfg.TypicalWeight, ref.boosts
	}
	rt, err := c.index.Route(embs, opts)
	if err != nil {
		return nil, err
	}
	// The request's likeness to general requests (Config.Background): each
	// query's background score (background.scores); a candidate's score (Top1: the mean over
	// the queries that voted for it, or over all without votes) has the mean
	// over the same queries subtracted before calibration, as the reference's
	// instances have theirs.
	var bgs []float32
	var near string
	if c.bg != nil {
		s, ns, err := c.bg.scores(c.index, embs)
		if err != nil {
			return nil, err
		}
		bgs, near = s, ns[0]
	}
	info.RoutingMS = float64(time.Since(t0).Microseconds()) / 1000
	c.metrics.routing.Observe(time.Since(t0).Seconds())
	var bestCal, bg float64 // the best candidate's calibrated score (what the fallback compares) and background score
	for i, x := range rt.Experts {
		xbg := backgroundOf(bgs, rt.Voted, x)
		cal := retriever.Calibrated(ref.loo, x.Top1-xbg)
		if i == 0 {
			bg, bestCal = xbg, cal
			if bgs != nil {
				info.Background = &bg
			}
		}
		conf := cal // a runner-up without votes: how it would stand had it won
		if x.Votes > 0 {
			conf *= x.VoteShare
		}
		info.Candidates = append(info.Candidates, Used{Name: x.Name, Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare, Confidence: conf})
	}
	for _, hs := range rt.Neighbors {
		var ns []Neighbor
		for _, h := range hs {
			ns = append(ns, Neighbor{h.Expert, h.Text, h.Score})
		}
		info.Neighbors = append(info.Neighbors, ns)
	}
	if len(rt.Experts) == 0 {
		info.Fallback, info.Reason = true, "the library has no instances to route to"
		c.metrics.fallbacks.Inc()
		return &Selection{Info: info}, nil
	}
	best := info.Candidates[0]
	info.Confidence, info.VoteShare = best.Confidence, best.VoteShare
	if len(info.Candidates) > 1 {
		info.Margin = best.Confidence - info.Candidates[1].Confidence
	} else {
		info.Margin = best.Confidence
	}
	switch {
	case rt.Fallback:
		info.Fallback, info.Reason = true, fmt.Sprintf("the best expert's score %.3f is below min_score", rt.Experts[0].Top1)
	case bestCal < alpha && c.bg != nil:
		info.Fallback = true
		info.Reason = fmt.Sprintf("the request's best match (%s, score %.3f) less its likeness to general requests (%.3f, its mean score over the %d nearest; nearest %q) is weaker than %s%% of the library's own instances written otherwise (fallback quantile %g)",
			best.Name, rt.Experts[0].Top1, bg, min(BackgroundNeighbors, len(c.bg.prompts)), clip(near, 60), sharePercent(1-bestCal), alpha)
	case bestCal < alpha:
		info.Fallback = true
		info.Reason = fmt.Sprintf("the request's best match (%s, score %.3f) is weaker than %s%% of the library's own instances written otherwise (fallback quantile %g)",
			best.Name, rt.Experts[0].Top1, sharePercent(1-bestCal), alpha)
	}
	if info.Fallback {
		c.metrics.fallbacks.Inc()
		return &Selection{Info: info}, nil
	}
	c.metrics.voteMargin.Observe(info.Margin)
	n := 1
	if rr.Compose || (c.cfg.ComposeMargin > 0 && info.Margin < c.cfg.ComposeMargin) {
		n = min(max(k, 2), len(rt.Experts))
	}
	chosen := rt.Experts[:n]
	if n == 1 {
		x := chosen[0]
		l, err := c.Adapter(x.Name)
		if err != nil {
			return nil, err
		}
		info.Experts = []Used{{Name: x.Name, Weight: 1, Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare, Confidence: best.Confidence}}
		c.selected(x.Name)
		c.routedWith([]string{x.Name}, info.Margin)
		return &Selection{Adapter: l, Info: info}, nil
	}
	o, err := c.MergeOptions(method)
	if err != nil {
		return nil, err
	}
	names := make([]string, n)
	weights := make([]float64, n)
	for i, x := range chosen {
		names[i], weights[i] = x.Name, 1/float64(n)
		info.Experts = append(info.Experts, Used{Name: x.Name, Weight: weights[i], Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare, Confidence: info.Candidates[i].Confidence})
		c.selected(x.Name)
	}
	c.routedWith(names, info.Margin)
	info.Mode, info.Merge = "auto-compose", string(o.Method)
	l, rep, err := c.merged(names, weights, o)
	if err != nil {
		return nil, err
	}
	info.Compression = compression(rep)
	return &Selection{Adapter: l, Info: info}, nil
}

// backgroundOf is candidate x's background score: the mean of bgs ([Q],
// each query's background score; nil: no background, 0) over the
// queries that voted for x (voted: [Q]), or over all of them when none did,
// the queries x's Top1 is the mean over.
func backgroundOf(bgs []float32, voted []string, x retriever.ExpertScore) float64 {
	if len(bgs) == 0 {
		return 0
	}
	var s float64
	n := 0
	for q, b := range bgs {
		if x.Votes == 0 || voted[q] == x.Name {
			s += float64(b)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// sharePercent formats a share in [0, 1] as a percentage that reads 100 only
// when it is 1 (99.95% rounded to "100" would say every instance).
func sharePercent(x float64) string {
	p := strconv.FormatFloat(100*x, 'f', 1, 64)
	if p == "100.0" && x < 1 {
		p = "99.9"
	}
	return strings.TrimSuffix(p, ".0")
}
