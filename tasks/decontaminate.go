package tasks

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// DefaultNGram is the word n-gram length that marks pretraining text as
// overlapping evaluation data (GPT-3's decontamination used 13-grams).
const DefaultNGram = 13

// NGramFilter remembers the word n-grams of evaluation texts and finds
// corpus lines that contain one: pretraining must not see task test data.
type NGramFilter struct {
	n    int
	seen map[uint64]struct{}
}

// NewNGramFilter indexes the word n-grams of texts (n ≤ 0: DefaultNGram).
// Words are runs of letters and digits, lowercased, so punctuation and
// tokenisation styles (", " vs " , ") do not hide an overlap.
func NewNGramFilter(n int, texts []string) *NGramFilter {
	if n <= 0 {
		n = DefaultNGram
	}
	f := &NGramFilter{n: n, seen: map[uint64]struct{}{}}
	for _, t := range texts {
		f.each(t, func(h uint64) bool { f.seen[h] = struct{}{}; return true })
	}
	return f
}

// Len is the number of distinct n-grams indexed.
func (f *NGramFilter) Len() int { return len(f.seen) }

// Hit says whether text contains an indexed n-gram.
func (f *NGramFilter) Hit(text string) bool {
	hit := false
	f.each(text, func(h uint64) bool {
		_, hit = f.seen[h]
		return !hit
	})
	return hit
}

// each calls fn with the hash of every word n-gram of text until fn returns false.
func (f *NGramFilter) each(text string, fn func(uint64) bool) {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i := 0; i+f.n <= len(words); i++ {
		h := fnv.New64a()
		for _, w := range words[i : i+f.n] {
			h.Write([]byte(w))
			h.Write([]byte{0})
		}
		if !fn(h.Sum64()) {
			return
		}
	}
}

// TaskFilter indexes the DefaultNGram-grams of every evaluation split under
// tasksDir (TaskEvalTexts): what --decontaminate removes from a corpus.
func TaskFilter(tasksDir string) (*NGramFilter, error) {
	texts, err := TaskEvalTexts(tasksDir)
	if err != nil {
		return nil, err
	}
	return NewNGramFilter(DefaultNGram, texts), nil
}

// TaskEvalTexts returns every string field of every evaluation split
// (validation*.jsonl, test*.jsonl) of the task folders in tasksDir.
func TaskEvalTexts(tasksDir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"validation*.jsonl", "test*.jsonl"} {
		m, err := filepath.Glob(filepath.Join(tasksDir, "*", pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("train: no validation or test split under %s", tasksDir)
	}
	sort.Strings(files)
	var out []string
	for _, p := range files {
		ex, err := LoadJSONL(p)
		if err != nil {
			return nil, err
		}
		for _, e := range ex {
			out = appendStrings(out, e)
		}
	}
	return out, nil
}

// appendStrings adds the strings inside v (nested lists and objects too).
func appendStrings(out []string, v any) []string {
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case []any:
		for _, y := range x {
			out = appendStrings(out, y)
		}
	case map[string]any:
		for _, y := range x {
			out = appendStrings(out, y)
		}
	case Example:
		for _, y := range x {
			out = appendStrings(out, y)
		}
	}
	return out
}

// DropLines removes the lines of text that drop reports, and counts them.
func DropLines(text string, drop func(string) bool) (string, int) {
	if drop == nil {
		return text, 0
	}
	var sb strings.Builder
	n := 0
	for line := range strings.SplitAfterSeq(text, "\n") {
		if drop(line) {
			n++
			continue
		}
		sb.WriteString(line)
	}
	return sb.String(), n
}
