package library

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// DefaultSampleSize is S, the number of training instances an expert keeps (the paper's 100).
const DefaultSampleSize = 100

// ReadInstances parses instances.jsonl: one object per line with "input"
// (required), "answer_choices", "target" and "embedding" (optional; when
// given, finite, within the bounds Add enforces and of one length). name is
// used in errors, which give the line.
func ReadInstances(r io.Reader, name string) ([]Instance, error) {
	var out []Instance
	dim, dimLine := 0, 0 // the first embedding's length and line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var in Instance
		if err := json.Unmarshal(line, &in); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrInvalid, name, n, err)
		}
		if in.Text == "" {
			return nil, fmt.Errorf("%w: %s:%d: no \"input\"", ErrInvalid, name, n)
		}
		// Add checks embeddings again; here the error can name the line.
		if len(in.Embedding) > 0 {
			if err := checkEmbedding(in.Embedding); err != nil {
				return nil, fmt.Errorf("%w: %s:%d: %w", ErrInvalid, name, n, err)
			}
			if dimLine == 0 {
				dim, dimLine = len(in.Embedding), n
			} else if len(in.Embedding) != dim {
				return nil, fmt.Errorf("%w: %s:%d: %d-dim embedding, line %d has %d", ErrInvalid, name, n, len(in.Embedding), dimLine, dim)
			}
		}
		out = append(out, in)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	return out, nil
}
