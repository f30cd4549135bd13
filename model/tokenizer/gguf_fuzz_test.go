package tokenizer

import (
	"bytes"
	"math"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFromGGUF builds tokenizers from random small vocabularies: an error or a working
// tokenizer, never a panic.
func FuzzFromGGUF(f *testing.F) {
	f.Add([]byte("\x00\x00a\x00b\x00ab\x00<s>\x00\xe2\x96\x81\x00\x01\x02\x03\x00\x01"))
	f.Add([]byte("\x01\x05\xc4\xa0\x00t\x00\xc4\xa0t\x00<|x|>\x00\x00\x00\x00\x00\x02\x01\x03\x01"))
	f.Add([]byte("\x01\x00a\x00a\x00"))
	f.Add([]byte("\x02\x00"))
	pres := make([]string, 0, len(ggufPres)+1)
	for p := range ggufPres {
		pres = append(pres, p)
	}
	sort.Strings(pres)
	pres = append(pres, "unknown-pre")
	inputs := []string{"", "ab a b", " <s>ab<|x|> t\u2581t ", "中文😀\xff", strings.Repeat("ab", 40)}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		v := GGUFVocab{Model: []string{"llama", "gpt2", "bert"}[int(data[0])%3], Pre: pres[int(data[1])%len(pres)]}
		parts := bytes.Split(data[2:], []byte{0})
		if len(parts) > 64 {
			parts = parts[:64]
		}
		// the first half are tokens; the rest give types, scores, merges and special ids
		nt := (len(parts) + 1) / 2
		for _, p := range parts[:nt] {
			v.Tokens = append(v.Tokens, string(p))
		}
		rest := bytes.Join(parts[nt:], nil)
		at := func(i int) int {
			if len(rest) == 0 {
				return 0
			}
			return int(rest[i%len(rest)])
		}
		if at(0)%2 == 0 {
			for i := range v.Tokens {
				v.TokenTypes = append(v.TokenTypes, int32(at(i+1)%8))
			}
		}
		if at(1)%2 == 0 {
			for i := range v.Tokens {
				v.Scores = append(v.Scores, float32(at(i+2))-100)
			}
			if at(3) == 255 {
				v.Scores = append(v.Scores, float32(math.Inf(1)))
			}
		}
		for i := 0; i < len(rest)/2 && nt > 0; i++ {
			a, b := v.Tokens[at(2*i)%nt], v.Tokens[at(2*i+1)%nt]
			v.Merges = append(v.Merges, a+" "+b)
		}
		id := func(k int) int { return at(k)%(nt+2) - 1 }
		v.BOS, v.EOS, v.UNK, v.PAD = id(4), id(5), id(6), id(7)
		v.AddBOS, v.AddEOS, v.AddSpacePrefix = at(8)%2 == 0, at(9)%3 == 0, at(10)%2 == 0
		tk, err := FromGGUF(v)
		if err != nil {
			if tk != nil {
				t.Fatal("tokenizer and error")
			}
			return
		}
		for _, s := range inputs {
			for _, sp := range []bool{false, true} {
				ids := tk.Encode(s, sp)
				for _, x := range ids {
					if x < 0 || x >= tk.VocabSize() {
						t.Fatalf("id %d out of range", x)
					}
				}
				for _, skip := range []bool{false, true} {
					if a, b := tk.Decode(ids, skip), streamDecode(tk, ids, skip); a != b {
						t.Fatalf("Decode %q, stream %q", a, b)
					}
				}
			}
		}
		_ = tk.Decode([]int{-1, 0, 1 << 30}, false)
		tk.BOS()
		tk.EOS()
		tk.Unk()
		tk.Pad()
		tk.AddsBOS()
	})
}

// FuzzGGUFRoundTrip encodes random text with the golden GGUF vocabularies: ids in range,
// BOS added exactly as asked, the stream decoder agrees with Decode, and valid text comes
// back unchanged (for the SentencePiece vocabulary, unless it holds special-token text or
// "▁", which cannot round-trip).
func FuzzGGUFRoundTrip(f *testing.F) {
	g := readGGUFGolden(f)
	for _, c := range g["bpe"].Cases {
		f.Add(c.Text)
	}
	f.Add("<s>a</s><unk> ▁x \xe4\xbd")
	bpe, spm := ggufVocab(f, "bpe"), ggufVocab(f, "spm")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1024 { // StreamDecoder is quadratic on text made of U+FFFD
			return
		}
		for _, tk := range []*Tokenizer{bpe, spm} {
			ids := tk.Encode(s, false)
			withBOS := tk.Encode(s, true)
			bos, _ := tk.BOS()
			if len(withBOS) != len(ids)+1 || withBOS[0] != bos || !eqIDs(withBOS[1:], ids) {
				t.Fatalf("%q: with BOS %v, without %v", s, withBOS, ids)
			}
			for _, x := range ids {
				if x < 0 || x >= tk.VocabSize() {
					t.Fatalf("%q: id %d out of range", s, x)
				}
			}
			for _, skip := range []bool{false, true} {
				if a, b := tk.Decode(withBOS, skip), streamDecode(tk, withBOS, skip); a != b {
					t.Fatalf("%q: Decode %q, stream %q", s, a, b)
				}
			}
			if !utf8.ValidString(s) {
				continue
			}
			if tk == spm && (strings.Contains(s, "▁") || strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>")) {
				continue
			}
			if got := tk.Decode(ids, false); got != s {
				t.Fatalf("round trip %q -> %v -> %q", s, ids, got)
			}
		}
	})
}
