package serve

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus collectors, on a registry of their own
// (the expert catalog's collectors join it: experts.Metrics).
type Metrics struct {
	Registry *prometheus.Registry

	requests    *prometheus.CounterVec // by route and status code
	ttft        prometheus.Histogram   // seconds from submit to first token
	tokens      prometheus.Counter     // generated tokens
	queueDepth  prometheus.Gauge       // sequences waiting
	batchSize   prometheus.Histogram   // sequences per forward step
	stepSeconds prometheus.Histogram   // one forward step
	errors      *prometheus.CounterVec // by route and error type
	engine      *engineMetrics         // what the Inference Extension reads
}

// NewMetrics registers roe's collectors on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roe_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roe_request_errors_total",
			Help: "Failed HTTP requests by route and OpenAI error type."}, []string{"route", "type"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_time_to_first_token_seconds",
			Help: "Time from queueing a sequence to its first token.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "roe_generated_tokens_total",
			Help: "Generated tokens (rate() gives tokens/s)."}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roe_queue_depth",
			Help: "Sequences waiting to join the batch."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_batch_size",
			Help: "Sequences per forward step.", Buckets: prometheus.LinearBuckets(1, 1, 16)}),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_step_seconds",
			Help: "Duration of one batched forward step.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	m.engine = newEngineMetrics()
	m.Registry.MustRegister(m.engine.collectors()...)
	m.Registry.MustRegister(m.requests, m.errors, m.ttft, m.tokens, m.queueDepth, m.batchSize, m.stepSeconds,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
