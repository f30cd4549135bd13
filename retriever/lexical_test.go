package retriever

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

func TestLexicalBM25(t *testing.T) {
	l, err := NewLexical()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	common := "the question asks which answer is correct for the passage"
	for i := range 20 {
		texts := []string{common, fmt.Sprintf("%s number %d", common, i)}
		if err := l.Add(fmt.Sprintf("e%02d", i), texts, "a generic expert"); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Add("botany", []string{common + " about zygomorphic orchid flowers", "pollinators of orchid species"}, "plants")
	got, err := l.Search("which zygomorphic orchid is correct", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "botany" || got[0].Score <= got[1].Score {
		t.Fatalf("rare words should find botany first: %+v", got)
	}
	// Description documents are searchable too.
	got, _ = l.Search("plants", 1)
	if len(got) != 1 || got[0].Name != "botany" {
		t.Fatalf("description: %+v", got)
	}
	// Remove and re-Add replace the expert's documents.
	if ok, err := l.Remove("botany"); !ok || err != nil {
		t.Fatal("remove", ok, err)
	}
	got, _ = l.Search("zygomorphic orchid", 3)
	if len(got) != 0 {
		t.Fatalf("removed expert still found: %+v", got)
	}
	_ = l.Add("e03", []string{"orchid"}, "")
	_ = l.Add("e03", []string{"zygomorphic"}, "")
	got, _ = l.Search("orchid", 3)
	if len(got) != 0 {
		t.Fatalf("replaced documents still found: %+v", got)
	}
	if got, _ := l.Search("zygomorphic", 3); len(got) != 1 || got[0].Name != "e03" {
		t.Fatalf("re-added: %+v", got)
	}
}

// The scores must be BM25's, not bleve's default tf-idf: check one against the formula.
func TestLexicalScoreIsBM25(t *testing.T) {
	l, err := NewLexical()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	docs := map[string]string{"x": "apple banana apple", "y": "banana cherry", "z": "cherry date elder fig"}
	for n, d := range docs {
		_ = l.Add(n, []string{d}, "")
	}
	got, err := l.Search("apple", 1)
	if err != nil || len(got) != 1 || got[0].Name != "x" {
		t.Fatalf("%+v %v", got, err)
	}
	// bleve's BM25: k1 = 1.2, b = 0.75, tf = √freq, idf = ln(1 + (N−n+0.5)/(n+0.5)).
	// N = 3 docs, n = 1, freq = 2, |d| = 3 = avg |d| (x 3, y 2, z 4 words).
	k1, b := 1.2, 0.75
	idf := math.Log(1 + (3-1+0.5)/(1+0.5))
	tf := math.Sqrt(2)
	want := idf * tf * k1 / (tf + k1*(1-b+b*3/3))
	// Confirm against bleve's own explanation rather than trusting the constants blindly.
	req := bleve.NewSearchRequest(bleve.NewMatchQuery("apple"))
	req.Explain = true
	res, err := l.idx.Search(req)
	if err != nil || len(res.Hits) != 1 {
		t.Fatal(err)
	}
	if !strings.Contains(res.Hits[0].Expl.Message+fmt.Sprint(res.Hits[0].Expl.Children), "bm25") {
		t.Errorf("explanation does not name bm25: %s", res.Hits[0].Expl)
	}
	if math.Abs(got[0].Score-want) > 1e-6*want {
		t.Errorf("score %v, BM25 formula %v; explanation: %s", got[0].Score, want, res.Hits[0].Expl)
	}
}
