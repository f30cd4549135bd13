package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"roe/adapters"
	"roe/model"
	"roe/model/gguf"
	"roe/model/llama2c"
	"roe/model/ollama"
	"roe/model/tokenizer"
	"roe/models"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// weightFormat and activations are the --dtype and --activations flags of
// the command being run (one FlagSet per run).
var (
	weightFormat = new(string)
	activations  = new(string)
	loraDType    = new(string)
)

func modelFlag(fs *flag.FlagSet) *string {
	weightFormat = fs.String("dtype", "f32", "float weights in memory: f32, or bf16 (half the memory and bandwidth; logits within ~1e-2); a GGUF's tensors stay as stored, read in its mapping (bf16 narrows its F32 ones)")
	activations = fs.String("activations", "f32", "activations of quantized-weight products: f32 (exact), or q8: int8 blocks with integer dot products for Q8_0, Q4_0, Q5_0, Q4_K and Q6_K weights in decode (faster, lossy like llama.cpp; logits typically within a few tenths)")
	loraDType = fs.String("lora-dtype", "auto", "how unmerged experts keep the factors a decode step reads: auto (bfloat16 for an expert whose values all are bfloat16, else float16 where all are IEEE halves, as a float16 GGUF LoRA — half the bytes, the same values — float32 otherwise), float32, or bfloat16: rounded once at load, half the bytes for every expert (lossy for float32 adapters; prefill, merges and exports stay float32)")
	return modelVar(fs, "Hugging Face model folder, a GGUF file, ollama:NAME[:TAG] (a model in Ollama's store), or an embedded model: "+strings.Join(models.Names(), ", ")+
		" (default: the embedded "+models.DefaultName+")")
}

// modelVar defines a --model flag whose ollama:NAME[:TAG] values are
// resolved, when the flag is set, to the model's GGUF blob in Ollama's
// store (see ollama.Dirs); every other value is kept.
func modelVar(fs *flag.FlagSet, usage string) *string {
	p := new(string)
	fs.Var(modelValue{p}, "model", usage)
	return p
}

type modelValue struct{ p *string }

func (v modelValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v modelValue) Set(s string) error {
	ref, ok := strings.CutPrefix(s, ollama.Prefix)
	if !ok {
		*v.p = s
		return nil
	}
	m, err := ollama.Find(ref)
	if err != nil {
		return err
	}
	if len(m.Adapters) > 0 {
		return fmt.Errorf("%s has %d LoRA adapter layer(s) on its base (%s): roe would serve the base alone; serve the base blob and add each adapter as an expert (roe experts add --model %s --adapter BLOB NAME)",
			m.Name, len(m.Adapters), strings.Join(m.Adapters, ", "), m.GGUF)
	}
	var skipped []string
	for _, t := range m.Other {
		switch t {
		case ollama.MediaProjector:
			skipped = append(skipped, "the vision projector (roe serves text)")
		case ollama.MediaSystem:
			skipped = append(skipped, "its system prompt")
		case ollama.MediaParams:
			skipped = append(skipped, "its default parameters")
		case ollama.MediaTemplate:
			skipped = append(skipped, "its Go template (chat uses the GGUF's tokenizer.chat_template)")
		case ollama.MediaMessages:
			skipped = append(skipped, "its preset messages")
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(noticeOut, "roe: %s%s: not applied: %s\n", ollama.Prefix, ref, strings.Join(skipped, "; "))
	}
	modelNames.Store(m.GGUF, s)
	*v.p = m.GGUF
	return nil
}

// noticeOut takes what loading a model says on stderr: what is lossy or
// left out.
var noticeOut io.Writer = os.Stderr

// modelNames maps a resolved --model path to the name it was given by
// (ollama:NAME), for modelID.
var modelNames sync.Map

// embeddedModel resolves --model to an embedded model: "" is the default, and
// an embedded model's name is that model unless a folder of that name exists.
func embeddedModel(dir string) (fs.FS, bool) {
	if dir == "" {
		return models.Default(), true
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, false
	}
	return models.Embedded(dir)
}

// modelID names the --model for the API and logs.
func modelID(dir string) string {
	if dir == "" {
		return models.DefaultName
	}
	if _, ok := embeddedModel(dir); ok {
		return dir
	}
	if name, ok := modelNames.Load(dir); ok {
		return name.(string)
	}
	return filepath.Base(filepath.Clean(dir))
}

// loadTokenizer reads tokenizer.json (and tokenizer_config.json) from dir or the embedded model.
func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	if model.IsGGUF(dir) {
		f, err := gguf.OpenSplit(dir)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return tokenizer.LoadGGUF(f)
	}
	fsys, ok := embeddedModel(dir)
	if !ok {
		return tokenizer.Load(dir)
	}
	tj, err := fs.ReadFile(fsys, "tokenizer.json")
	if err != nil {
		return nil, err
	}
	cj, _ := fs.ReadFile(fsys, "tokenizer_config.json")
	return tokenizer.FromJSON(tj, cj)
}

// loadConfig reads config.json from dir or the embedded model.
func loadConfig(dir string) (model.Config, error) {
	if model.IsGGUF(dir) {
		f, err := gguf.OpenSplit(dir)
		if err != nil {
			return model.Config{}, err
		}
		defer f.Close()
		return model.ConfigFromGGUF(f)
	}
	fsys, ok := embeddedModel(dir)
	if !ok {
		return model.LoadConfig(dir)
	}
	b, err := fs.ReadFile(fsys, "config.json")
	if err != nil {
		return model.Config{}, err
	}
	return model.ParseConfig(b)
}

// loadModel reads the model and its tokenizer from dir, a GGUF file or the
// embedded model.
func loadModel(dir string) (*model.Model, *tokenizer.Tokenizer, error) {
	wf, err := model.ParseWeightFormat(*weightFormat)
	if err != nil {
		return nil, nil, usagef("--dtype: %v", err)
	}
	act, err := model.ParseActivations(*activations)
	if err != nil {
		return nil, nil, usagef("--activations: %v", err)
	}
	if err := adapters.SetDecodeDType(*loraDType); err != nil {
		return nil, nil, usagef("--lora-dtype: %v", err)
	}
	if adapters.DecodeDType() == adapters.DecodeBFloat16 {
		fmt.Fprintf(noticeOut, "roe: --lora-dtype bfloat16: experts' decode factors are rounded to bfloat16 (lossy)\n")
	}
	opts := model.LoadOptions{Weights: wf, Activations: act}
	if model.IsGGUF(dir) {
		// The mapping stays open for the process: quantized weights live in it.
		m, f, err := model.LoadGGUF(dir, opts)
		if err != nil {
			return nil, nil, err
		}
		tok, err := tokenizer.LoadGGUF(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", dir, err)
		}
		reportActivations(m, act)
		return m, tok, nil
	}
	tok, err := loadTokenizer(dir)
	if err != nil {
		return nil, nil, err
	}
	var m *model.Model
	if fsys, ok := embeddedModel(dir); ok {
		m, err = model.LoadFSWith(fsys, opts)
	} else {
		m, err = model.LoadWith(dir, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	reportActivations(m, act)
	return m, tok, nil
}

// reportActivations says on stderr what --activations q8 does with this
// model: a lossy path is never taken silently.
func reportActivations(m *model.Model, asked model.Activations) {
	switch {
	case asked != model.ActivationsQ8:
	case m.Activations() == model.ActivationsQ8:
		fmt.Fprintf(noticeOut, "roe: --activations q8: decode products with %s weights quantize their activations to int8 (lossy)\n", m.Q8Types())
	default:
		fmt.Fprintf(noticeOut, "roe: --activations q8: no weight of this model has int8 kernels (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K); activations stay float32\n")
	}
}

// encodePrompt tokenizes a prompt with the tokenizer's special tokens (BOS).
func encodePrompt(tok *tokenizer.Tokenizer, text string) ([]int, error) {
	ids := tok.Encode(text, true)
	if len(ids) == 0 {
		if bos, ok := tok.BOS(); ok {
			return []int{bos}, nil
		}
		return nil, usagef("the prompt is empty and the tokenizer adds no BOS token")
	}
	return ids, nil
}

func runGenerate(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	dir := modelFlag(fs)
	prompt := fs.String("prompt", "", "prompt text (\"\" starts from BOS)")
	maxTokens := fs.Int("max-tokens", 256, "new tokens at most; 0 runs to a stop token or the context length")
	temp := fs.Float64("temperature", 0.8, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 1, "nucleus sampling probability mass")
	topK := fs.Int("top-k", 0, "sample among the K most likely tokens; 0 keeps all")
	seed := fs.Int64("seed", -1, "random seed; -1 picks one")
	asJSON := fs.Bool("json", false, `print one JSON object {"prompt_tokens","tokens","text"} instead of streaming`)
	var stops stringList
	fs.Var(&stops, "stop", "stop string (repeatable)")
	af := adapterFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *maxTokens < 0 || *temp < 0 || *topP < 0 || *topP > 1 || *topK < 0 {
		return usagef("--max-tokens, --temperature, --top-k must be ≥ 0 and --top-p in [0, 1]")
	}
	m, tok, err := loadModel(*dir)
	if err != nil {
		return err
	}
	ids, err := encodePrompt(tok, *prompt)
	if err != nil {
		return err
	}
	adapter, err := af.load(m.Config)
	if err != nil {
		return err
	}
	opts := model.GenerateOptions{
		Adapter:     adapter,
		MaxTokens:   *maxTokens,
		Sample:      model.SampleOptions{Temperature: *temp, TopK: *topK, TopP: *topP},
		StopStrings: stops,
	}
	if *seed >= 0 {
		s := uint64(*seed)
		opts.Sample.Seed = &s
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	var emit func(string) error
	if !*asJSON {
		emit = func(s string) error {
			if _, err := w.WriteString(s); err != nil {
				return err
			}
			return w.Flush()
		}
	}
	g, err := m.Generate(ctx, tok.NewStreamDecoder(true), ids, opts, emit)
	if err != nil {
		return err
	}
	if *asJSON {
		toks := g.Tokens
		if toks == nil {
			toks = []int{}
		}
		return json.NewEncoder(w).Encode(struct {
			PromptTokens []int  `json:"prompt_tokens"`
			Tokens       []int  `json:"tokens"`
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason,omitempty"`
		}{g.PromptTokens, toks, g.Text, g.FinishReason})
	}
	_, err = w.WriteString("\n")
	return err
}

func runTokenize(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	dir := modelFlag(fs)
	noSpecial := fs.Bool("no-special", false, "do not add special tokens (BOS/EOS)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("tokenize takes at most one TEXT argument (got %d); quote it", len(pos))
	}
	tok, err := loadTokenizer(*dir)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	emit := func(text string) error {
		ids := tok.Encode(text, !*noSpecial)
		if ids == nil {
			ids = []int{}
		}
		return enc.Encode(ids)
	}
	if len(pos) == 1 {
		return emit(pos[0])
	}
	// No TEXT: one JSON string per input line.
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var s string
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return fmt.Errorf("stdin line %d: want a JSON string: %v", line, err)
		}
		if err := emit(s); err != nil {
			return err
		}
	}
	return sc.Err()
}

func runEmbed(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	dir := modelFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("embed takes exactly one TEXT argument (got %d)", len(pos))
	}
	m, tok, err := loadModel(*dir)
	if err != nil {
		return err
	}
	ids, err := encodePrompt(tok, pos[0])
	if err != nil {
		return err
	}
	e, err := m.Embed(ids, nil)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(e)
}

func runScore(args []string, _ io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	dir := modelFlag(fs)
	prompt := fs.String("prompt", "", "the context")
	cont := fs.String("continuation", "", "the text to score after the context")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *cont == "" {
		return usagef("--continuation is required")
	}
	m, tok, err := loadModel(*dir)
	if err != nil {
		return err
	}
	p, c, err := splitContinuation(tok, *prompt, *cont)
	if err != nil {
		return err
	}
	lp, err := m.LogLikelihood(p, c, nil)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(struct {
		LogProb float64 `json:"logprob"`
		Tokens  int     `json:"tokens"`
	}{lp, len(c)})
}

// splitContinuation tokenizes prompt+continuation as one text and takes the tokens
// after the prompt's own tokens, so a word is split as the model saw it in training;
// when the prompt's tokens are not a prefix, the continuation is encoded alone.
func splitContinuation(tok *tokenizer.Tokenizer, prompt, cont string) ([]int, []int, error) {
	p, err := encodePrompt(tok, prompt)
	if err != nil {
		return nil, nil, err
	}
	whole := tok.Encode(prompt+cont, true)
	if len(whole) > len(p) && slices.Equal(whole[:len(p)], p) {
		return p, whole[len(p):], nil
	}
	c := tok.Encode(cont, false)
	if len(c) == 0 {
		return nil, nil, usagef("the continuation has no tokens")
	}
	return p, c, nil
}

func runModel(args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "train-tokenizer" {
		return runTrainTokenizer(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "pretrain" {
		return runModelPretrain(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "info" {
		return runModelInfo(args[1:], stdout)
	}
	if len(args) > 0 && (args[0] == "quantize" || args[0] == "export-gguf") {
		return runModelQuantize(args[1:], stdout, args[0] == "export-gguf")
	}
	if len(args) == 0 || args[0] != "import-llama2c" {
		return usagef("usage: roe model info [--model DIR|FILE.gguf|ollama:NAME|NAME] [--json]\n       roe model import-llama2c --checkpoint F --tokenizer F --out DIR\n       roe model train-tokenizer --corpus FILE [--corpus FILE...] --vocab-size N --out DIR\n       roe model pretrain --corpus FILE [--corpus FILE...] --tokenizer DIR --out DIR [flags]\n       roe model quantize [--model DIR|FILE.gguf] --type q4_k_m|q8_0|... --out FILE.gguf\n       roe model export-gguf [--model DIR|FILE.gguf] [--type f32|f16|bf16] --out FILE.gguf")
	}
	fs := flag.NewFlagSet("model import-llama2c", flag.ContinueOnError)
	ck := fs.String("checkpoint", "", "llama2.c checkpoint (.bin, legacy format)")
	tk := fs.String("tokenizer", "", "llama2.c tokenizer (.bin)")
	out := fs.String("out", "", "output Hugging Face folder")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *ck == "" || *tk == "" || *out == "" {
		return usagef("--checkpoint, --tokenizer and --out are required")
	}
	if err := llama2c.Convert(*ck, *tk, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}
