package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"roe/internal/atomicfile"
)

// TrainOptions configures TrainBPE. Zero fields take the defaults.
type TrainOptions struct {
	// VocabSize is the size of the vocabulary, the specials and the 256 byte symbols
	// included (default 4096). Training stops earlier when no pair is left that occurs
	// MinFrequency times.
	VocabSize int
	// MinFrequency is how often a pair must occur in the corpus to be merged (default 2:
	// a pair seen once only memorizes the corpus).
	MinFrequency int
	// Specials are the special tokens, ids 0, 1, ... in this order (default "<s>",
	// "</s>"). The first is BOS, added in front of every encoded sequence; the second,
	// if any, is EOS.
	Specials []string
}

const (
	defaultTrainVocab   = 4096
	defaultMinFrequency = 2
)

// TrainedBPE is a byte-level BPE tokenizer learned by TrainBPE, in the GPT-2 style: the
// GPT-2 pre-tokenizer regex, every byte a symbol, no normalizer and no unknown token, so
// any text encodes and decodes back unchanged.
type TrainedBPE struct {
	// Tokens maps id to token: the specials, the 256 byte-level symbols (in the GPT-2
	// bytes_to_unicode order), then the result of each merge that made a new string.
	Tokens []string
	// Merges are the learned merges, highest priority first.
	Merges [][2]string
	// Specials is how many of the first Tokens are special tokens.
	Specials int
}

// TrainBPE learns a byte-level BPE vocabulary from texts, each pre-tokenized on its own
// (as the Hugging Face library trains from files: one text per line). It merges the most
// frequent pair of symbols until the vocabulary is full, ties going to the pair of
// smaller ids, so the result is a function of the corpus and the options alone and
// matches the library's BpeTrainer (with the byte-level initial alphabet).
func TrainBPE(texts iter.Seq[string], o TrainOptions) (*TrainedBPE, error) {
	if o.VocabSize == 0 {
		o.VocabSize = defaultTrainVocab
	}
	if o.MinFrequency == 0 {
		o.MinFrequency = defaultMinFrequency
	}
	if len(o.Specials) == 0 {
		o.Specials = []string{"<s>", "</s>"}
	}
	if o.MinFrequency < 0 {
		return nil, fmt.Errorf("tokenizer: train: min frequency %d is negative", o.MinFrequency)
	}
	seen := map[string]bool{}
	for _, s := range byteToStr {
		seen[s] = true // a special spelled like a byte symbol would shadow it
	}
	for _, s := range o.Specials {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("tokenizer: train: special token %q is empty, repeated or a byte symbol", s)
		}
		seen[s] = true
	}
	base := len(o.Specials) + 256
	if o.VocabSize < base || o.VocabSize > maxID {
		return nil, fmt.Errorf("tokenizer: train: vocab size %d must be between %d (%d specials + 256 bytes) and %d",
			o.VocabSize, base, len(o.Specials), maxID)
	}

	counts := countWords(texts)
	if len(counts) == 0 {
		return nil, errors.New("tokenizer: train: empty corpus")
	}

	t := &TrainedBPE{Specials: len(o.Specials)}
	t.Tokens = append(t.Tokens, o.Specials...)
	// bytes in rune order (the GPT-2 order); ids are then ordered like the library's
	// alphabet, which its tie-break depends on
	order := make([]int, 256)
	for b := range order {
		order[b] = b
	}
	slices.SortFunc(order, func(x, y int) int { return int(byteToRune[x] - byteToRune[y]) })
	var byteID [256]int32
	for _, b := range order {
		byteID[b] = int32(len(t.Tokens))
		t.Tokens = append(t.Tokens, byteToStr[b])
	}
	index := make(map[string]int32, o.VocabSize)
	for id, s := range t.Tokens {
		if _, dup := index[s]; !dup {
			index[s] = int32(id)
		}
	}

	tr := newPairTrainer(counts, &byteID)
	for len(index) < o.VocabSize {
		p, n, ok := tr.best()
		if !ok || n < int64(o.MinFrequency) {
			break
		}
		a, b := int32(p>>32), int32(uint32(p))
		s := t.Tokens[a] + t.Tokens[b]
		id, ok := index[s]
		if !ok {
			// two merge orders can spell the same string; like the library, such a merge
			// is kept but adds no token
			id = int32(len(t.Tokens))
			t.Tokens = append(t.Tokens, s)
			index[s] = id
		}
		t.Merges = append(t.Merges, [2]string{t.Tokens[a], t.Tokens[b]})
		tr.merge(p, id)
	}
	return t, nil
}

// countWords pre-tokenizes every text with the GPT-2 regex and counts the words.
func countWords(texts iter.Seq[string]) map[string]int64 {
	counts := map[string]int64{}
	for text := range texts {
		text = validString(text) // as Encode does
		for i := 0; i < len(text); {
			e := matchGPT2(text, i)
			if e <= i {
				e = i + 1
			}
			w := text[i:e]
			if _, ok := counts[w]; ok {
				counts[w]++
			} else {
				counts[strings.Clone(w)] = 1 // do not pin the whole text
			}
			i = e
		}
	}
	return counts
}

// pairTrainer keeps pair counts up to date as merges are applied to the unique words.
type pairTrainer struct {
	words [][]int32 // symbol ids of each word with two symbols or more
	freq  []int64   // how often each word occurs
	count map[uint64]int64
	where map[uint64][]int32 // pair -> words that may contain it (maybe repeated or stale)
	heap  pairHeap           // lazy: an entry's count may exceed the pair's count
	mark  []int32            // word -> last merge that visited it
	stamp int32
	grown map[uint64]bool // pairs whose count rose during the current merge
}

func newPairTrainer(counts map[string]int64, byteID *[256]int32) *pairTrainer {
	keys := make([]string, 0, len(counts))
	for w := range counts {
		if len(w) > 1 {
			keys = append(keys, w)
		}
	}
	slices.Sort(keys) // a fixed word order keeps the run reproducible
	tr := &pairTrainer{
		words: make([][]int32, len(keys)),
		freq:  make([]int64, len(keys)),
		count: map[uint64]int64{},
		where: map[uint64][]int32{},
		mark:  make([]int32, len(keys)),
		grown: map[uint64]bool{},
	}
	for i, w := range keys {
		syms := make([]int32, len(w))
		for j := 0; j < len(w); j++ {
			syms[j] = byteID[w[j]]
		}
		tr.words[i], tr.freq[i] = syms, counts[w]
		for j := 0; j+1 < len(syms); j++ {
			tr.add(pairKey(int(syms[j]), int(syms[j+1])), int32(i), counts[w])
		}
	}
	for p, n := range tr.count {
		tr.heap = append(tr.heap, pairEntry{n, p})
	}
	tr.heap.init()
	return tr
}

// add changes the count of pair p by n occurrences in word w.
func (tr *pairTrainer) add(p uint64, w int32, n int64) {
	tr.count[p] += n
	if n > 0 {
		if l := tr.where[p]; len(l) == 0 || l[len(l)-1] != w {
			tr.where[p] = append(l, w)
		}
	}
}

// best returns the most frequent pair (the smaller one on a tie) and its count.
func (tr *pairTrainer) best() (uint64, int64, bool) {
	for len(tr.heap) > 0 {
		e := tr.heap.pop()
		n := tr.count[e.pair]
		switch {
		case n <= 0:
			continue
		case n != e.n: // stale: counts only fall, except for pairs pushed again on a rise
			tr.heap.push(pairEntry{n, e.pair})
			continue
		}
		return e.pair, n, true
	}
	return 0, 0, false
}

// merge replaces every occurrence of pair p by the token id.
func (tr *pairTrainer) merge(p uint64, id int32) {
	a, b := int32(p>>32), int32(uint32(p))
	tr.stamp++
	clear(tr.grown)
	for _, w := range tr.where[p] {
		if tr.mark[w] == tr.stamp {
			continue
		}
		tr.mark[w] = tr.stamp
		syms, n := tr.words[w], tr.freq[w]
		out := syms[:0] // in place: out never passes the read position
		for i := 0; i < len(syms); i++ {
			if i+1 >= len(syms) || syms[i] != a || syms[i+1] != b {
				out = append(out, syms[i])
				continue
			}
			tr.add(p, w, -n)
			// the left neighbour is already final (it may be a token just merged), the
			// right one is not: a following occurrence fixes up its own left pair
			if len(out) > 0 {
				l := out[len(out)-1]
				tr.add(pairKey(int(l), int(a)), w, -n)
				tr.add(pairKey(int(l), int(id)), w, n)
				tr.grown[pairKey(int(l), int(id))] = true
			}
			if i+2 < len(syms) {
				r := syms[i+2]
				tr.add(pairKey(int(b), int(r)), w, -n)
				tr.add(pairKey(int(id), int(r)), w, n)
				tr.grown[pairKey(int(id), int(r))] = true
			}
			out = append(out, id)
			i++
		}
		tr.words[w] = out
	}
	delete(tr.where, p)
	delete(tr.count, p)
	for q := range tr.grown {
		if n := tr.count[q]; n > 0 {
			tr.heap.push(pairEntry{n, q})
		}
	}
}

type pairEntry struct {
	n    int64
	pair uint64
}

// pairHeap is a binary max-heap on (count, then the smaller pair).
type pairHeap []pairEntry

func (h pairHeap) less(i, j int) bool {
	if h[i].n != h[j].n {
		return h[i].n > h[j].n
	}
	return h[i].pair < h[j].pair
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(e pairEntry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *pairHeap) pop() pairEntry {
	a := *h
	top := a[0]
	a[0] = a[len(a)-1]
	*h = a[:len(a)-1]
	h.down(0)
	return top
}

// ---------------------------------------------------------------------------- output

// orderedVocab writes the vocabulary in id order, as the library does.
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for id, s := range v {
		if id > 0 {
			b.WriteByte(',')
		}
		k, err := marshalPlain(s)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s:%d", k, id)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalPlain is json.Marshal without HTML escaping ("<s>" stays readable), indented.
func marshalPlain(v any, indent ...string) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if len(indent) > 0 {
		e.SetIndent("", indent[0])
	}
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type jsonAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type jsonByteLevel struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	TrimOffsets    bool   `json:"trim_offsets"`
	UseRegex       bool   `json:"use_regex"`
}

type jsonTemplatePiece struct {
	SpecialToken *jsonTemplateID `json:"SpecialToken,omitempty"`
	Sequence     *jsonTemplateID `json:"Sequence,omitempty"`
}

type jsonTemplateID struct {
	ID     string `json:"id"`
	TypeID int    `json:"type_id"`
}

type jsonSpecial struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

type jsonTemplate struct {
	Type          string                 `json:"type"`
	Single        []jsonTemplatePiece    `json:"single"`
	Pair          []jsonTemplatePiece    `json:"pair"`
	SpecialTokens map[string]jsonSpecial `json:"special_tokens"`
}

type jsonBPE struct {
	Type                    string       `json:"type"`
	Dropout                 *float64     `json:"dropout"`
	UnkToken                *string      `json:"unk_token"`
	ContinuingSubwordPrefix *string      `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string      `json:"end_of_word_suffix"`
	FuseUnk                 bool         `json:"fuse_unk"`
	ByteFallback            bool         `json:"byte_fallback"`
	IgnoreMerges            bool         `json:"ignore_merges"`
	Vocab                   orderedVocab `json:"vocab"`
	Merges                  []string     `json:"merges"`
}

type jsonTokenizer struct {
	Version       string           `json:"version"`
	Truncation    any              `json:"truncation"`
	Padding       any              `json:"padding"`
	AddedTokens   []jsonAddedToken `json:"added_tokens"`
	Normalizer    any              `json:"normalizer"`
	PreTokenizer  jsonByteLevel    `json:"pre_tokenizer"`
	PostProcessor *jsonTemplate    `json:"post_processor"`
	Decoder       jsonByteLevel    `json:"decoder"`
	Model         jsonBPE          `json:"model"`
}

type jsonTokenizerConfig struct {
	AddBOS         bool    `json:"add_bos_token"`
	AddEOS         bool    `json:"add_eos_token"`
	BOS            *string `json:"bos_token"`
	EOS            *string `json:"eos_token"`
	CleanUpSpaces  bool    `json:"clean_up_tokenization_spaces"`
	TokenizerClass string  `json:"tokenizer_class"`
}

// JSON returns the contents of tokenizer.json and tokenizer_config.json.
func (t *TrainedBPE) JSON() (tokenizerJSON, configJSON []byte, err error) {
	if t.Specials < 1 || t.Specials > len(t.Tokens) {
		return nil, nil, errors.New("tokenizer: trained BPE without a BOS token")
	}
	tj := jsonTokenizer{
		Version:      "1.0",
		PreTokenizer: jsonByteLevel{"ByteLevel", false, true, true},
		Decoder:      jsonByteLevel{"ByteLevel", true, true, true},
		Model:        jsonBPE{Type: "BPE", Vocab: orderedVocab(t.Tokens), Merges: make([]string, len(t.Merges))},
	}
	for id, s := range t.Tokens[:t.Specials] {
		tj.AddedTokens = append(tj.AddedTokens, jsonAddedToken{ID: id, Content: s, Special: true})
	}
	for i, m := range t.Merges {
		tj.Model.Merges[i] = m[0] + " " + m[1] // byte-level symbols never contain a space
	}
	bos := t.Tokens[0]
	tj.PostProcessor = &jsonTemplate{
		Type:   "TemplateProcessing",
		Single: []jsonTemplatePiece{{SpecialToken: &jsonTemplateID{bos, 0}}, {Sequence: &jsonTemplateID{"A", 0}}},
		Pair: []jsonTemplatePiece{{SpecialToken: &jsonTemplateID{bos, 0}}, {Sequence: &jsonTemplateID{"A", 0}},
			{SpecialToken: &jsonTemplateID{bos, 1}}, {Sequence: &jsonTemplateID{"B", 1}}},
		SpecialTokens: map[string]jsonSpecial{bos: {bos, []int{0}, []string{bos}}},
	}
	if tokenizerJSON, err = marshalPlain(tj, "  "); err != nil {
		return nil, nil, err
	}
	cfg := jsonTokenizerConfig{AddBOS: true, BOS: &bos, TokenizerClass: "PreTrainedTokenizerFast"}
	if t.Specials > 1 {
		cfg.EOS = &t.Tokens[1]
	}
	if configJSON, err = marshalPlain(cfg, "  "); err != nil {
		return nil, nil, err
	}
	return tokenizerJSON, configJSON, nil
}

// Tokenizer loads the trained tokenizer.
func (t *TrainedBPE) Tokenizer() (*Tokenizer, error) {
	tj, cj, err := t.JSON()
	if err != nil {
		return nil, err
	}
	return FromJSON(tj, cj)
}

// WriteDir writes tokenizer.json and tokenizer_config.json into dir, creating it.
func (t *TrainedBPE) WriteDir(dir string) error {
	tj, cj, err := t.JSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fileTokenizer), tj); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, fileConfig), cj)
}
