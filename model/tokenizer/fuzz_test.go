package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"roe/internal/testenv"
)

// FuzzEncode runs random text through every available tokenizer: no panic, the stream
// decoder agrees with Decode, and byte-level tokenizers round-trip losslessly.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello world", "<|endoftext|><s></s>", "😀👨‍👩‍👧‍👦", "a\xffb\xe4\xbd", "  \t\n\r\n 123456 ''s", "cafe\u0301 İ ß"} {
		f.Add(s)
	}
	var toks []*Tokenizer
	var names []string
	for _, v := range vocabCases() {
		if _, err := os.Stat(filepath.Join(v.dir, "tokenizer.json")); err != nil {
			continue
		}
		tk, err := Load(v.dir)
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tk)
		names = append(names, v.name)
	}
	if len(toks) == 0 {
		testenv.SkipOrFail(f, "no tokenizer available: %s", npmInstallHint)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, tk := range toks {
			ids := tk.Encode(s, false)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() {
					t.Fatalf("%s: id %d out of range", names[i], id)
				}
			}
			withSp := tk.Encode(s, true)
			for _, skip := range []bool{false, true} {
				want := tk.Decode(withSp, skip)
				if got := streamDecode(tk, withSp, skip); got != want {
					t.Fatalf("%s: stream %q != decode %q for %q", names[i], got, want, s)
				}
			}
			if !utf8.ValidString(s) {
				continue
			}
			dec := tk.Decode(ids, false)
			switch names[i] {
			case "tiny-llama", "llama3": // byte-level, no normalizer: lossless
				if dec != s {
					t.Fatalf("%s: round trip %q -> %q", names[i], s, dec)
				}
			case "qwen3": // byte-level after NFC
				if want := norm.NFC.String(s); dec != want {
					t.Fatalf("%s: round trip %q -> %q", names[i], want, dec)
				}
			}
		}
	})
}

// FuzzLoad feeds random and mutated tokenizer.json files: an error or a working tokenizer,
// never a panic.
func FuzzLoad(f *testing.F) {
	f.Add(minimalJSON(""))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"▁":1,"<0x61>":2},"merges":[],"byte_fallback":true,"unk_token":"a"},
		"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"NFKC"},{"type":"Lowercase"}]},
		"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"a*"},"behavior":"MergedWithNext","invert":true},{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"},{"type":"Digits","individual_digits":true}]},
		"decoder":{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Metaspace"},{"type":"Strip","content":"a","start":3,"stop":2},{"type":"BPEDecoder"},{"type":"WordPiece"}]},
		"added_tokens":[{"id":5,"content":"x","lstrip":true,"rstrip":true,"single_word":true,"normalized":true,"special":true}]}`))
	for _, v := range vocabCases()[:2] {
		if b, err := os.ReadFile(filepath.Join(v.dir, "tokenizer.json")); err == nil {
			f.Add(b)
		}
	}
	inputs := []string{"", "Hello world!", " a\tb\n12 <s> x😀", strings.Repeat("ab ", 20)}
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := FromJSON(data, nil)
		if err != nil {
			if tk != nil {
				t.Fatal("tokenizer and error")
			}
			return
		}
		for _, s := range inputs {
			ids := tk.Encode(s, true)
			_ = tk.Decode(ids, false)
			_ = streamDecode(tk, ids, true)
			_ = tk.Decode([]int{-1, 0, 1, 2, 3, 1 << 30}, false)
		}
		tk.BOS()
		tk.EOS()
		tk.VocabSize()
	})
}
