// Package llama2c converts Karpathy's llama2.c checkpoints and tokenizers into
// Hugging Face folders (config.json, model.safetensors, tokenizer.json) that
// package model loads.
package llama2c

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"roe/internal/atomicfile"
	"sort"
	"strings"
	"unicode/utf8"

	"roe/model/safetensors"
)

// ErrFormat means a llama2.c file is truncated or inconsistent.
var ErrFormat = errors.New("invalid llama2.c file")

// Header is the legacy llama2.c checkpoint header: seven int32 values.
type Header struct {
	Dim, HiddenDim, Layers, Heads, KVHeads, Vocab, SeqLen int
	Shared                                                bool // the classifier is the embedding matrix
}

// Convert reads a llama2.c checkpoint and tokenizer and writes a Hugging Face folder to out.
func Convert(checkpoint, tokenizerPath, out string) error {
	ck, err := os.ReadFile(checkpoint)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	h, tensors, err := ParseCheckpoint(ck)
	if err != nil {
		return fmt.Errorf("%s: %w", checkpoint, err)
	}
	tb, err := os.ReadFile(tokenizerPath)
	if err != nil {
		return fmt.Errorf("read tokenizer: %w", err)
	}
	pieces, err := ParseTokenizer(tb, h.Vocab)
	if err != nil {
		return fmt.Errorf("%s: %w", tokenizerPath, err)
	}
	tokJSON, err := TokenizerJSON(pieces)
	if err != nil {
		return fmt.Errorf("%s: %w", tokenizerPath, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{
		"config.json":           ConfigJSON(h),
		"tokenizer.json":        tokJSON,
		"tokenizer_config.json": tokenizerConfigJSON(h),
	}
	for name, b := range files {
		if err := atomicfile.WriteFile(filepath.Join(out, name), b); err != nil {
			return err
		}
	}
	return safetensors.Write(filepath.Join(out, "model.safetensors"), tensors, map[string]string{"format": "pt"})
}

// ParseCheckpoint reads a legacy llama2.c checkpoint into Hugging Face tensors,
// permuting q/k rows from llama2.c's interleaved RoPE pairs to rotate_half.
func ParseCheckpoint(b []byte) (Header, []safetensors.Tensor, error) {
	if len(b) < 28 {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the 28-byte header", ErrFormat, len(b))
	}
	if binary.LittleEndian.Uint32(b) == 0x616b3432 {
		return Header{}, nil, fmt.Errorf("%w: versioned llama2.c export (magic ak42) is not supported; use the legacy export", ErrFormat)
	}
	var v [7]int32
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	h := Header{Dim: int(v[0]), HiddenDim: int(v[1]), Layers: int(v[2]), Heads: int(v[3]), KVHeads: int(v[4]),
		Vocab: int(v[5]), SeqLen: int(v[6]), Shared: v[5] > 0}
	if h.Vocab < 0 {
		h.Vocab = -h.Vocab
	}
	// Bounds keep every size below in int64 range (and far above real models).
	for _, c := range []struct {
		name string
		v    int
		lim  int
	}{{"dim", h.Dim, 1 << 16}, {"hidden_dim", h.HiddenDim, 1 << 18}, {"n_layers", h.Layers, 1 << 10},
		{"n_heads", h.Heads, 1 << 10}, {"n_kv_heads", h.KVHeads, 1 << 10}, {"vocab_size", h.Vocab, 1 << 22}, {"seq_len", h.SeqLen, 1 << 22}} {
		if c.v <= 0 || c.v > c.lim {
			return Header{}, nil, fmt.Errorf("%w: header %s = %d out of range (1..%d)", ErrFormat, c.name, c.v, c.lim)
		}
	}
	if h.Dim%h.Heads != 0 || h.Heads%h.KVHeads != 0 || (h.Dim/h.Heads)%2 != 0 {
		return Header{}, nil, fmt.Errorf("%w: dim %d, heads %d, kv heads %d do not give an even head size shared by whole groups", ErrFormat, h.Dim, h.Heads, h.KVHeads)
	}
	hd := h.Dim / h.Heads
	kvDim := h.KVHeads * hd
	D, F, L, V := h.Dim, h.HiddenDim, h.Layers, h.Vocab
	// Sizes in float32 values, in file order.
	sizes := []int{V * D, L * D, L * D * D, L * kvDim * D, L * kvDim * D, L * D * D, L * D, L * F * D, L * D * F, L * F * D, D, h.SeqLen * hd / 2, h.SeqLen * hd / 2}
	if !h.Shared {
		sizes = append(sizes, V*D)
	}
	need := 0
	for _, s := range sizes {
		need += s
	}
	if have := (len(b) - 28) / 4; have < need {
		return Header{}, nil, fmt.Errorf("%w: truncated: %d float32 values after the header, the header implies %d", ErrFormat, have, need)
	}
	off := 28
	next := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*i:]))
		}
		off += 4 * n
		return out
	}
	emb, attNorm, wq, wk, wv, wo := next(sizes[0]), next(sizes[1]), next(sizes[2]), next(sizes[3]), next(sizes[4]), next(sizes[5])
	ffnNorm, w1, w2, w3, norm := next(sizes[6]), next(sizes[7]), next(sizes[8]), next(sizes[9]), next(sizes[10])
	next(sizes[11])
	next(sizes[12])
	var cls []float32
	if !h.Shared {
		cls = next(V * D)
	}
	var ts []safetensors.Tensor
	add := func(name string, shape []int, v []float32) {
		ts = append(ts, safetensors.F32Tensor(name, shape, v))
	}
	add("model.embed_tokens.weight", []int{V, D}, emb)
	add("model.norm.weight", []int{D}, norm)
	if cls != nil {
		add("lm_head.weight", []int{V, D}, cls)
	}
	for l := 0; l < L; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", []int{D}, attNorm[l*D:(l+1)*D])
		add(p+"post_attention_layernorm.weight", []int{D}, ffnNorm[l*D:(l+1)*D])
		add(p+"self_attn.q_proj.weight", []int{D, D}, permuteRows(wq[l*D*D:(l+1)*D*D], h.Heads, hd, D))
		add(p+"self_attn.k_proj.weight", []int{kvDim, D}, permuteRows(wk[l*kvDim*D:(l+1)*kvDim*D], h.KVHeads, hd, D))
		add(p+"self_attn.v_proj.weight", []int{kvDim, D}, wv[l*kvDim*D:(l+1)*kvDim*D])
		add(p+"self_attn.o_proj.weight", []int{D, D}, wo[l*D*D:(l+1)*D*D])
		add(p+"mlp.gate_proj.weight", []int{F, D}, w1[l*F*D:(l+1)*F*D])
		add(p+"mlp.down_proj.weight", []int{D, F}, w2[l*D*F:(l+1)*D*F])
		add(p+"mlp.up_proj.weight", []int{F, D}, w3[l*F*D:(l+1)*F*D])
	}
	return h, ts, nil
}

// permuteRows moves row h*hd + 2i + j to h*hd + j*hd/2 + i: llama2.c rotates
// pairs (2i, 2i+1), Hugging Face rotates (i, i+hd/2).
//
//	w: [heads*hd, in]
func permuteRows(w []float32, heads, hd, in int) []float32 {
	out := make([]float32, len(w))
	half := hd / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				src := h*hd + 2*i + j
				dst := h*hd + j*half + i
				copy(out[dst*in:(dst+1)*in], w[src*in:(src+1)*in])
			}
		}
	}
	return out
}

// Piece is one llama2.c vocabulary entry.
type Piece struct {
	Text  string
	Score float32
}

// ParseTokenizer reads a llama2.c tokenizer.bin: int32 max length, then per token
// float32 score, int32 length and the bytes.
func ParseTokenizer(b []byte, vocab int) ([]Piece, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: tokenizer shorter than its 4-byte header", ErrFormat)
	}
	off := 4
	ps := make([]Piece, 0, vocab)
	for i := 0; i < vocab; i++ {
		if off+8 > len(b) {
			return nil, fmt.Errorf("%w: tokenizer truncated at token %d of %d", ErrFormat, i, vocab)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		n := int(int32(binary.LittleEndian.Uint32(b[off+4:])))
		off += 8
		if n < 0 || off+n > len(b) {
			return nil, fmt.Errorf("%w: token %d has length %d past the end of the file", ErrFormat, i, n)
		}
		s := b[off : off+n]
		off += n
		if !utf8.Valid(s) {
			return nil, fmt.Errorf("%w: token %d is not valid UTF-8", ErrFormat, i)
		}
		ps = append(ps, Piece{Text: string(s), Score: score})
	}
	return ps, nil
}

// TokenizerJSON builds a Hugging Face tokenizer.json for a sentencepiece-style
// BPE vocabulary with byte fallback, as transformers' LlamaConverter does.
func TokenizerJSON(ps []Piece) ([]byte, error) {
	if len(ps) < 3 {
		return nil, fmt.Errorf("%w: vocabulary of %d pieces has no room for <unk>, <s>, </s>", ErrFormat, len(ps))
	}
	pieces := make([]string, len(ps))
	scores := make([]float64, len(ps))
	vocab := make(map[string]int, len(ps))
	for i, p := range ps {
		switch i {
		case 0:
			pieces[i] = "<unk>"
		case 1:
			pieces[i] = "<s>"
		case 2:
			pieces[i] = "</s>"
		default:
			pieces[i] = strings.ReplaceAll(p.Text, " ", "▁")
			scores[i] = float64(p.Score)
		}
		if _, dup := vocab[pieces[i]]; dup {
			return nil, fmt.Errorf("%w: piece %q occurs twice", ErrFormat, pieces[i])
		}
		vocab[pieces[i]] = i
	}
	type merge struct {
		l, r  string
		score float64
	}
	var merges []merge
	for i, p := range pieces {
		var local []merge
		runes := []rune(p)
		for k := 1; k < len(runes); k++ {
			l, r := string(runes[:k]), string(runes[k:])
			if _, ok := vocab[l]; !ok {
				continue
			}
			if _, ok := vocab[r]; !ok {
				continue
			}
			local = append(local, merge{l, r, scores[i]})
		}
		sort.SliceStable(local, func(a, b int) bool {
			if vocab[local[a].l] != vocab[local[b].l] {
				return vocab[local[a].l] < vocab[local[b].l]
			}
			return vocab[local[a].r] < vocab[local[b].r]
		})
		merges = append(merges, local...)
	}
	// Descending by (score, len(left), len(right)), stable, as Python's sorted(reverse=True).
	sort.SliceStable(merges, func(a, b int) bool {
		x, y := merges[a], merges[b]
		if x.score != y.score {
			return x.score > y.score
		}
		if lx, ly := utf8.RuneCountInString(x.l), utf8.RuneCountInString(y.l); lx != ly {
			return lx > ly
		}
		return utf8.RuneCountInString(x.r) > utf8.RuneCountInString(y.r)
	})

	var buf bytes.Buffer
	buf.WriteString(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[`)
	for i, s := range []string{"<unk>", "<s>", "</s>"} {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"id":%d,"content":%q,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}`, i, s)
	}
	buf.WriteString(`],"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},`)
	buf.WriteString(`"pre_tokenizer":null,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},`)
	buf.WriteString(`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},`)
	buf.WriteString(`"model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"ignore_merges":false,"vocab":{`)
	for i, p := range pieces {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(p)
		fmt.Fprintf(&buf, "%s:%d", k, i)
	}
	buf.WriteString(`},"merges":[`)
	for i, m := range merges {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(m.l + " " + m.r)
		buf.Write(k)
	}
	buf.WriteString("]}}\n")
	var check any
	if err := json.Unmarshal(buf.Bytes(), &check); err != nil {
		return nil, fmt.Errorf("build tokenizer.json: %w", err)
	}
	return buf.Bytes(), nil
}

// ConfigJSON is the config.json of the converted model.
func ConfigJSON(h Header) []byte {
	c := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             h.Dim,
		"intermediate_size":       h.HiddenDim,
		"num_hidden_layers":       h.Layers,
		"num_attention_heads":     h.Heads,
		"num_key_value_heads":     h.KVHeads,
		"head_dim":                h.Dim / h.Heads,
		"hidden_act":              "silu",
		"max_position_embeddings": h.SeqLen,
		"rms_norm_eps":            1e-5,
		"rope_theta":              10000.0,
		"rope_scaling":            nil,
		"vocab_size":              h.Vocab,
		"tie_word_embeddings":     h.Shared,
		"bos_token_id":            1,
		"eos_token_id":            2,
		"torch_dtype":             "float32",
		"attention_bias":          false,
		"mlp_bias":                false,
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

func tokenizerConfigJSON(h Header) []byte {
	c := map[string]any{
		"add_bos_token": true, "add_eos_token": false,
		"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": nil,
		"legacy": true, "clean_up_tokenization_spaces": false,
		"model_max_length": h.SeqLen, "tokenizer_class": "LlamaTokenizer",
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}
