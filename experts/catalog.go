package experts

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"roe/adapters"
	"roe/library"
	"roe/model"
	"roe/retriever"
)

// Auto is the model id that asks roe to route by retrieval.
const Auto = "auto"

// DefaultFallbackQuantile is Config.FallbackQuantile's default. Chosen on
// the user-prompt routing benchmark's dev split (benchmarks/results/routing.md)
// over four routing encoders (seeds) as the largest that keeps every one's
// in-domain fallback under 10%: at 1.5% of the library's own instances
// (written otherwise) falling back, 2.5–6.7% of in-domain prompts and 74–80%
// of out-of-domain ones fell back (2%: up to 10.8% in domain). User prompts
// sit far below the library's own instances, so the useful range of the knob
// is narrow.
const DefaultFallbackQuantile = 0.015

// Config configures a Catalog; zero values take the defaults in brackets.
type Config struct {
	Library        *library.Library
	Base           *model.Model
	BaseID         string // the base model's id in the API (reserved, like Auto) ["base"]
	Embedder       retriever.Embedder
	Normalization  retriever.Normalization // [the embedder's: retriever.NormalizationOf]
	InstanceFormat string                  // [retriever.DefaultInstanceFormat]
	Lexical        bool                    // fuse BM25 over instance texts into routing
	// SignatureWeight weighs each expert's task signature (retriever.Signatures:
	// the words that set its instances apart from the library's) against the
	// dense score [retriever.DefaultSignatureWeight; negative: dense only].
	SignatureWeight float64
	// TypicalWeight weighs each expert's typical score (retriever.Typical: the
	// median score of its instances, written otherwise, against its other
	// instances), subtracted from its score in routing
	// [retriever.DefaultTypicalWeight; negative: none].
	TypicalWeight float64
	TopK          int     // experts considered by auto routing [1]
	MinScore      float64 // an absolute score below which auto falls back [0: none]
	// FallbackQuantile is the fallback knob: the share of the library's own
	// instances that would fall back if sent as requests. A request falls back
	// to the base model when its calibrated confidence in the best expert
	// (Used.Confidence) is below it [DefaultFallbackQuantile; negative: never].
	FallbackQuantile float64
	// Background are general requests that no expert is for (models.Background
	// is roe serve's default): a request is scored by how much closer it is to
	// its best expert than to the nearest of these (background.scores), and
	// so is every instance of the reference the fallback is calibrated on
	// [nil: none].
	Background    []string
	ComposeMargin float64         // merge the top-k when the vote margin is below it [0: never]
	MergeMethod   adapters.Method // composition method [linear: the paper's uniform merge]
	MergeCacheMiB int             // merged-adapter cache [256]
	// MaxMergeRank compresses a composition whose exact rank is above it by
	// truncated SVD (lossy, reported in Info.Compression) [0: always exact].
	MaxMergeRank int
	// EmbedBudget bounds the query instances being embedded for routing at
	// once; a request waits up to EmbedWait for its share, then gets ErrBusy
	// [2·MaxQueries, 1 s].
	EmbedBudget int
	EmbedWait   time.Duration
	MaxQueries  int // query instances one request may route with [64]
	Logger      *slog.Logger
}

// Catalog keeps the routing index and the loaded adapters in step with the
// library, through the library's change feed.
type Catalog struct {
	cfg     Config
	index   *retriever.Index
	lexical *retriever.Lexical
	sigs    *retriever.Signatures // nil: dense only
	bg      *background           // nil: no background
	cache   *adapters.Cache
	metrics *Metrics
	log     *slog.Logger
	embedQ  *semaphore.Weighted // query instances being embedded for routing

	changeMu  sync.Mutex // serialises load and unload (feed and handlers)
	mu        sync.RWMutex
	refMu     sync.Mutex // one rebuild of ref at a time
	manifests map[string]library.Manifest
	loras     map[string]*adapters.LoRA // loaded on first use
	calib     map[string]calibration    // each expert's instances written otherwise, as queries
	ref       *reference                // built from calib; nil when stale
	refKick   chan struct{}             // a change: rebuild ref off the request path
	refDone   chan struct{}             // closed when refresh returns
	calibGen  uint64                    // bumped by every change of calib
	series    map[string]bool           // experts with their own selections series
	stats     map[string]*ExpertStats   // served experts' selections since they were loaded

	cancel context.CancelFunc
	done   chan struct{}
}

// Open indexes the library and follows its change feed until Close.
func Open(cfg Config) (*Catalog, error) {
	if cfg.Library == nil || cfg.Base == nil || cfg.Embedder == nil {
		return nil, errors.New("experts: a catalog needs a library, a base model and an embedder")
	}
	if cfg.Normalization == "" {
		cfg.Normalization = retriever.NormalizationOf(cfg.Embedder)
	}
	if cfg.InstanceFormat == "" {
		cfg.InstanceFormat = retriever.DefaultInstanceFormat
	}
	if cfg.BaseID == "" {
		cfg.BaseID = "base"
	}
	cfg.TopK = orDefault(cfg.TopK, 1)
	if cfg.MergeMethod == "" {
		cfg.MergeMethod = adapters.MethodLinear
	}
	cfg.MergeCacheMiB = orDefault(cfg.MergeCacheMiB, 256)
	cfg.MaxQueries = orDefault(cfg.MaxQueries, 64)
	if cfg.FallbackQuantile == 0 {
		cfg.FallbackQuantile = DefaultFallbackQuantile
	}
	cfg.EmbedBudget = max(orDefault(cfg.EmbedBudget, 2*cfg.MaxQueries), cfg.MaxQueries)
	if cfg.EmbedWait <= 0 {
		cfg.EmbedWait = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Catalog{cfg: cfg, index: retriever.NewIndex(cfg.Embedder.Dim(), cfg.Normalization),
		cache: adapters.NewCache(int64(cfg.MergeCacheMiB) << 20), metrics: newMetrics(), log: cfg.Logger,
		embedQ:    semaphore.NewWeighted(int64(cfg.EmbedBudget)),
		manifests: map[string]library.Manifest{}, loras: map[string]*adapters.LoRA{}, series: map[string]bool{},
		stats: map[string]*ExpertStats{},
		calib: map[string]calibration{},
		done:  make(chan struct{})}
	if c.cfg.SignatureWeight == 0 {
		c.cfg.SignatureWeight = retriever.DefaultSignatureWeight
	}
	if c.cfg.SignatureWeight > 0 {
		c.sigs = retriever.NewSignatures()
	}
	if c.cfg.TypicalWeight == 0 {
		c.cfg.TypicalWeight = retriever.DefaultTypicalWeight
	}
	if len(cfg.Background) > 0 {
		bg, err := newBackground(cfg.Embedder, cfg.InstanceFormat, cfg.Background)
		if err != nil {
			return nil, err
		}
		c.bg = bg
	}
	if cfg.Lexical {
		lx, err := retriever.NewLexical()
		if err != nil {
			return nil, err
		}
		c.lexical = lx
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.refKick, c.refDone = make(chan struct{}, 1), make(chan struct{})
	go c.refresh(ctx)
	listed := make(chan error, 1)
	var started atomic.Bool // the initial listing is done: later errors are logged
	go func() {
		defer close(c.done)
		err := cfg.Library.SubscribeList(ctx, func(ms []library.Manifest) {
			var first error
			for _, m := range ms {
				if err := c.load(m); err != nil && first == nil {
					first = err
				}
			}
			started.Store(true)
			listed <- first
		}, c.apply)
		if err != nil && ctx.Err() == nil {
			if started.Load() {
				c.log.Error("library change feed ended: routing no longer follows the library", "err", err)
			} else {
				listed <- err
			}
		}
	}()
	if err := <-listed; err != nil {
		cancel()
		<-c.done
		return nil, fmt.Errorf("index the library: %w", err)
	}
	return c, nil
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// Close stops following the library (it does not close the library).
func (c *Catalog) Close() {
	c.cancel()
	<-c.done
	<-c.refDone
	if c.lexical != nil {
		c.lexical.Close()
	}
}

// Metrics are the catalog's collectors.
func (c *Catalog) Metrics() *Metrics { return c.metrics }

// EmbedderID names the embedding space of the stored instances: uploaded
// embeddings are kept only when they say they are from it (see Prepare).
func (c *Catalog) EmbedderID() string { return c.cfg.Embedder.ID() }

// Library is the library the catalog follows.
func (c *Catalog) Library() *library.Library { return c.cfg.Library }

// apply handles one change of the feed.
func (c *Catalog) apply(ch library.Change) {
	switch ch.Op {
	case "add":
		if ch.Manifest == nil {
			return
		}
		c.mu.RLock()
		known, ok := c.manifests[ch.Name]
		c.mu.RUnlock()
		if ok && known.ID == ch.ID {
			return
		}
		if err := c.load(*ch.Manifest); err != nil {
			c.log.Error("index expert", "expert", ch.Name, "err", err)
		}
	case "remove":
		c.unload(ch.Name)
	}
}

// load indexes one expert's instance embeddings, re-embedding them when they
// were made by another embedder.
func (c *Catalog) load(m library.Manifest) error {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	// A handler's load can run after the feed removed or replaced the expert:
	// index only what the library holds now.
	if cur, err := c.cfg.Library.Manifest(m.Name); err != nil || cur.ID != m.ID {
		return nil
	}
	// An expert trained on another base model (a library kept from an earlier
	// default model) cannot be applied to this one: leave it out, loudly.
	if m.BaseFingerprint != "" && m.BaseFingerprint != c.cfg.Base.Fingerprint() {
		c.log.Warn("expert not served: trained on another base model", "expert", m.Name,
			"trained_on", fmt.Sprintf("%.12s", m.BaseFingerprint), "serving", fmt.Sprintf("%.12s", c.cfg.Base.Fingerprint()))
		return nil
	}
	ins, err := c.cfg.Library.Instances(m.Name)
	if err != nil {
		return err
	}
	texts := make([]string, len(ins))
	embs := make([][]float32, len(ins))
	for i, in := range ins {
		texts[i] = in.Text
		embs[i] = in.Embedding
	}
	formatted := formatInstances(c.cfg.InstanceFormat, ins) // as they are embedded and signed
	if len(ins) > 0 && (m.Embedder != c.cfg.Embedder.ID() || m.Dim != c.cfg.Embedder.Dim()) {
		if embs, err = c.cfg.Embedder.Embed(formatted); err != nil {
			return fmt.Errorf("re-embed %s: %w", m.Name, err)
		}
		c.log.Info("re-embedded expert instances for this embedder", "expert", m.Name, "stored", m.Embedder, "now", c.cfg.Embedder.ID())
	}
	// Served before it is searchable: a search that finds the expert can
	// always load it.
	c.mu.Lock()
	c.manifests[m.Name] = m
	delete(c.loras, m.Name)
	n := len(c.manifests)
	c.mu.Unlock()
	c.cache.Invalidate(m.Name)
	c.metrics.experts.Set(float64(n))
	var cal calibration
	if len(ins) == 0 {
		c.index.Remove(m.Name) // a version without instances is not routed to
		if c.sigs != nil {
			c.sigs.Remove(m.Name)
		}
	} else {
		if c.sigs != nil {
			c.sigs.Put(m.Name, formatted)
		}
		if err := c.index.Put(m.Name, embs, texts); err != nil {
			return fmt.Errorf("index %s: %w", m.Name, err)
		}
		if cal, err = calibrationQueries(c.cfg.Embedder, c.cfg.InstanceFormat, m.Name, ins); err != nil {
			return fmt.Errorf("calibrate %s: %w", m.Name, err)
		}
	}
	if c.lexical != nil {
		c.lexical.Remove(m.Name)
		// Its description alone would make an expert without instances
		// routable by content.
		if len(ins) > 0 {
			if err := c.lexical.Add(m.Name, texts, m.Description); err != nil {
				return err
			}
		}
	}
	c.mu.Lock()
	if len(ins) == 0 {
		delete(c.calib, m.Name)
	} else {
		c.calib[m.Name] = cal
	}
	c.ref = nil
	c.calibGen++
	c.mu.Unlock()
	c.kickRefresh()
	return nil
}

func (c *Catalog) unload(name string) {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	c.index.Remove(name)
	if c.sigs != nil {
		c.sigs.Remove(name)
	}
	if c.lexical != nil {
		c.lexical.Remove(name)
	}
	c.mu.Lock()
	delete(c.manifests, name)
	delete(c.calib, name)
	c.ref = nil
	c.calibGen++
	c.kickRefresh()
	delete(c.loras, name)
	delete(c.stats, name)
	if c.series[name] {
		delete(c.series, name)
		c.metrics.selections.DeleteLabelValues(name)
	}
	n := len(c.manifests)
	c.mu.Unlock()
	c.cache.Invalidate(name)
	c.metrics.experts.Set(float64(n))
}

// selected counts a request served by name. An expert gets its own series
// while it is served and fewer than maxSelectionSeries exist.
func (c *Catalog) selected(name string) {
	c.mu.Lock()
	label := name
	if _, served := c.manifests[name]; !served {
		label = "other"
	} else if !c.series[name] {
		if len(c.series) < maxSelectionSeries {
			c.series[name] = true
		} else {
			label = "other"
		}
	}
	c.metrics.selections.WithLabelValues(label).Inc()
	if _, served := c.manifests[name]; served {
		st := c.stats[name]
		if st == nil {
			st = &ExpertStats{}
			c.stats[name] = st
		}
		st.Selections++
		st.LastSelected = time.Now().UTC()
	}
	c.mu.Unlock()
}

// routedWith records that auto routing chose the experts with this margin
// over the runner-up (Info.Margin).
func (c *Catalog) routedWith(names []string, margin float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if st := c.stats[n]; st != nil {
			st.Routed++
			st.marginSum += margin
		}
	}
}

// Stats returns what the catalog has seen of a served expert since it was
// loaded (ok false: not served).
func (c *Catalog) Stats(name string) (st ExpertStats, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if _, served := c.manifests[name]; !served {
		return ExpertStats{}, false
	}
	if s := c.stats[name]; s != nil {
		st = *s
		if st.Routed > 0 {
			st.MeanMargin = st.marginSum / float64(st.Routed)
		}
	}
	return st, true
}

// List returns the served experts' manifests, by name.
func (c *Catalog) List() []library.Manifest {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]library.Manifest, 0, len(c.manifests))
	for _, m := range c.manifests {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Has reports whether name is a served expert.
func (c *Catalog) Has(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.manifests[name]
	return ok
}

// Adapter returns an expert's LoRA, reading it from the library once.
func (c *Catalog) Adapter(name string) (*adapters.LoRA, error) {
	c.mu.RLock()
	l, ok := c.loras[name]
	m, served := c.manifests[name]
	c.mu.RUnlock()
	if ok {
		return l, nil
	}
	if !served {
		return nil, fmt.Errorf("%w: the expert %q", ErrNotFound, name)
	}
	x, err := c.cfg.Library.Get(name)
	if err != nil {
		return nil, err
	}
	l, err = x.LoRA(c.cfg.Base.Config)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// Keep it only if the expert was not replaced while we read it.
	if cur, still := c.manifests[name]; still && cur.ID == m.ID && x.ID == m.ID {
		c.loras[name] = l
	}
	c.mu.Unlock()
	return l, nil
}

// merged returns the cached merge of experts with weights, and how exact it is.
func (c *Catalog) merged(names []string, weights []float64, o adapters.MergeOptions) (*adapters.LoRA, adapters.MergeReport, error) {
	ls := make([]*adapters.LoRA, len(names))
	for i, n := range names {
		l, err := c.Adapter(n)
		if err != nil {
			return nil, adapters.MergeReport{}, err
		}
		ls[i] = l
	}
	o.Weights = weights
	before := c.cache.Len()
	l, rep, err := c.cache.Get(names, ls, o)
	if err != nil {
		return nil, adapters.MergeReport{}, err
	}
	if c.cache.Len() > before {
		c.metrics.mergeCache.WithLabelValues("miss").Inc()
	} else {
		c.metrics.mergeCache.WithLabelValues("hit").Inc()
	}
	return l, rep, nil
}

// embedQueries embeds routing queries once the embedding budget has room
// for them (waiting at most EmbedWait, and not past ctx).
func (c *Catalog) embedQueries(ctx context.Context, texts []string) ([][]float32, error) {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.EmbedWait)
	defer cancel()
	n := int64(len(texts))
	if err := c.embedQ.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrBusy
	}
	defer c.embedQ.Release(n)
	return c.cfg.Embedder.Embed(texts)
}

// calibration is an expert's instances written otherwise (half their words
// kept, seeded by the expert's name), as a request that means the same would
// be: the texts routing sees and their embeddings.
type calibration struct {
	texts []string
	embs  [][]float32
}

func calibrationQueries(emb retriever.Embedder, format, name string, ins []library.Instance) (calibration, error) {
	r := rand.New(rand.NewPCG(fnvHash(name), 0xca1))
	texts := make([]string, len(ins))
	for i, in := range ins {
		texts[i] = retriever.FormatInstance(format, keepHalf(r, in.Text), nil)
	}
	embs, err := emb.Embed(texts)
	return calibration{texts: texts, embs: embs}, err
}

// typicalScores is each expert's typical score (retriever.Typical): its
// calibration queries against its other instances, as routing scores them
// (dense plus signature), the instance itself left out. An expert without
// one (a single instance) is held to the library's median. The signatures
// weigh sigWeight here for every expert: retriever.SignatureBoosts derive
// from these scores.
func typicalScores(ix *retriever.Index, sigs *retriever.Signatures, sigWeight float64, cals map[string]calibration) map[string]float64 {
	out := map[string]float64{}
	var ts []float32
	for name, cal := range cals {
		own, err := ix.LeaveOneOutOwn(name, cal.embs)
		if err != nil {
			continue // removed since: its calibration goes with it
		}
		if sigs != nil {
			for i, t := range cal.texts {
				own[i] += float32(sigWeight * sigs.Score(t, []string{name})[0])
			}
		}
		if t, ok := retriever.Typical(own); ok {
			out[name] = t
			ts = append(ts, float32(t))
		}
	}
	mid, _ := retriever.Typical(ts)
	for name := range cals {
		if _, ok := out[name]; !ok {
			out[name] = mid
		}
	}
	return out
}

// looScores routes each of an expert's calibration queries as a request is
// routed (dense best per expert, plus the signatures, less the typical
// scores), the instance itself left out of the dense search, and returns
// each query's best score less its background score, as decide scores a
// request.
func (c *Catalog) looScores(name string, cal calibration, ref *reference) ([]float32, error) {
	out, err := c.looBest(name, cal, ref)
	if err != nil || c.bg == nil {
		return out, err
	}
	bg, _, err := c.bg.scores(c.index, cal.embs)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i] -= bg[i]
	}
	return out, nil
}

// looBest is looScores before the background, in query order (any order
// without a background).
func (c *Catalog) looBest(name string, cal calibration, ref *reference) ([]float32, error) {
	if c.sigs == nil && ref.typical == nil && c.bg == nil {
		return c.index.LeaveOneOut(name, cal.embs)
	}
	best, names, err := c.index.LeaveOneOutExperts(name, cal.embs)
	if err != nil {
		return nil, err
	}
	E := len(names)
	off := make([]float32, E)
	for e, n := range names {
		off[e] = float32(c.cfg.TypicalWeight * ref.typical[n])
	}
	sw := retriever.SignatureWeights(c.cfg.SignatureWeight, ref.boosts, names)
	out := make([]float32, len(cal.texts))
	for i, t := range cal.texts {
		row := best[i*E : (i+1)*E]
		if c.sigs != nil {
			for e, s := range c.sigs.Score(t, names) {
				row[e] += float32(sw[e] * s)
			}
		}
		m := float32(math.Inf(-1))
		for e := range row {
			m = max(m, row[e]-off[e])
		}
		out[i] = m
	}
	return out, nil
}

// keepHalf keeps each word of s with probability ½ (at least one).
func keepHalf(r *rand.Rand, s string) string {
	ws := strings.Fields(s)
	out := ws[:0:0]
	for _, w := range ws {
		if r.IntN(2) == 0 {
			out = append(out, w)
		}
	}
	if len(out) == 0 && len(ws) > 0 {
		out = append(out, ws[r.IntN(len(ws))])
	}
	return strings.Join(out, " ")
}

func fnvHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// kickRefresh asks refresh for a rebuild of the reference; kicks that come
// while one is pending coalesce (a library sync of many experts costs one).
func (c *Catalog) kickRefresh() {
	select {
	case c.refKick <- struct{}{}:
	default:
	}
}

// refresh rebuilds the reference after changes, so routing seldom waits for it.
func (c *Catalog) refresh(ctx context.Context) {
	defer close(c.refDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.refKick:
			c.reference()
		}
	}
}

// reference is what routing compares a request with, built from the
// library's calibration queries: each expert's typical score, and the
// queries' leave-one-out best scores, all experts pooled, ascending (one
// scale for every expert, so confidences of different experts compare). It
// is rebuilt after every change (refresh, in the background; a routing that
// comes first does it itself), so it reflects the library as it is now.
type reference struct {
	typical map[string]float64 // nil: TypicalWeight < 0
	boosts  map[string]float64 // retriever.SignatureBoosts of typical
	loo     []float32
}

// reference returns the current reference, rebuilding it when stale.
func (c *Catalog) reference() *reference {
	c.mu.RLock()
	ref := c.ref
	c.mu.RUnlock()
	if ref != nil {
		return ref
	}
	c.refMu.Lock()
	defer c.refMu.Unlock()
	c.mu.RLock()
	ref = c.ref
	cals, gen := maps.Clone(c.calib), c.calibGen
	c.mu.RUnlock()
	if ref != nil {
		return ref
	}
	ref = &reference{loo: []float32{}}
	if c.cfg.TypicalWeight > 0 {
		ref.typical = typicalScores(c.index, c.sigs, c.cfg.SignatureWeight, cals)
		ref.boosts = retriever.SignatureBoosts(ref.typical, c.index.Copied())
	}
	for name, cal := range cals {
		loo, err := c.looScores(name, cal, ref)
		if err != nil {
			continue // removed since: its calibration goes with it
		}
		ref.loo = append(ref.loo, loo...)
	}
	slices.Sort(ref.loo)
	c.mu.Lock()
	if c.calibGen == gen { // else a change came meanwhile: the next routing rebuilds
		c.ref = ref
	}
	c.mu.Unlock()
	return ref
}
