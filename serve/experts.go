package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// AutoModel is the model id that asks roe to route by retrieval.
const AutoModel = "auto"

// ExpertsConfig configures the expert side of the server.
type ExpertsConfig struct {
	Library        *library.Library
	Base           *model.Model
	Embedder       retriever.Embedder
	Normalization  retriever.Normalization // [center-l2]
	InstanceFormat string                  // [retriever.DefaultInstanceFormat]
	Lexical        bool                    // fuse BM25 over instance texts into routing
	TopK           int                     // experts considered by auto routing [1]
	MinScore       float64                 // below it, auto falls back to the base model [0: never]
	ComposeMargin  float64                 // merge the top-k when the vote margin is below it [0: never]
	MergeMethod    adapters.Method         // composition method [linear: the paper's uniform merge]
	MergeCacheMiB  int                     // merged-adapter cache [256]
	Logger         *slog.Logger            // [slog.Default()]
}

// Experts keeps the routing index and the loaded adapters in step with the
// library, through the library's change feed.
type Experts struct {
	cfg     ExpertsConfig
	index   *retriever.Index
	lexical *retriever.Lexical
	cache   *adapters.Cache
	metrics *Metrics
	log     *slog.Logger

	changeMu  sync.Mutex // serialises load and unload (feed and handlers)
	mu        sync.RWMutex
	manifests map[string]library.Manifest
	loras     map[string]*adapters.LoRA // loaded on first use

	cancel context.CancelFunc
	done   chan struct{}
}

// NewExperts indexes the library and follows its change feed until Close.
func NewExperts(cfg ExpertsConfig) (*Experts, error) {
	if cfg.Library == nil || cfg.Base == nil || cfg.Embedder == nil {
		return nil, errors.New("serve: experts need a library, a base model and an embedder")
	}
	if cfg.Normalization == "" {
		cfg.Normalization = retriever.CenterL2
	}
	if cfg.InstanceFormat == "" {
		cfg.InstanceFormat = retriever.DefaultInstanceFormat
	}
	cfg.TopK = defaultInt(cfg.TopK, 1)
	if cfg.MergeMethod == "" {
		cfg.MergeMethod = adapters.MethodLinear
	}
	cfg.MergeCacheMiB = defaultInt(cfg.MergeCacheMiB, 256)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Experts{cfg: cfg, index: retriever.NewIndex(cfg.Embedder.Dim(), cfg.Normalization),
		cache: adapters.NewCache(int64(cfg.MergeCacheMiB) << 20), metrics: NewMetrics(), log: cfg.Logger,
		manifests: map[string]library.Manifest{}, loras: map[string]*adapters.LoRA{}, done: make(chan struct{})}
	if cfg.Lexical {
		lx, err := retriever.NewLexical()
		if err != nil {
			return nil, err
		}
		e.lexical = lx
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	listed := make(chan error, 1)
	var started atomic.Bool // the initial listing is done: later errors are logged
	go func() {
		defer close(e.done)
		err := cfg.Library.SubscribeList(ctx, func(ms []library.Manifest) {
			var first error
			for _, m := range ms {
				if err := e.load(m); err != nil && first == nil {
					first = err
				}
			}
			started.Store(true)
			listed <- first
		}, e.apply)
		if err != nil && ctx.Err() == nil {
			if started.Load() {
				e.log.Error("library change feed ended: routing no longer follows the library", "err", err)
			} else {
				listed <- err
			}
		}
	}()
	if err := <-listed; err != nil {
		cancel()
		<-e.done
		return nil, fmt.Errorf("index the library: %w", err)
	}
	return e, nil
}

// Close stops following the library (it does not close the library).
func (e *Experts) Close() {
	e.cancel()
	<-e.done
	if e.lexical != nil {
		e.lexical.Close()
	}
}

// apply handles one change of the feed.
func (e *Experts) apply(c library.Change) {
	switch c.Op {
	case "add":
		if c.Manifest == nil {
			return
		}
		e.mu.RLock()
		known, ok := e.manifests[c.Name]
		e.mu.RUnlock()
		if ok && known.ID == c.ID {
			return
		}
		if err := e.load(*c.Manifest); err != nil {
			e.log.Error("index expert", "expert", c.Name, "err", err)
		}
	case "remove":
		e.unload(c.Name)
	}
}

// load indexes one expert's instance embeddings, re-embedding them when they
// were made by another embedder.
func (e *Experts) load(m library.Manifest) error {
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	// A handler's load can run after the feed removed or replaced the expert:
	// index only what the library holds now.
	if cur, err := e.cfg.Library.Manifest(m.Name); err != nil || cur.ID != m.ID {
		return nil
	}
	// An expert trained on another base model (a library kept from an earlier
	// default model) cannot be applied to this one: leave it out, loudly.
	if e.cfg.Base != nil && m.BaseFingerprint != "" && m.BaseFingerprint != e.cfg.Base.Fingerprint() {
		e.log.Warn("expert not served: trained on another base model", "expert", m.Name,
			"trained_on", fmt.Sprintf("%.12s", m.BaseFingerprint), "serving", fmt.Sprintf("%.12s", e.cfg.Base.Fingerprint()))
		return nil
	}
	ins, err := e.cfg.Library.Instances(m.Name)
	if err != nil {
		return err
	}
	texts := make([]string, len(ins))
	embs := make([][]float32, len(ins))
	for i, in := range ins {
		texts[i] = in.Text
		embs[i] = in.Embedding
	}
	if len(ins) > 0 && (m.Embedder != e.cfg.Embedder.ID() || m.Dim != e.cfg.Embedder.Dim()) {
		formatted := make([]string, len(ins))
		for i, in := range ins {
			formatted[i] = retriever.FormatInstance(e.cfg.InstanceFormat, in.Text, in.AnswerChoices)
		}
		if embs, err = e.cfg.Embedder.Embed(formatted); err != nil {
			return fmt.Errorf("re-embed %s: %w", m.Name, err)
		}
		e.log.Info("re-embedded expert instances for this embedder", "expert", m.Name, "stored", m.Embedder, "now", e.cfg.Embedder.ID())
	}
	if len(ins) > 0 {
		if err := e.index.Put(m.Name, embs, texts); err != nil {
			return fmt.Errorf("index %s: %w", m.Name, err)
		}
	}
	if e.lexical != nil {
		e.lexical.Remove(m.Name)
		if err := e.lexical.Add(m.Name, texts, m.Description); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.manifests[m.Name] = m
	delete(e.loras, m.Name)
	e.mu.Unlock()
	e.cache.Invalidate(m.Name)
	e.metrics.experts.Set(float64(len(e.list())))
	return nil
}

func (e *Experts) unload(name string) {
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	e.index.Remove(name)
	if e.lexical != nil {
		e.lexical.Remove(name)
	}
	e.mu.Lock()
	delete(e.manifests, name)
	delete(e.loras, name)
	e.mu.Unlock()
	e.cache.Invalidate(name)
	e.metrics.experts.Set(float64(len(e.list())))
}

// list returns the known experts' manifests, by name.
func (e *Experts) list() []library.Manifest {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]library.Manifest, 0, len(e.manifests))
	for _, m := range e.manifests {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Experts) has(name string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.manifests[name]
	return ok
}

// adapter returns an expert's LoRA, reading it from the library once.
func (e *Experts) adapter(name string) (*adapters.LoRA, error) {
	e.mu.RLock()
	l, ok := e.loras[name]
	id := e.manifests[name].ID
	e.mu.RUnlock()
	if ok {
		return l, nil
	}
	x, err := e.cfg.Library.Get(name)
	if err != nil {
		return nil, err
	}
	l, err = x.LoRA(e.cfg.Base.Config)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	// Keep it only if the expert was not replaced while we read it.
	if m, still := e.manifests[name]; still && m.ID == id && x.ID == id {
		e.loras[name] = l
	}
	e.mu.Unlock()
	return l, nil
}

// merged returns the cached merge of experts with weights.
func (e *Experts) merged(names []string, weights []float64, o adapters.MergeOptions) (*adapters.LoRA, error) {
	ls := make([]*adapters.LoRA, len(names))
	for i, n := range names {
		l, err := e.adapter(n)
		if err != nil {
			return nil, err
		}
		ls[i] = l
	}
	o.Weights = weights
	before := e.cache.Len()
	l, _, err := e.cache.Get(names, ls, o)
	if err != nil {
		return nil, err
	}
	if e.cache.Len() > before {
		e.metrics.mergeCache.WithLabelValues("miss").Inc()
	} else {
		e.metrics.mergeCache.WithLabelValues("hit").Inc()
	}
	return l, nil
}

// PrepareInstances samples instances down to s (seeded) and embeds each one's
// formatted text (format: retriever.FormatInstance) where it has no embedding.
func PrepareInstances(emb retriever.Embedder, format string, ins []library.Instance, s int, seed uint64) ([]library.Instance, error) {
	if s > 0 && len(ins) > s {
		r := rand.New(rand.NewPCG(seed, 0x1457))
		idx := r.Perm(len(ins))[:s]
		sort.Ints(idx)
		picked := make([]library.Instance, s)
		for i, j := range idx {
			picked[i] = ins[j]
		}
		ins = picked
	}
	var texts []string
	var at []int
	for i, in := range ins {
		if len(in.Embedding) == 0 {
			texts = append(texts, retriever.FormatInstance(format, in.Text, in.AnswerChoices))
			at = append(at, i)
		}
	}
	if len(texts) > 0 {
		embs, err := emb.Embed(texts)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			ins[i].Embedding = embs[j]
		}
	}
	return ins, nil
}

// UsedExpert is one expert in a response's roe object.
type UsedExpert struct {
	Name      string  `json:"name"`
	Weight    float64 `json:"weight"`
	Votes     int     `json:"votes,omitempty"`
	Score     float64 `json:"score,omitempty"`
	VoteShare float64 `json:"vote_share,omitempty"`
}

// RoeInfo says what served a request: the `roe` object of every response.
type RoeInfo struct {
	Mode       string       `json:"mode"` // base, expert, compose or auto
	Experts    []UsedExpert `json:"experts"`
	Merge      string       `json:"merge,omitempty"`
	Fallback   bool         `json:"fallback"`
	Queries    int          `json:"queries,omitempty"`
	VoteShare  float64      `json:"vote_share,omitempty"`
	Margin     float64      `json:"margin,omitempty"`
	RoutingMS  float64      `json:"routing_ms"`
	Candidates []UsedExpert `json:"candidates,omitempty"` // auto: the ranking the choice came from
	Neighbors  [][]Neighbor `json:"neighbors,omitempty"`  // /v1/route only
}

// Neighbor is one stored instance near a query.
type Neighbor struct {
	Expert string  `json:"expert"`
	Text   string  `json:"text"`
	Score  float32 `json:"score"`
}

// selection is the adapter chosen for a request and how.
type selection struct {
	adapter model.Adapter
	info    *RoeInfo
}

func (s *selection) header() string {
	if len(s.info.Experts) == 0 {
		return "none"
	}
	names := make([]string, len(s.info.Experts))
	for i, x := range s.info.Experts {
		names[i] = x.Name
	}
	return strings.Join(names, ",")
}

type expertRef struct {
	Name   string
	Weight float64
}

func parseExpertRefs(raw []byte) ([]expertRef, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err == nil {
		out := make([]expertRef, len(names))
		for i, n := range names {
			out[i] = expertRef{n, 1}
		}
		return out, checkRefs(out)
	}
	var objs []struct {
		Name   string   `json:"name"`
		Weight *float64 `json:"weight"`
	}
	if err := json.Unmarshal(raw, &objs); err != nil {
		return nil, badRequest("experts", "experts must be a list of names or of {\"name\", \"weight\"} objects")
	}
	out := make([]expertRef, len(objs))
	for i, o := range objs {
		out[i] = expertRef{o.Name, 1}
		if o.Weight != nil {
			out[i].Weight = *o.Weight
		}
	}
	return out, checkRefs(out)
}

// maxComposed bounds a composition: each distinct one costs a merge.
const maxComposed = 16

func checkRefs(refs []expertRef) error {
	if len(refs) > maxComposed {
		return badRequest("experts", "at most %d experts in a composition, got %d", maxComposed, len(refs))
	}
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r.Name] {
			return badRequest("experts", "expert %q is listed twice", r.Name)
		}
		seen[r.Name] = true
		if math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) || math.Abs(r.Weight) > 1e3 {
			return badRequest("experts", "weight of %q must be a finite number of magnitude ≤ 1000", r.Name)
		}
	}
	return nil
}

// selectFor picks the adapter for a request: the base model, a named expert, an
// explicit composition (`experts` + `merge`), or auto routing over queries.
func (s *Server) selectFor(ctx context.Context, r *commonRequest, queries []string) (*selection, error) {
	refs, err := parseExpertRefs(r.Experts)
	if err != nil {
		return nil, err
	}
	e := s.cfg.Experts
	if r.Model == "" {
		return nil, badRequest("model", "model is required: %q, %q or an expert's name", s.cfg.ModelID, AutoModel)
	}
	if len(refs) > 0 || (r.Model != s.cfg.ModelID && r.Model != AutoModel) || r.Routing != nil {
		if e == nil {
			if r.Model == s.cfg.ModelID && len(refs) == 0 {
				return nil, badRequest("routing", "routing needs an expert library")
			}
			return nil, notFound("the model %q does not exist (this server has no expert library)", r.Model)
		}
	}
	if len(refs) > 0 {
		return e.compose(refs, r.Merge)
	}
	switch r.Model {
	case s.cfg.ModelID:
		return &selection{info: &RoeInfo{Mode: "base", Experts: []UsedExpert{}}}, nil
	case AutoModel:
		if e == nil {
			return nil, notFound("the model %q needs an expert library", AutoModel)
		}
		return e.route(r.Routing, queries, r.Merge)
	}
	if !e.has(r.Model) {
		return nil, notFound("the model %q does not exist: use %q, %q or an expert from GET /v1/models", r.Model, s.cfg.ModelID, AutoModel)
	}
	l, err := e.adapter(r.Model)
	if err != nil {
		return nil, err
	}
	e.metrics.selections.WithLabelValues(r.Model).Inc()
	return &selection{adapter: l, info: &RoeInfo{Mode: "expert", Experts: []UsedExpert{{Name: r.Model, Weight: 1}}}}, nil
}

// mergeOptions validates a merge method name.
func (e *Experts) mergeOptions(method string) (adapters.MergeOptions, error) {
	m := e.cfg.MergeMethod
	if method != "" {
		m = adapters.Method(method)
	}
	for _, ok := range adapters.Methods() {
		if ok == m {
			return adapters.MergeOptions{Method: m}, nil
		}
	}
	return adapters.MergeOptions{}, badRequest("merge", "unknown merge method %q", method)
}

func (e *Experts) compose(refs []expertRef, method string) (*selection, error) {
	o, err := e.mergeOptions(method)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(refs))
	weights := make([]float64, len(refs))
	info := &RoeInfo{Mode: "compose", Merge: string(o.Method)}
	for i, r := range refs {
		if !e.has(r.Name) {
			return nil, notFound("the expert %q does not exist", r.Name)
		}
		names[i], weights[i] = r.Name, r.Weight
		info.Experts = append(info.Experts, UsedExpert{Name: r.Name, Weight: r.Weight})
	}
	if len(refs) == 1 && refs[0].Weight == 1 {
		l, err := e.adapter(names[0])
		if err != nil {
			return nil, err
		}
		info.Mode, info.Merge = "expert", ""
		return &selection{adapter: l, info: info}, nil
	}
	l, err := e.merged(names, weights, o)
	if err != nil {
		return nil, badRequest("experts", "merge: %v", err)
	}
	for _, n := range names {
		e.metrics.selections.WithLabelValues(n).Inc()
	}
	return &selection{adapter: l, info: info}, nil
}

// route embeds the query instances, votes, and picks or merges experts.
func (e *Experts) route(rr *RoutingRequest, queries []string, method string) (*selection, error) {
	t0 := time.Now()
	if rr == nil {
		rr = &RoutingRequest{}
	}
	qs := append(append([]string(nil), queries...), rr.Queries...)
	var texts []string
	for _, q := range qs {
		if strings.TrimSpace(q) != "" {
			texts = append(texts, retriever.FormatInstance(e.cfg.InstanceFormat, q, nil))
		}
	}
	info := &RoeInfo{Mode: "auto", Experts: []UsedExpert{}, Queries: len(texts)}
	if len(texts) == 0 {
		info.Fallback = true
		e.metrics.fallbacks.Inc()
		return &selection{info: info}, nil
	}
	if len(texts) > 64 {
		return nil, badRequest("routing.queries", "at most 64 query instances, got %d", len(texts))
	}
	embs, err := e.cfg.Embedder.Embed(texts)
	if err != nil {
		return nil, err
	}
	k := e.cfg.TopK
	if rr.TopK > 0 {
		k = min(rr.TopK, 16)
	}
	opts := retriever.RouteOptions{TopK: max(k, 2), MinScore: e.cfg.MinScore}
	if rr.MinScore != nil {
		opts.MinScore = *rr.MinScore
	}
	if e.lexical != nil {
		opts.Lexical, opts.QueryTexts = e.lexical, texts
	}
	rt, err := e.index.Route(embs, opts)
	if err != nil {
		return nil, err
	}
	info.RoutingMS = float64(time.Since(t0).Microseconds()) / 1000
	e.metrics.routing.Observe(time.Since(t0).Seconds())
	info.VoteShare, info.Margin = rt.Confidence.VoteShare, rt.Confidence.Margin
	for _, x := range rt.Experts {
		info.Candidates = append(info.Candidates, UsedExpert{Name: x.Name, Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare})
	}
	for _, hs := range rt.Neighbors {
		var ns []Neighbor
		for _, h := range hs {
			ns = append(ns, Neighbor{h.Expert, h.Text, h.Score})
		}
		info.Neighbors = append(info.Neighbors, ns)
	}
	if rt.Fallback || len(rt.Experts) == 0 {
		info.Fallback = true
		e.metrics.fallbacks.Inc()
		return &selection{info: info}, nil
	}
	e.metrics.voteMargin.Observe(rt.Confidence.Margin)
	n := 1
	if rr.Compose || (e.cfg.ComposeMargin > 0 && rt.Confidence.Margin < e.cfg.ComposeMargin) {
		n = min(max(k, 2), len(rt.Experts))
	}
	chosen := rt.Experts[:n]
	if n == 1 {
		x := chosen[0]
		l, err := e.adapter(x.Name)
		if err != nil {
			return nil, err
		}
		info.Experts = []UsedExpert{{Name: x.Name, Weight: 1, Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare}}
		e.metrics.selections.WithLabelValues(x.Name).Inc()
		return &selection{adapter: l, info: info}, nil
	}
	o, err := e.mergeOptions(method)
	if err != nil {
		return nil, err
	}
	names := make([]string, n)
	weights := make([]float64, n)
	for i, x := range chosen {
		names[i], weights[i] = x.Name, 1/float64(n)
		info.Experts = append(info.Experts, UsedExpert{Name: x.Name, Weight: weights[i], Votes: x.Votes, Score: x.Score, VoteShare: x.VoteShare})
		e.metrics.selections.WithLabelValues(x.Name).Inc()
	}
	info.Mode, info.Merge = "auto-compose", string(o.Method)
	l, err := e.merged(names, weights, o)
	if err != nil {
		return nil, err
	}
	return &selection{adapter: l, info: info}, nil
}
