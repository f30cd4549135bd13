package tasks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Example is one dataset record, field name → value, as read from one JSON Lines line.
//
// Values are string, bool, nil, []any, map[string]any, int (a JSON number written without
// fraction or exponent that fits in an int, so that Jinja's `answer_choices[label]` indexes
// with it) or float64 (every other number, e.g. STS-B's `3.8` or `5.0`, which renders as
// Python would: "5.0").
type Example map[string]any

// maxLineBytes bounds one JSONL line (one example); longer lines are an error, not a hang.
const maxLineBytes = 64 << 20

// LoadJSONL reads a JSON Lines file, one JSON object per line; blank lines are skipped.
// A malformed line gives an error naming the file and the 1-based line number.
func LoadJSONL(path string) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	ex, err := ReadJSONL(f, path)
	if err != nil {
		return nil, err
	}
	return ex, nil
}

// ReadJSONL reads JSON Lines from r; name is used in error messages (e.g. the file path).
func ReadJSONL(r io.Reader, name string) ([]Example, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var out []Example
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		ex, err := parseExample(b)
		if err != nil {
			return nil, fmt.Errorf("load %s:%d: %w: %v", name, line, ErrMalformedData, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("load %s:%d: %w: line longer than %d bytes", name, line+1, ErrMalformedData, maxLineBytes)
		}
		return nil, fmt.Errorf("load %s:%d: %w", name, line+1, err)
	}
	return out, nil
}

// parseExample decodes one line holding exactly one JSON object.
func parseExample(b []byte) (Example, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", jsonKind(v))
	}
	return Example(convertNumbers(m).(map[string]any)), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// convertNumbers replaces json.Number by int (integer literals that fit) or float64, recursively.
func convertNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 0); err == nil {
				return int(i)
			}
		}
		// Integers too large for int and out-of-range values (±Inf) end up here.
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = convertNumbers(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = convertNumbers(x)
		}
		return t
	}
	return v
}

// LoadTask reads one split of a task folder laid out as <dir>/<split>.jsonl
// (e.g. LoadTask("../shared/data/tasks/sst2", "train")).
func LoadTask(dir, split string) ([]Example, error) {
	if split == "" || strings.ContainsAny(split, `/\`) || split == "." || split == ".." {
		return nil, fmt.Errorf("load task %s: bad split name %q", dir, split)
	}
	return LoadJSONL(filepath.Join(dir, split+".jsonl"))
}

// TaskSplits lists the splits of a task folder (the names of its *.jsonl files), sorted.
func TaskSplits(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("task splits %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".jsonl") {
			out = append(out, strings.TrimSuffix(e.Name(), ".jsonl"))
		}
	}
	sort.Strings(out)
	return out, nil
}

// SampleExamples draws n examples without replacement, deterministically from seed, and returns
// them in their original order. n >= len(ex) returns a copy of all of ex; n <= 0 returns none.
// The maps are shared with ex, not copied.
func SampleExamples(ex []Example, n int, seed uint64) []Example {
	if n <= 0 || len(ex) == 0 {
		return []Example{}
	}
	if n >= len(ex) {
		return slices.Clone(ex)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	idx := make([]int, len(ex))
	for i := range idx {
		idx[i] = i
	}
	// Partial Fisher–Yates: the first n slots become a uniform sample.
	for i := 0; i < n; i++ {
		j := i + rng.IntN(len(idx)-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	pick := idx[:n]
	slices.Sort(pick)
	out := make([]Example, n)
	for i, k := range pick {
		out[i] = ex[k]
	}
	return out
}

// TextFields are an example's text: its string fields and the strings of its
// list fields, sorted by field name, with ids and labels left out. It is the
// example's content without any template's instruction.
func TextFields(e Example) []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		switch k {
		case "idx", "id", "uid", "id1", "id2", "dialogue_id", "label", "source", "genre":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		switch v := e[k].(type) {
		case string:
			parts = append(parts, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					parts = append(parts, s)
				}
			}
		}
	}
	return parts
}
