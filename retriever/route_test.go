package retriever

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// axis returns a unit vector along axis i of dim 8, with a small tilt along axis j.
func axis(i, j int, tilt float32) []float32 {
	v := make([]float32, 8)
	v[i] = 1
	if j >= 0 {
		v[j] = tilt
	}
	return v
}

// routeIndex holds experts a, b, c on axes 0, 1, 2 (raw inner product).
func routeIndex(t *testing.T) *Index {
	t.Helper()
	ix := NewIndex(8, Raw)
	for i, n := range []string{"a", "b", "c"} {
		if err := ix.Add(n, [][]float32{axis(i, -1, 0), axis(i, 7, 0.5)}, []string{n + "0", n + "1"}); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

func TestRouteVote(t *testing.T) {
	ix := routeIndex(t)
	// 3 queries near a, 2 near b: a wins 3 votes to 2.
	qs := [][]float32{axis(0, 1, 0.1), axis(0, 2, 0.2), axis(0, -1, 0), axis(1, 0, 0.3), axis(1, -1, 0)}
	r, err := ix.Route(qs, RouteOptions{TopK: 3, Neighbors: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Experts) != 2 || r.Experts[0].Name != "a" || r.Experts[1].Name != "b" {
		t.Fatalf("experts %+v", r.Experts)
	}
	a := r.Experts[0]
	if a.Votes != 3 || a.VoteShare != 0.6 || math.Abs(a.Score-1) > 1e-6 || a.Top1 != a.Score {
		t.Errorf("a: %+v", a)
	}
	if math.Abs(r.Confidence.VoteShare-0.6) > 1e-9 || math.Abs(r.Confidence.Margin-0.2) > 1e-9 || r.Fallback {
		t.Errorf("confidence %+v fallback %v", r.Confidence, r.Fallback)
	}
	if len(r.Neighbors) != 5 || len(r.Neighbors[0]) != 2 || r.Neighbors[0][0].Expert != "a" || r.Neighbors[3][0].Expert != "b" {
		t.Errorf("neighbors %+v", r.Neighbors)
	}
	if want := []string{"a", "a", "a", "b", "b"}; !slices.Equal(r.Voted, want) {
		t.Errorf("voted %q, want %q", r.Voted, want)
	}
	// The same votes when the per-expert scores decide (typical scores of 0).
	r, _ = ix.Route(qs, RouteOptions{TopK: 3, Typical: map[string]float64{"c": 0}, TypicalWeight: 1})
	if want := []string{"a", "a", "a", "b", "b"}; !slices.Equal(r.Voted, want) {
		t.Errorf("voted by the per-expert scores %q, want %q", r.Voted, want)
	}
	// Default options: one expert, 5 neighbours (capped by the 6 rows).
	r, _ = ix.Route(qs, RouteOptions{})
	if len(r.Experts) != 1 || len(r.Neighbors[0]) != 5 {
		t.Errorf("defaults: %d experts, %d neighbours", len(r.Experts), len(r.Neighbors[0]))
	}
}

func TestRouteVoteTies(t *testing.T) {
	ix := routeIndex(t)
	// Two votes each; b's voters have the higher mean top-1 score.
	qs := [][]float32{axis(0, -1, 0), axis(0, -1, 0), axis(1, -1, 0), axis(1, -1, 0)}
	qs[0][0], qs[1][0] = 0.5, 0.5
	r, _ := ix.Route(qs, RouteOptions{TopK: 2})
	if r.Experts[0].Name != "b" || r.Experts[1].Name != "a" || r.Confidence.Margin != 0 {
		t.Fatalf("score tie-break: %+v", r)
	}
	// Identical votes and scores: by name.
	qs = [][]float32{axis(2, -1, 0), axis(0, -1, 0)}
	r, _ = ix.Route(qs, RouteOptions{TopK: 2})
	if r.Experts[0].Name != "a" || r.Experts[1].Name != "c" {
		t.Fatalf("name tie-break: %+v", r.Experts)
	}
}

func TestRouteAggregations(t *testing.T) {
	ix := routeIndex(t)
	// Each query's top-1 is a by a hair, but b is a close second everywhere and
	// clearly ahead on the last query: votes say a, sum over all queries says b.
	mk := func(x, y float32) []float32 { v := make([]float32, 8); v[0], v[1] = x, y; return v }
	qs := [][]float32{mk(1, 0.95), mk(1, 0.95), mk(0.1, 1)}
	vote, _ := ix.Route(qs, RouteOptions{TopK: 3})
	if vote.Experts[0].Name != "a" || vote.Experts[0].Votes != 2 {
		t.Fatalf("vote: %+v", vote.Experts)
	}
	sum, _ := ix.Route(qs, RouteOptions{TopK: 3, Aggregation: SumTopM})
	// a: 1 + 1 + 0.1 = 2.1; b: 0.95 + 0.95 + 1 = 2.9; c: 0 (its best rows score 0).
	if sum.Experts[0].Name != "b" || math.Abs(sum.Experts[0].Score-2.9) > 1e-6 || math.Abs(sum.Experts[1].Score-2.1) > 1e-6 {
		t.Fatalf("sum-top-m: %+v", sum.Experts)
	}
	if math.Abs(sum.Confidence.Margin-0.8) > 1e-6 || sum.Experts[0].Votes != 1 {
		t.Errorf("sum-top-m confidence %+v experts %+v", sum.Confidence, sum.Experts)
	}
	// M = 1: each expert's single best score: a 1, b 1 → tie on score, a has more votes.
	m1, _ := ix.Route(qs, RouteOptions{TopK: 3, Aggregation: SumTopM, M: 1})
	if m1.Experts[0].Name != "a" || m1.Experts[0].Score != 1 || m1.Experts[1].Score != 1 {
		t.Fatalf("sum-top-1: %+v", m1.Experts)
	}
	soft, _ := ix.Route(qs, RouteOptions{TopK: 3, Aggregation: Softmax, Temperature: 0.1})
	var total float64
	for _, e := range soft.Experts {
		total += e.Score
	}
	if math.Abs(total-1) > 1e-9 || len(soft.Experts) != 3 {
		t.Fatalf("softmax probabilities sum to %v: %+v", total, soft.Experts)
	}
	// Hand computation for query 1: scores a 1, b 0.95, c 0 at T = 0.1.
	z := 1 + math.Exp(-0.5) + math.Exp(-10)
	pa1 := 1 / z
	z3 := math.Exp(-9) + 1 + math.Exp(-10)
	pa3 := math.Exp(-9) / z3
	wantA := (2*pa1 + pa3) / 3
	var gotA float64
	for _, e := range soft.Experts {
		if e.Name == "a" {
			gotA = e.Score
		}
	}
	if math.Abs(gotA-wantA) > 1e-6 {
		t.Errorf("softmax a = %v, want %v", gotA, wantA)
	}
}

func TestRouteFallback(t *testing.T) {
	ix := routeIndex(t)
	qs := [][]float32{axis(0, -1, 0), axis(0, -1, 0), axis(1, -1, 0)}
	for i := range qs {
		for j := range qs[i] {
			qs[i][j] *= 0.4 // top-1 scores 0.4
		}
	}
	for _, c := range []struct {
		o    RouteOptions
		want bool
	}{
		{RouteOptions{}, false},
		{RouteOptions{MinScore: 0.3}, false},
		{RouteOptions{MinScore: 0.5}, true},
		{RouteOptions{MinVoteShare: 0.6}, false},
		{RouteOptions{MinVoteShare: 0.7}, true},
		{RouteOptions{MinScore: 0.5, Aggregation: Softmax}, true},
	} {
		r, err := ix.Route(qs, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Fallback != c.want {
			t.Errorf("%+v: fallback %v, want %v (%+v)", c.o, r.Fallback, c.want, r.Experts)
		}
		if len(r.Experts) != 1 || r.Experts[0].Name != "a" {
			t.Errorf("%+v: experts %+v", c.o, r.Experts)
		}
	}
	empty := NewIndex(8, "")
	r, err := empty.Route(qs, RouteOptions{})
	if err != nil || !r.Fallback || len(r.Experts) != 0 {
		t.Errorf("empty index: %+v %v", r, err)
	}
}

func TestFuseRRF(t *testing.T) {
	dense := []ExpertScore{{Name: "a", Votes: 3}, {Name: "b", Votes: 2}, {Name: "c", Votes: 1}}
	lex := []ExpertScore{{Name: "c", Score: 9}, {Name: "a", Score: 4}, {Name: "d", Score: 1}}
	got := FuseRRF(dense, lex, 60)
	want := map[string]float64{
		"a": 1.0/61 + 1.0/62,
		"b": 1.0 / 62,
		"c": 1.0/63 + 1.0/61,
		"d": 1.0 / 63,
	}
	order := []string{"a", "c", "b", "d"}
	if len(got) != 4 {
		t.Fatalf("%+v", got)
	}
	for i, e := range got {
		if e.Name != order[i] || math.Abs(e.Score-want[e.Name]) > 1e-15 {
			t.Errorf("rank %d: %+v, want %s %v", i, e, order[i], want[order[i]])
		}
	}
	if got[0].Votes != 3 || got[3].Votes != 0 {
		t.Errorf("votes not carried: %+v", got)
	}
	// k ≤ 0 means 60; equal fused scores order by name.
	tie := FuseRRF([]ExpertScore{{Name: "y"}}, []ExpertScore{{Name: "x"}}, 0)
	if tie[0].Name != "x" || tie[0].Score != 1.0/61 {
		t.Errorf("tie: %+v", tie)
	}
}

func TestRouteWithLexical(t *testing.T) {
	ix := routeIndex(t)
	lex, err := NewLexical()
	if err != nil {
		t.Fatal(err)
	}
	defer lex.Close()
	_ = lex.Add("a", []string{"the cat sat on the mat"}, "")
	_ = lex.Add("c", []string{"quantum chromodynamics lattice gauge"}, "physics expert")
	_ = lex.Add("b", []string{"the dog sat on the log"}, "")
	// Dense: a (2 votes), c (1 vote); lexical: only c matches. RRF: c = 1/62+1/61 > a = 1/61.
	qs := [][]float32{axis(0, -1, 0), axis(0, -1, 0), axis(2, -1, 0)}
	r, err := ix.Route(qs, RouteOptions{TopK: 3, Lexical: lex, QueryTexts: []string{"lattice gauge theory", "chromodynamics"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range r.Experts {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "c,a" || math.Abs(r.Experts[1].Score-1.0/61) > 1e-15 || r.Experts[0].Votes != 1 {
		t.Fatalf("fused: %+v", r.Experts)
	}
}

func TestRouteWithSignatures(t *testing.T) {
	ix := routeIndex(t)
	sig := NewSignatures()
	sig.Put("a", []string{"alpha task one", "alpha task two"})
	sig.Put("b", []string{"beta question three", "beta question four"})
	sig.Put("c", []string{"gamma prompt five", "gamma prompt six"})
	// Dense alone: the query sits halfway between a and b, a slightly ahead.
	q := [][]float32{{0.75, 0.7, 0, 0, 0, 0, 0, 0}}
	dense, err := ix.Route(q, RouteOptions{RunnersUp: true, TopK: 3})
	if err != nil || dense.Experts[0].Name != "a" {
		t.Fatalf("dense: %+v, %v", dense.Experts, err)
	}
	// The query's words are b's task words: fused, b wins, and its Top1 is
	// its dense best plus the weighted signature score.
	o := RouteOptions{RunnersUp: true, TopK: 3, Signatures: sig, SignatureWeight: 2, QueryTexts: []string{"a beta question"}}
	r, err := ix.Route(q, o)
	if err != nil {
		t.Fatal(err)
	}
	s := sig.Score("a beta question", []string{"b"})[0]
	if r.Experts[0].Name != "b" || r.Experts[0].Votes != 1 || math.Abs(r.Experts[0].Top1-(0.7+2*s)) > 1e-6 || s <= 0 {
		t.Fatalf("fused: %+v (b's signature score %v)", r.Experts, s)
	}
	// Weight 0 is dense only; a text per query is required.
	if r, _ := ix.Route(q, RouteOptions{Signatures: sig, QueryTexts: []string{"beta"}}); r.Experts[0].Name != "a" {
		t.Errorf("weight 0: %+v", r.Experts)
	}
	o.QueryTexts = nil
	if _, err := ix.Route(q, o); err == nil {
		t.Error("signatures without query texts: no error")
	}
}

func TestLeaveOneOutExperts(t *testing.T) {
	ix := routeIndex(t)
	// a's first instance as a query: its own row is left out, so a's best is
	// its other row (0.5 tilt: raw dot 1), not itself.
	best, names, err := ix.LeaveOneOutExperts("a", [][]float32{axis(0, -1, 0), axis(0, 7, 0.5)})
	if err != nil {
		t.Fatal(err)
	}
	E := len(names)
	if E != 3 || names[0] != "a" || len(best) != 2*E {
		t.Fatalf("names %v, best %v", names, best)
	}
	if best[0] != 1 || best[E] != 1 { // a: the other row, dot 1 either way
		t.Errorf("a's own column %v %v", best[0], best[E])
	}
	if best[1] != 0 || best[E+1] != 0.25 { // b's rows: axis 1, and axis 1 tilted 0.5 along 7
		t.Errorf("b's column %v %v", best[1], best[E+1])
	}
	if _, _, err := ix.LeaveOneOutExperts("a", [][]float32{axis(0, -1, 0)}); err == nil {
		t.Error("wrong query count: no error")
	}
	if _, _, err := ix.LeaveOneOutExperts("zz", nil); err == nil {
		t.Error("unknown expert: no error")
	}
}

func TestRouteWithTypical(t *testing.T) {
	ix := routeIndex(t)
	q := [][]float32{{0.75, 0.7, 0, 0, 0, 0, 0, 0}}
	// a is ahead by 0.05 raw; a's instances match each other far better than
	// b's, so held to its typical score b wins, and Top1 is the adjusted score.
	typical := map[string]float64{"a": 1, "b": 0.5, "c": 0.5}
	r, err := ix.Route(q, RouteOptions{RunnersUp: true, TopK: 3, Typical: typical, TypicalWeight: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Experts[0].Name != "b" || math.Abs(r.Experts[0].Top1-(0.7-0.15)) > 1e-6 || math.Abs(r.Experts[1].Top1-(0.75-0.3)) > 1e-6 {
		t.Fatalf("typical: %+v", r.Experts)
	}
	// Weight 0 ignores them; an expert missing from the map is held to 0.
	if r, _ := ix.Route(q, RouteOptions{Typical: typical}); r.Experts[0].Name != "a" {
		t.Errorf("weight 0: %+v", r.Experts)
	}
	if r, _ := ix.Route(q, RouteOptions{Typical: map[string]float64{"a": 1}, TypicalWeight: 0.3}); r.Experts[0].Name != "b" {
		t.Errorf("b missing from the map: %+v", r.Experts)
	}
}

func TestLeaveOneOutOwn(t *testing.T) {
	ix := routeIndex(t)
	qs := [][]float32{axis(0, -1, 0), axis(0, 7, 0.5)}
	own, err := ix.LeaveOneOutOwn("a", qs)
	if err != nil {
		t.Fatal(err)
	}
	best, _, _ := ix.LeaveOneOutExperts("a", qs)
	if len(own) != 2 || own[0] != best[0] || own[1] != best[3] || own[0] != 1 {
		t.Errorf("own %v, LeaveOneOutExperts' own column %v %v", own, best[0], best[3])
	}
	one := NewIndex(8, Raw)
	if err := one.Add("x", [][]float32{axis(0, -1, 0)}, []string{"x0"}); err != nil {
		t.Fatal(err)
	}
	if own, err := one.LeaveOneOutOwn("x", [][]float32{axis(0, -1, 0)}); err != nil || !math.IsInf(float64(own[0]), -1) {
		t.Errorf("a lone instance: %v, %v", own, err)
	}
	if _, err := ix.LeaveOneOutOwn("a", qs[:1]); err == nil {
		t.Error("wrong query count: no error")
	}
	if _, err := ix.LeaveOneOutOwn("zz", nil); err == nil {
		t.Error("unknown expert: no error")
	}
}

func TestTypical(t *testing.T) {
	inf := float32(math.Inf(-1))
	for _, c := range []struct {
		own  []float32
		want float64
		ok   bool
	}{
		{[]float32{0.3, 0.9, 0.1}, 0.3, true},
		{[]float32{0.4, inf, 0.2, 0.8, 0.6}, 0.5, true},
		{[]float32{inf}, 0, false},
		{nil, 0, false},
	} {
		if got, ok := Typical(c.own); ok != c.ok || math.Abs(got-c.want) > 1e-6 {
			t.Errorf("Typical(%v) = %v, %v; want %v, %v", c.own, got, ok, c.want, c.ok)
		}
	}
}
