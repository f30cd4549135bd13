package retriever

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"roe/kernels"
	"roe/model/safetensors"
)

// The routing encoder: roe's own embedder for routing. A text is a bag of
// hashed features (words, word bigrams, character n-grams of words, as
// fastText); each feature has a learned vector, the text's vector is their mean
// projected by a learned square matrix. It is trained contrastively on the
// library's tasks (TrainEncoder) so that a prompt lands near the instances of
// its task however it is phrased. With hashed buckets every row ends up
// trained (words share buckets), so words of tasks it never saw are read
// through other words' vectors; the lexical half (Config.Lexical), the same
// bag through the untrained initial vectors, is a random projection of the
// bag of features: a lexical match, which places experts added later by their
// words.

// Files of an encoder folder.
const (
	EncoderConfigFile  = "encoder.json"
	EncoderWeightsFile = "encoder.safetensors"
)

// EncoderConfig shapes an encoder.
type EncoderConfig struct {
	Name     string `json:"name"`      // part of the embedder id
	Buckets  int    `json:"buckets"`   // hashed feature rows
	Dim      int    `json:"dim"`       // vector length
	MinChar  int    `json:"min_char"`  // shortest character n-gram of a word (with < and > around it)
	MaxChar  int    `json:"max_char"`  // longest
	Bigrams  bool   `json:"bigrams"`   // word bigrams
	MaxWords int    `json:"max_words"` // words read from a text (the rest is ignored)
	Seed     uint64 `json:"seed"`      // initial vectors
	// Lexical, when above 0, appends to each vector the mean of the features'
	// initial random vectors (a random projection of the weighted bag of
	// features: word overlap, whatever the training taught), weighted Lexical
	// against the trained part. It doubles Dim.
	Lexical float64 `json:"lexical,omitempty"`
}

// DefaultEncoderConfig is the shipped encoder's shape.
func DefaultEncoderConfig() EncoderConfig {
	return EncoderConfig{Name: "roe-router", Buckets: 1 << 16, Dim: 64, MinChar: 3, MaxChar: 5, Bigrams: true, MaxWords: 256, Seed: 1, Lexical: 0.5}
}

func (c EncoderConfig) check() error {
	if c.Buckets < 1 || c.Buckets > 1<<24 || c.Dim < 1 || c.Dim > 4096 || c.MinChar < 1 || c.MaxChar < c.MinChar || c.MaxChar > 16 || c.MaxWords < 1 ||
		c.Buckets*c.Dim > 1<<28 || !(c.Lexical >= 0 && c.Lexical <= 100) {
		return fmt.Errorf("%w: encoder config %+v", ErrInput, c)
	}
	return nil
}

// Encoder embeds texts for routing. It is safe for concurrent Embed calls.
type Encoder struct {
	cfg    EncoderConfig
	table  []float32 // [Buckets, Dim] feature vectors
	init   []float32 // [Buckets, Dim] their initial random values (Config.Lexical > 0)
	weight []float32 // [Buckets] each feature's weight in the mean (inverse document frequency)
	proj   []float32 // [Dim, Dim] applied to the mean: u = proj · v
	id     string
}

// NewEncoder is an untrained encoder: random feature vectors of norm about 1,
// the identity projection.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	e := &Encoder{cfg: cfg, table: make([]float32, cfg.Buckets*cfg.Dim), weight: make([]float32, cfg.Buckets), proj: make([]float32, cfg.Dim*cfg.Dim)}
	for i := range e.weight {
		e.weight[i] = 1
	}
	copy(e.table, initialTable(cfg))
	if cfg.Lexical > 0 {
		e.init = initialTable(cfg)
	}
	for i := 0; i < cfg.Dim; i++ {
		e.proj[i*cfg.Dim+i] = 1
	}
	e.id = e.makeID()
	return e, nil
}

// initialTable is the feature vectors before training: normal, of norm about 1.
func initialTable(cfg EncoderConfig) []float32 {
	t := make([]float32, cfg.Buckets*cfg.Dim)
	r := rand.New(rand.NewPCG(cfg.Seed, 0xe1c0))
	s := 1 / math.Sqrt(float64(cfg.Dim))
	for i := range t {
		t[i] = float32(r.NormFloat64() * s)
	}
	return t
}

// makeID names the embedding space by the encoder's name and a hash of its weights.
func (e *Encoder) makeID() string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%+v", e.cfg)
	buf := make([]byte, 4)
	for _, w := range [][]float32{e.table, e.weight, e.proj} {
		for _, v := range w {
			b := math.Float32bits(v)
			buf[0], buf[1], buf[2], buf[3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
			h.Write(buf)
		}
	}
	return fmt.Sprintf("encoder:%s:%012x", e.cfg.Name, h.Sum64()&0xffffffffffff)
}

// Config returns the encoder's shape.
func (e *Encoder) Config() EncoderConfig { return e.cfg }

// Dim returns the vector length: Config.Dim, twice that with Config.Lexical.
func (e *Encoder) Dim() int {
	if e.cfg.Lexical > 0 {
		return 2 * e.cfg.Dim
	}
	return e.cfg.Dim
}

// Normalization is L2: the encoder is trained for cosine similarity, and
// centring on the library mean would send all text it does not know (every
// request no expert fits) to one direction, the mean's opposite.
func (e *Encoder) Normalization() Normalization { return L2 }

// ID names the embedding space: the encoder's name and a hash of its weights.
func (e *Encoder) ID() string { return e.id }

// Features appends the hashed feature rows of text to dst: every word
// (lowercased runs of letters and digits), every pair of adjacent words, and
// the character n-grams of every word with < and > around it.
func (e *Encoder) Features(text string, dst []uint32) []uint32 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > e.cfg.MaxWords {
		words = words[:e.cfg.MaxWords]
	}
	B := uint64(e.cfg.Buckets)
	var buf [64]rune
	for i, w := range words {
		dst = append(dst, uint32(hashFeature('w', w, "")%B))
		if e.cfg.Bigrams && i > 0 {
			dst = append(dst, uint32(hashFeature('b', words[i-1], w)%B))
		}
		r := append(buf[:0], '<')
		for _, c := range w {
			r = append(r, c)
		}
		r = append(r, '>')
		for n := e.cfg.MinChar; n <= e.cfg.MaxChar; n++ {
			for s := 0; s+n <= len(r); s++ {
				if n == len(r) {
					continue // the whole word is already a feature
				}
				dst = append(dst, uint32(hashRunes('c', r[s:s+n])%B))
			}
		}
	}
	return dst
}

// hashFeature is FNV-1a over the kind byte and the feature's text.
func hashFeature(kind byte, a, b string) uint64 {
	h := fnvMix(fnvOffset, kind)
	for i := 0; i < len(a); i++ {
		h = fnvMix(h, a[i])
	}
	if b != "" {
		h = fnvMix(h, ' ')
		for i := 0; i < len(b); i++ {
			h = fnvMix(h, b[i])
		}
	}
	return h
}

// hashRunes is hashFeature(kind, string(r), ""), without building the
// string: FNV-1a over the runes' UTF-8 bytes.
func hashRunes(kind byte, r []rune) uint64 {
	h := fnvMix(fnvOffset, kind)
	var b [utf8.UTFMax]byte
	for _, c := range r {
		if c < utf8.RuneSelf {
			h = fnvMix(h, byte(c))
			continue
		}
		for _, x := range utf8.AppendRune(b[:0], c) {
			h = fnvMix(h, x)
		}
	}
	return h
}

const fnvOffset = 14695981039346656037

func fnvMix(h uint64, c byte) uint64 { return (h ^ uint64(c)) * 1099511628211 }

// meanInto sets v to the weighted mean of the feature rows, [Dim], and
// returns the sum of the weights (0: nothing to average).
func (e *Encoder) meanInto(v []float32, feats []uint32) float32 {
	clear(v)
	var W float32
	D := e.cfg.Dim
	kernels.AccRows(v, e.table, e.weight, feats, D)
	for _, f := range feats {
		W += e.weight[f]
	}
	if W > 0 {
		kernels.Scale(v, 1/W)
	}
	return W
}

// SetIDF weighs each feature by its inverse document frequency over texts,
// log((N+1)/(df+1)): scaffolding every text shares (an instance format,
// "the") weighs nothing, and features never seen weigh the most.
func (e *Encoder) SetIDF(texts []string) {
	df := make([]int32, e.cfg.Buckets)
	var feats []uint32
	seen := map[uint32]bool{}
	for _, t := range texts {
		feats = e.Features(t, feats[:0])
		clear(seen)
		for _, f := range feats {
			if !seen[f] {
				seen[f] = true
				df[f]++
			}
		}
	}
	n := float64(len(texts))
	for i, d := range df {
		e.weight[i] = float32(math.Log((n + 1) / (float64(d) + 1)))
	}
	e.id = e.makeID()
}

// project sets u = proj · v, [Dim].
func (e *Encoder) project(u, v []float32) {
	D := e.cfg.Dim
	for i := range D {
		u[i] = kernels.Dot(e.proj[i*D:(i+1)*D], v)
	}
}

// Embed returns each text's vector, [len(texts)][Dim()], L2-normalised (a text
// without features gets the zero vector's stand-in: the projection of nothing,
// which is zero, so it is refused).
func (e *Encoder) Embed(texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	D := e.cfg.Dim
	v := make([]float32, D)
	var feats []uint32
	for i, t := range texts {
		feats = e.Features(t, feats[:0])
		if len(feats) == 0 {
			return nil, fmt.Errorf("%w: text %d has no words", ErrInput, i)
		}
		if e.meanInto(v, feats) == 0 {
			return nil, fmt.Errorf("%w: text %d has only features of weight 0", ErrInput, i)
		}
		u := make([]float32, e.Dim())
		e.project(u[:D], v)
		if !unit(u[:D]) {
			return nil, fmt.Errorf("%w: text %d embeds to zero", ErrEmbed, i)
		}
		if e.cfg.Lexical > 0 {
			// The lexical half: the weighted mean of the initial vectors.
			kernels.AccRows(u[D:], e.init, e.weight, feats, D)
			if !unit(u[D:]) {
				return nil, fmt.Errorf("%w: text %d embeds to zero", ErrEmbed, i)
			}
			kernels.Scale(u[D:], float32(e.cfg.Lexical))
			kernels.Scale(u, float32(1/math.Sqrt(1+e.cfg.Lexical*e.cfg.Lexical)))
		}
		out[i] = u
	}
	return out, nil
}

// unit scales u to length 1, false when it is zero.
func unit(u []float32) bool {
	n := math.Sqrt(float64(kernels.Dot(u, u)))
	if n == 0 {
		return false
	}
	kernels.Scale(u, float32(1/n))
	return true
}

// Save writes the encoder folder: encoder.json and encoder.safetensors (bf16).
func (e *Encoder) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(e.cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, EncoderConfigFile), append(cfg, '\n'), 0o644); err != nil {
		return err
	}
	ts := []safetensors.Tensor{
		safetensors.BF16Tensor("table", []int{e.cfg.Buckets, e.cfg.Dim}, e.table),
		safetensors.BF16Tensor("weight", []int{e.cfg.Buckets}, e.weight),
		safetensors.BF16Tensor("proj", []int{e.cfg.Dim, e.cfg.Dim}, e.proj),
	}
	return safetensors.Write(filepath.Join(dir, EncoderWeightsFile), ts, map[string]string{"format": "roe-encoder"})
}

// IsEncoderDir reports whether fsys holds an encoder folder.
func IsEncoderDir(fsys fs.FS) bool {
	_, err := fs.Stat(fsys, EncoderConfigFile)
	return err == nil
}

// LoadEncoder reads an encoder folder (Save's). Weights are widened from bf16,
// so the embedder id hashes what Embed uses.
func LoadEncoder(fsys fs.FS) (*Encoder, error) {
	b, err := fs.ReadFile(fsys, EncoderConfigFile)
	if err != nil {
		return nil, err
	}
	var cfg EncoderConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, EncoderConfigFile, err)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	wb, err := fs.ReadFile(fsys, EncoderWeightsFile)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.FromBytes(EncoderWeightsFile, wb)
	if err != nil {
		return nil, err
	}
	e := &Encoder{cfg: cfg}
	for _, w := range []struct {
		name  string
		dst   *[]float32
		shape []int
	}{{"table", &e.table, []int{cfg.Buckets, cfg.Dim}}, {"weight", &e.weight, []int{cfg.Buckets}}, {"proj", &e.proj, []int{cfg.Dim, cfg.Dim}}} {
		info, ok := st.Info(w.name)
		if !ok {
			return nil, fmt.Errorf("%w: %s has no tensor %q", ErrInput, EncoderWeightsFile, w.name)
		}
		if !slices.Equal(info.Shape, w.shape) {
			return nil, fmt.Errorf("%w: %s: %s has shape %v, want %v", ErrInput, EncoderWeightsFile, w.name, info.Shape, w.shape)
		}
		if *w.dst, err = st.Float32(w.name); err != nil {
			return nil, err
		}
		for _, v := range *w.dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: %s: %s has a non-finite value", ErrInput, EncoderWeightsFile, w.name)
			}
		}
	}
	if cfg.Lexical > 0 {
		e.init = initialTable(cfg)
	}
	e.id = e.makeID()
	return e, nil
}

// WithLexical returns a copy of e whose vectors carry the lexical half,
// weighted w (0: none); the trained weights are shared.
func (e *Encoder) WithLexical(w float64) (*Encoder, error) {
	c := *e
	c.cfg.Lexical = w
	if err := c.cfg.check(); err != nil {
		return nil, err
	}
	c.init = nil
	if w > 0 {
		c.init = initialTable(c.cfg)
	}
	c.id = c.makeID()
	return &c, nil
}

// roundBF16 rounds the weights to bf16 as Save stores them, so a trained
// encoder embeds in memory exactly as it will after Save and LoadEncoder.
func (e *Encoder) roundBF16() {
	for _, w := range [][]float32{e.table, e.weight, e.proj} {
		for i, v := range w {
			w[i] = kernels.FromBF16(kernels.ToBF16(v))
		}
	}
	e.id = e.makeID()
}

var errNoPairs = errors.New("retriever: no training pairs")
