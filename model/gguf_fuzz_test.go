package model

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadGGUF: a GGUF model file of any bytes loads or is refused with an
// error, never a panic or a hang; one that loads runs a forward pass. The
// seeds are small models of every GGUF family roe reads.
func FuzzLoadGGUF(f *testing.F) {
	// Small seeds (the fuzzer slows down on large inputs): one block, 32 wide.
	shrink := func(c Config) Config {
		c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize = 32, 32, 2, 1, 16, 40
		c.NumLayers, c.SlidingLayers, c.BOS, c.EOS = 1, nil, nil, nil
		d, err := ggufDerived(c)
		if err != nil {
			f.Fatal(err)
		}
		return d
	}
	seeds := []Config{shrink(ropeTestConfig(RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 96}))}
	for _, name := range []string{"qwen3", "gemma2", "gemma3"} {
		seeds = append(seeds, shrink(loadModel(f, filepath.Join(archDir, name)).Config))
	}
	for _, c := range seeds {
		m, err := Random(c, 1)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteGGUF(&buf, m, GGUFWriteOptions{FileType: mustFileType(f, "q4_0")}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "f.gguf")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, lf, err := LoadGGUF(path, LoadOptions{})
		if err != nil {
			return
		}
		defer lf.Close()
		if m.Config.HiddenSize*m.Config.VocabSize > 1<<24 || m.Config.MaxPositions > 1<<16 {
			return // a forward pass of that size is not this target's business
		}
		_, _ = m.Forward([]Step{{Cache: m.NewCache(), Tokens: []int{0, m.Config.VocabSize - 1}}})
	})
}
