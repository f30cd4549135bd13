package experts

import (
	"context"
	"strings"

	"roe/retriever"
)

// maxMapQueries bounds the queries one Map call places.
const maxMapQueries = 64

// mapTextRunes is how much of an instance's text a map point carries (a
// map, not an export: it keeps a map of many instances light).
const mapTextRunes = 300

// Map is the library on a plane (retriever.Projection): its instances, at
// most maxPoints of them (their texts cut to 300 characters), and the
// queries placed as routing would embed them.
type Map struct {
	Variance  [2]float64        `json:"variance"` // share of the instances' variance along each axis
	Embedder  string            `json:"embedder"`
	Instances []retriever.Point `json:"instances"`
	Queries   []retriever.Point `json:"queries"`
	Total     int               `json:"total"` // instances in the index (Instances may be a sample)
}

// Map projects the routing index onto its principal plane and places
// queries (prompts, as a request would send them) on it.
func (c *Catalog) Map(ctx context.Context, queries []string, maxPoints int) (*Map, error) {
	if len(queries) > maxMapQueries {
		return nil, invalid("queries", "at most %d queries, got %d", maxMapQueries, len(queries))
	}
	var texts, kept []string
	for _, q := range queries {
		if strings.TrimSpace(q) != "" {
			texts = append(texts, retriever.FormatInstance(c.cfg.InstanceFormat, q, nil))
			kept = append(kept, q)
		}
	}
	var embs [][]float32
	if len(texts) > 0 {
		var err error
		if embs, err = c.embedQueries(ctx, texts); err != nil {
			return nil, err
		}
	}
	p, err := c.index.Project(maxPoints, embs)
	if err != nil {
		return nil, err
	}
	m := &Map{Variance: p.Variance, Embedder: c.cfg.Embedder.ID(), Instances: p.Points, Total: c.index.Len(), Queries: p.Queries}
	if m.Instances == nil {
		m.Instances = []retriever.Point{}
	}
	for i := range m.Instances {
		m.Instances[i].Text = clip(m.Instances[i].Text, mapTextRunes)
	}
	for i := range m.Queries {
		m.Queries[i].Text = kept[i]
	}
	return m, nil
}

// clip cuts s to at most n runes, marking a cut with "…".
func clip(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}
