package tokenizer

import (
	"os"
	"path/filepath"
	"testing"

	"roe/internal/testenv"
)

// benchText is about 256 kB of English prose from the shared corpus.
func benchText(b *testing.B) string {
	data, err := os.ReadFile(filepath.Join(sharedDir(), "data", "corpus", "war_and_peace.txt"))
	if err != nil {
		testenv.SkipOrFail(b, "shared corpus missing: %v", err)
	}
	if len(data) > 1<<20+1<<18 {
		data = data[1<<20 : 1<<20+1<<18]
	}
	return validString(string(data))
}

func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, v := range vocabCases() {
		b.Run(v.name, func(b *testing.B) {
			tk := loadVocab(b, v)
			tk.Encode(text, false) // warm the word cache
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tk.Encode(text, false)
			}
		})
	}
}

// BenchmarkEncodeCold measures encoding with an empty word cache (every word merged).
func BenchmarkEncodeCold(b *testing.B) {
	text := benchText(b)
	for _, v := range vocabCases()[2:] {
		b.Run(v.name, func(b *testing.B) {
			tk := loadVocab(b, v)
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				tk.model.mu.Lock()
				tk.model.cache = map[string][]int{}
				tk.model.mu.Unlock()
				tk.Encode(text, false)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	text := benchText(b)
	tk := loadVocab(b, vocabCases()[2])
	ids := tk.Encode(text, false)
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		tk.Decode(ids, false)
	}
}

func BenchmarkLoad(b *testing.B) {
	v := vocabCases()[2]
	loadVocab(b, v)
	for i := 0; i < b.N; i++ {
		if _, err := Load(v.dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeGGUF is BenchmarkEncode for the tokenizers built from the GGUF files of the
// same two vocabularies (tiny-llama: byte-level BPE; stories260K: SentencePiece, merged by
// score).
func BenchmarkEncodeGGUF(b *testing.B) {
	text := benchText(b)
	for _, v := range []struct{ name, vocab string }{{"tiny-llama", "bpe"}, {"stories260K", "spm"}} {
		b.Run(v.name, func(b *testing.B) {
			tk := ggufVocab(b, v.vocab)
			tk.Encode(text, false) // warm the word cache
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tk.Encode(text, false)
			}
		})
	}
}
