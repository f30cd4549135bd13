package retriever

import (
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// Task signatures: the lexical half of routing. An expert's instances repeat
// their task's words (the template's instruction, the answer choices) while
// their content varies, so the words an expert's instances share far more
// often than the library's instances at large say what the expert does. A
// signature is that profile, computed from the library alone: for feature f
// (a word or a character 4- or 5-gram of one) and expert e with document
// frequency df_e(f) (the share of e's instances containing f) and background
// b(f) (the mean of df over all experts),
//
//	w_e(f) = df_e(f) · log((df_e(f) + a) / (b(f) + a))   where positive, else 0,
//
// the term of f in the divergence of e from the library. A query's score for
// e is the inner product of its set of features with w_e, divided by the
// query's norm and a pivoted norm of w_e (Singhal, Buckley and Mitra, 1996):
//
//	score_e(q) = Σ_{f∈q} w_e(f) / (‖q‖ · ((1−p)·avg_e‖w_e‖ + p·‖w_e‖)),  p = signaturePivot.
//
// A plain cosine (p = 1) favours a mixture, whose vector is shorter: a merge
// stores instances of its components, and on mr's own template-rendered
// queries the starter library's sst2+mr merge outscored mr, which lost 94%
// of its Q = 32 votes to it. Pivoting lets part of the length count against
// an expert that spreads its words over several tasks. (Scoring by the share
// of w_e's mass on the query's features, p = 0 in L1, fixed mr too but cost
// 5–7 points of out-of-domain fallback on both splits.) Nothing is trained:
// signatures follow every addition and removal, so an expert added later is
// routed by its own words, and text no expert's instances share (a request
// no expert fits) scores near 0 for every expert.

// DefaultSignatureWeight weighs signatures against the dense score in routing
// (RouteOptions.SignatureWeight): chosen on the routing benchmark's dev split.
const DefaultSignatureWeight = 2

// signaturePivot is p above, chosen on the routing benchmark's dev split:
// 0.95 / 0.9 / 0.85 / 0.75 gave template-rendered mr at Q = 32 37.5 / 100 /
// 100 / 100% and out-of-domain fallback 75.0 / 75.0 / 72.5 / 72.5% (1: 6.2%
// and 78.8%), in-domain top-1 and AUROC unchanged within a prompt.
const signaturePivot = 0.9

// signatureSmoothing is a in w_e(f): it keeps features rare everywhere from
// weighing like template words.
const signatureSmoothing = 0.01

// Signatures holds the task signatures of a library's experts. It is safe for
// concurrent use.
type Signatures struct {
	mu    sync.RWMutex
	df    map[string]map[uint64]float32 // expert → feature → share of its instances with it
	stale bool                          // the fields below need rebuilding

	names []string             // experts, in id order
	ids   map[string]int       // expert → id
	post  map[uint64][]posting // feature → experts weighing it
	norm  []float64            // [expert id] ‖w_e‖
	pivot float64              // avg_e ‖w_e‖
}

type posting struct {
	expert int32
	w      float32
}

// NewSignatures returns an empty set.
func NewSignatures() *Signatures {
	return &Signatures{df: map[string]map[uint64]float32{}}
}

// Put sets expert's signature from its instance texts (replacing any before).
// An expert without texts is removed.
func (s *Signatures) Put(expert string, texts []string) {
	if len(texts) == 0 {
		s.Remove(expert)
		return
	}
	df := map[uint64]float32{}
	inv := 1 / float32(len(texts))
	var fs []uint64
	for _, t := range texts {
		fs = signatureFeatures(t, fs[:0])
		for _, f := range fs {
			df[f] += inv
		}
	}
	s.mu.Lock()
	s.df[expert] = df
	s.stale = true
	s.mu.Unlock()
}

// Remove forgets expert's signature.
func (s *Signatures) Remove(expert string) {
	s.mu.Lock()
	if _, ok := s.df[expert]; ok {
		delete(s.df, expert)
		s.stale = true
	}
	s.mu.Unlock()
}

// Len returns the number of experts with a signature.
func (s *Signatures) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.df)
}

// rebuild recomputes the weights after a change; the caller holds mu.
func (s *Signatures) rebuild() {
	bg := map[uint64]float64{}
	for _, df := range s.df {
		for f, v := range df {
			bg[f] += float64(v)
		}
	}
	E := float64(len(s.df))
	s.names = s.names[:0]
	for name := range s.df {
		s.names = append(s.names, name)
	}
	s.ids = make(map[string]int, len(s.names))
	s.post = map[uint64][]posting{}
	s.norm = make([]float64, len(s.names))
	s.pivot = 0
	for id, name := range s.names {
		s.ids[name] = id
		var n2 float64
		for f, v := range s.df[name] {
			d := float64(v)
			w := d * math.Log((d+signatureSmoothing)/(bg[f]/E+signatureSmoothing))
			if w <= 0 {
				continue
			}
			s.post[f] = append(s.post[f], posting{int32(id), float32(w)})
			n2 += w * w
		}
		s.norm[id] = math.Sqrt(n2)
		s.pivot += s.norm[id] / float64(len(s.names))
	}
	s.stale = false
}

// Score returns each expert's signature score for query (experts: the names
// to score, in the caller's order): the cosine between the query's features
// and the expert's signature with the signature's length pivoted (above), so
// in [0, 1/signaturePivot).
func (s *Signatures) Score(query string, experts []string) []float64 {
	out := make([]float64, len(experts))
	s.mu.RLock()
	if s.stale {
		s.mu.RUnlock()
		s.mu.Lock()
		if s.stale {
			s.rebuild()
		}
		s.mu.Unlock()
		s.mu.RLock()
	}
	defer s.mu.RUnlock()
	fs := signatureFeatures(query, nil)
	if len(fs) == 0 {
		return out
	}
	sum := make([]float64, len(s.names))
	for _, f := range fs {
		for _, p := range s.post[f] {
			sum[p.expert] += float64(p.w)
		}
	}
	qn := math.Sqrt(float64(len(fs)) + 1)
	for i, e := range experts {
		if id, ok := s.ids[e]; ok && s.norm[id] > 0 {
			out[i] = sum[id] / ((1-signaturePivot)*s.pivot + signaturePivot*s.norm[id]) / qn
		}
	}
	return out
}

// signatureFeatures appends to dst the distinct features of a text, sorted:
// its lowercased words (runs of letters and digits) and their character 4-
// and 5-grams with < and > marking the word's ends (so inflections and typos
// still share most of them), each hashed to 64 bits.
func signatureFeatures(text string, dst []uint64) []uint64 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > maxSignatureWords {
		words = words[:maxSignatureWords]
	}
	var buf []byte
	var at []int // rune starts in buf, and its length
	for _, w := range words {
		dst = append(dst, hashFeature('w', w, ""))
		buf = append(append(append(buf[:0], '<'), w...), '>')
		at = at[:0]
		for i := range string(buf) {
			at = append(at, i)
		}
		runes := len(at)
		at = append(at, len(buf))
		for n := 4; n <= 5; n++ {
			for i := 0; i+n <= runes; i++ {
				dst = append(dst, hashBytes('c', buf[at[i]:at[i+n]]))
			}
		}
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// hashBytes is hashFeature of one byte string, without converting it.
func hashBytes(kind byte, b []byte) uint64 {
	h := uint64(14695981039346656037)
	h ^= uint64(kind)
	h *= 1099511628211
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// maxSignatureWords bounds the words of a text read for its signature features.
const maxSignatureWords = 512
