package serve

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"roe/experts"
	"roe/model"
)

// The model-server metrics that the Gateway API Inference Extension's
// endpoint picker reads, with the types and meanings of its model-server
// protocol (vLLM's vllm:num_requests_waiting, vllm:num_requests_running,
// vllm:kv_cache_usage_perc and vllm:lora_requests_info) under roe's names:
//
//	roe_num_requests_waiting     gauge   sequences queued, not yet in the batch
//	roe_num_requests_running     gauge   sequences in the running batch
//	roe_kv_cache_usage_perc      gauge   KV positions held by running sequences /
//	                                     roe's KV budget (MaxBatch × MaxContext), 0–1
//	roe_lora_requests_info       gauge   value: Unix time of the update; labels
//	                                     running_lora_adapters (comma-separated expert
//	                                     names of running sequences), waiting_lora_adapters
//	                                     (of sequences taken from the queue that wait for
//	                                     room in the batch; the queue itself is not inspected),
//	                                     max_lora (MaxBatch: every sequence may carry
//	                                     its own adapter)
//	roe_e2e_request_latency_seconds    histogram  queueing to last token, per sequence
//	roe_time_per_output_token_seconds  histogram  (last − first token) / (tokens − 1)
//	roe_prompt_tokens_total            counter    prompt tokens of sequences that ran
type engineMetrics struct {
	waiting, running, kvUsage prometheus.Gauge
	loraInfo                  *prometheus.GaugeVec
	e2e, tpot                 prometheus.Histogram
	promptTokens              prometheus.Counter

	mu          sync.Mutex
	kvBudget    int                        // MaxBatch × MaxContext
	maxLoRA     int                        // MaxBatch
	adapterName func(model.Adapter) string // "" when unknown (a composition)
	seen        map[*Job]struct{}          // jobs seen running and not yet finished
	lastLoRA    []string                   // label values now exported
}

func newEngineMetrics() *engineMetrics {
	return &engineMetrics{
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roe_num_requests_waiting",
			Help: "Sequences waiting to join the running batch (Inference Extension: queued requests)."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roe_num_requests_running",
			Help: "Sequences in the running batch."}),
		kvUsage: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roe_kv_cache_usage_perc",
			Help: "KV-cache positions held by running sequences over the KV budget (max batch × max context), 0 to 1."}),
		loraInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roe_lora_requests_info",
			Help: "LoRA adapters of running and waiting sequences (labels); the value is the Unix time of the update."},
			[]string{"running_lora_adapters", "waiting_lora_adapters", "max_lora"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_e2e_request_latency_seconds",
			Help: "Time from queueing a sequence to its last token.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}),
		tpot: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roe_time_per_output_token_seconds",
			Help: "Time per output token after the first.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "roe_prompt_tokens_total",
			Help: "Prompt tokens of sequences that joined the batch."}),
		seen: map[*Job]struct{}{},
	}
}

func (e *engineMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.waiting, e.running, e.kvUsage, e.loraInfo, e.e2e, e.tpot, e.promptTokens}
}

// setLimits records the KV budget and adapter naming (Server.New).
func (e *engineMetrics) setLimits(maxBatch, maxContext int, name func(model.Adapter) string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kvBudget, e.maxLoRA, e.adapterName = maxBatch*maxContext, maxBatch, name
	e.setLoRA([]string{"", "", strconv.Itoa(maxBatch)}, true, time.Now())
}

// observe is called by the scheduler's loop, from its goroutine, before
// each step (and when it goes idle) with the running batch, the sequences
// taken from the queue that wait for room, and the queue's length: jobs gone
// since the last call have finished.
func (e *engineMetrics) observe(active, waiting []slot, queued int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	cur := make(map[*Job]struct{}, len(active))
	kv := 0
	running, wait := map[string]bool{}, map[string]bool{}
	name := func(sl slot, into map[string]bool) {
		if sl.seq == nil || e.adapterName == nil {
			return
		}
		if a := sl.seq.Step().Adapter; a != nil {
			if n := e.adapterName(a); n != "" {
				into[n] = true
			}
		}
	}
	for _, sl := range active {
		if _, ok := e.seen[sl.job]; !ok {
			if sl.seq != nil {
				e.promptTokens.Add(float64(len(sl.seq.Prompt)))
			}
			e.seen[sl.job] = struct{}{}
		}
		cur[sl.job] = struct{}{}
		if sl.seq != nil {
			kv += len(sl.seq.Prompt) + len(sl.seq.Tokens)
		}
		name(sl, running)
	}
	for _, sl := range waiting {
		cur[sl.job] = struct{}{}
		name(sl, wait)
	}
	for j := range e.seen {
		if _, ok := cur[j]; ok {
			continue
		}
		delete(e.seen, j)
		e.e2e.Observe(now.Sub(j.submitted).Seconds())
		j.mu.Lock()
		first := j.firstTok
		j.mu.Unlock()
		n := 0
		if len(j.seqs) > 0 && j.seqs[0] != nil {
			n = len(j.seqs[0].Tokens)
		}
		if n > 1 && !first.IsZero() {
			e.tpot.Observe(now.Sub(first).Seconds() / float64(n-1))
		}
	}
	e.waiting.Set(float64(queued + len(waiting)))
	e.running.Set(float64(len(active)))
	if e.kvBudget > 0 {
		e.kvUsage.Set(min(1, float64(kv)/float64(e.kvBudget)))
	}
	e.setLoRA([]string{joinNames(running), joinNames(wait), strconv.Itoa(e.maxLoRA)}, len(active) > 0, now)
}

// setLoRA exports the adapters' label set (refreshing its timestamp when
// the set changed or refresh). The new series is set before the old one is
// dropped, so a scrape in between never finds the metric missing. Callers
// hold e.mu.
func (e *engineMetrics) setLoRA(labels []string, refresh bool, now time.Time) {
	changed := !slices.Equal(labels, e.lastLoRA)
	if !changed && !refresh {
		return
	}
	e.loraInfo.WithLabelValues(labels...).Set(float64(now.Unix()))
	if changed && e.lastLoRA != nil {
		e.loraInfo.DeleteLabelValues(e.lastLoRA...)
	}
	e.lastLoRA = labels
}

// joinNames is the sorted names, comma-separated.
func joinNames(set map[string]bool) string {
	list := make([]string, 0, len(set))
	for n := range set {
		list = append(list, n)
	}
	sort.Strings(list)
	return strings.Join(list, ",")
}

// adapterNamer names adapters by the catalog's experts; nil without one.
func adapterNamer(c *experts.Catalog) func(model.Adapter) string {
	if c == nil {
		return nil
	}
	return c.AdapterName
}
