package retriever

import (
	"fmt"
	"math"
	"testing"
)

// sigLibrary is three experts whose instances share a task wording and vary in content.
func sigLibrary() *Signatures {
	s := NewSignatures()
	s.Put("sentiment", []string{
		"Is this review positive or negative? The acting was wooden and the plot dull.",
		"Is this review positive or negative? A delight from start to finish.",
		"Is this review positive or negative? I wanted my money back.",
	})
	s.Put("pronoun", []string{
		"The trophy did not fit in the case because it was small. Which noun does the pronoun it refer to?",
		"Anna thanked Maria because she helped. Which noun does the pronoun she refer to?",
		"The dog chased the cat until it was tired. Which noun does the pronoun it refer to?",
	})
	s.Put("news", []string{
		"Which section of the newspaper: sports, business, world or science? Stocks fell on Monday.",
		"Which section of the newspaper: sports, business, world or science? The striker scored twice.",
		"Which section of the newspaper: sports, business, world or science? Rain is expected tomorrow.",
	})
	return s
}

func argmax(v []float64) int {
	b := 0
	for i := range v {
		if v[i] > v[b] {
			b = i
		}
	}
	return b
}

func TestSignaturesTaskWords(t *testing.T) {
	s := sigLibrary()
	names := []string{"sentiment", "pronoun", "news"}
	for q, want := range map[string]string{
		"pos or neg? this reviewer hated the film":                  "sentiment",
		"who does the pronoun 'he' refer to in: Tom called Bill":    "pronoun",
		"what newspaper section fits this: the central bank raised": "news",
	} {
		sc := s.Score(q, names)
		if got := names[argmax(sc)]; got != want {
			t.Errorf("%q: %s (scores %v), want %s", q, got, sc, want)
		}
		for _, v := range sc {
			if v < 0 || v >= 1 || math.IsNaN(v) {
				t.Errorf("%q: score %v out of [0, 1)", q, v)
			}
		}
	}
	// Words no expert's instances share score 0 everywhere; so does empty text.
	for _, q := range []string{"zyxwv qqqq", "", "!!!"} {
		for i, v := range s.Score(q, names) {
			if v != 0 {
				t.Errorf("%q: %s scores %v, want 0", q, names[i], v)
			}
		}
	}
	// An unknown name scores 0.
	if v := s.Score("positive or negative", []string{"nobody"}); v[0] != 0 {
		t.Errorf("unknown expert scores %v", v[0])
	}
}

func TestSignaturesFollowChanges(t *testing.T) {
	s := sigLibrary()
	names := []string{"sentiment", "pronoun", "news"}
	q := "who does the pronoun refer to"
	if s.Score(q, names)[1] == 0 {
		t.Fatal("pronoun expert does not score its own words")
	}
	s.Remove("pronoun")
	if v := s.Score(q, names); v[1] != 0 || s.Len() != 2 {
		t.Errorf("after Remove: %v, %d experts", v, s.Len())
	}
	// A word every expert shares is nobody's signature: once the pronoun
	// expert's wording is everyone's, it stops telling them apart.
	s.Put("pronoun", []string{"Which noun does the pronoun refer to? a", "Which noun does the pronoun refer to? b"})
	s.Put("other", []string{"Which noun does the pronoun refer to? Other task c", "Which noun does the pronoun refer to? Other task d"})
	before := s.Score(q, []string{"pronoun"})[0]
	s.Put("sentiment", []string{"Which noun does the pronoun refer to? e"})
	s.Put("news", []string{"Which noun does the pronoun refer to? f"})
	if after := s.Score(q, []string{"pronoun"})[0]; after >= before {
		t.Errorf("shared wording still scores %v (was %v)", after, before)
	}
	s.Put("news", nil) // no texts: removed
	if s.Len() != 3 {
		t.Errorf("Put without texts kept the expert: %d experts", s.Len())
	}
}

func FuzzSignatureFeatures(f *testing.F) {
	for _, s := range []string{"", "Is this review positive or negative?", "naïve café ☕ «quoted»", "\xff\xfe<>", "a b c d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fs := signatureFeatures(text, nil)
		for i := 1; i < len(fs); i++ {
			if fs[i] <= fs[i-1] {
				t.Fatalf("features not sorted and distinct at %d", i)
			}
		}
		s := NewSignatures()
		s.Put("x", []string{text, "other words entirely"})
		s.Put("y", []string{"unrelated instance text"})
		for _, v := range s.Score(text, []string{"x", "y"}) {
			if v < 0 || v >= 1 || math.IsNaN(v) {
				t.Fatalf("score %v", v)
			}
		}
	})
}

// A merge's instances are its components' instances, so its signature is a
// mixture of theirs; on queries in a component's own templates the component
// must outscore it (all but a query that shares most words with the other).
func TestSignaturesMixtureBelowComponent(t *testing.T) {
	s := NewSignatures()
	// two datasets of movie reviews, each rendered with several templates
	// that share the task's words
	ta := []string{"What sentiment does the writer express for the movie? %s",
		"%s The sentiment expressed for the movie is", "The following movie review expresses what sentiment? %s",
		"%s How does the reviewer feel about the movie?"}
	tb := []string{"%s Is this movie review positive or negative?", "Review of the movie: %s Did the reviewer like it?",
		"%s The sentiment of this movie review is", "Movie review: %s Positive or negative sentiment?"}
	content := []string{"wooden acting", "a delight", "i wanted my money back", "boring and long", "superb cast",
		"tedious plot", "charming and light", "an awful script", "quite funny", "a mess"}
	var a, b []string
	for i := range 40 {
		a = append(a, fmt.Sprintf(ta[i%len(ta)], content[i%len(content)]))
		b = append(b, fmt.Sprintf(tb[(i/3)%len(tb)], content[(i+5)%len(content)]))
	}
	s.Put("critic", a)
	s.Put("review", b)
	s.Put("merge", append(append([]string(nil), a[:20]...), b[:20]...))
	names := []string{"critic", "review", "merge"}
	for i, task := range []string{"Which section: sports or business?", "Is this sentence grammatical?", "Do the two sentences mean the same?",
		"What is the topic?", "Does the premise entail the hypothesis?", "Who is speaking in the dialogue?"} {
		n := fmt.Sprint("other", i)
		s.Put(n, []string{task + " Stocks fell.", task + " The striker scored.", task + " Rain is expected."})
		names = append(names, n)
	}
	lost := 0
	for i, q := range []string{
		"What sentiment does the writer express for the movie? a clumsy film",
		"a clumsy film The sentiment expressed for the movie is",
		"The following movie review expresses what sentiment? a clumsy film",
		"a clumsy film How does the reviewer feel about the movie?",
	} {
		sc := s.Score(q, names)
		if best := names[argmax(sc)]; best != "critic" {
			t.Logf("query %d: %s (%.3f) outscores the component the query comes from (%.3f)", i, best, sc[argmax(sc)], sc[0])
			lost++
		}
	}
	if lost > 1 {
		t.Errorf("the component lost %d of 4 queries in its own templates", lost)
	}
}

func TestSignatureWeights(t *testing.T) {
	typical := map[string]float64{"a": 0.6, "b": 1.0, "c": 1.2, "d": 1.4}
	got := SignatureWeights(2, SignatureBoosts(typical, map[string]float64{"b": 0.6}), []string{"a", "b", "c", "d", "unknown"})
	// median 1.1: a and b lie below it, by 0.5 and 0.1; b is a mixture (0.6 copied)
	want := []float64{2 * (1 + signatureBoost*0.5), 2, 2, 2, 2}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			t.Errorf("weight %d = %v, want %v", i, got[i], want[i])
		}
	}
	for i, w := range SignatureWeights(2, SignatureBoosts(nil, nil), []string{"a", "b"}) {
		if w != 2 {
			t.Errorf("without typical scores, weight %d = %v, want 2", i, w)
		}
	}
}
