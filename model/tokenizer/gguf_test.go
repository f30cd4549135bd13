package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"

	"roe/internal/testenv"
	rgguf "roe/model/gguf"
)

func ggufGoldenDir() string { return filepath.Join(sharedDir(), "golden", "gguf") }

// readGGUFVocab reads the tokenizer metadata of a .gguf file the way a GGUF loader fills
// GGUFVocab: absent ids are -1, absent flags take GGUFDefaults.
func readGGUFVocab(tb testing.TB, path string) GGUFVocab {
	tb.Helper()
	f, err := gguf.ParseGGUFFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			testenv.SkipOrFail(tb, "%s missing: %v", path, err)
		}
		tb.Fatalf("%s: %v", path, err)
	}
	kvs := f.Header.MetadataKV
	str := func(k string) string {
		if kv, ok := kvs.Get(k); ok {
			return kv.ValueString()
		}
		return ""
	}
	id := func(k string) int {
		if kv, ok := kvs.Get(k); ok {
			return gguf.ValueNumeric[int](kv)
		}
		return -1
	}
	flag := func(k string, def bool) bool {
		if kv, ok := kvs.Get(k); ok {
			return kv.ValueBool()
		}
		return def
	}
	v := GGUFVocab{
		Model: str("tokenizer.ggml.model"), Pre: str("tokenizer.ggml.pre"),
		BOS: id("tokenizer.ggml.bos_token_id"), EOS: id("tokenizer.ggml.eos_token_id"),
		UNK: id("tokenizer.ggml.unknown_token_id"), PAD: id("tokenizer.ggml.padding_token_id"),
		ChatTemplate: str("tokenizer.chat_template"),
	}
	if kv, ok := kvs.Get("tokenizer.ggml.tokens"); ok {
		v.Tokens = rawStrings(tb, path, kv.ValueArray())
	}
	if kv, ok := kvs.Get("tokenizer.ggml.scores"); ok {
		v.Scores = gguf.ValuesNumeric[float32](kv.ValueArray())
	}
	if kv, ok := kvs.Get("tokenizer.ggml.token_type"); ok {
		v.TokenTypes = gguf.ValuesNumeric[int32](kv.ValueArray())
	}
	if kv, ok := kvs.Get("tokenizer.ggml.merges"); ok {
		v.Merges = rawStrings(tb, path, kv.ValueArray())
	}
	bos, eos, space := GGUFDefaults(v.Model, v.Pre)
	v.AddBOS = flag("tokenizer.ggml.add_bos_token", bos)
	v.AddEOS = flag("tokenizer.ggml.add_eos_token", eos)
	v.AddSpacePrefix = flag("tokenizer.ggml.add_space_prefix", space)
	return v
}

// rawStrings reads a string array of a GGUF file (version 2 or 3) again, byte for byte:
// gguf-parser-go trims white space from every string, which loses tokens such as U+00A0.
func rawStrings(tb testing.TB, path string, av gguf.GGUFMetadataKVArrayValue) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	p := int(av.StartOffset)
	next := func(n int) []byte {
		if p < 0 || p+n > len(b) {
			tb.Fatalf("%s: string array runs past the end of the file", path)
		}
		p += n
		return b[p-n : p]
	}
	if typ := binary.LittleEndian.Uint32(next(4)); typ != uint32(gguf.GGUFMetadataValueTypeString) {
		tb.Fatalf("%s: array of type %d, want strings", path, typ)
	}
	n := binary.LittleEndian.Uint64(next(8))
	if n != av.Len {
		tb.Fatalf("%s: array length %d, parser says %d", path, n, av.Len)
	}
	out := make([]string, n)
	for i := range out {
		l := binary.LittleEndian.Uint64(next(8))
		if l > uint64(len(b)) {
			tb.Fatalf("%s: string length %d", path, l)
		}
		out[i] = string(next(int(l)))
	}
	return out
}

type ggufCase struct {
	Text      string `json:"text"`
	WithBOS   []int  `json:"llamacpp_ids_with_bos"`
	NoBOS     []int  `json:"llamacpp_ids_no_bos"`
	HFWithSp  []int  `json:"hf_ids_add_special_tokens"`
	HFNoSp    []int  `json:"hf_ids_no_special_tokens"`
	Detok     string `json:"llamacpp_detokenized_no_bos_parse_special_false"`
	HFDecoded string `json:"hf_decoded"`
}

type ggufGolden struct {
	GGUF  string     `json:"gguf"`
	Cases []ggufCase `json:"cases"`
}

func readGGUFGolden(tb testing.TB) map[string]ggufGolden {
	tb.Helper()
	path := filepath.Join(ggufGoldenDir(), "tokenizer", "tokenizer_cases.json")
	b, err := os.ReadFile(path)
	if err != nil {
		testenv.SkipOrFail(tb, "%s missing: %v", path, err)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(b, &g); err != nil {
		tb.Fatal(err)
	}
	out := map[string]ggufGolden{}
	for _, k := range []string{"bpe", "spm"} {
		var x ggufGolden
		if err := json.Unmarshal(g[k], &x); err != nil {
			tb.Fatalf("%s: %v", k, err)
		}
		if len(x.Cases) == 0 {
			tb.Fatalf("%s: no cases", k)
		}
		out[k] = x
	}
	return out
}

var ggufLoaded = map[string]*Tokenizer{}

// ggufVocab builds the tokenizer of a golden vocabulary ("bpe" or "spm") from its .gguf.
func ggufVocab(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	if t, ok := ggufLoaded[name]; ok {
		return t
	}
	file := map[string]string{"bpe": "tiny-llama/tiny-llama-F32.gguf", "spm": "stories260K/stories260K-F32.gguf"}[name]
	path := filepath.Join(ggufGoldenDir(), file)
	// roe's own reader builds the tokenizer; the independent parser checks
	// that it read the same vocabulary.
	f, err := rgguf.Open(path)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if want := readGGUFVocab(tb, path); !reflect.DeepEqual(v, want) {
		tb.Fatalf("%s: VocabFromGGUF differs from gguf-parser-go's reading", name)
	}
	tk, err := LoadGGUF(f)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	ggufLoaded[name] = tk
	return tk
}

// jsonTwin is the tokenizer.json vocabulary the golden compares each GGUF vocabulary with.
func jsonTwin(name string) vocabCase {
	if name == "bpe" {
		return vocabCases()[0]
	}
	return vocabCases()[1]
}

// TestGGUFGolden checks the llama.cpp ids of the shared GGUF tokenizer golden, with and
// without BOS, and that decoding gives the strings back.
func TestGGUFGolden(t *testing.T) {
	g := readGGUFGolden(t)
	for _, name := range []string{"bpe", "spm"} {
		t.Run(name, func(t *testing.T) {
			tk := ggufVocab(t, name)
			for _, c := range g[name].Cases {
				if got := tk.Encode(c.Text, false); !eqIDs(got, c.NoBOS) {
					t.Errorf("%q: Encode(false) = %v, want %v", c.Text, got, c.NoBOS)
				}
				if got := tk.Encode(c.Text, true); !eqIDs(got, c.WithBOS) {
					t.Errorf("%q: Encode(true) = %v, want %v", c.Text, got, c.WithBOS)
				}
				if got := tk.Decode(c.NoBOS, false); got != c.Text {
					t.Errorf("%q: Decode = %q", c.Text, got)
				}
				if got, want := tk.Decode(c.WithBOS, true), tk.Decode(c.NoBOS, true); got != want {
					t.Errorf("%q: Decode with BOS skipped = %q, without BOS %q", c.Text, got, want)
				}
				for _, ids := range [][]int{c.NoBOS, c.WithBOS} {
					for _, skip := range []bool{false, true} {
						if got, want := streamDecode(tk, ids, skip), tk.Decode(ids, skip); got != want {
							t.Errorf("%q: stream decode %q, Decode %q", c.Text, got, want)
						}
					}
				}
			}
			t.Logf("%d cases", len(g[name].Cases))
		})
	}
}

// TestGGUFMatchesJSON checks that each GGUF vocabulary and its tokenizer.json twin give
// the same ids, decoded text and special tokens.
func TestGGUFMatchesJSON(t *testing.T) {
	g := readGGUFGolden(t)
	for _, name := range []string{"bpe", "spm"} {
		t.Run(name, func(t *testing.T) {
			gt := ggufVocab(t, name)
			jt := loadVocab(t, jsonTwin(name))
			texts := []string{}
			for _, c := range g[name].Cases {
				texts = append(texts, c.Text)
				if got := jt.Encode(c.Text, false); !eqIDs(got, c.HFNoSp) {
					t.Errorf("%q: tokenizer.json Encode(false) = %v, want %v", c.Text, got, c.HFNoSp)
				}
				if got := jt.Encode(c.Text, true); !eqIDs(got, c.HFWithSp) {
					t.Errorf("%q: tokenizer.json Encode(true) = %v, want %v", c.Text, got, c.HFWithSp)
				}
			}
			texts = append(texts, readCorpus(t)...)
			for _, s := range texts {
				for _, sp := range []bool{false, true} {
					a, b := gt.Encode(s, sp), jt.Encode(s, sp)
					if !eqIDs(a, b) {
						t.Fatalf("%q (special %v): gguf %v, tokenizer.json %v", trunc(s), sp, a, b)
					}
					for _, skip := range []bool{false, true} {
						if x, y := gt.Decode(a, skip), jt.Decode(a, skip); x != y {
							t.Fatalf("%q: Decode(skip %v): gguf %q, tokenizer.json %q", trunc(s), skip, x, y)
						}
					}
				}
			}
			for _, f := range []struct {
				name string
				fn   func(*Tokenizer) (int, bool)
			}{{"BOS", (*Tokenizer).BOS}, {"EOS", (*Tokenizer).EOS}, {"Unk", (*Tokenizer).Unk}} {
				gi, gok := f.fn(gt)
				ji, jok := f.fn(jt)
				if gi != ji || gok != jok {
					t.Errorf("%s: gguf %d %v, tokenizer.json %d %v", f.name, gi, gok, ji, jok)
				}
			}
			if gt.AddsBOS() != jt.AddsBOS() || !gt.AddsBOS() {
				t.Errorf("AddsBOS: gguf %v, tokenizer.json %v", gt.AddsBOS(), jt.AddsBOS())
			}
			if gt.VocabSize() != jt.VocabSize() {
				t.Errorf("VocabSize: gguf %d, tokenizer.json %d", gt.VocabSize(), jt.VocabSize())
			}
			if a, b := gt.SpecialIDs(), jt.SpecialIDs(); !eqIDs(a, b) {
				t.Errorf("SpecialIDs: gguf %v, tokenizer.json %v", a, b)
			}
			for id := 0; id < gt.VocabSize(); id++ {
				a, _ := gt.TokenString(id)
				b, _ := jt.TokenString(id)
				if a != b {
					t.Errorf("TokenString(%d): gguf %q, tokenizer.json %q", id, a, b)
				}
				if x, ok := gt.TokenID(a); !ok || x != id {
					t.Errorf("TokenID(%q) = %d %v, want %d", a, x, ok, id)
				}
			}
			t.Logf("%d texts", len(texts))
		})
	}
}

// TestGGUFOtherFiles builds the tokenizers of the other shared GGUF files.
func TestGGUFOtherFiles(t *testing.T) {
	for _, f := range []string{"tiny-qwen2/tiny-qwen2-F32.gguf", "tiny-llama-k256/tiny-llama-k256-Q4_K_M.gguf"} {
		path := filepath.Join(ggufGoldenDir(), f)
		v := readGGUFVocab(t, path)
		tk, err := FromGGUF(v)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s := "Hello world, the cat 2025!"
		if got := tk.Decode(tk.Encode(s, true), true); got != s {
			t.Errorf("%s: round trip %q", f, got)
		}
	}
}

// byteLevelVocab is every byte-level char as a token, plus a few merges and controls.
func byteLevelVocab() GGUFVocab {
	v := GGUFVocab{Model: "gpt2", Pre: "gpt-2", BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	for b := 0; b < 256; b++ {
		v.Tokens = append(v.Tokens, byteToStr[b])
	}
	v.Tokens = append(v.Tokens, "Ġt", "he", "Ġthe", "<|bos|>", "<|eos|>", "<tool>")
	v.Merges = []string{"Ġ t", "h e", "Ġt he"}
	v.TokenTypes = make([]int32, len(v.Tokens))
	for i := range v.TokenTypes {
		v.TokenTypes[i] = GGUFTokenNormal
	}
	n := len(v.Tokens)
	v.TokenTypes[n-3], v.TokenTypes[n-2], v.TokenTypes[n-1] = GGUFTokenControl, GGUFTokenControl, GGUFTokenUserDefined
	v.BOS, v.EOS = n-3, n-2
	return v
}

// TestGGUFPreTokenizers builds every known pre-tokenizer over a byte-level vocabulary: it
// must compile, split as its family does on a few cases, and decode losslessly.
func TestGGUFPreTokenizers(t *testing.T) {
	texts := []string{"", "Hello world!", "  x\t\ty\n\n\r\n z ", "It's DON'T they'VE", "1234567 3.14 ١٢٣",
		"café naïve Ångström", "Привет мир", "日本語のテキスト 中文 한국어", "😀🦙 a👨‍👩‍👧b", "a<|eos|>b<tool>c",
		"x = [1, 2]; // $y += <z>", "¿qué?…—–“”"}
	for name := range ggufPres {
		v := byteLevelVocab()
		v.Pre = name
		tk, err := FromGGUF(v)
		if err != nil {
			t.Fatalf("pre %q: %v", name, err)
		}
		for _, s := range texts {
			ids := tk.Encode(s, true)
			if got := tk.Decode(ids, true); got != strings.NewReplacer("<|eos|>", "").Replace(s) {
				t.Errorf("pre %q: %q decodes to %q", name, s, got)
			}
			if got := tk.Decode(ids, false); got != s {
				t.Errorf("pre %q: %q decodes to %q", name, s, got)
			}
		}
	}
	split := func(name, s string) []string {
		v := byteLevelVocab()
		v.Pre = name
		tk, err := FromGGUF(v)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range tk.pre.preTokenize([]piece{{s, true}}) {
			out = append(out, decByteLevel{}.decodeChain([]string{p.s}, false)[0])
		}
		return out
	}
	for _, c := range []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "Hello  world's 123", []string{"Hello", " ", " world", "'s", " 123"}},
		{"llama-bpe", "Hello 12345 it'S", []string{"Hello", " ", "123", "45", " it", "'S"}},
		{"qwen2", "a 123", []string{"a", " ", "1", "2", "3"}},
		{"starcoder", "x12 y", []string{"x", "1", "2", " y"}},
		{"default", "a+b 1234", []string{"a", "+", "b", " ", "123", "4"}},
		{"deepseek-llm", "Hi!\n中文 42", []string{"Hi", "!", "\n", "中文", " ", "42"}},
		{"tekken", "HelloWorld ok", []string{"Hello", "World", " ok"}},
	} {
		if got := split(c.pre, c.text); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("pre %q on %q: %q, want %q", c.pre, c.text, got, c.want)
		}
	}
}

// TestGGUFByteLevel checks merges, added tokens and BOS/EOS on a hand-made vocabulary.
func TestGGUFByteLevel(t *testing.T) {
	v := byteLevelVocab()
	v.AddBOS, v.AddEOS = true, true
	v.ChatTemplate = "{{ messages }}"
	tk, err := FromGGUF(v)
	if err != nil {
		t.Fatal(err)
	}
	n := len(v.Tokens)
	the := n - 4
	got := tk.Encode(" the<tool><|eos|>", true)
	want := []int{n - 3, the, n - 1, n - 2, n - 2}
	if !eqIDs(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if s := tk.Decode(got, true); s != " the<tool>" {
		t.Errorf("Decode(skip) = %q", s)
	}
	if bos, ok := tk.BOS(); !ok || bos != n-3 {
		t.Errorf("BOS = %d %v", bos, ok)
	}
	if eos, ok := tk.EOS(); !ok || eos != n-2 {
		t.Errorf("EOS = %d %v", eos, ok)
	}
	if _, ok := tk.Unk(); ok {
		t.Error("Unk found")
	}
	if _, ok := tk.Pad(); ok {
		t.Error("Pad found")
	}
	if !tk.IsSpecial(n-3) || tk.IsSpecial(n-1) || tk.IsSpecial(the) {
		t.Error("IsSpecial: controls are special, user-defined tokens are not")
	}
	if tk.ChatTemplate() != "{{ messages }}" {
		t.Errorf("ChatTemplate = %q", tk.ChatTemplate())
	}
	// no token types: the special ids count as control tokens
	v.TokenTypes = nil
	tk, err = FromGGUF(v)
	if err != nil {
		t.Fatal(err)
	}
	// (byte-level ids are the byte values; <tool> is plain text now)
	if got := tk.Encode("<|bos|><tool>", false); !eqIDs(got, []int{n - 3, '<', 't', 'o', 'o', 'l', '>'}) {
		t.Errorf("Encode without types = %v", got)
	}
	if !tk.IsSpecial(n - 3) {
		t.Error("BOS not special without token types")
	}
}

// spmVocab is a small SentencePiece vocabulary: unk, controls, the 256 byte pieces, then
// pieces with scores.
func spmVocab(pieces map[string]float32) GGUFVocab {
	v := GGUFVocab{Model: "llama", BOS: -1, EOS: -1, UNK: -1, PAD: -1, AddBOS: true, AddSpacePrefix: true}
	v.Tokens = []string{"<unk>", "<s>", "</s>"}
	v.TokenTypes = []int32{GGUFTokenUnknown, GGUFTokenControl, GGUFTokenControl}
	v.Scores = []float32{0, 0, 0}
	for b := 0; b < 256; b++ {
		v.Tokens = append(v.Tokens, byteTokenName(byte(b)))
		v.TokenTypes = append(v.TokenTypes, GGUFTokenByte)
		v.Scores = append(v.Scores, 0)
	}
	for _, p := range sortedKeys(pieces) {
		v.Tokens = append(v.Tokens, p)
		v.TokenTypes = append(v.TokenTypes, GGUFTokenNormal)
		v.Scores = append(v.Scores, pieces[p])
	}
	return v
}

func sortedKeys(m map[string]float32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestGGUFSPM checks score order, ties, byte fallback and the space prefix.
func TestGGUFSPM(t *testing.T) {
	pieces := map[string]float32{"▁": -1, "a": -1, "b": -1, "c": -1, "ab": -5, "bc": -2, "▁a": -3, "abc": -4, "é": -1}
	v := spmVocab(pieces)
	tk, err := FromGGUF(v)
	if err != nil {
		t.Fatal(err)
	}
	tok := func(ids []int) string {
		var s []string
		for _, id := range ids {
			x, _ := tk.TokenString(id)
			s = append(s, x)
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct{ in, want string }{
		{"abc", "▁a bc"},         // bc (-2) before ▁a (-3); then ▁a+bc is no token
		{"xabc", "▁ <0x78> abc"}, // x has no piece: byte fallback; a+bc makes abc (-4)
		{"bcab", "▁ bc ab"},
		{"ab ab", "▁a b ▁a b"}, // ▁a (-3) beats ab (-5)
		{"é", "▁ é"},
		{"中", "▁ <0xE4> <0xB8> <0xAD>"},
		{"<s>ab", "<s> ▁a b"}, // space prefix after a control token
	} {
		if got := tok(tk.Encode(c.in, false)); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
		if got := tk.Decode(tk.Encode(c.in, false), true); got != strings.TrimPrefix(c.in, "<s>") {
			t.Errorf("%q: decodes to %q", c.in, got)
		}
	}
	// equal scores: the leftmost pair first
	tie := spmVocab(map[string]float32{"a": 0, "aa": -1})
	tk2, err := FromGGUF(tie)
	if err != nil {
		t.Fatal(err)
	}
	tie.AddSpacePrefix = false
	tk3, _ := FromGGUF(tie)
	for _, x := range []*Tokenizer{tk2, tk3} {
		ids := x.Encode("aaa", false)
		var s []string
		for _, id := range ids {
			p, _ := x.TokenString(id)
			s = append(s, p)
		}
		if got := strings.Join(s, " "); !strings.HasSuffix(got, "aa a") {
			t.Errorf("aaa: %q, want ... aa a", got)
		}
	}
	np := spmVocab(pieces)
	np.AddSpacePrefix = false
	tk4, err := FromGGUF(np)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]int{" a": 1, "ab": 1, "b a": 2} {
		ids := tk4.Encode(in, false)
		if got := tk4.Decode(ids, false); got != in || len(ids) != want {
			t.Errorf("no space prefix: %q -> %v -> %q", in, ids, got)
		}
	}
	if b, _ := tk.BOS(); b != 1 {
		t.Errorf("default BOS = %d", b)
	}
	if e, _ := tk.EOS(); e != 2 {
		t.Errorf("default EOS = %d", e)
	}
	if u, _ := tk.Unk(); u != 0 {
		t.Errorf("default UNK = %d", u)
	}
	if got := tk.Encode("", true); !eqIDs(got, []int{1}) {
		t.Errorf("empty with BOS: %v", got)
	}
}

// TestFromGGUFErrors checks that bad vocabularies are refused with a clear error.
func TestFromGGUFErrors(t *testing.T) {
	base := byteLevelVocab
	for _, c := range []struct {
		name     string
		edit     func(*GGUFVocab)
		sentinel error
		msg      string
	}{
		{"model", func(v *GGUFVocab) { v.Model = "bert" }, ErrUnsupported, `tokenizer.ggml.model "bert"`},
		{"pre", func(v *GGUFVocab) { v.Pre = "made-up" }, ErrUnsupported, `tokenizer.ggml.pre "made-up"`},
		{"empty", func(v *GGUFVocab) { v.Tokens, v.TokenTypes, v.BOS, v.EOS = nil, nil, -1, -1 }, ErrMalformed, "no tokens"},
		{"scores", func(v *GGUFVocab) { v.Scores = []float32{1} }, ErrMalformed, "1 scores for"},
		{"types", func(v *GGUFVocab) { v.TokenTypes = v.TokenTypes[1:] }, ErrMalformed, "token types for"},
		{"type", func(v *GGUFVocab) { v.TokenTypes[5] = 9 }, ErrMalformed, "token 5 has unknown type 9"},
		{"nan", func(v *GGUFVocab) { v.Scores = make([]float32, len(v.Tokens)); v.Scores[2] = float32(math.NaN()) }, ErrMalformed, "NaN"},
		{"bos", func(v *GGUFVocab) { v.BOS = len(v.Tokens) }, ErrMalformed, "bos_token_id"},
		{"eos", func(v *GGUFVocab) { v.EOS = -2 }, ErrMalformed, "eos_token_id -2"},
		{"pad", func(v *GGUFVocab) { v.PAD = 1 << 30 }, ErrMalformed, "padding_token_id"},
		{"addbos", func(v *GGUFVocab) { v.BOS, v.AddBOS = -1, true }, ErrMalformed, "add_bos_token"},
		{"addeos", func(v *GGUFVocab) { v.EOS, v.AddEOS = -1, true }, ErrMalformed, "add_eos_token"},
		{"dup", func(v *GGUFVocab) { v.Tokens[7] = "a" }, ErrMalformed, `duplicate token "a"`},
		{"merge-space", func(v *GGUFVocab) { v.Merges = append(v.Merges, "ab") }, ErrMalformed, `merge 3 "ab"`},
		{"merge-token", func(v *GGUFVocab) { v.Merges = append(v.Merges, "Ġ zz") }, ErrMalformed, "not in the vocabulary"},
		{"merge-result", func(v *GGUFVocab) { v.Merges = append(v.Merges, "a b") }, ErrMalformed, `merged token "ab"`},
	} {
		v := base()
		c.edit(&v)
		tk, err := FromGGUF(v)
		if err == nil || tk != nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", c.name, err, c.sentinel, c.msg)
		}
	}
	// empty tokens get a name instead, as in llama.cpp
	v := base()
	v.Tokens[5] = ""
	tk, err := FromGGUF(v)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := tk.TokenString(5); s != "[EMPTY_5]" {
		t.Errorf("empty token named %q", s)
	}
}

// TestSPMCuts checks that cutting SentencePiece input into words gives the ids of merging
// the whole text at once, and that vocabularies where a cut could matter are not cut.
func TestSPMCuts(t *testing.T) {
	tk := ggufVocab(t, "spm")
	if _, ok := tk.pre.(preSpmWords); !ok {
		t.Fatalf("stories260K is not cut into words (pre %T)", tk.pre)
	}
	texts := readCorpus(t)
	for _, c := range readGGUFGolden(t)["spm"].Cases {
		texts = append(texts, c.Text)
	}
	texts = append(texts, "a  b   c\t▁▁x▁", "▁", "▁▁", " ▁ a")
	for _, s := range texts {
		n := tk.normalizer.normalize(validString(s))
		whole := tk.model.spmWord(n, nil)
		var cut []int
		for _, p := range tk.pre.preTokenize([]piece{{n, true}}) {
			cut = tk.model.spmWord(p.s, cut)
		}
		if !eqIDs(whole, cut) {
			t.Fatalf("%q: whole %v, cut %v", trunc(s), whole, cut)
		}
	}
	v := spmVocab(map[string]float32{"a": 0, "▁": 0, "a▁": 1})
	tk2, err := FromGGUF(v)
	if err != nil {
		t.Fatal(err)
	}
	if tk2.pre != nil {
		t.Fatalf("vocabulary with %q is cut into words", "a▁")
	}
	ids := tk2.Encode("a a", false)
	if s, _ := tk2.TokenString(ids[1]); len(ids) != 3 || s != "a▁" {
		t.Errorf("a a: %v", ids)
	}
}
