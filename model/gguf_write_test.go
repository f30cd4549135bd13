package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	gp "github.com/gpustack/gguf-parser-go"

	"roe/kernels"
	"roe/model/gguf"
	"roe/model/tokenizer"
	"roe/models"
)

// valueEq compares two GGUF values in full (arrays element by element).
func valueEq(a, b gguf.Value) bool {
	if a.Type != b.Type || a.Elem() != b.Elem() {
		return false
	}
	if a.Type == gguf.TypeString {
		x, _ := a.String()
		y, _ := b.String()
		return x == y
	}
	if a.Type != gguf.TypeArray {
		return a.Describe() == b.Describe()
	}
	switch a.Elem() {
	case gguf.TypeString:
		x, _ := a.Strings()
		y, _ := b.Strings()
		return slices.Equal(x, y)
	case gguf.TypeFloat32:
		x, _ := a.Float32s()
		y, _ := b.Float32s()
		return slices.Equal(x, y)
	case gguf.TypeBool:
		x, _ := a.Bools()
		y, _ := b.Bools()
		return slices.Equal(x, y)
	}
	x, ok1 := a.Int32s()
	y, ok2 := b.Int32s()
	return ok1 && ok2 && slices.Equal(x, y)
}

func loadTok(t testing.TB, dir string) *tokenizer.Tokenizer {
	t.Helper()
	needDir(t, dir)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// embedded loads an embedded model and its tokenizer.
func embedded(t testing.TB, name string) (*Model, *tokenizer.Tokenizer) {
	t.Helper()
	fsys, ok := models.Embedded(name)
	if !ok {
		t.Fatalf("no embedded model %s", name)
	}
	m, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := fs.ReadFile(fsys, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	cj, _ := fs.ReadFile(fsys, "tokenizer_config.json")
	tok, err := tokenizer.FromJSON(tj, cj)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// writeGGUF writes m to a temporary file and opens it.
func writeGGUF(t testing.TB, m *Model, o GGUFWriteOptions) (string, *gguf.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.gguf")
	if err := SaveGGUF(path, m, o); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}

// wideLlama is a tiny Llama whose rows are 256 and 512 wide: whole
// K-quant and IQ4_XS super-blocks.
func wideLlama(layers int) Config {
	return Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenSize: 256, IntermediateSize: 512,
		NumLayers: layers, NumHeads: 4, NumKVHeads: 2, HeadDim: 64, VocabSize: 320, RMSNormEps: 1e-5,
		RopeTheta: 10000, MaxPositions: 128}
}

func mustFileType(t testing.TB, s string) GGUFFileType {
	t.Helper()
	ft, err := ParseGGUFFileType(s)
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// TestGGUFExportGolden writes the tiny Llama and Qwen2 models as the
// golden files' types and compares with them: every tensor byte for byte
// (F32, F16 and BF16 as the converter writes them; Q8_0, Q4_0, Q4_1 and
// Q5_0 as llama-quantize makes them from the F32 file, its tensor type
// choices included), and every metadata key and value.
func TestGGUFExportGolden(t *testing.T) {
	for _, c := range []struct{ name, hf string }{{"tiny-llama", goldenDir}, {"tiny-qwen2", goldenDir + "/qwen2"}} {
		m := loadModel(t, c.hf)
		vocab, err := GGUFVocab(loadTok(t, c.hf), m.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0"} {
			t.Run(c.name+"-"+typ, func(t *testing.T) {
				golden := filepath.Join(ggufGoldenDir, c.name, c.name+"-"+typ+".gguf")
				needDir(t, golden)
				want, err := gguf.Open(golden)
				if err != nil {
					t.Fatal(err)
				}
				defer want.Close()
				_, got := writeGGUF(t, m, GGUFWriteOptions{FileType: mustFileType(t, typ), Name: c.name, Vocab: vocab})
				if len(got.Tensors) != len(want.Tensors) {
					t.Fatalf("%d tensors, golden %d", len(got.Tensors), len(want.Tensors))
				}
				for _, wt := range want.Tensors {
					gt, ok := got.Tensor(wt.Name)
					if !ok {
						t.Errorf("no tensor %s", wt.Name)
						continue
					}
					if gt.Type != wt.Type || !slices.Equal(gt.Shape, wt.Shape) {
						t.Errorf("%s: %s %v, golden %s %v", wt.Name, gt.Type, gt.Shape, wt.Type, wt.Shape)
						continue
					}
					a, _ := got.Data(wt.Name)
					b, _ := want.Data(wt.Name)
					if !bytes.Equal(a, b) {
						t.Errorf("%s (%s): bytes differ from the golden", wt.Name, wt.Type)
					}
				}
				gk, wk := got.Keys(), want.Keys()
				slices.Sort(gk)
				slices.Sort(wk)
				if !slices.Equal(gk, wk) {
					t.Errorf("keys\n%v\ngolden\n%v", gk, wk)
				}
				for _, k := range wk {
					a, ok1 := got.Get(k)
					b, _ := want.Get(k)
					if ok1 && !valueEq(a, b) {
						t.Errorf("%s: %s, golden %s", k, a.Describe(), b.Describe())
					}
				}
			})
		}
	}
}

// TestGGUFVocabStories: the SentencePiece-style vocabulary of stories260K
// as the golden writes it (from the original llama2.c scores): the same
// tokens, types and special ids, and scores that order the merged tokens
// the same way (llama.cpp's tokenizer only compares them).
func TestGGUFVocabStories(t *testing.T) {
	path := filepath.Join(ggufGoldenDir, "stories260K", "stories260K-F32.gguf")
	needDir(t, path)
	want, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	m, tok := embedded(t, "stories260K")
	kvs, err := GGUFVocab(tok, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]gguf.Value{}
	for _, kv := range kvs {
		got[kv.Key] = kv.Value
	}
	for _, k := range want.Keys() {
		if !strings.HasPrefix(k, "tokenizer.") {
			continue
		}
		w, _ := want.Get(k)
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("no %s", k)
		case k == "tokenizer.ggml.scores":
		case !valueEq(g, w):
			t.Errorf("%s: %s, golden %s", k, g.Describe(), w.Describe())
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Errorf("keys the golden does not have: %v", got)
	}
	ws, _ := mustGet(t, want, "tokenizer.ggml.scores").Float32s()
	gs, _ := mustKV(t, kvs, "tokenizer.ggml.scores").Float32s()
	merged := map[string]bool{}
	for _, mg := range tok.Vocab().Merges {
		merged[mg[0]+mg[1]] = true
	}
	toks, _ := mustGet(t, want, "tokenizer.ggml.tokens").Strings()
	var ids []int
	for id, s := range toks {
		if merged[s] {
			ids = append(ids, id)
		}
	}
	for i := range ids {
		for j := range ids {
			a, b := ids[i], ids[j]
			if (ws[a] < ws[b]) != (gs[a] < gs[b]) {
				t.Fatalf("scores order %q and %q differently: golden %g %g, written %g %g", toks[a], toks[b], ws[a], ws[b], gs[a], gs[b])
			}
		}
	}
	t.Logf("%d merged tokens ordered as the golden's scores order them", len(ids))
}

func mustGet(t testing.TB, f *gguf.File, k string) gguf.Value {
	t.Helper()
	v, ok := f.Get(k)
	if !ok {
		t.Fatalf("no key %s", k)
	}
	return v
}

func mustKV(t testing.TB, kvs []gguf.KV, k string) gguf.Value {
	t.Helper()
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value
		}
	}
	t.Fatalf("no key %s", k)
	return gguf.Value{}
}

// TestGGUFPlanGolden: the tensor types of llama-quantize's K-quant mixes
// on the k256 model (2 layers: layer 1 is a "more bits" layer) and of the
// legacy types on tiny-llama.
func TestGGUFPlanGolden(t *testing.T) {
	for _, folder := range []string{"tiny-llama", "tiny-llama-k256"} {
		var g struct {
			Files []struct {
				File        string            `json:"file"`
				TensorTypes map[string]string `json:"tensor_types"`
			} `json:"files"`
		}
		readJSON(t, filepath.Join(ggufGoldenDir, folder, "golden.json"), &g)
		for _, f := range g.Files {
			path := filepath.Join(ggufGoldenDir, folder, f.File)
			gf, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ConfigFromGGUF(gf)
			gf.Close()
			if err != nil {
				t.Fatal(err)
			}
			typ := strings.TrimSuffix(f.File[strings.LastIndexByte(f.File, '-')+1:], ".gguf")
			plan, err := GGUFPlan(cfg, mustFileType(t, typ))
			if err != nil {
				t.Fatal(err)
			}
			if len(plan) != len(f.TensorTypes) {
				t.Errorf("%s: %d tensors, golden %d", f.File, len(plan), len(f.TensorTypes))
			}
			for _, p := range plan {
				if w := f.TensorTypes[p.Name]; w != p.Type.String() {
					t.Errorf("%s %s: %s, llama-quantize %s", f.File, p.Name, p.Type, w)
				}
			}
		}
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	needDir(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestGGUFPlanMixes checks the K-quant mixes on a 32-layer model with
// 256-wide rows: which layers get more bits, and the tied embeddings.
func TestGGUFPlanMixes(t *testing.T) {
	c := Config{Architecture: "LlamaForCausalLM", HiddenSize: 512, IntermediateSize: 1024, NumLayers: 32,
		NumHeads: 8, NumKVHeads: 2, HeadDim: 64, VocabSize: 1000, TieWordEmbeddings: true}
	types := func(ft string) map[string]string {
		plan, err := GGUFPlan(c, mustFileType(t, ft))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range plan {
			out[p.Name] = p.Type.String()
		}
		return out
	}
	more := map[int]bool{}
	for i := range 32 {
		more[i] = i < 4 || i >= 28 || (i-4)%3 == 2
	}
	q4m := types("q4_k_m")
	if q4m["token_embd.weight"] != "Q6_K" || q4m["output.weight"] != "" {
		t.Errorf("tied Q4_K_M: token_embd %s, output %q", q4m["token_embd.weight"], q4m["output.weight"])
	}
	for i := range 32 {
		want := "Q4_K"
		if more[i] {
			want = "Q6_K"
		}
		for _, n := range []string{"attn_v", "ffn_down"} {
			if got := q4m[blk(i, n)]; got != want {
				t.Errorf("Q4_K_M layer %d %s: %s, want %s", i, n, got, want)
			}
		}
		if got := q4m[blk(i, "attn_q")]; got != "Q4_K" {
			t.Errorf("Q4_K_M layer %d attn_q: %s", i, got)
		}
		if got := q4m[blk(i, "attn_norm")]; got != "F32" {
			t.Errorf("layer %d attn_norm: %s", i, got)
		}
	}
	q3m, q4s, q2 := types("q3_k_m"), types("q4_k_s"), types("q2_k")
	for i := range 32 {
		if w := map[bool]string{true: "Q5_K", false: "Q4_K"}[i < 2]; q3m[blk(i, "attn_v")] != w {
			t.Errorf("Q3_K_M layer %d attn_v: %s, want %s", i, q3m[blk(i, "attn_v")], w)
		}
		if w := map[bool]string{true: "Q5_K", false: "Q4_K"}[i < 2]; q3m[blk(i, "ffn_down")] != w {
			t.Errorf("Q3_K_M layer %d ffn_down: %s, want %s", i, q3m[blk(i, "ffn_down")], w)
		}
		if q3m[blk(i, "attn_output")] != "Q4_K" || q3m[blk(i, "ffn_up")] != "Q3_K" {
			t.Errorf("Q3_K_M layer %d: attn_output %s ffn_up %s", i, q3m[blk(i, "attn_output")], q3m[blk(i, "ffn_up")])
		}
		if w := map[bool]string{true: "Q5_K", false: "Q4_K"}[i < 4]; q4s[blk(i, "attn_v")] != w || q4s[blk(i, "ffn_down")] != w {
			t.Errorf("Q4_K_S layer %d: attn_v %s ffn_down %s, want %s", i, q4s[blk(i, "attn_v")], q4s[blk(i, "ffn_down")], w)
		}
		// 8 query heads on 2 KV heads: 4 per KV head, so attn_v gets Q4_K.
		if q2[blk(i, "attn_v")] != "Q4_K" || q2[blk(i, "ffn_down")] != "Q3_K" || q2[blk(i, "ffn_gate")] != "Q2_K" {
			t.Errorf("Q2_K layer %d: attn_v %s ffn_down %s ffn_gate %s", i, q2[blk(i, "attn_v")], q2[blk(i, "ffn_down")], q2[blk(i, "ffn_gate")])
		}
	}
	// IQ4_NL and IQ4_XS without an importance matrix: attn_v Q5_K (4 query
	// heads per KV head), ffn_down Q5_K in the first eighth; the tied
	// embeddings Q6_K. (llama-quantize b4747 made the same choices for the
	// SmolLM2-135M shape's IQ4_XS, IQ4_NL, Q3_K_M and Q2_K files.)
	for _, ft := range []string{"iq4_nl", "iq4_xs"} {
		iq, base := types(ft), strings.ToUpper(ft)
		if iq["token_embd.weight"] != "Q6_K" {
			t.Errorf("%s: token_embd %s", ft, iq["token_embd.weight"])
		}
		for i := range 32 {
			if iq[blk(i, "attn_v")] != "Q5_K" || iq[blk(i, "attn_q")] != base || iq[blk(i, "ffn_up")] != base {
				t.Errorf("%s layer %d: attn_v %s attn_q %s ffn_up %s", ft, i, iq[blk(i, "attn_v")], iq[blk(i, "attn_q")], iq[blk(i, "ffn_up")])
			}
			if w := map[bool]string{true: "Q5_K", false: base}[i < 4]; iq[blk(i, "ffn_down")] != w {
				t.Errorf("%s layer %d ffn_down: %s, want %s", ft, i, iq[blk(i, "ffn_down")], w)
			}
		}
	}
	if q8 := types("q8_0"); q8["token_embd.weight"] != "Q8_0" {
		t.Errorf("Q8_0: token_embd %s", q8["token_embd.weight"])
	}
	// Rows of 352 (roe-base's FFN) are 11 blocks of 32, not whole K blocks.
	c.IntermediateSize = 352
	for ft, want := range map[string]string{"q2_k": "IQ4_NL", "q3_k_s": "IQ4_NL", "iq4_xs": "IQ4_NL", "q4_k_m": "Q5_0", "q5_k_s": "Q5_1", "q6_k": "Q8_0"} {
		plan, _ := GGUFPlan(c, mustFileType(t, ft))
		for _, p := range plan {
			if p.Name == "blk.10.ffn_down.weight" && (p.Type.String() != want || !p.Fallback.Quantized()) {
				t.Errorf("%s: ffn_down rows of 352: %s (fallback from %s), want %s", ft, p.Type, p.Fallback, want)
			}
		}
	}
	c.IntermediateSize = 1000 // not even whole blocks of 32
	plan, _ := GGUFPlan(c, mustFileType(t, "q4_0"))
	for _, p := range plan {
		if p.Name == "blk.0.ffn_down.weight" && p.Type != kernels.F16 {
			t.Errorf("Q4_0 rows of 1000: %s, want F16", p.Type)
		}
	}
}

func blk(i int, n string) string { return "blk." + strconv.Itoa(i) + "." + n + ".weight" }

// TestGGUFQuantizeEmbedded writes both embedded models in many types. Each
// file parses with roe's reader and with gguf-parser-go, loads with
// LoadGGUF as the same base (fingerprint), and computes the logits of a
// float32 model built from its own dequantized weights (up to summation
// order); F32 gives the source's logits exactly. Every tensor, read back
// in Hugging Face order, is within the type's error of the source.
func TestGGUFQuantizeEmbedded(t *testing.T) {
	types := []string{"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs"}
	if testing.Short() {
		types = []string{"f32", "q8_0", "q4_k_m"}
	}
	for _, name := range models.Names() {
		src, tok := embedded(t, name)
		vocab, err := GGUFVocab(tok, src.Config)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ids := tok.Encode("Once upon a time, a little fox", true)
		want := forwardWhole(t, src, ids, nil).Logits
		srcParams := map[string][]float32{}
		for _, p := range src.Params() {
			srcParams[p.Name] = p.Data
		}
		for _, typ := range types {
			t.Run(name+"-"+typ, func(t *testing.T) {
				path, f := writeGGUF(t, src, GGUFWriteOptions{FileType: mustFileType(t, typ), Name: name, Vocab: vocab})
				checkGPParser(t, path, f)
				m, lf, err := LoadGGUF(path, LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer lf.Close()
				if m.Fingerprint() != src.Fingerprint() {
					t.Errorf("fingerprint %.12s, source %.12s", m.Fingerprint(), src.Fingerprint())
				}
				got := forwardWhole(t, m, ids, nil).Logits
				ref := forwardWhole(t, m.Clone(), ids, nil).Logits
				if d := maxAbsDiff(got, ref); d > tol {
					t.Errorf("logits differ from a float32 model of the same weights by %.3g", d)
				}
				d := maxAbsDiff(got, want)
				// The same float32 weights, multiplied in the mapping by the
				// GGUF GEMVs: only the summation order differs.
				if typ == "f32" && d > 1e-5 {
					t.Errorf("F32 export: logits differ from the source by %.3g", d)
				}
				worst := 0.0
				for _, p := range m.Clone().Params() {
					e := relRMSE(srcParams[p.Name], p.Data)
					worst = max(worst, e)
					if e > ggufTypeBound[typ] {
						t.Errorf("%s: relative RMSE %.4f over %.4f", p.Name, e, ggufTypeBound[typ])
					}
				}
				t.Logf("%d bytes; worst tensor relative RMSE %.4f; max |Δlogit| vs source %.3g", fileSize(t, path), worst, d)
			})
		}
	}
}

// ggufTypeBound caps the relative RMSE of any tensor of a file type; the
// small models' rows mostly fall back to the legacy types (64- and 128-wide).
var ggufTypeBound = map[string]float64{
	"f32": 0, "f16": 1e-3, "bf16": 5e-3, "q8_0": 0.01, "q6_k": 0.02, "q5_0": 0.06, "q5_1": 0.06, "q5_k_m": 0.06,
	"q4_0": 0.12, "q4_1": 0.12, "q4_k_s": 0.12, "q4_k_m": 0.12, "q5_k_s": 0.06, "q3_k_s": 0.2, "q3_k_m": 0.2, "q3_k_l": 0.2, "q2_k": 0.35,
	"iq4_nl": 0.12, "iq4_xs": 0.12,
}

func relRMSE(x, y []float32) float64 {
	if len(x) != len(y) {
		return math.Inf(1)
	}
	var e, s float64
	for i := range x {
		d := float64(y[i]) - float64(x[i])
		e += d * d
		s += float64(x[i]) * float64(x[i])
	}
	if s == 0 {
		return math.Sqrt(e)
	}
	return math.Sqrt(e / s)
}

func fileSize(t testing.TB, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// checkGPParser parses path with gguf-parser-go and compares the tensor
// directory, the key count and the model's shape as it reads them.
func checkGPParser(t *testing.T, path string, f *gguf.File) {
	t.Helper()
	g, err := gp.ParseGGUFFile(path)
	if err != nil {
		t.Fatalf("gguf-parser-go: %v", err)
	}
	if len(g.Header.MetadataKV) != len(f.Keys()) || len(g.TensorInfos) != len(f.Tensors) {
		t.Fatalf("gguf-parser-go: %d keys %d tensors, roe %d %d", len(g.Header.MetadataKV), len(g.TensorInfos), len(f.Keys()), len(f.Tensors))
	}
	for i, ti := range f.Tensors {
		w := g.TensorInfos[i]
		if w.Name != ti.Name || uint32(w.Type) != uint32(ti.Type) || w.Offset != uint64(ti.Offset) || w.Bytes() != uint64(ti.Size) {
			t.Errorf("tensor %d: %s %s @%d, gguf-parser-go %s %v @%d", i, ti.Name, ti.Type, ti.Offset, w.Name, w.Type, w.Offset)
		}
	}
	a := g.Architecture()
	emb, _ := f.Uint(a.Architecture + ".embedding_length")
	if a.EmbeddingLength != emb || a.Architecture == "" {
		t.Errorf("gguf-parser-go reads architecture %q, embedding length %d (roe %d)", a.Architecture, a.EmbeddingLength, emb)
	}
	if tk := g.Tokenizer(); tk.Model == "" || tk.TokensLength == 0 {
		t.Errorf("gguf-parser-go reads no tokenizer: %+v", tk)
	}
}

// TestGGUFWriteRefusals: what cannot be written is refused by name, before
// anything is written.
func TestGGUFWriteRefusals(t *testing.T) {
	if _, err := ParseGGUFFileType("q4_k_xl"); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "q4_k_m") {
		t.Errorf("unknown file type: %v", err)
	}
	for _, a := range []string{"Q4_K", "q4_k_m", "Q5_K"} {
		if ft, err := ParseGGUFFileType(a); err != nil || !strings.HasSuffix(ft.Name, "_m") {
			t.Errorf("%s: %v %v", a, ft, err)
		}
	}
	m, tok := embedded(t, "stories260K")
	var buf bytes.Buffer
	c := m.Config
	c.VocabSize = 100
	if _, err := GGUFVocab(tok, c); !errors.Is(err, ErrConfig) {
		t.Errorf("tokenizer larger than the embeddings: %v", err)
	}
	if err := WriteGGUF(&buf, m, GGUFWriteOptions{Vocab: []gguf.KV{{Key: "general.name", Value: gguf.NewString("x")}}}); err == nil {
		t.Error("a non-tokenizer key in Vocab was accepted")
	}
	// A byte-level tokenizer split by a pattern llama.cpp has no name for.
	tj := `{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},
		"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[a-z]+"},"behavior":"Isolated","invert":false},
		{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}}`
	bt, err := tokenizer.FromJSON([]byte(tj), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GGUFVocab(bt, Config{VocabSize: 3}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "[a-z]+") {
		t.Errorf("unknown pre-tokenizer: %v", err)
	}
	// Weights an f16 cannot hold.
	big := m.Clone()
	big.norm[0] = 1e6
	if err := WriteGGUF(&buf, big, GGUFWriteOptions{FileType: mustFileType(t, "f16")}); err != nil {
		t.Errorf("a large norm weight stays F32: %v", err)
	}
	big.Params()[0].Data[5] = 1e6
	if err := WriteGGUF(&buf, big, GGUFWriteOptions{FileType: mustFileType(t, "f16")}); !errors.Is(err, kernels.ErrRange) || !strings.Contains(err.Error(), "token_embd") {
		t.Errorf("1e6 in F16: %v", err)
	}
}

// The tokenizers of both embedded models export: roe-base is byte-level
// BPE with GPT-2's split ("gpt-2"), stories260K SentencePiece-style.
func TestGGUFVocabEmbedded(t *testing.T) {
	for name, want := range map[string][2]string{"roe-base": {"gpt2", "gpt-2"}, "stories260K": {"llama", "default"}} {
		m, tok := embedded(t, name)
		kvs, err := GGUFVocab(tok, m.Config)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		km, _ := mustKV(t, kvs, "tokenizer.ggml.model").String()
		kp, _ := mustKV(t, kvs, "tokenizer.ggml.pre").String()
		if km != want[0] || kp != want[1] {
			t.Errorf("%s: model %q pre %q, want %v", name, km, kp, want)
		}
	}
}

// TestGGUFKQuantModel: a random Llama with 256-wide rows, so that the
// K-quant mixes keep their K types (the embedded models' rows fall back),
// written, loaded and run like the embedded models.
func TestGGUFKQuantModel(t *testing.T) {
	src, err := Random(wideLlama(3), 7)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 17, 33, 250, 4, 99, 180, 2}
	want := forwardWhole(t, src, ids, nil).Logits
	srcParams := map[string][]float32{}
	for _, p := range src.Params() {
		srcParams[p.Name] = p.Data
	}
	types := []string{"q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs"}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			path, f := writeGGUF(t, src, GGUFWriteOptions{FileType: mustFileType(t, typ)})
			seen := map[kernels.QType]int{}
			for _, ti := range f.Tensors {
				seen[ti.Type]++
			}
			m, lf, err := LoadGGUF(path, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			if m.Fingerprint() != src.Fingerprint() {
				t.Errorf("fingerprint %.12s, source %.12s", m.Fingerprint(), src.Fingerprint())
			}
			got := forwardWhole(t, m, ids, nil).Logits
			if d := maxAbsDiff(got, forwardWhole(t, m.Clone(), ids, nil).Logits); d > tol {
				t.Errorf("logits differ from a float32 model of the same weights by %.3g", d)
			}
			worst := 0.0
			for _, p := range m.Clone().Params() {
				if strings.Contains(p.Name, "norm") {
					continue
				}
				e := relRMSE(srcParams[p.Name], p.Data)
				worst = max(worst, e)
				if e > ggufTypeBound[typ] {
					t.Errorf("%s: relative RMSE %.4f over %.4f", p.Name, e, ggufTypeBound[typ])
				}
			}
			t.Logf("types %v; worst tensor relative RMSE %.4f; max |Δlogit| vs source %.3g", seen, worst, maxAbsDiff(got, want))
		})
	}
}

// TestGGUFRewriteGGUF: a quantized GGUF written again in its own file type
// keeps every block (q/k rows un-permuted on load, permuted back on write),
// and in another type is requantized from its dequantized weights.
func TestGGUFRewriteGGUF(t *testing.T) {
	for _, typ := range []string{"Q4_0", "Q8_0", "Q5_0"} {
		path := filepath.Join(ggufGoldenDir, "tiny-llama", "tiny-llama-"+typ+".gguf")
		needDir(t, path)
		m, src, err := LoadGGUF(path, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var vocab []gguf.KV
		for _, kv := range src.KVs() {
			if strings.HasPrefix(kv.Key, "tokenizer.") {
				vocab = append(vocab, kv)
			}
		}
		_, got := writeGGUF(t, m, GGUFWriteOptions{FileType: mustFileType(t, typ), Name: "tiny-llama", Vocab: vocab})
		for _, st := range src.Tensors {
			a, _ := src.Data(st.Name)
			b, err := got.Data(st.Name)
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s %s: blocks not kept (%v)", typ, st.Name, err)
			}
		}
		_, q8 := writeGGUF(t, m, GGUFWriteOptions{FileType: mustFileType(t, "q6_k"), Vocab: vocab})
		if ti, _ := q8.Tensor("blk.0.attn_q.weight"); ti.Type != kernels.Q8_0 {
			t.Errorf("Q6_K of 64-wide rows: %s, want the Q8_0 fallback", ti.Type)
		}
		src.Close()
	}
}
