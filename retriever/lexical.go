package retriever

import (
	"fmt"
	"sort"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// Lexical is the BM25 side of routing: a bleve index of every expert's instance
// texts and description, searched with a query text to rank experts by their
// best-matching document. It is in memory (scorch with no path; bleve's
// NewMemOnly index type ignores the BM25 scoring model) and safe for concurrent use.
type Lexical struct {
	mu   sync.RWMutex
	idx  bleve.Index
	docs map[string]int // expert → number of documents (instances + description)
}

// lexDoc is one indexed document.
type lexDoc struct {
	Expert string `json:"expert"`
	Text   string `json:"text"`
}

// NewLexical returns an empty in-memory BM25 index.
func NewLexical() (*Lexical, error) {
	doc := bleve.NewDocumentMapping()
	ex := bleve.NewTextFieldMapping()
	ex.Analyzer = keyword.Name
	ex.Store = true
	ex.IncludeTermVectors = false
	doc.AddFieldMappingsAt("expert", ex)
	tx := bleve.NewTextFieldMapping()
	tx.Analyzer = standard.Name
	tx.Store = false
	tx.IncludeTermVectors = false
	doc.AddFieldMappingsAt("text", tx)

	im := bleve.NewIndexMapping()
	im.DefaultMapping = doc
	im.DefaultAnalyzer = standard.Name
	im.ScoringModel = index.BM25Scoring
	var m mapping.IndexMapping = im
	idx, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: open: %v", ErrLexical, err)
	}
	return &Lexical{idx: idx, docs: map[string]int{}}, nil
}

// Close releases the index.
func (l *Lexical) Close() error { return l.idx.Close() }

// docID names an expert's i-th document.
func docID(expert string, i int) string { return fmt.Sprintf("%s\x00%d", expert, i) }

// Add indexes an expert's instance texts and description (each a document),
// replacing whatever the expert had.
func (l *Lexical) Add(expert string, texts []string, description string) error {
	if expert == "" {
		return fmt.Errorf("%w: empty expert name", ErrInput)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.idx.NewBatch()
	for i := range l.docs[expert] {
		b.Delete(docID(expert, i))
	}
	n := 0
	for _, t := range append(append([]string(nil), texts...), description) {
		if t == "" {
			continue
		}
		if err := b.Index(docID(expert, n), lexDoc{Expert: expert, Text: t}); err != nil {
			return fmt.Errorf("%w: index %q: %v", ErrLexical, expert, err)
		}
		n++
	}
	if err := l.idx.Batch(b); err != nil {
		return fmt.Errorf("%w: index %q: %v", ErrLexical, expert, err)
	}
	if n == 0 {
		delete(l.docs, expert)
	} else {
		l.docs[expert] = n
	}
	return nil
}

// Remove deletes an expert's documents and reports whether it had any.
func (l *Lexical) Remove(expert string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.docs[expert]
	if !ok {
		return false, nil
	}
	b := l.idx.NewBatch()
	for i := range n {
		b.Delete(docID(expert, i))
	}
	if err := l.idx.Batch(b); err != nil {
		return false, fmt.Errorf("%w: remove %q: %v", ErrLexical, expert, err)
	}
	delete(l.docs, expert)
	return true, nil
}

// Search ranks up to k experts by the BM25 score of their best document for
// query (a match query over the texts, terms ORed); Score is that BM25 score.
func (l *Lexical) Search(query string, k int) ([]ExpertScore, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want ≥ 1", ErrInput, k)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.docs) == 0 || query == "" {
		return nil, nil
	}
	q := bleve.NewMatchQuery(query)
	q.SetField("text")
	// An expert's documents may crowd the top; fetch enough hits to see k experts.
	size := 50 * k
	best := map[string]float64{}
	for from := 0; ; from += size {
		req := bleve.NewSearchRequestOptions(q, size, from, false)
		req.Fields = []string{"expert"}
		res, err := l.idx.Search(req)
		if err != nil {
			return nil, fmt.Errorf("%w: search: %v", ErrLexical, err)
		}
		for _, h := range res.Hits {
			name, _ := h.Fields["expert"].(string)
			if _, ok := best[name]; !ok {
				best[name] = h.Score // hits come best first
			}
		}
		if len(best) >= k || len(res.Hits) < size || from+size >= 10_000 {
			break
		}
	}
	out := make([]ExpertScore, 0, len(best))
	for n, s := range best {
		out = append(out, ExpertScore{Name: n, Score: s})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Name < out[j].Name
	})
	return out[:min(k, len(out))], nil
}
