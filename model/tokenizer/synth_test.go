package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"roe/internal/testenv"
)

// TestSynthGolden checks synthetic tokenizers (components the real vocabularies do not
// use) against goldens from the HF library; see testdata/gen/synth.mjs.
func TestSynthGolden(t *testing.T) {
	bases := map[string]string{
		"stories": filepath.Join(sharedDir(), "data", "models", "stories260K-hf", "tokenizer.json"),
		"tiny":    filepath.Join(sharedDir(), "golden", "tiny-llama", "tokenizer.json"),
	}
	corpus := readCorpus(t)
	var subset []string
	for i, s := range corpus {
		if i < 440 && i%4 == 0 {
			subset = append(subset, s)
		}
	}
	f, err := os.Open(filepath.Join("testdata", "golden", "synth.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	total := 0
	for sc.Scan() {
		var v struct {
			Name     string                     `json:"name"`
			Base     string                     `json:"base"`
			Override map[string]json.RawMessage `json:"override"`
			Results  []goldenLine               `json:"results"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		t.Run(v.Name, func(t *testing.T) {
			baseJSON, err := os.ReadFile(bases[v.Base])
			if err != nil {
				testenv.SkipOrFail(t, "base %s missing: %v", bases[v.Base], err)
			}
			js := buildSynth(t, baseJSON, v.Override)
			tk, err := FromJSON(js, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Results) != len(subset) {
				t.Fatalf("%d results for %d strings", len(v.Results), len(subset))
			}
			fails := 0
			for i, g := range v.Results {
				text := subset[i]
				special := g.IDsSpecial
				if special == nil {
					special = append(append(append([]int{}, g.Pre...), g.IDs...), g.Post...)
				}
				errf := func(format string, args ...any) {
					fails++
					if fails <= 8 {
						t.Errorf("%q: "+format, append([]any{trunc(text)}, args...)...)
					}
				}
				if got := tk.Encode(text, false); !eqIDs(got, g.IDs) {
					errf("Encode(false) = %v, want %v", got, g.IDs)
				}
				if got := tk.Encode(text, true); !eqIDs(got, special) {
					errf("Encode(true) = %v, want %v", got, special)
				}
				if got, want := tk.Decode(special, false), orText(g.Dec, text); got != want {
					errf("Decode = %q, want %q", got, want)
				}
				if got, want := tk.Decode(special, true), orText(g.DecSkip, text); got != want {
					errf("Decode(skip) = %q, want %q", got, want)
				}
				if got, want := streamDecode(tk, special, true), orText(g.DecSkip, text); got != want {
					errf("stream decode = %q, want %q", got, want)
				}
			}
			total += len(v.Results) - fails
		})
	}
	t.Logf("%d synthetic cases checked", total)
}

// buildSynth applies synth.mjs's override rule to a base tokenizer.json.
func buildSynth(t *testing.T, base []byte, override map[string]json.RawMessage) []byte {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	for k, val := range override {
		switch k {
		case "model":
			var model, add map[string]json.RawMessage
			must(t, json.Unmarshal(doc["model"], &model))
			must(t, json.Unmarshal(val, &add))
			for mk, mv := range add {
				model[mk] = mv
			}
			doc["model"] = mustJSON(t, model)
		case "added_tokens":
			var vocab struct {
				Vocab map[string]int `json:"vocab"`
			}
			must(t, json.Unmarshal(doc["model"], &vocab))
			var added, extra []map[string]any
			must(t, json.Unmarshal(doc["added_tokens"], &added))
			must(t, json.Unmarshal(val, &extra))
			next := 0
			for _, id := range vocab.Vocab {
				next = max(next, id+1)
			}
			for _, a := range added {
				next = max(next, int(a["id"].(float64))+1)
			}
			for _, e := range extra {
				e["id"] = next
				next++
				added = append(added, e)
			}
			doc["added_tokens"] = mustJSON(t, added)
		default:
			doc[k] = val
		}
	}
	return mustJSON(t, doc)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
