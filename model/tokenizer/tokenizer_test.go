package tokenizer

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFastPatterns checks the hand-written GPT-2 / Llama 3 / Qwen 2 matchers against
// regexp2 running the same pattern.
func TestFastPatterns(t *testing.T) {
	pool := []rune("aZé中😀 \t\n\r\u00a0\u3000'sStTrReEvVlLmMdD01٣½!?.,-_\"()x\u0301\u200d\u0085\u000b")
	rng := rand.New(rand.NewSource(1))
	corpus := readCorpus(t)
	for _, src := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		p, err := compileRegex(src)
		if err != nil || p.fast == nil {
			t.Fatalf("%q: %v (fast %v)", src, err, p != nil && p.fast != nil)
		}
		check := func(s string) {
			fast := p.findIter(s)
			slow := p.slowFindIter(s)
			if len(fast) != len(slow) {
				t.Fatalf("pattern %q on %q: fast %v, regexp2 %v", src[:12], s, fast, slow)
			}
			for i := range fast {
				if fast[i] != slow[i] {
					t.Fatalf("pattern %q on %q: fast %v, regexp2 %v", src[:12], s, fast, slow)
				}
			}
		}
		for i := 0; i < 20000; i++ {
			n := rng.Intn(12)
			r := make([]rune, n)
			for k := range r {
				r[k] = pool[rng.Intn(len(pool))]
			}
			check(string(r))
		}
		for _, s := range corpus {
			check(s)
		}
	}
}

func minimalJSON(extra string) []byte {
	return []byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3},"merges":["a b"]}` + extra + `}`)
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		json     string
		sentinel error
		msg      string
	}{
		{`{`, ErrMalformed, "tokenizer.json: invalid JSON"},
		{`[]`, ErrMalformed, "tokenizer.json: invalid JSON"},
		{`{}`, ErrMalformed, "tokenizer.json: missing model"},
		{`{"model":{"type":"Unigram","vocab":[]}}`, ErrUnsupported, `tokenizer.json: unsupported model type "Unigram"`},
		{string(minimalJSON(`,"pre_tokenizer":{"type":"UnicodeScripts"}`)), ErrUnsupported, `tokenizer.json: unsupported pre_tokenizer type "UnicodeScripts"`},
		{string(minimalJSON(`,"normalizer":{"type":"Precompiled","precompiled_charsmap":""}`)), ErrUnsupported, `tokenizer.json: unsupported normalizer type "Precompiled"`},
		{string(minimalJSON(`,"decoder":{"type":"CTC"}`)), ErrUnsupported, `tokenizer.json: unsupported decoder type "CTC"`},
		{string(minimalJSON(`,"post_processor":{"type":"Foo"}`)), ErrUnsupported, `tokenizer.json: unsupported post_processor type "Foo"`},
		{string(minimalJSON(`,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Foo"}]}`)), ErrUnsupported, `unsupported pre_tokenizer type "Foo"`},
		{string(minimalJSON(`,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"}`)), ErrMalformed, "bad regex"},
		{string(minimalJSON(`,"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Sideways"}`)), ErrMalformed, "unknown behavior"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, ErrMalformed, "not in the vocabulary"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a a a"]}}`, ErrMalformed, "merge 1"},
		{`{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}`, ErrMalformed, "out of range"},
		{string(minimalJSON(`,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>","type_id":0}}],"special_tokens":{}}`)), ErrMalformed, "missing special token"},
		{string(minimalJSON(`,"normalizer":{}`)), ErrMalformed, "normalizer without a type"},
	}
	for _, c := range cases {
		_, err := FromJSON([]byte(c.json), nil)
		if err == nil || !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("FromJSON(%s) = %v, want %v containing %q", c.json, err, c.sentinel, c.msg)
		}
	}
	if _, err := FromJSON(minimalJSON(""), []byte(`{`)); err == nil || !strings.HasPrefix(err.Error(), "tokenizer_config.json: ") || !errors.Is(err, ErrMalformed) {
		t.Errorf("bad config: %v", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(empty dir) = %v, want ErrNotFound", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("Load(bad json) = %v", err)
	}
}

func TestMinimal(t *testing.T) {
	tk, err := FromJSON(minimalJSON(`,"added_tokens":[{"id":3,"content":"<s>","special":true},{"id":7,"content":"<x>","special":false}],
		"post_processor":{"type":"TemplateProcessing","single":"<s> $A","special_tokens":{"<s>":{"id":"<s>","ids":[3],"tokens":["<s>"]}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("ab<x>a<s>b", true); !eqIDs(got, []int{3, 2, 7, 0, 3, 1}) {
		t.Errorf("Encode = %v", got)
	}
	if got := tk.Decode([]int{3, 2, 7, 99, -1}, true); got != "ab <x>" {
		t.Errorf("Decode = %q", got)
	}
	if tk.VocabSize() != 8 || !tk.IsSpecial(3) || tk.IsSpecial(7) || tk.IsSpecial(0) {
		t.Errorf("VocabSize %d special %v %v", tk.VocabSize(), tk.IsSpecial(3), tk.IsSpecial(7))
	}
	if id, ok := tk.BOS(); !ok || id != 3 {
		t.Errorf("BOS = %d %v", id, ok)
	}
	if _, ok := tk.EOS(); ok {
		t.Errorf("EOS found")
	}
	if s, ok := tk.TokenString(2); !ok || s != "ab" {
		t.Errorf("TokenString(2) = %q %v", s, ok)
	}
	if id, ok := tk.TokenID("<x>"); !ok || id != 7 {
		t.Errorf("TokenID = %d %v", id, ok)
	}
	if got := tk.Encode("a\xffb", false); !eqIDs(got, []int{2}) { // U+FFFD unknown, no unk: dropped (a, b still merge)
		t.Errorf("invalid utf8: %v", got)
	}
}

func TestConfig(t *testing.T) {
	v := vocabCases()[1] // stories260K: LlamaTokenizer config
	tk := loadVocab(t, v)
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Errorf("BOS = %d %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Errorf("EOS = %d %v", id, ok)
	}
	if tk.ModelMaxLength() != 512 || !tk.AddsBOS() {
		t.Errorf("ModelMaxLength %d AddsBOS %v", tk.ModelMaxLength(), tk.AddsBOS())
	}
	tj, err := os.ReadFile(filepath.Join(v.dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	// LlamaTokenizerFast rebuilds its post-processor from add_bos_token/add_eos_token
	cfg := `{"tokenizer_class":"LlamaTokenizer","add_bos_token":false,"add_eos_token":true,"bos_token":{"content":"<s>","lstrip":false},"eos_token":"</s>","pad_token":null,"chat_template":"{{ x }}","model_max_length":1e30}`
	tk2, err := FromJSON(tj, []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tk2.Encode("Once", true), append(tk2.Encode("Once", false), 2); !eqIDs(got, want) {
		t.Errorf("add_eos: %v, want %v", got, want)
	}
	if tk2.ChatTemplate() != "{{ x }}" || tk2.ModelMaxLength() != 0 || tk2.AddsBOS() {
		t.Errorf("ChatTemplate %q ModelMaxLength %d AddsBOS %v", tk2.ChatTemplate(), tk2.ModelMaxLength(), tk2.AddsBOS())
	}
	if _, ok := tk2.Pad(); ok {
		t.Errorf("pad found")
	}
	// other classes keep tokenizer.json's post_processor; null bos_token means no BOS
	tk3, err := FromJSON(tj, []byte(`{"tokenizer_class":"PreTrainedTokenizerFast","add_bos_token":false,"bos_token":null,"chat_template":[{"name":"tool_use","template":"T"},{"name":"default","template":"D"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk3.Encode("Once", true); len(got) == 0 || got[0] != 1 {
		t.Errorf("PreTrainedTokenizerFast: %v", got)
	}
	if _, ok := tk3.BOS(); ok || tk3.ChatTemplate() != "D" {
		t.Errorf("BOS found / template %q", tk3.ChatTemplate())
	}
}

func TestRealVocabsConfig(t *testing.T) {
	for _, c := range []struct {
		vocab    int
		bos, eos string
		chat     bool
	}{{2, "", "<|im_end|>", true}, {3, "<|begin_of_text|>", "<|end_of_text|>", true}, {4, "<s>", "</s>", false}, {0, "<|begin_of_text|>", "<|end_of_text|>", false}} {
		v := vocabCases()[c.vocab]
		t.Run(v.name, func(t *testing.T) {
			tk := loadVocab(t, v)
			id, ok := tk.BOS()
			if s, _ := tk.TokenString(id); ok != (c.bos != "") || (ok && s != c.bos) {
				t.Errorf("BOS = %q %v, want %q", s, ok, c.bos)
			}
			id, ok = tk.EOS()
			if s, _ := tk.TokenString(id); !ok || s != c.eos {
				t.Errorf("EOS = %q %v, want %q", s, ok, c.eos)
			}
			if (tk.ChatTemplate() != "") != c.chat {
				t.Errorf("chat template %q", tk.ChatTemplate())
			}
			if !tk.IsSpecial(id) {
				t.Errorf("EOS not special")
			}
		})
	}
}

// TestStreamBytes feeds multi-byte characters split over byte-level / byte-fallback tokens.
func TestStreamBytes(t *testing.T) {
	texts := []string{"😀👨‍👩‍👧‍👦 中文 \u0301x", "a\U0001F600b", "é", "\xe4\xbd", "x 🇫🇷!"}
	for _, v := range vocabCases() {
		t.Run(v.name, func(t *testing.T) {
			tk := loadVocab(t, v)
			for _, s := range texts {
				ids := tk.Encode(s, true)
				for _, skip := range []bool{false, true} {
					want := tk.Decode(ids, skip)
					d := tk.NewStreamDecoder(skip)
					var sb strings.Builder
					for _, id := range ids {
						out := d.Next(id)
						if !utf8.ValidString(out) {
							t.Errorf("%q: invalid chunk %q", s, out)
						}
						sb.WriteString(out)
					}
					sb.WriteString(d.Flush())
					if sb.String() != want {
						t.Errorf("%q skip=%v: stream %q, want %q", s, skip, sb.String(), want)
					}
				}
			}
		})
	}
}

// TestConcurrent encodes from several goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	tk := loadVocab(t, vocabCases()[0])
	corpus := readCorpus(t)
	want := make([][]int, len(corpus))
	for i, s := range corpus {
		want[i] = tk.Encode(s, true)
	}
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			for i, s := range corpus {
				if got := tk.Encode(s, true); !eqIDs(got, want[i]) {
					t.Errorf("concurrent mismatch on %q", s)
				}
			}
			done <- true
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

// TestLongWord: merges on a long word must stay fast (priority queue, not O(n^2) scans).
func TestLongWord(t *testing.T) {
	tk := loadVocab(t, vocabCases()[2])
	s := strings.Repeat("abcdefghij", 20000) // one 200 kB pre-token
	ids := tk.Encode(s, false)
	if tk.Decode(ids, false) != s {
		t.Fatal("long word round trip failed")
	}
}
