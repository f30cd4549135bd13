package retriever

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func tinyEncoder(t *testing.T) *Encoder {
	t.Helper()
	e, err := NewEncoder(EncoderConfig{Name: "t", Buckets: 257, Dim: 8, MinChar: 3, MaxChar: 4, Bigrams: true, MaxWords: 64, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// A projection away from the identity, so its gradient is exercised.
	r := rand.New(rand.NewPCG(9, 9))
	for i := range e.proj {
		e.proj[i] += float32(r.NormFloat64() * 0.3)
	}
	for i := range e.weight { // unequal weights, some zero
		e.weight[i] = float32(r.IntN(4))
	}
	return e
}

var fdPairs = []EncoderExample{
	{Query: "was the movie good", Key: "review: a great film", Class: 0},
	{Query: "which topic is this news", Key: "stocks fell on wall street", Class: 1},
	{Query: "is this grammatical", Key: "the book was wrote by him", Class: 2, Space: "acc"},
	{Query: "acceptable sentence?", Key: "him went home", Class: 3, Space: "acc"},
}

// The paired backward of the InfoNCE loss agrees with central differences
// on the projection and on every feature row it touches.
func TestEncoderGradients(t *testing.T) {
	e := tinyEncoder(t)
	bg := []string{"it was a dark and stormy night", "call me ishmael"}
	b := newBatch(len(fdPairs), len(fdPairs)+len(bg), e.cfg.Dim)
	loss := func() float64 {
		return e.lossAndGrads(newBatch(len(fdPairs), len(fdPairs)+len(bg), e.cfg.Dim), fdPairs, bg, 0.1)
	}
	e.lossAndGrads(b, fdPairs, bg, 0.1)
	check := func(name string, w []float32, i int, g float32) {
		const h = 1e-3
		old := w[i]
		w[i] = old + h
		lp := loss()
		w[i] = old - h
		lm := loss()
		w[i] = old
		fd := (lp - lm) / (2 * h)
		if math.Abs(fd-float64(g)) > 2e-3*math.Max(1, math.Abs(fd)) {
			t.Errorf("%s[%d]: backward %g, finite difference %g", name, i, g, fd)
		}
	}
	for i := 0; i < len(e.proj); i += 7 {
		check("proj", e.proj, i, b.gp[i])
	}
	n := 0
	for f, g := range b.gt {
		for k := 0; k < e.cfg.Dim; k += 3 {
			check("table", e.table, int(f)*e.cfg.Dim+k, g[k])
		}
		if n++; n > 12 {
			break
		}
	}
}

// Training separates classes the untrained encoder confuses, and the encoder
// embeds the same after Save and LoadEncoder.
func TestEncoderTrainSaveLoad(t *testing.T) {
	e := tinyEncoder(t)
	classes := [][2][]string{
		{{"how was the film", "did you like the movie", "rate this flick"}, {"a wonderful film", "boring movie", "great acting"}},
		{{"what section of the paper", "news category please", "which desk covers this"}, {"stocks rose today", "the team won the cup", "rain in the capital"}},
	}
	sample := func(r *rand.Rand) EncoderExample {
		c := r.IntN(len(classes))
		return EncoderExample{Query: classes[c][0][r.IntN(3)], Key: classes[c][1][r.IntN(3)], Class: c}
	}
	margin := func() float64 { // mean same-class minus cross-class similarity of queries to keys
		var same, cross float64
		for c := range classes {
			q, _ := e.Embed(classes[c][0])
			for d := range classes {
				k, _ := e.Embed(classes[d][1])
				for _, a := range q {
					for _, b := range k {
						s := 0.0
						for i := range a {
							s += float64(a[i] * b[i])
						}
						if c == d {
							same += s
						} else {
							cross += s
						}
					}
				}
			}
		}
		return (same - cross) / 9
	}
	before := margin()
	if err := TrainEncoder(context.Background(), e, sample, EncoderTrainOptions{Steps: 200, Batch: 8, LR: 0.05, Temperature: 0.1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	after := margin()
	if !(after > before+0.5) {
		t.Errorf("class margin %.3f before training, %.3f after", before, after)
	}
	dir := t.TempDir()
	if err := e.Save(dir); err != nil {
		t.Fatal(err)
	}
	l, err := LoadEncoder(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != e.ID() {
		t.Errorf("id %s after loading, %s before", l.ID(), e.ID())
	}
	a, _ := e.Embed([]string{"rate this movie"})
	b, _ := l.Embed([]string{"rate this movie"})
	for i := range a[0] {
		if a[0][i] != b[0][i] {
			t.Fatalf("embedding differs after Save/Load at %d: %g vs %g", i, a[0][i], b[0][i])
		}
	}
}

// featuresRef is Features as first written (a string per n-gram): the
// reference twin whose hashes the stored library embeddings were made with.
func featuresRef(e *Encoder, text string) []uint32 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > e.cfg.MaxWords {
		words = words[:e.cfg.MaxWords]
	}
	B := uint64(e.cfg.Buckets)
	var dst []uint32
	for i, w := range words {
		dst = append(dst, uint32(hashFeature('w', w, "")%B))
		if e.cfg.Bigrams && i > 0 {
			dst = append(dst, uint32(hashFeature('b', words[i-1], w)%B))
		}
		r := []rune("<" + w + ">")
		for n := e.cfg.MinChar; n <= e.cfg.MaxChar; n++ {
			for s := 0; s+n <= len(r); s++ {
				if n == len(r) {
					continue
				}
				dst = append(dst, uint32(hashFeature('c', string(r[s:s+n]), "")%B))
			}
		}
	}
	return dst
}

// Features hashes exactly as its reference twin, on ASCII, accented, CJK,
// emoji and invalid UTF-8 text and on words longer than its rune buffer.
func TestFeaturesMatchReference(t *testing.T) {
	e, err := NewEncoder(DefaultEncoderConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		"Is this review positive or negative? The movie was great!",
		"Ünïcödé café naïve résumé — «quoted» 東京タワー 🙂 emoji",
		"bad \xff\xfe utf8 \xc3 here",
		strings.Repeat("supercalifragilistic", 8) + " end",
		"", "   ", "a b c 1 2 3",
	} {
		got, want := e.Features(text, nil), featuresRef(e, text)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: features differ from the reference (%d vs %d)", text, len(got), len(want))
		}
	}
}
