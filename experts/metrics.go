package experts

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpertStats is what a catalog has seen of one expert since it started
// serving it (Catalog.Stats); the Prometheus series count the same
// selections across experts.
type ExpertStats struct {
	Selections int64 `json:"selections"` // requests served by it, named or routed
	Routed     int64 `json:"routed"`     // of them, chosen by auto routing
	// MeanMargin is the mean, over routed requests, of the confidence margin
	// over the runner-up (Info.Margin), computed from marginSum by Stats.
	MeanMargin   float64   `json:"mean_margin"`
	LastSelected time.Time `json:"last_selected,omitzero"`
	marginSum    float64
}

// maxSelectionSeries caps roe_expert_selections_total's expert label: beyond
// it, experts are counted under "other". Series of removed experts are deleted.
const maxSelectionSeries = 1000

// Metrics are the catalog's Prometheus collectors; register Collectors on the
// server's registry.
type Metrics struct {
	routing    prometheus.Histogram   // routing latency
	selections *prometheus.CounterVec // per expert
	voteMargin prometheus.Histogram   // vote share of the winner minus the runner-up
	fallbacks  prometheus.Counter     // routed requests answered by the base model
	mergeCache *prometheus.CounterVec // hit / miss
	experts    prometheus.Gauge       // experts served
}

func newMetrics() *Metrics {
	return &Metrics{
		routing: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_routing_seconds",
			Help: "Embedding plus retrieval time of a routed request.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		selections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roe_expert_selections_total",
			Help: "Requests served by each expert (experts past the first 1000 count as \"other\")."}, []string{"expert"}),
		voteMargin: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_vote_margin",
			Help: "Vote share of the chosen expert minus the runner-up's.", Buckets: prometheus.LinearBuckets(0, 0.1, 11)}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "roe_routing_fallbacks_total",
			Help: "Routed requests that fell back to the base model."}),
		mergeCache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roe_merge_cache_total",
			Help: "Merged-adapter cache lookups by result."}, []string{"result"}),
		experts: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roe_experts",
			Help: "Experts served."}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.routing, m.selections, m.voteMargin, m.fallbacks, m.mergeCache, m.experts}
}
