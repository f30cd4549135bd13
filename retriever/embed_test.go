package retriever

import (
	"math"
	"os"
	"roe/internal/testenv"
	"strings"
	"testing"

	"roe/model"
	"roe/model/tokenizer"
)

const storiesDir = "../../shared/data/models/stories260K-hf"

func needDir(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		testenv.SkipOrFail(t, "reference data not present: %v", err)
	}
}

func TestFormatInstance(t *testing.T) {
	got := FormatInstance("", "Is the sky blue?", []string{"yes", "no"})
	if want := "Answer Choices: yes ||| no, Instance: Is the sky blue?"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// One pass: placeholders inside the input are not expanded.
	got = FormatInstance("{input} / {choices}", "say {choices}", nil)
	if got != "say {choices} / " {
		t.Errorf("got %q", got)
	}
}

func TestModelEmbedderMatchesModelEmbed(t *testing.T) {
	needDir(t, storiesDir)
	m, err := model.Load(storiesDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(storiesDir)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{
		FormatInstance("", "Once upon a time there was a cat.", []string{"happy", "sad"}),
		"Lily went to the park.",
		strings.Repeat("The big dog ran and ran. ", 40), // long: truncated
		"x",
	}
	for _, layer := range []int{0, 2} {
		e := NewModelEmbedder(m, tok, layer, 0)
		if e.Dim() != m.Config.HiddenSize {
			t.Fatalf("Dim %d", e.Dim())
		}
		if id := e.ID(); !strings.HasPrefix(id, "model:"+m.Fingerprint()[:12]+":layer") || !strings.HasSuffix(id, ":max256") {
			t.Errorf("ID %q", id)
		}
		embs, err := e.Embed(texts)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			toks := e.Tokens(text)
			if len(toks) > 256 || toks[0] != tok.Encode(text, true)[0] {
				t.Fatalf("tokens of %d: %d, first %d", i, len(toks), toks[0])
			}
			want, err := m.EmbedLayer(toks, layer, nil)
			if err != nil {
				t.Fatal(err)
			}
			var d float64
			for j := range want {
				d = math.Max(d, math.Abs(float64(embs[i][j]-want[j])))
			}
			if d > 1e-5 {
				t.Errorf("layer %d text %d: max diff %g from model.EmbedLayer", layer, i, d)
			}
		}
		if n := len(e.Tokens(texts[2])); n != 256 {
			t.Errorf("long text: %d tokens, want 256", n)
		}
	}
	short := NewModelEmbedder(m, tok, 0, 4)
	if n := len(short.Tokens(texts[1])); n != 4 {
		t.Errorf("maxTokens 4: %d tokens", n)
	}
	if _, err := NewModelEmbedder(m, tok, 99, 0).Embed(texts[:1]); err == nil {
		t.Error("layer 99: no error")
	}
}
