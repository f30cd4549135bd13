package retriever

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Aggregation says how per-query neighbours become per-expert scores.
type Aggregation string

const (
	// Vote gives each query's top-1 neighbour's expert one vote (the paper); experts
	// rank by votes, and Score is the mean top-1 score of the queries that voted for them.
	Vote Aggregation = "vote"
	// SumTopM scores an expert by the sum of its M best per-query scores, where an
	// expert's per-query score is its best instance's score for that query.
	SumTopM Aggregation = "sum-top-m"
	// Softmax scores an expert by its mean, over queries, of the softmax (with
	// RouteOptions.Temperature) of the experts' per-query scores.
	Softmax Aggregation = "softmax"
)

// RouteOptions configures Index.Route; the zero value is the paper's routing.
type RouteOptions struct {
	TopK         int         // experts returned, default 1
	Neighbors    int         // neighbours reported per query, default 5
	Aggregation  Aggregation // default Vote
	M            int         // SumTopM: per-query scores summed per expert, default all queries
	Temperature  float64     // Softmax: temperature, default 0.1
	MinScore     float64     // Fallback when the best expert's Top1 is below this; 0 disables
	MinVoteShare float64     // Fallback when the best expert's VoteShare is below this; 0 disables
	// RunnersUp ranks, under Vote, the experts without votes after the voters by
	// their mean best score (their Top1), so a decision shows its alternatives.
	RunnersUp bool

	// Lexical, with QueryTexts (the queries' instance texts), adds a BM25 ranking of
	// the experts fused with the dense one by reciprocal rank fusion (FuseRRF, k = 60).
	Lexical    *Lexical
	QueryTexts []string

	// Signatures, with QueryTexts (one per query), adds SignatureWeight times
	// each expert's signature score to its dense best score for each query;
	// the votes, Top1 and the aggregations then use that fused score.
	// SignatureBoosts multiplies the weight of the experts it names
	// (SignatureBoosts computes them from the typical scores).
	Signatures      *Signatures
	SignatureWeight float64
	SignatureBoosts map[string]float64

	// Typical, with TypicalWeight, subtracts TypicalWeight times an expert's
	// typical score (Index.Typical, by expert name; missing: 0) from its
	// score for each query, after the signatures: an expert is then judged by
	// how a query matches it against how its own instances match each other.
	Typical       map[string]float64
	TypicalWeight float64
}

// ExpertScore is one expert's standing in a routing decision.
type ExpertScore struct {
	Name      string
	Votes     int     // queries whose top-1 neighbour belongs to the expert
	Score     float64 // the aggregation's score (vote: mean top-1 score of its voters; fused: RRF score)
	VoteShare float64 // Votes / Q
	// Top1 is the mean top-1 score of the queries that voted for the expert, or
	// without votes the mean over queries of its best instance's score (0 if unknown).
	Top1 float64
}

// Route is a routing decision for one set of queries.
type Route struct {
	Experts    []ExpertScore // best first, at most TopK; ties by score then name
	Neighbors  [][]Hit       // [Q][≤Neighbors] each query's nearest instances
	Voted      []string      // [Q] the expert each query voted for ("" with an empty index)
	Fallback   bool          // use the base model: empty index, or below MinScore / MinVoteShare
	Confidence struct {
		VoteShare float64 // the best expert's vote share
		Margin    float64 // vote: best minus runner-up vote share; otherwise best minus runner-up score
	}
	Elapsed time.Duration
}

// Route embeds nothing: it takes the queries' embeddings (queries: [Q][dim]),
// searches the index and aggregates the neighbours into a ranking of experts.
func (ix *Index) Route(queries [][]float32, o RouteOptions) (Route, error) {
	t0 := time.Now()
	if o.TopK <= 0 {
		o.TopK = 1
	}
	if o.Neighbors <= 0 {
		o.Neighbors = 5
	}
	if o.Aggregation == "" {
		o.Aggregation = Vote
	}
	if o.M <= 0 {
		o.M = len(queries)
	}
	if o.Temperature <= 0 {
		o.Temperature = 0.1
	}
	switch o.Aggregation {
	case Vote, SumTopM, Softmax:
	default:
		return Route{}, fmt.Errorf("%w: %q (want vote, sum-top-m or softmax)", ErrAggregation, o.Aggregation)
	}
	if len(queries) == 0 {
		return Route{}, fmt.Errorf("%w: no queries", ErrInput)
	}

	fuse := o.Signatures != nil && o.SignatureWeight != 0
	if fuse && len(o.QueryTexts) != len(queries) {
		return Route{}, fmt.Errorf("%w: %d query texts for %d queries (signatures score each query's text)", ErrInput, len(o.QueryTexts), len(queries))
	}
	typical := o.Typical != nil && o.TypicalWeight != 0
	ix.mu.RLock()
	res, err := ix.scan(queries, o.Neighbors, o.Aggregation != Vote || o.RunnersUp || fuse || typical)
	if err != nil {
		ix.mu.RUnlock()
		return Route{}, err
	}
	names := make([]string, len(ix.experts))
	for i, e := range ix.experts {
		names[i] = e.name
	}
	Q, E := len(queries), len(names)
	votes := make([]int, E)
	top1 := make([]float64, E)
	voted := make([]string, Q)
	if fuse || typical {
		var sw []float64 // [E] each expert's signature weight
		if fuse {
			sw = SignatureWeights(o.SignatureWeight, o.SignatureBoosts, names)
		}
		var off []float32 // [E] TypicalWeight · typical score
		if typical {
			off = make([]float32, E)
			for e, n := range names {
				off[e] = float32(o.TypicalWeight * o.Typical[n])
			}
		}
		// Each query votes for the expert of the best adjusted score.
		for q := range Q {
			row := res.best[q*E : (q+1)*E]
			if fuse {
				for e, s := range o.Signatures.Score(o.QueryTexts[q], names) {
					row[e] += float32(sw[e] * s)
				}
			}
			for e := range off {
				row[e] -= off[e]
			}
			if E > 0 {
				b := 0
				for e := range row {
					if row[e] > row[b] {
						b = e
					}
				}
				votes[b]++
				top1[b] += float64(row[b])
				voted[q] = names[b]
			}
		}
	} else {
		for q, cs := range res.top {
			if len(cs) > 0 {
				e := ix.expertIndex(int(cs[0].r))
				votes[e]++
				top1[e] += float64(cs[0].s)
				voted[q] = names[e]
			}
		}
	}
	var r Route
	r.Voted = voted
	r.Neighbors = ix.hits(res.top)
	ix.mu.RUnlock()

	if E == 0 {
		r.Fallback = true
		r.Elapsed = time.Since(t0)
		return r, nil
	}
	dense := aggregate(o, names, votes, top1, res.best, Q)

	best := dense[0]
	r.Confidence.VoteShare = best.VoteShare
	var second ExpertScore
	if len(dense) > 1 {
		second = dense[1]
	}
	if o.Aggregation == Vote {
		r.Confidence.Margin = best.VoteShare - second.VoteShare
	} else {
		r.Confidence.Margin = best.Score - second.Score
	}
	if (o.MinScore != 0 && best.Top1 < o.MinScore) || (o.MinVoteShare != 0 && best.VoteShare < o.MinVoteShare) {
		r.Fallback = true
	}

	ranked := dense
	if o.Lexical != nil && len(o.QueryTexts) > 0 {
		lex, err := o.Lexical.Search(strings.Join(o.QueryTexts, "\n"), max(o.TopK, len(dense), 10))
		if err != nil {
			return Route{}, err
		}
		ranked = FuseRRF(dense, lex, 60)
	}
	r.Experts = ranked[:min(o.TopK, len(ranked))]
	r.Elapsed = time.Since(t0)
	return r, nil
}

// aggregate ranks the experts (names: [E]) from the votes, the summed top-1
// scores of the voters ([E]) and, except for Vote, each expert's best score per
// query (best: [Q, E]).
func aggregate(o RouteOptions, names []string, votes []int, top1 []float64, best []float32, Q int) []ExpertScore {
	E := len(names)
	out := make([]ExpertScore, 0, E)
	meanBest := func(e int) float64 {
		if best == nil {
			return 0
		}
		var s float64
		for q := range Q {
			s += float64(best[q*E+e])
		}
		return s / float64(Q)
	}
	for e, name := range names {
		x := ExpertScore{Name: name, Votes: votes[e], VoteShare: float64(votes[e]) / float64(Q)}
		if votes[e] > 0 {
			x.Top1 = top1[e] / float64(votes[e])
		} else {
			x.Top1 = meanBest(e)
		}
		switch o.Aggregation {
		case Vote:
			if votes[e] == 0 && !o.RunnersUp {
				continue
			}
			x.Score = x.Top1
		case SumTopM:
			v := make([]float64, Q)
			for q := range Q {
				v[q] = float64(best[q*E+e])
			}
			sort.Sort(sort.Reverse(sort.Float64Slice(v)))
			for _, s := range v[:min(o.M, Q)] {
				x.Score += s
			}
		}
		out = append(out, x)
	}
	if o.Aggregation == Softmax {
		// Per query, a softmax over the experts' best scores; Score is the mean probability.
		p := make([]float64, E)
		for q := range Q {
			row := best[q*E : (q+1)*E]
			mx := math.Inf(-1)
			for _, s := range row {
				mx = max(mx, float64(s))
			}
			var z float64
			for e, s := range row {
				p[e] = math.Exp((float64(s) - mx) / o.Temperature)
				z += p[e]
			}
			for e := range out {
				out[e].Score += p[e] / z / float64(Q)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if o.Aggregation == Vote && a.Votes != b.Votes {
			return a.Votes > b.Votes
		}
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Votes != b.Votes {
			return a.Votes > b.Votes
		}
		return a.Name < b.Name
	})
	return out
}

// FuseRRF combines two rankings of experts by reciprocal rank fusion: an
// expert's score is Σ 1/(k + rank) over the lists it appears in (rank from 1);
// k ≤ 0 means 60. Votes, VoteShare and Top1 are taken from the dense entry.
// The result is sorted by fused score, ties by name.
func FuseRRF(dense, lexical []ExpertScore, k int) []ExpertScore {
	if k <= 0 {
		k = 60
	}
	byName := map[string]*ExpertScore{}
	var order []string
	add := func(list []ExpertScore, keep bool) {
		for i, x := range list {
			f, ok := byName[x.Name]
			if !ok {
				f = &ExpertScore{Name: x.Name}
				byName[x.Name] = f
				order = append(order, x.Name)
			}
			if keep {
				f.Votes, f.VoteShare, f.Top1 = x.Votes, x.VoteShare, x.Top1
			}
			f.Score += 1 / float64(k+i+1)
		}
	}
	add(dense, true)
	add(lexical, false)
	out := make([]ExpertScore, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// SignatureWeights is each expert's signature weight, [len(names)]: w, times
// its factor in boosts (SignatureBoosts) where it has one.
func SignatureWeights(w float64, boosts map[string]float64, names []string) []float64 {
	out := make([]float64, len(names))
	for e, n := range names {
		out[e] = w
		if b, ok := boosts[n]; ok {
			out[e] *= b
		}
	}
	return out
}
