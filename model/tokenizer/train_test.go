package tokenizer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateTrained = flag.Bool("update-trained", false, "rewrite testdata/trained from TrainBPE")

// trainLines is the test corpus as the Hugging Face trainer reads it from a file: the
// strings joined by newlines, one text per line (line endings kept).
func trainLines(tb testing.TB) []string {
	tb.Helper()
	lines := strings.SplitAfter(strings.Join(readCorpus(tb), "\n")+"\n", "\n")
	return lines[:len(lines)-1]
}

func mustTrain(tb testing.TB, texts []string, o TrainOptions) *TrainedBPE {
	tb.Helper()
	tr, err := TrainBPE(slices.Values(texts), o)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

func mergeStrings(tr *TrainedBPE) []string {
	out := make([]string, len(tr.Merges))
	for i, m := range tr.Merges {
		out[i] = m[0] + " " + m[1]
	}
	return out
}

// TestTrainHandChecked works "aaabdaaabac" by hand: (a,a) occurs 4 times; then (a,b)
// and (aa,a) both twice, and the tie goes to the pair of smaller ids; then (aa,ab).
func TestTrainHandChecked(t *testing.T) {
	tr := mustTrain(t, []string{"aaabdaaabac"}, TrainOptions{VocabSize: 1000})
	if got, want := mergeStrings(tr), []string{"a a", "a b", "aa ab"}; !slices.Equal(got, want) {
		t.Fatalf("merges %q, want %q", got, want)
	}
	if len(tr.Tokens) != 2+256+3 {
		t.Fatalf("%d tokens, want 261 (training stops when no pair occurs twice)", len(tr.Tokens))
	}
	tk, err := tr.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string][]string{
		"aaabdaaabac": {"aaab", "d", "aaab", "a", "c"},
		"aab":         {"aa", "b"}, // rank 0 (a,a) before rank 1 (a,b)
		"abaa":        {"ab", "aa"},
		"aaab":        {"aaab"},
		"aaaa":        {"aa", "aa"},
	} {
		var got []string
		for _, id := range tk.Encode(text, false) {
			s, _ := tk.TokenString(id)
			got = append(got, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q -> %q, want %q", text, got, want)
		}
	}

	// with every pair allowed, the four pairs left occur once: (a,c) has the smallest ids
	tr = mustTrain(t, []string{"aaabdaaabac"}, TrainOptions{VocabSize: 2 + 256 + 4, MinFrequency: 1})
	if got, want := mergeStrings(tr), []string{"a a", "a b", "aa ab", "a c"}; !slices.Equal(got, want) {
		t.Fatalf("merges %q, want %q", got, want)
	}
}

// TestTrainMatchesLibrary compares the merges with those of the Hugging Face BpeTrainer
// (testdata/gen/train.mjs).
func TestTrainMatchesLibrary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "train_merges.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Count  int      `json:"count"`
		SHA256 string   `json:"sha256"`
		First  []string `json:"first"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	tr := mustTrain(t, trainLines(t), TrainOptions{VocabSize: 1 << 16, MinFrequency: 1})
	got := mergeStrings(tr)
	for i, m := range g.First {
		if i >= len(got) || got[i] != m {
			t.Fatalf("merge %d: got %q, want %q", i, got[min(i, len(got)-1)], m)
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(got, "\n")))
	if len(got) != g.Count || hex.EncodeToString(sum[:]) != g.SHA256 {
		t.Fatalf("%d merges with sha256 %x, want %d with %s", len(got), sum, g.Count, g.SHA256)
	}
}

// TestTrainedFiles keeps testdata/trained (vocab 1024 on the test corpus) in step with
// TrainBPE; TestCorpusGolden checks that vocabulary against the library.
func TestTrainedFiles(t *testing.T) {
	tr := mustTrain(t, trainLines(t), TrainOptions{VocabSize: 1024})
	tj, cj, err := tr.JSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "trained")
	if *updateTrained {
		if err := tr.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": cj} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from TrainBPE's output (go test -run TestTrainedFiles -update-trained, then regenerate the goldens)", name)
		}
	}
}

func TestTrainRoundTrip(t *testing.T) {
	tr := mustTrain(t, trainLines(t), TrainOptions{VocabSize: 700})
	dir := t.TempDir()
	if err := tr.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tk.VocabSize() != 700 {
		t.Fatalf("VocabSize %d, want 700", tk.VocabSize())
	}
	if bos, ok := tk.BOS(); !ok || bos != 0 || !tk.AddsBOS() {
		t.Fatalf("BOS %d %v, adds BOS %v", bos, ok, tk.AddsBOS())
	}
	if eos, ok := tk.EOS(); !ok || eos != 1 {
		t.Fatalf("EOS %d %v", eos, ok)
	}
	texts := []string{
		"", " ", "\n", "\n\n\n", "\r\n", "\t x \t", "Hello, world!", "  leading and trailing  ",
		"The quick brown fox jumps over the lazy dog.\nIt's 12:30 -- isn't it?",
		"naïve café, Ωμέγα, Привет мир, 日本語のテキスト, 한국어, עברית, العربية",
		"emoji 🤖🎉👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵", "combining e\u0301 and \u200d zero width",
		"<s> literal specials </s> in text", "\x00\x01\x7f control", "tab\tsep\tvalues\n1\t2\t3\n",
		strings.Repeat("abc ", 200), "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
	}
	for _, text := range texts {
		ids := tk.Encode(text, true)
		if len(ids) == 0 || ids[0] != 0 {
			t.Errorf("%q: Encode(true) = %v, want BOS first", text, ids)
			continue
		}
		for _, id := range ids {
			if id < 0 || id >= 700 {
				t.Fatalf("%q: id %d out of range", text, id)
			}
		}
		if got := tk.Decode(ids, false); got != "<s>"+text {
			t.Errorf("Decode(Encode(%q)) = %q", text, got)
		}
		if got := tk.Decode(tk.Encode(text, false), false); got != text {
			t.Errorf("Decode(Encode(%q, false)) = %q", text, got)
		}
	}
}

func TestTrainDeterministic(t *testing.T) {
	lines := trainLines(t)
	a, _, err := mustTrain(t, lines, TrainOptions{VocabSize: 800}).JSON()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := mustTrain(t, lines, TrainOptions{VocabSize: 800}).JSON()
	shuffled := slices.Clone(lines)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	c, _, _ := mustTrain(t, shuffled, TrainOptions{VocabSize: 800}).JSON()
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatal("training twice (or on the same lines shuffled) gave different tokenizer.json")
	}
}

func TestTrainVocabSize(t *testing.T) {
	lines := trainLines(t)
	for _, n := range []int{258, 259, 300, 1000} {
		tr := mustTrain(t, lines, TrainOptions{VocabSize: n})
		tj, _, err := tr.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Model struct {
				Vocab  map[string]int `json:"vocab"`
				Merges []string       `json:"merges"`
			} `json:"model"`
		}
		if err := json.Unmarshal(tj, &raw); err != nil {
			t.Fatal(err)
		}
		tk, err := FromJSON(tj, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Tokens) != n || len(raw.Model.Vocab) != n || tk.VocabSize() != n {
			t.Errorf("vocab %d: %d tokens, %d in the file, loaded size %d", n, len(tr.Tokens), len(raw.Model.Vocab), tk.VocabSize())
		}
		if len(raw.Model.Merges) != len(tr.Merges) || len(tr.Merges) < n-258 {
			t.Errorf("vocab %d: %d merges (%d in the file)", n, len(tr.Merges), len(raw.Model.Merges))
		}
	}
}

// TestTrainPairCounts checks the incremental pair counts against a recount.
func TestTrainPairCounts(t *testing.T) {
	var byteID [256]int32
	for b := range byteID {
		byteID[b] = int32(b)
	}
	tr := newPairTrainer(countWords(slices.Values(trainLines(t))), &byteID)
	for step := 0; step < 600; step++ {
		p, _, ok := tr.best()
		if !ok {
			t.Fatal("ran out of pairs")
		}
		tr.merge(p, int32(256+step))
		if step%50 != 0 {
			continue
		}
		want := map[uint64]int64{}
		for w, syms := range tr.words {
			for i := 0; i+1 < len(syms); i++ {
				want[pairKey(int(syms[i]), int(syms[i+1]))] += tr.freq[w]
			}
		}
		for q, n := range tr.count {
			if n != want[q] {
				t.Fatalf("step %d: pair %x counted %d, recount %d", step, q, n, want[q])
			}
		}
		for q, n := range want {
			if tr.count[q] != n {
				t.Fatalf("step %d: pair %x counted %d, recount %d", step, q, tr.count[q], n)
			}
		}
	}
}

func TestTrainErrors(t *testing.T) {
	some := []string{"some text to train on"}
	for _, c := range []struct {
		name  string
		texts []string
		o     TrainOptions
	}{
		{"vocab below the bytes", some, TrainOptions{VocabSize: 200}},
		{"vocab below bytes and specials", some, TrainOptions{VocabSize: 257}},
		{"negative min frequency", some, TrainOptions{MinFrequency: -1}},
		{"repeated special", some, TrainOptions{Specials: []string{"<s>", "<s>"}}},
		{"empty special", some, TrainOptions{Specials: []string{"<s>", ""}}},
		{"special spelled as a byte", some, TrainOptions{Specials: []string{"<s>", "!"}}},
		{"no texts", nil, TrainOptions{}},
		{"empty texts", []string{"", ""}, TrainOptions{}},
	} {
		if _, err := TrainBPE(slices.Values(c.texts), c.o); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
