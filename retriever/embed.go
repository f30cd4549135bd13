package retriever

import (
	"fmt"
	"strings"

	"roe/model"
	"roe/model/tokenizer"
)

// Embedder turns instance texts into vectors for the Index.
type Embedder interface {
	// Embed returns one vector per text, [len(texts)][Dim()].
	Embed(texts []string) ([][]float32, error)
	// Dim returns the vector length.
	Dim() int
	// ID names the embedding space; vectors with different IDs must not be compared.
	ID() string
}

// NormalizationOf is the normalisation an embedder's vectors are meant for:
// its own when it says (a Normalization method), else CenterL2 (a causal LM's
// pooled states follow vector length, not meaning, until centred).
func NormalizationOf(e Embedder) Normalization {
	if n, ok := e.(interface{ Normalization() Normalization }); ok {
		return n.Normalization()
	}
	return CenterL2
}

// DefaultInstanceFormat is the paper's best instance text.
const DefaultInstanceFormat = "Answer Choices: {choices}, Instance: {input}"

// ChoiceSeparator joins answer choices, as promptsource does.
const ChoiceSeparator = " ||| "

// FormatInstance fills format's {input} and {choices} placeholders (format ""
// means DefaultInstanceFormat); choices are joined with " ||| ", the
// promptsource separator. Substitution is one pass, so braces inside input or
// choices are left as they are.
func FormatInstance(format, input string, choices []string) string {
	if format == "" {
		format = DefaultInstanceFormat
	}
	return strings.NewReplacer("{choices}", strings.Join(choices, ChoiceSeparator), "{input}", input).Replace(format)
}

// DefaultMaxTokens is the truncation length of the paper's sentence encoder.
const DefaultMaxTokens = 256

// maxBatchTokens bounds the tokens of one batched forward in Embed.
const maxBatchTokens = 4096

// ModelEmbedder embeds texts with the base model: the mean over positions (BOS
// included) of one layer's hidden states.
type ModelEmbedder struct {
	m         *model.Model
	tok       *tokenizer.Tokenizer
	layer     int
	maxTokens int
}

// NewModelEmbedder embeds with m's hidden states of layer (0: the final-norm
// output; k: the residual stream after k blocks) over tok.Encode(text, true)
// truncated to maxTokens (≤ 0 means DefaultMaxTokens, 256).
func NewModelEmbedder(m *model.Model, tok *tokenizer.Tokenizer, layer int, maxTokens int) *ModelEmbedder {
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	return &ModelEmbedder{m: m, tok: tok, layer: layer, maxTokens: maxTokens}
}

// Dim returns the model's hidden size.
func (e *ModelEmbedder) Dim() int { return e.m.Config.HiddenSize }

// ID returns "model:<fingerprint[:12]>:layer<k>:max<n>".
func (e *ModelEmbedder) ID() string {
	fp := e.m.Fingerprint()
	if len(fp) > 12 {
		fp = fp[:12]
	}
	return fmt.Sprintf("model:%s:layer%d:max%d", fp, e.layer, e.maxTokens)
}

// Tokens returns the token ids Embed pools over for text: BOS included, truncated.
func (e *ModelEmbedder) Tokens(text string) []int {
	ids := e.tok.Encode(text, true)
	n := min(len(ids), e.maxTokens)
	if c := e.m.Config.ContextLength(); c > 0 {
		n = min(n, c)
	}
	return ids[:n]
}

// Embed returns the pooled hidden states of each text, [len(texts)][Dim()]. Texts
// are batched into forwards of up to 4096 tokens, one sequence (Step) per text.
func (e *ModelEmbedder) Embed(texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	toks := make([][]int, len(texts))
	for i, t := range texts {
		toks[i] = e.Tokens(t)
		if len(toks[i]) == 0 {
			return nil, fmt.Errorf("%w: text %d has no tokens", ErrInput, i)
		}
	}
	H := e.Dim()
	for lo := 0; lo < len(texts); {
		hi, n := lo, 0
		for hi < len(texts) && (hi == lo || n+len(toks[hi]) <= maxBatchTokens) {
			n += len(toks[hi])
			hi++
		}
		steps := make([]model.Step, hi-lo)
		for i := range steps {
			steps[i] = model.Step{Cache: e.m.NewCache(), Tokens: toks[lo+i], NoLogits: true, Hidden: true, HiddenLayer: e.layer}
		}
		res, err := e.m.Forward(steps)
		if err != nil {
			return nil, fmt.Errorf("%w: texts %d..%d: %w", ErrEmbed, lo, hi-1, err)
		}
		for i, r := range res {
			T := len(toks[lo+i])
			mean := make([]float64, H)
			for t := range T {
				for j, v := range r.Hidden[t*H : (t+1)*H] {
					mean[j] += float64(v)
				}
			}
			v := make([]float32, H)
			for j := range v {
				v[j] = float32(mean[j] / float64(T))
			}
			out[lo+i] = v
		}
		lo = hi
	}
	return out, nil
}
