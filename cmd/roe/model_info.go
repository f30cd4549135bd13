package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"roe/model"
	"roe/model/gguf"
	"roe/model/safetensors"
	"roe/model/tokenizer"
	"roe/models"
)

// modelInfo is what `roe model info` says about a model: read from its
// headers, config and tokenizer, never from its weights.
type modelInfo struct {
	Model        string  `json:"model"`
	Path         string  `json:"path,omitempty"`
	Format       string  `json:"format"` // gguf, safetensors or embedded
	GGUFVersion  int     `json:"gguf_version,omitempty"`
	FileType     string  `json:"file_type,omitempty"` // general.file_type
	Name         string  `json:"name,omitempty"`      // general.name
	Files        int     `json:"files"`
	Bytes        int64   `json:"weight_bytes"` // of the tensors
	Architecture string  `json:"architecture"`
	Layers       int     `json:"layers"`
	Hidden       int     `json:"hidden_size"`
	Intermediate int     `json:"intermediate_size"`
	Heads        int     `json:"heads"`
	KVHeads      int     `json:"kv_heads"`
	HeadDim      int     `json:"head_dim"`
	Vocab        int     `json:"vocab_size"`
	Context      int     `json:"context_length"`
	RopeTheta    float64 `json:"rope_theta"`
	RopeScaling  string  `json:"rope_scaling,omitempty"`
	Window       int     `json:"sliding_window,omitempty"`
	Tied         bool    `json:"tied_embeddings"`
	Parameters   int64   `json:"parameters"`
	// Tensors counts the weight tensors by stored type.
	Tensors   map[string]tensorCount `json:"tensor_types"`
	Tokenizer tokenizerInfo          `json:"tokenizer"`
}

type tensorCount struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

type tokenizerInfo struct {
	Vocab        int  `json:"vocab_size"`
	BOS          *int `json:"bos,omitempty"`
	EOS          *int `json:"eos,omitempty"`
	AddsBOS      bool `json:"adds_bos"`
	ChatTemplate bool `json:"chat_template"`
}

// runModelInfo prints what a model is without loading its weights, as
// `ollama show` or llama.cpp's gguf-dump do.
func runModelInfo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("model info", flag.ContinueOnError)
	dir := modelVar(fs, "Hugging Face model folder, a GGUF file, ollama:NAME[:TAG], or an embedded model: "+strings.Join(models.Names(), ", ")+
		" (default: the embedded "+models.DefaultName+")")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	info, err := describeModel(*dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	printModelInfo(stdout, info)
	return nil
}

func describeModel(dir string) (*modelInfo, error) {
	info := &modelInfo{Model: modelID(dir), Tensors: map[string]tensorCount{}}
	count := func(typ string, elems, bytes int64) {
		c := info.Tensors[typ]
		c.Count++
		c.Bytes += bytes
		info.Tensors[typ] = c
		info.Parameters += elems
		info.Bytes += bytes
	}
	var (
		cfg model.Config
		tok *tokenizer.Tokenizer
		err error
	)
	if model.IsGGUF(dir) {
		// One open for the config, the tokenizer and the tensor table.
		f, err := gguf.OpenSplit(dir)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if cfg, err = model.ConfigFromGGUF(f); err != nil {
			return nil, err
		}
		if tok, err = tokenizer.LoadGGUF(f); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		info.Path, info.Format, info.GGUFVersion = dir, "gguf", int(f.Version)
		info.Files = 1
		if n, err := f.OptUint("split.count", 1); err == nil && n > 1 {
			info.Files = int(n)
		}
		info.Name, _ = f.OptString("general.name", "")
		if id, err := f.OptUint("general.file_type", 1<<32); err == nil && id < 1<<32 {
			info.FileType = model.GGUFFileTypeName(uint32(id))
		}
		for _, t := range f.Tensors {
			count(t.Type.String(), t.Elements(), t.Size)
		}
	} else {
		if cfg, err = loadConfig(dir); err != nil {
			return nil, err
		}
		if tok, err = loadTokenizer(dir); err != nil {
			return nil, err
		}
		var infos []safetensors.TensorInfo
		if fsys, ok := embeddedModel(dir); ok {
			// Embedded models are small and already in memory.
			b, err := fs.ReadFile(fsys, "model.safetensors")
			if err != nil {
				return nil, err
			}
			f, err := safetensors.FromBytes("model.safetensors", b)
			if err != nil {
				return nil, err
			}
			info.Format, info.Files, infos = "embedded", 1, f.Tensors()
		} else {
			set, err := safetensors.OpenDir(dir)
			if err != nil {
				return nil, err
			}
			defer set.Close()
			info.Path, info.Format, info.Files, infos = dir, "safetensors", len(set.Files()), set.Tensors()
		}
		for _, t := range infos {
			count(string(t.DType), t.Numel(), t.End-t.Begin)
		}
	}
	info.Architecture, info.Layers, info.Hidden, info.Intermediate = cfg.Architecture, cfg.NumLayers, cfg.HiddenSize, cfg.IntermediateSize
	info.Heads, info.KVHeads, info.HeadDim, info.Vocab = cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.VocabSize
	info.Context, info.RopeTheta, info.RopeScaling = cfg.MaxPositions, cfg.RopeTheta, cfg.Rope.Type
	info.Window, info.Tied = cfg.SlidingWindow, cfg.TieWordEmbeddings
	info.Tokenizer = tokenizerInfo{Vocab: tok.VocabSize(), AddsBOS: tok.AddsBOS(), ChatTemplate: tok.ChatTemplate() != ""}
	if id, ok := tok.BOS(); ok {
		info.Tokenizer.BOS = &id
	}
	if id, ok := tok.EOS(); ok {
		info.Tokenizer.EOS = &id
	}
	return info, nil
}

func printModelInfo(w io.Writer, m *modelInfo) {
	p := func(k, format string, args ...any) { fmt.Fprintf(w, "%-13s %s\n", k, fmt.Sprintf(format, args...)) }
	p("model", "%s", m.Model)
	if m.Path != "" && m.Path != m.Model {
		p("path", "%s", m.Path)
	}
	format := m.Format
	if m.GGUFVersion > 0 {
		format = fmt.Sprintf("GGUF v%d", m.GGUFVersion)
		if m.FileType != "" {
			format += ", file type " + strings.ToUpper(m.FileType)
		}
	}
	p("format", "%s, %d file(s), %s of weights", format, m.Files, mib(m.Bytes))
	if m.Name != "" {
		p("name", "%s", m.Name)
	}
	p("architecture", "%s", m.Architecture)
	p("shape", "%d layers, hidden %d, MLP %d, %d heads (%d KV) of %d, vocabulary %d",
		m.Layers, m.Hidden, m.Intermediate, m.Heads, m.KVHeads, m.HeadDim, m.Vocab)
	rope := fmt.Sprintf("RoPE base %g", m.RopeTheta)
	if m.RopeScaling != "" {
		rope += ", " + m.RopeScaling + " scaling"
	}
	if m.Window > 0 {
		rope += fmt.Sprintf(", sliding window %d", m.Window)
	}
	p("context", "%d positions; %s", m.Context, rope)
	params := fmt.Sprintf("%.1f M", float64(m.Parameters)/1e6)
	if m.Parameters < 1e6 {
		params = fmt.Sprintf("%.1f K", float64(m.Parameters)/1e3)
	}
	p("parameters", "%s (embeddings tied: %v)", params, m.Tied)
	types := slices.Sorted(maps.Keys(m.Tensors))
	var ts []string
	for _, t := range types {
		c := m.Tensors[t]
		ts = append(ts, fmt.Sprintf("%s ×%d (%s)", t, c.Count, mib(c.Bytes)))
	}
	p("tensors", "%s", strings.Join(ts, ", "))
	tk := fmt.Sprintf("%d tokens", m.Tokenizer.Vocab)
	if m.Tokenizer.BOS != nil {
		tk += fmt.Sprintf(", BOS %d", *m.Tokenizer.BOS)
	}
	if m.Tokenizer.EOS != nil {
		tk += fmt.Sprintf(", EOS %d", *m.Tokenizer.EOS)
	}
	tk += fmt.Sprintf(", adds BOS: %v, chat template: %v", m.Tokenizer.AddsBOS, m.Tokenizer.ChatTemplate)
	p("tokenizer", "%s", tk)
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
