package s3sync

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors are the sync's Prometheus gauges, read from Status at scrape time.
func (s *Store) Collectors() []prometheus.Collector {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g := func(name, help string, fn func(Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return fn(s.Status()) })
	}
	return []prometheus.Collector{
		g("roe_library_synced", "1 once the first full sync from the bucket is done.", func(st Status) float64 { return b(st.Ready) }),
		g("roe_library_bucket_reachable", "1 when the last poll of the bucket got an answer; 0: serving from the cache.", func(st Status) float64 { return b(st.Reachable) }),
		g("roe_library_sync_seq", "Sequence number of the bucket index the cache reflects.", func(st Status) float64 { return float64(st.Seq) }),
		g("roe_library_last_sync_timestamp_seconds", "Unix time of the last poll that left the cache up to date.", func(st Status) float64 {
			if st.LastSync.IsZero() {
				return 0
			}
			return float64(st.LastSync.UnixNano()) / 1e9
		}),
		g("roe_library_skipped_experts", "Experts in the bucket this replica cannot serve (another base model, corrupt object).", func(st Status) float64 { return float64(st.Skipped) }),
	}
}

// Detail is the sync state as /readyz shows it.
func (s *Store) Detail() map[string]any {
	st := s.Status()
	d := map[string]any{"source": s.String(), "synced": st.Ready, "bucket_reachable": st.Reachable, "seq": st.Seq, "experts": st.Experts}
	if !st.LastSync.IsZero() {
		d["last_sync"] = st.LastSync.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if st.LastError != "" {
		d["error"] = st.LastError
	}
	if st.Skipped > 0 {
		d["skipped"] = st.Skipped
	}
	return d
}
