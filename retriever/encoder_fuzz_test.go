package retriever

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzLoadEncoder feeds mutated encoder folders: an error or an encoder
// that embeds, never a panic.
func FuzzLoadEncoder(f *testing.F) {
	e, err := NewEncoder(EncoderConfig{Name: "f", Buckets: 64, Dim: 4, MinChar: 3, MaxChar: 4, MaxWords: 16, Seed: 1, Lexical: 0.5})
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	if err := e.Save(dir); err != nil {
		f.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, EncoderConfigFile))
	w, _ := os.ReadFile(filepath.Join(dir, EncoderWeightsFile))
	f.Add(cfg, w)
	f.Add([]byte(`{"buckets":1,"dim":1,"min_char":1,"max_char":1,"max_words":1}`), w)
	f.Add([]byte(`{"buckets":99999999999,"dim":4}`), w)
	f.Add(cfg, w[:len(w)/2])
	f.Fuzz(func(t *testing.T, cfg, w []byte) {
		fsys := fstest.MapFS{EncoderConfigFile: {Data: cfg}, EncoderWeightsFile: {Data: w}}
		e, err := LoadEncoder(fsys)
		if err != nil {
			return
		}
		v, err := e.Embed([]string{"a small test sentence"})
		if err == nil && len(v[0]) != e.Dim() {
			t.Fatalf("vector of %d, Dim %d", len(v[0]), e.Dim())
		}
	})
}
