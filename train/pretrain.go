package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"roe/model"
	"roe/tasks"
)

// DefaultValFrac is the share of each corpus file, from its end, held out for
// validation.
const DefaultValFrac = 0.01

// PretrainTokenizer is what building a pretraining corpus needs
// (*tokenizer.Tokenizer has it).
type PretrainTokenizer interface {
	Encode(text string, addSpecial bool) []int
	BOS() (int, bool)
	EOS() (int, bool)
}

// CorpusOptions shape pretraining data.
type CorpusOptions struct {
	// SeqLen is the tokens per window (default DefaultMaxLen): the context
	// the model is trained at.
	SeqLen int
	// ValFrac is the share of each file's bytes, from its end (from the
	// start of the line the cut falls in), held out for validation: 0 means
	// DefaultValFrac, a negative value none.
	ValFrac float64
	// Docs is what a document is: "paragraph" (the default; blocks between
	// blank lines) or "file".
	Docs string
	// NoEOS leaves EOS off the end of each document (BOS always starts one).
	NoEOS bool
	// Drop, when set, removes the lines it reports before anything else
	// (decontamination: NGramFilter.Hit against the tasks' evaluation splits).
	Drop func(line string) bool
}

// CorpusFile describes one file of a corpus.
type CorpusFile struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Docs  int    `json:"docs"`
	// DroppedLines were removed by CorpusOptions.Drop.
	DroppedLines int `json:"dropped_lines"`
	TrainTokens  int `json:"train_tokens"`
	ValTokens    int `json:"val_tokens"`
}

// Corpus is tokenized pretraining data cut into windows.
type Corpus struct {
	Files []CorpusFile
	// Train and Val are the windows of the two token streams. Windows share
	// the streams' memory (and one all-true loss mask): do not modify them.
	Train, Val             []Sequence
	TrainTokens, ValTokens int // stream lengths
}

// LoadCorpus reads text files and builds a corpus (see BuildCorpus).
func LoadCorpus(tok PretrainTokenizer, paths []string, o CorpusOptions) (*Corpus, error) {
	texts := make([]string, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		texts[i] = string(b)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return BuildCorpus(tok, names, texts, o)
}

// BuildCorpus turns texts into GPT-style pretraining windows. Each text is
// split into a training part and a held-out tail (ValFrac); each part into
// documents, encoded as BOS + text + EOS; the documents of all training parts
// are concatenated into one stream (likewise the validation parts), and each
// stream is cut into windows of SeqLen tokens that overlap by one token, so
// that every token after the first is a target exactly once. The loss covers
// every position: document boundaries inside a window are kept, as in GPT
// pretraining. A shorter last window keeps the stream's tail. The result is a
// pure function of its inputs; the Trainer's seed shuffles the windows.
func BuildCorpus(tok PretrainTokenizer, names, texts []string, o CorpusOptions) (*Corpus, error) {
	if o.SeqLen == 0 {
		o.SeqLen = tasks.DefaultMaxLen
	}
	if o.SeqLen < 2 {
		return nil, fmt.Errorf("train: sequence length %d (need at least 2)", o.SeqLen)
	}
	if o.ValFrac == 0 {
		o.ValFrac = DefaultValFrac
	}
	if o.ValFrac >= 1 {
		return nil, fmt.Errorf("train: validation share %g (need less than 1)", o.ValFrac)
	}
	if o.Docs == "" {
		o.Docs = "paragraph"
	}
	if o.Docs != "paragraph" && o.Docs != "file" {
		return nil, fmt.Errorf("train: documents %q (want paragraph or file)", o.Docs)
	}
	if len(texts) == 0 || len(names) != len(texts) {
		return nil, errors.New("train: no corpus files")
	}
	bos, hasBOS := tok.BOS()
	eos, hasEOS := tok.EOS()
	hasEOS = hasEOS && !o.NoEOS
	c := &Corpus{}
	var trainDocs, valDocs []string
	var trainOf, valOf []int // file of each document
	for i, text := range texts {
		text, dropped := tasks.DropLines(text, o.Drop)
		cut := len(text)
		if o.ValFrac > 0 {
			// Back to the start of the line the cut falls in (forward when
			// that is the first line), so no line is split.
			cut = int(float64(len(text)) * (1 - o.ValFrac))
			if j := strings.LastIndexByte(text[:cut], '\n'); j >= 0 {
				cut = j + 1
			} else if j := strings.IndexByte(text[cut:], '\n'); j >= 0 {
				cut += j + 1
			} else {
				cut = len(text)
			}
		}
		td, vd := splitDocs(text[:cut], o.Docs), splitDocs(text[cut:], o.Docs)
		c.Files = append(c.Files, CorpusFile{Name: names[i], Bytes: len(texts[i]), Docs: len(td) + len(vd), DroppedLines: dropped})
		trainDocs = append(trainDocs, td...)
		valDocs = append(valDocs, vd...)
		for range td {
			trainOf = append(trainOf, i)
		}
		for range vd {
			valOf = append(valOf, i)
		}
	}
	encode := func(docs []string, of []int, count func(f *CorpusFile, n int)) []int {
		enc := encodeAll(tok, docs)
		n := 0
		for _, e := range enc {
			n += len(e)
		}
		if hasBOS {
			n += len(enc)
		}
		if hasEOS {
			n += len(enc)
		}
		stream := make([]int, 0, n)
		for k, e := range enc {
			l := len(stream)
			if hasBOS {
				stream = append(stream, bos)
			}
			stream = append(stream, e...)
			if hasEOS {
				stream = append(stream, eos)
			}
			count(&c.Files[of[k]], len(stream)-l)
		}
		return stream
	}
	train := encode(trainDocs, trainOf, func(f *CorpusFile, n int) { f.TrainTokens += n })
	val := encode(valDocs, valOf, func(f *CorpusFile, n int) { f.ValTokens += n })
	if len(train) < 2 {
		return nil, fmt.Errorf("%w: the corpus has %d training tokens", tasks.ErrEmpty, len(train))
	}
	mask := make([]bool, o.SeqLen)
	for i := range mask {
		mask[i] = true
	}
	c.Train, c.Val = Windows(train, mask), Windows(val, mask)
	c.TrainTokens, c.ValTokens = len(train), len(val)
	return c, nil
}

// Windows cuts a token stream into sequences of len(mask) tokens that overlap
// by one (a shorter last one holds the rest; nothing shorter than 2 tokens),
// sharing the stream and the mask.
func Windows(stream []int, mask []bool) []Sequence {
	S := len(mask)
	if S < 2 {
		return nil
	}
	var out []Sequence
	for lo := 0; lo+1 < len(stream); lo += S - 1 {
		hi := min(lo+S, len(stream))
		out = append(out, Sequence{Tokens: stream[lo:hi:hi], LossMask: mask[: hi-lo : hi-lo]})
	}
	return out
}

// splitDocs returns the documents of a text: its paragraphs (runs of
// non-blank lines, joined by "\n"), or the whole text.
func splitDocs(text, mode string) []string {
	if mode == "file" {
		if strings.TrimSpace(text) == "" {
			return nil
		}
		return []string{strings.Trim(text, "\r\n")}
	}
	var docs, cur []string
	flush := func() {
		if len(cur) > 0 {
			docs = append(docs, strings.Join(cur, "\n"))
			cur = cur[:0]
		}
	}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

// encodeAll encodes documents without special tokens, in parallel, in order.
func encodeAll(tok PretrainTokenizer, docs []string) [][]int {
	out := make([][]int, len(docs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(docs)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(docs) {
					return
				}
				out[i] = tok.Encode(docs[i], false)
			}
		})
	}
	wg.Wait()
	return out
}

// InitWeights gives a model fresh pretraining weights, as Hugging Face's
// LlamaPreTrainedModel: every matrix N(0, 0.02²), norms 1, biases 0; the
// two projections that write into the residual stream (o_proj, down_proj)
// get std 0.02/√(2·layers), as GPT-2, so the stream's variance does not grow
// with depth. Seeded: the same seed gives the same model.
func InitWeights(m *model.Model, seed uint64) {
	const std = 0.02
	r := rand.New(rand.NewPCG(seed, 0x1a17))
	resid := std / math.Sqrt(2*float64(max(1, m.Config.NumLayers)))
	for _, p := range m.Params() {
		switch {
		case strings.HasSuffix(p.Name, "norm.weight"):
			for i := range p.Data {
				p.Data[i] = 1
			}
		case strings.HasSuffix(p.Name, ".bias"):
			clear(p.Data)
		default:
			s := std
			if strings.HasSuffix(p.Name, "o_proj.weight") || strings.HasSuffix(p.Name, "down_proj.weight") {
				s = resid
			}
			for i := range p.Data {
				p.Data[i] = float32(r.NormFloat64() * s)
			}
		}
	}
}

// EvalLoss is the mean −log p(target) over every target of seqs (forward
// passes only, batch sequences at a time) and the number of targets.
func EvalLoss(m *model.Model, seqs []Sequence, batch int) (float64, int, error) {
	batch = max(1, batch)
	var sum float64
	n := 0
	for _, b := range Batches(seqs, batch) {
		k := b.Targets()
		if k == 0 {
			continue
		}
		l, err := Loss(m, nil, b)
		if err != nil {
			return 0, 0, err
		}
		sum += l * float64(k)
		n += k
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("%w: no targets to evaluate", tasks.ErrEmpty)
	}
	return sum / float64(n), n, nil
}

// Spread picks n sequences evenly spaced over seqs (all when n ≤ 0 or
// n ≥ len(seqs)): a cheap validation subset that still covers every file.
func Spread(seqs []Sequence, n int) []Sequence {
	if n <= 0 || n >= len(seqs) {
		return seqs
	}
	out := make([]Sequence, n)
	for i := range out {
		out[i] = seqs[i*len(seqs)/n]
	}
	return out
}
