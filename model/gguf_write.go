package model

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"roe/internal/atomicfile"
	"roe/kernels"
	"roe/model/gguf"
)

// Writing GGUF files as llama.cpp's converter (convert_hf_to_gguf.py) and
// llama-quantize write them: the same metadata keys and tensor names, Llama
// q/k rows permuted for interleaved RoPE, 1-D tensors in F32, and for the
// quantized file types the same per-tensor type mixes.

// GGUFFileType is a llama.cpp file type (general.file_type, LLAMA_FTYPE):
// the base tensor type and, for the K-quant mixes, which tensors get more
// bits.
type GGUFFileType struct {
	Name string        // lower case, as roe's flags take it: "q4_k_m"
	ID   uint32        // LLAMA_FTYPE number
	Base kernels.QType // the type of most 2-D tensors
}

var ggufFileTypes = []GGUFFileType{
	{"f32", 0, kernels.F32}, {"f16", 1, kernels.F16}, {"bf16", 32, kernels.BF16},
	{"q8_0", 7, kernels.Q8_0}, {"q4_0", 2, kernels.Q4_0}, {"q4_1", 3, kernels.Q4_1},
	{"q5_0", 8, kernels.Q5_0}, {"q5_1", 9, kernels.Q5_1}, {"q2_k", 10, kernels.Q2_K},
	{"q3_k_s", 11, kernels.Q3_K}, {"q3_k_m", 12, kernels.Q3_K}, {"q3_k_l", 13, kernels.Q3_K},
	{"q4_k_s", 14, kernels.Q4_K}, {"q4_k_m", 15, kernels.Q4_K}, {"q5_k_s", 16, kernels.Q5_K},
	{"q5_k_m", 17, kernels.Q5_K}, {"q6_k", 18, kernels.Q6_K},
	{"iq4_nl", 25, kernels.IQ4_NL}, {"iq4_xs", 30, kernels.IQ4_XS},
}

// llama-quantize's short names for the medium mixes.
var ggufFileTypeAliases = map[string]string{"q3_k": "q3_k_m", "q4_k": "q4_k_m", "q5_k": "q5_k_m"}

// ggufReadOnlyFileTypes names the llama.cpp file types roe does not
// write, for `roe model info`: their IQ1/IQ2/IQ3 tensors are refused by
// type when loaded (Q2_K_S files hold only types roe reads).
var ggufReadOnlyFileTypes = map[uint32]string{
	19: "iq2_xxs", 20: "iq2_xs", 21: "q2_k_s", 22: "iq3_xs", 23: "iq3_xxs", 24: "iq1_s",
	26: "iq3_s", 27: "iq3_m", 28: "iq2_s", 29: "iq2_m", 31: "iq1_m",
}

// GGUFFileTypeName names a general.file_type number ("q4_k_m"), or
// returns "" for one llama.cpp does not name.
func GGUFFileTypeName(id uint32) string {
	for _, ft := range ggufFileTypes {
		if ft.ID == id {
			return ft.Name
		}
	}
	return ggufReadOnlyFileTypes[id]
}

// GGUFFileTypes lists the file type names ParseGGUFFileType accepts.
func GGUFFileTypes() []string {
	out := make([]string, len(ggufFileTypes))
	for i, t := range ggufFileTypes {
		out[i] = t.Name
	}
	return out
}

// ParseGGUFFileType finds a file type by name, case-insensitively ("Q4_K_M").
func ParseGGUFFileType(s string) (GGUFFileType, error) {
	s = strings.ToLower(s)
	if a, ok := ggufFileTypeAliases[s]; ok {
		s = a
	}
	for _, t := range ggufFileTypes {
		if t.Name == s {
			return t, nil
		}
	}
	return GGUFFileType{}, fmt.Errorf("%w: GGUF file type %q (supported: %s)", ErrUnsupported, s, strings.Join(GGUFFileTypes(), ", "))
}

// GGUFTensor is one tensor of a GGUF file to write.
type GGUFTensor struct {
	Name   string        // GGUF name, "blk.0.attn_q.weight"
	HFName string        // Hugging Face name, "model.layers.0.self_attn.q_proj.weight"
	Shape  []int         // GGUF ne order: Shape[0] is the row length
	Type   kernels.QType // storage type
	// Fallback is the type the file type's rules chose when it could not
	// be used because rows are not a whole number of its blocks (Type is
	// then the fallback); 0 (F32) when there was none.
	Fallback kernels.QType
}

// GGUFPlan lists the tensors a GGUF file of the given type holds for a
// model of config c, in the order written: the tensors outside the blocks
// by name, then block by block by name (llama-quantize's order).
//
// Types follow llama-quantize (no importance matrix): 1-D tensors stay F32;
// output.weight (token_embd.weight when the embeddings are tied) gets Q6_K
// in every quantized type except Q8_0; the K-quant mixes give attn_v,
// ffn_down and attn_output more bits in some layers (see ggufMixType). When
// a row length is not a whole number of the chosen type's blocks, the type
// falls back as llama-quantize's does: Q2_K, Q3_K and IQ4_XS to IQ4_NL,
// Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, and anything still not fitting
// to F16.
func GGUFPlan(c Config, ft GGUFFileType) ([]GGUFTensor, error) {
	if c.GGUFArchitecture() == "" {
		return nil, fmt.Errorf("%w: no GGUF architecture for %s (supported: %s)", ErrArchitecture, c.Architecture, ggufArchList())
	}
	if err := ggufConfigWritable(c); err != nil {
		return nil, err
	}
	if err := ggufRopeWritable(c); err != nil {
		return nil, err
	}
	var ts []GGUFTensor
	// The converter's extra tensors come first.
	if c.RopeFreqFactors() != nil {
		ts = append(ts, GGUFTensor{Name: ropeFreqsTensor, Shape: []int{c.Rotary() / 2}, Type: kernels.F32})
	}
	if c.Rope.Type == "longrope" {
		ts = append(ts, GGUFTensor{Name: ropeLongTensor, Shape: []int{c.Rotary() / 2}, Type: kernels.F32},
			GGUFTensor{Name: ropeShortTensor, Shape: []int{c.Rotary() / 2}, Type: kernels.F32})
	}
	// The converter's order: the global tensors, then block by block, each
	// group sorted by name.
	var head []GGUFTensor
	blocks := make([][]GGUFTensor, c.NumLayers)
	for _, w := range c.wants() {
		ne := slices.Clone(w.shape)
		slices.Reverse(ne)
		t := GGUFTensor{Name: c.GGUFName(w.name), HFName: w.name, Shape: ne}
		if t.Name == "" {
			return nil, fmt.Errorf("%w: no GGUF name for %s", ErrUnsupported, w.name)
		}
		if m := hfLayerName.FindStringSubmatch(w.name); m != nil {
			i, _ := strconv.Atoi(m[1])
			blocks[i] = append(blocks[i], t)
		} else {
			head = append(head, t)
		}
	}
	byName := func(a, b GGUFTensor) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(head, byName)
	ts = append(ts, head...)
	for _, b := range blocks {
		slices.SortFunc(b, byName)
		ts = append(ts, b...)
	}
	for i := range ts {
		t := &ts[i]
		if len(t.Shape) == 1 {
			t.Type = kernels.F32
			continue
		}
		want := ggufMixType(c, ft, t.Name)
		t.Type = ggufFallback(want, t.Shape[0])
		if t.Type != want {
			t.Fallback = want
		}
	}
	return ts, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ggufMixType is the type llama-quantize picks for a 2-D tensor (before
// the fallback for row lengths): the file type's base type, except
//   - output.weight, and token_embd.weight of a tied model: Q6_K (kept Q8_0
//     for Q8_0 files; float file types keep their type);
//   - Q2_K: attn_v Q3_K (Q4_K with 4+ query heads per KV head), ffn_down
//     and attn_output Q3_K;
//   - Q3_K_M: attn_v Q5_K in the first two layers, else Q4_K; ffn_down Q5_K
//     in the first 1/16 of layers, else Q4_K; attn_output Q4_K;
//   - Q3_K_L: attn_v, ffn_down and attn_output Q5_K;
//   - Q4_K_M, Q5_K_M: attn_v and ffn_down Q6_K in the "more bits" layers:
//     the first and last eighth and every third layer in between;
//   - Q4_K_S: attn_v Q5_K in the first four layers, ffn_down Q5_K in the
//     first eighth;
//   - IQ4_NL, IQ4_XS: attn_v Q5_K with 4+ query heads per KV head, ffn_down
//     Q5_K in the first eighth (llama-quantize's rule without an
//     importance matrix).
func ggufMixType(c Config, ft GGUFFileType, name string) kernels.QType {
	base := ft.Base
	if !base.Quantized() {
		return base
	}
	if name == "output.weight" || name == "token_embd.weight" && c.TieWordEmbeddings {
		if base == kernels.Q8_0 {
			return base
		}
		return kernels.Q6_K
	}
	if strings.HasSuffix(name, ".attn_qkv.weight") { // Phi-3's fused q, k, v
		switch ft.Name {
		case "q3_k_m", "q3_k_l":
			return kernels.Q4_K
		case "q4_k_m":
			return kernels.Q5_K
		case "q5_k_m":
			return kernels.Q6_K
		}
		return base
	}
	layer, p, ok := GGUFProj(name)
	if !ok {
		return base
	}
	n := c.NumLayers
	moreBits := layer < n/8 || layer >= 7*n/8 || (layer-n/8)%3 == 2
	switch p {
	case ProjV:
		switch ft.Name {
		case "q2_k":
			if c.NumKVHeads > 0 && c.NumHeads/c.NumKVHeads >= 4 {
				return kernels.Q4_K
			}
			return kernels.Q3_K
		case "q3_k_m":
			if layer < 2 {
				return kernels.Q5_K
			}
			return kernels.Q4_K
		case "q3_k_l":
			return kernels.Q5_K
		case "q4_k_m", "q5_k_m":
			if moreBits {
				return kernels.Q6_K
			}
		case "q4_k_s":
			if layer < 4 {
				return kernels.Q5_K
			}
		case "iq4_nl", "iq4_xs":
			if c.NumKVHeads > 0 && c.NumHeads/c.NumKVHeads >= 4 {
				return kernels.Q5_K
			}
		}
	case ProjDown:
		switch ft.Name {
		case "q2_k":
			return kernels.Q3_K
		case "q3_k_m":
			if layer < n/16 {
				return kernels.Q5_K
			}
			return kernels.Q4_K
		case "q3_k_l":
			return kernels.Q5_K
		case "q4_k_m", "q5_k_m":
			if moreBits {
				return kernels.Q6_K
			}
		case "q4_k_s", "iq4_nl", "iq4_xs":
			if layer < n/8 {
				return kernels.Q5_K
			}
		}
	case ProjO:
		switch ft.Name {
		case "q2_k":
			return kernels.Q3_K
		case "q3_k_m":
			return kernels.Q4_K
		case "q3_k_l":
			return kernels.Q5_K
		}
	}
	return base
}

// ggufFallback replaces t by a type whose blocks divide a row of cols.
func ggufFallback(t kernels.QType, cols int) kernels.QType {
	if cols%t.BlockSize() == 0 {
		return t
	}
	switch t {
	case kernels.Q2_K, kernels.Q3_K, kernels.IQ4_XS:
		t = kernels.IQ4_NL
	case kernels.Q4_K:
		t = kernels.Q5_0
	case kernels.Q5_K:
		t = kernels.Q5_1
	case kernels.Q6_K:
		t = kernels.Q8_0
	}
	if cols%t.BlockSize() != 0 {
		t = kernels.F16
	}
	return t
}

// GGUFWriteOptions choose what WriteGGUF writes besides the weights.
type GGUFWriteOptions struct {
	FileType GGUFFileType // the zero value is F32
	Name     string       // general.name ("" leaves it out)
	// Vocab holds the tokenizer.* keys (GGUFVocab builds them from a
	// tokenizer; a GGUF source's own can be copied). Without them the file
	// has no tokenizer and llama.cpp will not load it.
	Vocab []gguf.KV
}

// WriteGGUF writes m as a GGUF file of o.FileType: the converter's metadata
// for m's architecture, the tensors typed as GGUFPlan says, then o.Vocab.
// Tensors are quantized from m's weights widened to float32; a quantized
// tensor that already has its target type is copied as it is. Every tensor
// is converted before the first byte is written.
func WriteGGUF(w io.Writer, m *Model, o GGUFWriteOptions) error {
	kvs, ts, err := m.ggufContents(o)
	if err != nil {
		return err
	}
	return gguf.Write(w, kvs, ts)
}

// SaveGGUF is WriteGGUF to a file, replaced whole or not at all.
func SaveGGUF(path string, m *Model, o GGUFWriteOptions) error {
	kvs, ts, err := m.ggufContents(o)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error { return gguf.Write(w, kvs, ts) })
}

func (m *Model) ggufContents(o GGUFWriteOptions) ([]gguf.KV, []gguf.WriteTensor, error) {
	c := m.Config
	if o.FileType.Name == "" {
		o.FileType = ggufFileTypes[0]
	}
	plan, err := GGUFPlan(c, o.FileType)
	if err != nil {
		return nil, nil, err
	}
	kvs, err := ggufModelKVs(c, o, m.NumParams())
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range o.Vocab {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			return nil, nil, fmt.Errorf("%w: vocabulary key %q is not a tokenizer.* key", ErrConfig, kv.Key)
		}
	}
	kvs = append(kvs, o.Vocab...)
	kvs = append(kvs, gguf.KV{Key: "general.quantization_version", Value: gguf.NewUint32(2)})
	ts := make([]gguf.WriteTensor, len(plan))
	for i, t := range plan {
		data, err := m.ggufTensorData(t)
		if err != nil {
			return nil, nil, fmt.Errorf("gguf %s (%s): %w", t.Name, t.Type, err)
		}
		ts[i] = gguf.WriteTensor{Name: t.Name, Type: t.Type, Shape: t.Shape, Data: data}
	}
	return kvs, ts, nil
}

// ggufModelKVs are the general.* and <arch>.* keys, in the converter's order.
func ggufModelKVs(c Config, o GGUFWriteOptions, params int) ([]gguf.KV, error) {
	arch := c.GGUFArchitecture() // GGUFPlan has refused what a file cannot hold
	var kvs []gguf.KV
	add := func(k string, v gguf.Value) { kvs = append(kvs, gguf.KV{Key: k, Value: v}) }
	u32 := func(k string, v int) { add(arch+"."+k, gguf.NewUint32(uint32(v))) }
	add(gguf.ArchitectureKey, gguf.NewString(arch))
	add("general.type", gguf.NewString("model"))
	if o.Name != "" {
		add("general.name", gguf.NewString(o.Name))
	}
	add("general.size_label", gguf.NewString(sizeLabel(params)))
	u32("block_count", c.NumLayers)
	u32("context_length", c.MaxPositions)
	u32("embedding_length", c.HiddenSize)
	u32("feed_forward_length", c.IntermediateSize)
	u32("attention.head_count", c.NumHeads)
	u32("attention.head_count_kv", c.NumKVHeads)
	add(arch+".rope.freq_base", gguf.NewFloat32(float32(c.RopeTheta)))
	add(arch+".attention.layer_norm_rms_epsilon", gguf.NewFloat32(c.RMSNormEps))
	if arch != "qwen2" || c.HeadDim != c.HiddenSize/c.NumHeads {
		u32("attention.key_length", c.HeadDim)
		u32("attention.value_length", c.HeadDim)
	}
	add("general.file_type", gguf.NewUint32(o.FileType.ID))
	if arch == "llama" {
		u32("vocab_size", c.VocabSize)
		u32("rope.dimension_count", c.HeadDim)
	}
	if arch == "phi3" {
		u32("rope.dimension_count", c.Rotary())
		if c.Rope.Type == "longrope" {
			u32("rope.scaling.original_context_length", c.Rope.OriginalMaxPos)
			add(arch+".rope.scaling.attn_factor", gguf.NewFloat32(float32(c.Rope.AttnFactor)))
		}
	}
	if c.Rope.Type == "linear" {
		add(arch+".rope.scaling.type", gguf.NewString("linear"))
		add(arch+".rope.scaling.factor", gguf.NewFloat32(float32(c.Rope.Factor)))
	}
	if c.SlidingWindow > 0 {
		u32("attention.sliding_window", c.SlidingWindow)
	}
	if arch == "gemma2" {
		add(arch+".attn_logit_softcapping", gguf.NewFloat32(float32(c.AttnSoftcap)))
		add(arch+".final_logit_softcapping", gguf.NewFloat32(float32(c.FinalSoftcap)))
	}
	return kvs, nil
}

// sizeLabel is general.size_label as gguf-py writes it: the parameter count
// in K, M, B or T with at least two significant digits ("115K", "1.2B").
func sizeLabel(n int) string {
	f, suffix := float64(n), "K"
	switch {
	case f > 1e12:
		f, suffix = f*1e-12, "T"
	case f > 1e9:
		f, suffix = f*1e-9, "B"
	case f > 1e6:
		f, suffix = f*1e-6, "M"
	default:
		f *= 1e-3
	}
	digits := len(strings.TrimLeft(strconv.Itoa(int(math.RoundToEven(f))), "0"))
	return strconv.FormatFloat(f, 'f', max(2-digits, 0), 64) + suffix
}

// ggufSourceTensor returns the model's tensor of a Hugging Face name: a
// matrix, or a vector (norms, biases).
func (m *Model) ggufSourceTensor(hf string) (matrix, []float32, bool) {
	switch hf {
	case "model.embed_tokens.weight":
		return m.embed, nil, true
	case "lm_head.weight":
		return m.lmHead, nil, true
	case "model.norm.weight":
		return matrix{}, m.norm, true
	}
	mm := hfLayerName.FindStringSubmatch(hf)
	if mm == nil {
		return matrix{}, nil, false
	}
	i, err := strconv.Atoi(mm[1])
	if err != nil || i < 0 || i >= len(m.layers) {
		return matrix{}, nil, false
	}
	l := &m.layers[i]
	for n := Norm(0); n < NumNorms; n++ {
		if m.Config.NormName(i, n) == hf {
			v := *l.norm(n) // (1 + w) where the family's norms are so (as llama.cpp stores them)
			return matrix{}, v, v != nil
		}
	}
	switch mm[2] {
	case "self_attn.qkv_proj.weight":
		return fusedMatrix(&l.q, &l.k, &l.v), nil, m.Config.FusedQKV
	case "mlp.gate_up_proj.weight":
		return fusedMatrix(&l.gate, &l.up), nil, m.Config.FusedGateUp
	}
	for p, b := range l.bias {
		if strings.HasSuffix(hf, "."+Proj(p).String()+".bias") {
			return matrix{}, b, b != nil
		}
	}
	for p, name := range projNames {
		if mm[2] == "self_attn."+name+".weight" || mm[2] == "mlp."+name+".weight" {
			return *l.proj(Proj(p)), nil, true
		}
	}
	return matrix{}, nil, false
}

// ggufTensorData converts one tensor to its stored bytes: rows permuted
// for Llama q/k (weights and biases), then each row quantized.
func (m *Model) ggufTensorData(t GGUFTensor) ([]byte, error) {
	switch t.Name {
	case ropeFreqsTensor:
		return ropeFreqsData(m.Config), nil
	case ropeLongTensor:
		return ropeFactorsData(m.Config.Rope.LongFactor), nil
	case ropeShortTensor:
		return ropeFactorsData(m.Config.Rope.ShortFactor), nil
	}
	w, vec, ok := m.ggufSourceTensor(t.HFName)
	if !ok {
		return nil, fmt.Errorf("%w: the model has no tensor %s", ErrWeights, t.HFName)
	}
	cols := t.Shape[0]
	rows := 1
	for _, d := range t.Shape[1:] {
		rows *= d
	}
	heads := 0
	if mm := hfLayerName.FindStringSubmatch(t.HFName); mm != nil {
		for p, name := range projNames {
			if strings.HasPrefix(mm[2], "self_attn."+name+".") {
				heads = m.Config.GGUFPermutedHeads(Proj(p))
			}
		}
	}
	rb, err := kernels.RowBytes(t.Type, cols)
	if err != nil {
		return nil, err
	}
	out := make([]byte, rows*rb)
	// Quantized blocks of the target type are copied, rows reordered (for
	// q/k loaded from a GGUF file, back to the order they are stored in).
	if w.q != nil && w.q.Type == t.Type && w.q.Rows == rows && w.q.Cols == cols {
		move := func(dst, hfRow int) {
			src := w.storedRow(hfRow)
			copy(out[dst*rb:(dst+1)*rb], w.q.Data[src*rb:(src+1)*rb])
		}
		if heads > 0 {
			unpermuteRows(rows, heads, func(hfRow, ggufRow int) { move(ggufRow, hfRow) })
		} else {
			for r := range rows {
				move(r, r)
			}
		}
		return out, nil
	}
	v := vec
	if vec == nil {
		v = w.float32s()
	}
	if len(v) != rows*cols {
		return nil, fmt.Errorf("%w: %s holds %d values, not %d×%d", ErrWeights, t.HFName, len(v), rows, cols)
	}
	if heads > 0 {
		if len(t.Shape) == 1 { // a bias: one value per row
			v = PermuteGGUFRows(v, 1, heads)
		} else {
			v = PermuteGGUFRows(v, cols, heads)
		}
	}
	var once sync.Once
	var firstErr error
	kernels.ParallelWork(rows, rows*cols*64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if err := kernels.QuantizeRow(t.Type, out[r*rb:(r+1)*rb], v[r*cols:(r+1)*cols]); err != nil {
				once.Do(func() { firstErr = fmt.Errorf("row %d: %w", r, err) })
				return
			}
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// fusedMatrix is the matrix whose rows are parts' rows in turn: the
// quantized blocks themselves when the parts are adjacent views of one
// tensor's blocks (Phi-3's fused weights as loaded from a GGUF), else the
// rows widened to float32.
func fusedMatrix(parts ...*matrix) matrix {
	q0 := parts[0].q
	adjacent := q0 != nil && parts[0].perm == nil
	rows, n := 0, 0
	for _, p := range parts {
		if adjacent && (p.q == nil || p.perm != nil || p.q.Type != q0.Type || p.q.Cols != q0.Cols || len(p.q.Data) == 0 ||
			unsafe.Pointer(&p.q.Data[0]) != unsafe.Add(unsafe.Pointer(&q0.Data[0]), n)) {
			adjacent = false
		}
		if p.q != nil {
			rows += p.q.Rows
			n += len(p.q.Data)
		}
	}
	if adjacent {
		return matrix{q: &kernels.QMatrix{Type: q0.Type, Data: unsafe.Slice(&q0.Data[0], n), Rows: rows, Cols: q0.Cols}}
	}
	var v []float32
	for _, p := range parts {
		v = append(v, p.float32s()...)
	}
	return f32Matrix(v)
}
