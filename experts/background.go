package experts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"roe/retriever"
)

// maxBackground bounds a background set: each request is scored against
// every one of them.
const maxBackground = 100_000

// ReadBackground reads background requests, one JSON object a line with a
// non-empty "prompt" (other fields are ignored; blank lines are skipped).
func ReadBackground(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var p struct {
			Prompt *string `json:"prompt"`
		}
		if err := json.Unmarshal(line, &p); err != nil {
			return nil, fmt.Errorf("%w: background line %d: %v", ErrInvalid, n, err)
		}
		if p.Prompt == nil || strings.TrimSpace(*p.Prompt) == "" {
			return nil, fmt.Errorf("%w: background line %d: no prompt", ErrInvalid, n)
		}
		if len(out) == maxBackground {
			return nil, fmt.Errorf("%w: more than %d background requests", ErrInvalid, maxBackground)
		}
		out = append(out, *p.Prompt)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: background: %v", ErrInvalid, err)
	}
	return out, nil
}

// background is the set of general requests (Config.Background) that a
// request's likeness to the library is measured against: the routing score
// the fallback compares is the best expert's score less the request's mean
// score against its BackgroundNeighbors nearest of these, so a request is
// served an expert only when it is closer to that expert than to requests no
// expert is for. They are embedded
// once, with the catalog's embedder, and scored as the index scores its own
// instances (under center-l2, centred on the library's current mean).
type background struct {
	rows    []float32 // the embeddings, [len(prompts)·dim]
	prompts []string  // as given, by row
}

func newBackground(emb retriever.Embedder, format string, prompts []string) (*background, error) {
	texts := make([]string, len(prompts))
	for i, p := range prompts {
		texts[i] = retriever.FormatInstance(format, p, nil)
	}
	embs, err := emb.Embed(texts)
	if err != nil {
		return nil, fmt.Errorf("embed the background: %w", err)
	}
	for i, e := range embs {
		for _, v := range e {
			if v-v != 0 {
				return nil, fmt.Errorf("%w: background request %d embeds to a non-finite value", ErrInvalid, i)
			}
		}
	}
	return &background{rows: slices.Concat(embs...), prompts: prompts}, nil
}

// BackgroundNeighbors is how many of a request's nearest background requests
// its background score averages: a k-nearest-neighbour density rather than
// the one nearest, whose score rides on a single request's wording. Chosen on
// the routing benchmark's dev split over four encoders (10 against 1: AUROC
// 0.946 → 0.952, fallback out of domain 75.9 → 77.5%, in domain 4.4 → 4.0%);
// more neighbours helped the routing encoder further but cost the base
// model's pooled embedder, whose background they flatten.
const BackgroundNeighbors = 10

// scores is each query's background score as ix scores, [Q] (the mean over
// its BackgroundNeighbors nearest background requests), with the nearest
// background request of each.
func (b *background) scores(ix *retriever.Index, queries [][]float32) ([]float32, []string, error) {
	s, arg, err := ix.ScoreRows(queries, b.rows, BackgroundNeighbors)
	if err != nil {
		return nil, nil, err
	}
	near := make([]string, len(queries))
	for i, a := range arg {
		if a >= 0 {
			near[i] = b.prompts[a]
		}
	}
	return s, near, nil
}

// LoadBackground resolves a --background value: "" is def (roe serve's:
// models.Background()), "none" is no background, anything else a JSON Lines
// file that ReadBackground reads.
func LoadBackground(spec string, def []byte) ([]string, error) {
	switch spec {
	case "":
		return ReadBackground(bytes.NewReader(def))
	case "none":
		return nil, nil
	}
	f, err := os.Open(spec)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadBackground(f)
}
