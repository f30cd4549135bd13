package serve

import (
	"context"
	"encoding/json"

	"roe/experts"
)

// selectFor picks the adapter for a request (see experts.Catalog.Select):
// queries are the request's own query instances (its prompt).
func (s *Server) selectFor(ctx context.Context, r *commonRequest, queries []string) (*experts.Selection, error) {
	refs, err := parseExpertRefs(r.Experts)
	if err != nil {
		return nil, err
	}
	if refs, err = s.adapterRefs(r, refs); err != nil {
		return nil, err
	}
	e := s.cfg.Experts
	if e == nil {
		switch {
		case r.Model == "":
			return nil, badRequest("model", "model is required: %q", s.cfg.ModelID)
		case len(refs) > 0:
			return nil, notFound("experts need an expert library: this server has none")
		case r.Model != s.cfg.ModelID:
			return nil, notFound("the model %q does not exist (this server has no expert library)", r.Model)
		case r.Routing != nil:
			return nil, badRequest("routing", "routing needs an expert library")
		case r.Merge != "":
			return nil, badRequest("merge", "merge needs an expert library")
		}
		return &experts.Selection{Info: &experts.Info{Mode: "base", Experts: []experts.Used{}}}, nil
	}
	return e.Select(ctx, experts.Request{Model: r.Model, Experts: refs, Merge: r.Merge, Routing: r.Routing, Queries: queries})
}

// parseExpertRefs reads the `experts` field: a list of names or of {"name", "weight"} objects.
func parseExpertRefs(raw []byte) ([]experts.Ref, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err == nil {
		out := make([]experts.Ref, len(names))
		for i, n := range names {
			out[i] = experts.Ref{Name: n, Weight: 1}
		}
		return out, nil
	}
	var objs []struct {
		Name   string   `json:"name"`
		Weight *float64 `json:"weight"`
	}
	if err := json.Unmarshal(raw, &objs); err != nil {
		return nil, badRequest("experts", "experts must be a list of names or of {\"name\", \"weight\"} objects")
	}
	out := make([]experts.Ref, len(objs))
	for i, o := range objs {
		out[i] = experts.Ref{Name: o.Name, Weight: 1}
		if o.Weight != nil {
			out[i].Weight = *o.Weight
		}
	}
	return out, nil
}
