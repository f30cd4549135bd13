package model

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"roe/kernels"
	"roe/model/gguf"
	"roe/model/safetensors"
)

// ggufArchitectures maps general.architecture to the Hugging Face class roe
// runs it as. Mistral GGUFs say "llama".
var ggufArchitectures = map[string]string{
	"llama":  "LlamaForCausalLM",
	"qwen2":  "Qwen2ForCausalLM",
	"qwen3":  "Qwen3ForCausalLM",
	"gemma2": "Gemma2ForCausalLM",
	"gemma3": "Gemma3ForCausalLM",
	"phi3":   "Phi3ForCausalLM",
}

// ggufArchKeys are the "<arch>." keys one architecture adds to ggufKnownKeys.
var ggufArchKeys = map[string]map[string]bool{
	"phi3": {"rope.scaling.attn_factor": true},
	// Newer converters state what older llama.cpp derives for Gemma.
	"gemma2": {"attn_logit_softcapping": true, "final_logit_softcapping": true, "attention.sliding_window_pattern": true},
	"gemma3": {"attention.sliding_window_pattern": true, "rope.freq_base_swa": true},
}

// ggufKnownKeys are the "<arch>." keys ConfigFromGGUF reads or that do not
// change the forward pass; any other key of the architecture is refused by
// name, since it may ask for something roe does not implement.
var ggufKnownKeys = map[string]bool{
	"context_length": true, "embedding_length": true, "block_count": true, "feed_forward_length": true,
	"attention.head_count": true, "attention.head_count_kv": true, "attention.key_length": true,
	"attention.value_length": true, "attention.layer_norm_rms_epsilon": true, "rope.dimension_count": true,
	"rope.freq_base": true, "rope.scaling.type": true, "rope.scaling.factor": true,
	"rope.scaling.original_context_length": true, "rope.scaling.finetuned": true, "vocab_size": true,
	"attention.sliding_window": true, "expert_count": true, "expert_used_count": true,
}

// ConfigFromGGUF derives the model config from a GGUF file's metadata, for
// the architectures roe runs (llama, qwen2); others, and keys that change
// the math in ways roe does not implement, are refused by name.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	arch, err := f.Architecture()
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	class, ok := ggufArchitectures[arch]
	if !ok {
		return Config{}, fmt.Errorf("%w: GGUF architecture %q (supported: %s)", ErrArchitecture, arch, ggufArchList())
	}
	if t, ok := f.Get("general.type"); ok {
		if s, _ := t.String(); s != "" && s != "model" {
			return Config{}, fmt.Errorf("%w: GGUF general.type is %q, not a model (a LoRA adapter is added as an expert)", ErrConfig, s)
		}
	}
	if !f.Whole() { // gguf.OpenSplit opens a split model's other parts
		return Config{}, fmt.Errorf("%w: one part of a split GGUF, opened without the others", ErrConfig)
	}
	p := arch + "."
	for _, k := range f.Keys() {
		if rest, ok := strings.CutPrefix(k, p); ok && !ggufKnownKeys[rest] && !ggufArchKeys[arch][rest] {
			return Config{}, fmt.Errorf("%w: GGUF key %s", ErrUnsupported, k)
		}
	}
	c := Config{Architecture: class, ModelType: arch, AttentionBias: arch == "qwen2"}
	if arch == "llama" {
		// llama.cpp reads a Llama block's biases where the file has them
		// (Llama's attention_bias, mlp_bias), as does roe: layer 0 says.
		has := func(name string) bool { _, err := f.Data("blk.0." + name + ".bias"); return err == nil }
		c.AttentionBias = has("attn_q")
		c.OutputBias = has("attn_output")
		c.MLPBias = has("ffn_up")
	}
	ints := []struct {
		key string
		dst *int
	}{
		{"embedding_length", &c.HiddenSize}, {"feed_forward_length", &c.IntermediateSize},
		{"block_count", &c.NumLayers}, {"attention.head_count", &c.NumHeads}, {"context_length", &c.MaxPositions},
	}
	for _, it := range ints {
		v, err := f.Uint(p + it.key)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if v == 0 || v > 1<<24 {
			return Config{}, fmt.Errorf("%w: %s%s = %d is out of range", ErrConfig, p, it.key, v)
		}
		*it.dst = int(v)
	}
	kv, err := f.OptUint(p+"attention.head_count_kv", uint64(c.NumHeads))
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.NumKVHeads = int(kv)
	if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
		return Config{}, fmt.Errorf("%w: %sattention.head_count %d is not a multiple of head_count_kv %d", ErrConfig, p, c.NumHeads, c.NumKVHeads)
	}
	if c.HiddenSize%c.NumHeads != 0 {
		return Config{}, fmt.Errorf("%w: %sembedding_length %d is not a multiple of attention.head_count %d", ErrConfig, p, c.HiddenSize, c.NumHeads)
	}
	hd, err := f.OptUint(p+"attention.key_length", uint64(c.HiddenSize/c.NumHeads))
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.HeadDim = int(hd)
	for _, k := range []string{"attention.value_length", "rope.dimension_count"} {
		v, err := f.OptUint(p+k, hd)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if k == "rope.dimension_count" && arch == "phi3" && v < hd && v > 0 && v%2 == 0 {
			c.RotaryDim = int(v) // partial_rotary_factor (Phi-4-mini)
			continue
		}
		if v != hd {
			return Config{}, fmt.Errorf("%w: %s%s = %d differs from the head size %d", ErrUnsupported, p, k, v, hd)
		}
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HeadDim > 1<<16 {
		return Config{}, fmt.Errorf("%w: head size %d must be even and positive", ErrConfig, c.HeadDim)
	}
	eps, err := f.Float(p + "attention.layer_norm_rms_epsilon")
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if !(eps > 0) {
		return Config{}, fmt.Errorf("%w: %sattention.layer_norm_rms_epsilon must be positive, got %g", ErrConfig, p, eps)
	}
	c.RMSNormEps = float32(eps)
	if c.RopeTheta, err = f.OptFloat(p+"rope.freq_base", 10000); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if !(c.RopeTheta > 0) {
		return Config{}, fmt.Errorf("%w: %srope.freq_base must be positive", ErrConfig, p)
	}
	if err := ggufRopeScaling(f, p, &c); err != nil {
		return Config{}, err
	}
	if n, err := f.OptUint(p+"expert_count", 0); err != nil || n > 0 {
		return Config{}, fmt.Errorf("%w: mixture-of-experts GGUF (%sexpert_count)", ErrUnsupported, p)
	}
	if w, err := f.OptUint(p+"attention.sliding_window", 0); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	} else if w > 0 {
		c.SlidingWindow = int(w)
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return Config{}, fmt.Errorf("%w: GGUF has no 2-D token_embd.weight", ErrWeights)
	}
	c.VocabSize = emb.Shape[1]
	if v, err := f.OptUint(p+"vocab_size", uint64(c.VocabSize)); err != nil || int(v) != c.VocabSize {
		return Config{}, fmt.Errorf("%w: %svocab_size does not match token_embd.weight's %d rows", ErrConfig, p, c.VocabSize)
	}
	_, untied := f.Tensor("output.weight")
	c.TieWordEmbeddings = !untied
	if err := ggufRopeFreqs(f, &c); err != nil {
		return Config{}, err
	}
	if err := ggufFamily(f, p, &c); err != nil {
		return Config{}, err
	}
	if err := ggufLongRope(f, p, &c); err != nil {
		return Config{}, err
	}
	for _, k := range []struct {
		key string
		dst *[]int
	}{{"tokenizer.ggml.bos_token_id", &c.BOS}, {"tokenizer.ggml.eos_token_id", &c.EOS}} {
		if v, ok := f.Get(k.key); ok {
			id, ok := v.Uint()
			if !ok || id >= uint64(c.VocabSize) {
				return Config{}, fmt.Errorf("%w: %s is not a token id", ErrConfig, k.key)
			}
			*k.dst = []int{int(id)}
		}
	}
	c.EOS = appendNew(c.EOS, ggufEndOfGeneration(f, c.VocabSize)...)
	return c, nil
}

// ggufEndTokens are the texts llama.cpp ends generation at whatever the
// file says (its end-of-generation set): the end-of-turn tokens of the chat
// formats, which GGUF files rarely name in their keys.
var ggufEndTokens = map[string]bool{
	"<|eot_id|>": true, "<|im_end|>": true, "<|end|>": true, "<end_of_turn>": true,
	"<|endoftext|>": true, "<|eom_id|>": true, "<EOT>": true,
}

// ggufEndOfGeneration returns the token ids besides eos that end generation
// as llama.cpp ends it: the end-of-turn, end-of-message and fill-in-the-middle
// pad/repo/separator ids the keys name, and the tokens of ggufEndTokens.
// Without them a chat with a Gemma file (eos <eos>, turns end at
// <end_of_turn>) would run to max_tokens.
func ggufEndOfGeneration(f *gguf.File, vocab int) []int {
	var ids []int
	for _, k := range []string{"eot", "eom", "fim_pad", "fim_rep", "fim_sep"} {
		if v, ok := f.Get("tokenizer.ggml." + k + "_token_id"); ok {
			if id, ok := v.Uint(); ok && id < uint64(vocab) {
				ids = append(ids, int(id))
			}
		}
	}
	if v, ok := f.Get("tokenizer.ggml.tokens"); ok {
		if toks, ok := v.Strings(); ok {
			for id, t := range toks {
				if ggufEndTokens[t] && id < vocab {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// appendNew appends the ids of add not yet in ids, in order.
func appendNew(ids []int, add ...int) []int {
	for _, id := range add {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func ggufRopeScaling(f *gguf.File, p string, c *Config) error {
	v, ok := f.Get(p + "rope.scaling.type")
	if !ok {
		return nil
	}
	t, _ := v.String()
	switch t {
	case "none", "":
		return nil
	case "linear":
		fac, err := f.Float(p + "rope.scaling.factor")
		if err != nil || !(fac > 0) {
			return fmt.Errorf("%w: linear rope scaling needs a positive %srope.scaling.factor", ErrConfig, p)
		}
		if fac != 1 {
			c.Rope = RopeScaling{Type: "linear", Factor: fac}
		}
		return nil
	}
	return fmt.Errorf("%w: %srope.scaling.type %q (supported: none, linear)", ErrUnsupported, p, t)
}

// ggufBlockName maps "blk.N.<name>" to its Hugging Face suffix.
var ggufBlockNames = map[string]string{
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"attn_qkv.weight":    "self_attn.qkv_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_output.bias":   "self_attn.o_proj.bias",
	"ffn_gate.bias":      "mlp.gate_proj.bias",
	"ffn_up.bias":        "mlp.up_proj.bias",
	"ffn_down.bias":      "mlp.down_proj.bias",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

var ggufGlobalNames = map[string]string{
	"token_embd.weight":  "model.embed_tokens.weight",
	"output_norm.weight": "model.norm.weight",
	"output.weight":      "lm_head.weight",
}

var hfLayerName = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

// ggufNormNames are the GGUF names of a block's norms, the same in every
// architecture (which norms a block has, and their Hugging Face names, are
// Config.NormName's).
var ggufNormNames = [NumNorms]string{
	NormInput: "attn_norm", NormPostAttn: "post_attention_norm", NormPreMLP: "ffn_norm",
	NormPostMLP: "post_ffw_norm", NormQ: "attn_q_norm", NormK: "attn_k_norm",
}

// GGUFName is the GGUF name of one of c's tensors by its Hugging Face name,
// "" when it has none: GGUFTensorName, with the block norms of c's family
// (Llama's post_attention_layernorm is GGUF's ffn_norm, Gemma's its
// post_attention_norm).
func (c Config) GGUFName(hf string) string {
	if m := hfLayerName.FindStringSubmatch(hf); m != nil {
		if m[2] == "mlp.gate_up_proj.weight" { // Phi-3's fused gate and up
			return "blk." + m[1] + ".ffn_up.weight"
		}
		if i, err := strconv.Atoi(m[1]); err == nil {
			for n := Norm(0); n < NumNorms; n++ {
				if c.NormName(i, n) == hf {
					return "blk." + m[1] + "." + ggufNormNames[n] + ".weight"
				}
			}
		}
	}
	return GGUFTensorName(hf)
}

// GGUFTensorName is the GGUF name of a Hugging Face tensor name of a Llama
// block's projections and biases or of the embeddings, head and final norm,
// "" when the tensor has none.
func GGUFTensorName(hf string) string {
	for g, h := range ggufGlobalNames {
		if h == hf {
			return g
		}
	}
	if m := hfLayerName.FindStringSubmatch(hf); m != nil {
		for g, h := range ggufBlockNames {
			if h == m[2] {
				return "blk." + m[1] + "." + g
			}
		}
	}
	return ""
}

// ggufSource serves a GGUF file's tensors under Hugging Face names, shapes
// and row order: float Llama q/k rows are un-permuted when widened, quantized
// ones come with their row order (a matrix's perm), and quantized blocks are
// always the file's own memory.
type ggufSource struct {
	f   *gguf.File
	cfg Config
}

func (s *ggufSource) info(hf string) (gguf.TensorInfo, bool) {
	name := s.cfg.GGUFName(hf)
	if name == "" {
		return gguf.TensorInfo{}, false
	}
	return s.f.Tensor(name)
}

// Info reports the tensor with its shape in Hugging Face order ([rows, cols])
// and its GGUF type name as dtype.
func (s *ggufSource) Info(hf string) (safetensors.TensorInfo, bool) {
	t, ok := s.info(hf)
	if !ok {
		return safetensors.TensorInfo{}, false
	}
	shape := slices.Clone(t.Shape)
	slices.Reverse(shape)
	return safetensors.TensorInfo{DType: safetensors.DType(t.Type.String()), Shape: shape}, true
}

// heads returns how many heads a q or k weight's (or bias's) rows are
// permuted over, 0 for tensors stored as they are.
func (s *ggufSource) heads(hf string) int {
	if m := hfLayerName.FindStringSubmatch(hf); m != nil {
		for p, name := range projNames {
			if strings.HasPrefix(m[2], "self_attn."+name+".") {
				return s.cfg.GGUFPermutedHeads(Proj(p))
			}
		}
	}
	return 0
}

// Float32 returns an F32/F16/BF16 tensor widened, un-permuted where needed.
func (s *ggufSource) Float32(hf string) ([]float32, error) {
	t, ok := s.info(hf)
	if !ok {
		return nil, fmt.Errorf("no tensor %s", hf)
	}
	var v []float32
	if t.Type.Quantized() {
		q, at, err := s.Quantized(hf)
		if err != nil {
			return nil, err
		}
		return matrix{q: q, perm: newRowPerm(at)}.float32s(), nil
	}
	v, err := s.f.Float32(t.Name)
	if err != nil {
		return nil, err
	}
	if n := s.heads(hf); n > 0 {
		cols := 1
		if len(t.Shape) == 2 {
			cols = t.Shape[0]
		}
		v = UnpermuteGGUFRows(v, cols, n)
	}
	return v, nil
}

// Quantized returns a quantized 2-D tensor's blocks in the file's mapping,
// and for Llama q/k the stored row of each Hugging Face row.
func (s *ggufSource) Quantized(hf string) (*kernels.QMatrix, []int32, error) {
	t, ok := s.info(hf)
	if !ok || len(t.Shape) != 2 {
		return nil, nil, fmt.Errorf("no 2-D tensor %s", hf)
	}
	data, err := s.f.Data(t.Name)
	if err != nil {
		return nil, nil, err
	}
	q := &kernels.QMatrix{Type: t.Type, Data: data, Rows: t.Shape[1], Cols: t.Shape[0]}
	var at []int32
	if n := s.heads(hf); n > 0 {
		at = ggufRowOrder(q.Rows, n)
	}
	return q, at, q.Check()
}

// ggufRowOrder returns the GGUF row of each Hugging Face row of a Llama q/k
// weight: [rows].
func ggufRowOrder(rows, heads int) []int32 {
	at := make([]int32, rows)
	unpermuteRows(rows, heads, func(hfRow, ggufRow int) { at[hfRow] = int32(ggufRow) })
	return at
}

// unpermuteRows undoes llama.cpp's q/k row order: within each of the heads,
// GGUF row 2i+j holds Hugging Face row j·half + i (half = rows per head / 2),
// the pairing of interleaved RoPE against rotate_half.
func unpermuteRows(rows, heads int, move func(dst, src int)) {
	per := rows / heads
	half := per / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				move(h*per+j*half+i, h*per+2*i+j)
			}
		}
	}
}

// IsGGUF reports whether path names a GGUF file: by its extension, or
// for a regular file named otherwise (an Ollama blob, sha256-HEX) by its
// magic number.
func IsGGUF(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".gguf") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "GGUF"
}

// LoadGGUF loads a model from a GGUF file (the first part of a split
// model, whose other parts it opens beside it). Its matrices stay in the
// file's mapping, quantized or float (Llama q/k in its row order, see
// matrix.perm), but for F32 ones with bf16 LoadOptions, narrowed into a copy.
// The file stays open while the model lives; f is returned so the caller
// can read the tokenizer from its metadata.
func LoadGGUF(path string, o LoadOptions) (*Model, *gguf.File, error) {
	f, err := gguf.OpenSplit(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	m, err := newFromGGUF(f, o)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, f, nil
}

func newFromGGUF(f *gguf.File, o LoadOptions) (*Model, error) {
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	if cfg.NumLayers > len(f.Tensors) { // before anything sized by it
		return nil, fmt.Errorf("%w: GGUF block_count %d with %d tensors", ErrConfig, cfg.NumLayers, len(f.Tensors))
	}
	src := &ggufSource{f: f, cfg: cfg}
	// Every tensor must be one roe uses: an unknown one may be part of the
	// math roe would silently skip.
	known := cfg.wantNames(cfg.GGUFName)
	known[ropeFreqsTensor], known[ropeLongTensor], known[ropeShortTensor] = true, true, true
	for _, t := range f.Tensors {
		if !known[t.Name] {
			return nil, fmt.Errorf("%w: GGUF tensor %s (not one of a %s model's)", ErrUnsupported, t.Name, cfg.ModelType)
		}
	}
	return NewWith(cfg, src, o)
}

// wants lists the tensors a model of c reads, by Hugging Face name and shape.
func (c Config) wants() []tensorWant {
	return (&Model{Config: c, layers: make([]layer, c.NumLayers)}).tensorWants()
}

// wantNames is the set of c's tensors' names, each Hugging Face name mapped
// by name (the identity for a checkpoint folder, GGUFName for a GGUF).
func (c Config) wantNames(name func(hf string) string) map[string]bool {
	known := map[string]bool{}
	for _, w := range c.wants() {
		known[name(w.name)] = true
	}
	return known
}

// NormsFolded implements normsFolded: llama.cpp's converter stores Gemma's
// norm weights with the one added.
func (s *ggufSource) NormsFolded() bool { return s.cfg.NormPlusOne }

var ggufProjNames = map[string]Proj{
	"attn_q": ProjQ, "attn_k": ProjK, "attn_v": ProjV, "attn_output": ProjO,
	"ffn_gate": ProjGate, "ffn_up": ProjUp, "ffn_down": ProjDown,
}

// GGUFProj parses the GGUF name of a block projection's weight,
// "blk.3.attn_q.weight" or "blk.3.attn_q" (as a LoRA tensor's prefix).
func GGUFProj(name string) (layer int, p Proj, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(name, ".weight"), "blk.")
	if !ok {
		return 0, 0, false
	}
	n, proj, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	layer, err := strconv.Atoi(n)
	p, known := ggufProjNames[proj]
	return layer, p, err == nil && layer >= 0 && known
}

// ggufArchList names the GGUF architectures roe reads and writes, sorted.
func ggufArchList() string {
	return strings.Join(slices.Sorted(maps.Keys(ggufArchitectures)), ", ")
}

// GGUFArchitecture is general.architecture for a model of this config in
// GGUF ("llama" for Llama and Mistral).
func (c Config) GGUFArchitecture() string {
	for g, class := range ggufArchitectures {
		if class == c.Architecture {
			return g
		}
	}
	if c.Architecture == "MistralForCausalLM" {
		return "llama"
	}
	return ""
}

// GGUFPermutedHeads is the number of heads over which a GGUF file permutes
// the rows of projection p (and of a LoRA's B for it): Llama q and k are
// stored for interleaved RoPE; 0 means rows are stored as they are.
func (c Config) GGUFPermutedHeads(p Proj) int {
	if c.GGUFArchitecture() != "llama" {
		return 0
	}
	switch p {
	case ProjQ:
		return c.NumHeads
	case ProjK:
		return c.NumKVHeads
	}
	return 0
}

// UnpermuteGGUFRows returns v ([rows, cols]) with llama.cpp's q/k row order
// over heads undone; PermuteGGUFRows applies it.
func UnpermuteGGUFRows(v []float32, cols, heads int) []float32 {
	out := make([]float32, len(v))
	unpermuteRows(len(v)/cols, heads, func(dst, src int) { copy(out[dst*cols:(dst+1)*cols], v[src*cols:(src+1)*cols]) })
	return out
}

// PermuteGGUFRows is the inverse of UnpermuteGGUFRows.
func PermuteGGUFRows(v []float32, cols, heads int) []float32 {
	out := make([]float32, len(v))
	unpermuteRows(len(v)/cols, heads, func(dst, src int) { copy(out[src*cols:(src+1)*cols], v[dst*cols:(dst+1)*cols]) })
	return out
}
