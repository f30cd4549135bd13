package train

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"roe/internal/testmodel"
	"slices"
	"strings"
	"testing"

	"roe/model"
)

func TestSplitDocs(t *testing.T) {
	text := "First line\r\nsecond line\n\n  \n\nNext para\n   indented\n\n"
	got := splitDocs(text, "paragraph")
	want := []string{"First line\nsecond line", "Next para\n   indented"}
	if !slices.Equal(got, want) {
		t.Errorf("paragraphs %q, want %q", got, want)
	}
	if got := splitDocs(text, "file"); len(got) != 1 || got[0] != strings.Trim(text, "\r\n") {
		t.Errorf("file: %q", got)
	}
	if got := splitDocs(" \n\n", "file"); got != nil {
		t.Errorf("blank file: %q", got)
	}
}

// storyText is a small corpus: numbered paragraphs of TinyStories-like text.
func storyText(n int) string {
	names := []string{"Tom", "Lily", "Sam", "Mia"}
	things := []string{"a red ball", "a big dog", "a little cat", "a blue car"}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Once upon a time, %s had %s.\n%s played with it every day and was happy.\n\n",
			names[i%len(names)], things[(i/len(names))%len(things)], names[i%len(names)])
	}
	return b.String()
}

func TestBuildCorpus(t *testing.T) {
	_, tok := testmodel.Stories260K(t)
	texts := []string{storyText(40), "The end.\nThe very end.\n"}
	names := []string{"stories.txt", "end.txt"}
	o := CorpusOptions{SeqLen: 16, ValFrac: 0.1}
	c, err := BuildCorpus(tok, names, texts, o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := BuildCorpus(tok, names, texts, o)
	if err != nil || !reflect.DeepEqual(c, again) {
		t.Fatal("not deterministic", err)
	}
	bos, _ := tok.BOS()
	eos, _ := tok.EOS()
	// Windows overlap by one token and rebuild the stream: every token after
	// the first is a target exactly once.
	check := func(name string, ws []Sequence, n int) []int {
		var stream []int
		for i, w := range ws {
			if len(w.Tokens) > 16 || len(w.Tokens) < 2 || len(w.LossMask) != len(w.Tokens) || slices.Contains(w.LossMask, false) {
				t.Fatalf("%s window %d: %d tokens, mask %v", name, i, len(w.Tokens), w.LossMask)
			}
			if i == 0 {
				stream = append(stream, w.Tokens...)
				continue
			}
			if w.Tokens[0] != stream[len(stream)-1] {
				t.Fatalf("%s window %d does not overlap the previous by one token", name, i)
			}
			stream = append(stream, w.Tokens[1:]...)
		}
		if len(stream) != n {
			t.Errorf("%s: windows hold %d tokens, the stream %d", name, len(stream), n)
		}
		return stream
	}
	train, val := check("train", c.Train, c.TrainTokens), check("val", c.Val, c.ValTokens)
	if train[0] != bos || train[len(train)-1] != eos || val[0] != bos {
		t.Errorf("documents should be BOS … EOS: train starts %d ends %d, val starts %d", train[0], train[len(train)-1], val[0])
	}
	// Each paragraph is a document (the one the cut falls in counts twice),
	// and each starts with BOS.
	if n := countOf(train, bos) + countOf(val, bos); n != c.Files[0].Docs+c.Files[1].Docs || c.Files[0].Docs != 41 || c.Files[1].Docs != 2 {
		t.Errorf("%d documents (files: %+v)", n, c.Files)
	}
	// The held-out part is the file's tail from a line start.
	got := strings.TrimSpace(tok.Decode(val[:8], true))
	if !strings.Contains(texts[0], "\n"+got) || strings.LastIndex(texts[0], "\n"+got) < len(texts[0])*8/10 {
		t.Errorf("validation starts %q", got)
	}
	var tt, vt int
	for _, f := range c.Files {
		tt += f.TrainTokens
		vt += f.ValTokens
	}
	if tt != c.TrainTokens || vt != c.ValTokens || c.Files[1].ValTokens == 0 {
		t.Errorf("per-file tokens %d+%d, streams %d+%d: %+v", tt, vt, c.TrainTokens, c.ValTokens, c.Files)
	}

	noVal, err := BuildCorpus(tok, names, texts, CorpusOptions{SeqLen: 16, ValFrac: -1, Docs: "file", NoEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if noVal.ValTokens != 0 || len(noVal.Val) != 0 || countOf(check("file", noVal.Train, noVal.TrainTokens), bos) != 2 ||
		slices.Contains(check("file", noVal.Train, noVal.TrainTokens), eos) {
		t.Errorf("file documents without EOS or validation: %+v", noVal.Files)
	}
	for _, bad := range []CorpusOptions{{SeqLen: 1}, {ValFrac: 1}, {Docs: "sentence"}} {
		if _, err := BuildCorpus(tok, names, texts, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if _, err := BuildCorpus(tok, []string{"blank"}, []string{"\n\n"}, CorpusOptions{ValFrac: -1, NoEOS: true}); err == nil {
		t.Error("an empty corpus should be refused")
	}
}

func countOf(v []int, x int) int {
	n := 0
	for _, y := range v {
		if y == x {
			n++
		}
	}
	return n
}

func tinyConfig(t testing.TB, vocab int) model.Config {
	t.Helper()
	c, err := model.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"hidden_size":32,
	"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":%d,
	"rms_norm_eps":1e-5,"max_position_embeddings":32,"tie_word_embeddings":true}`, vocab)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitWeights(t *testing.T) {
	c := tinyConfig(t, 64)
	a, _ := model.Random(c, 1)
	b, _ := model.Random(c, 2)
	InitWeights(a, 7)
	InitWeights(b, 7)
	pa, pb := BaseParams(a), BaseParams(b)
	if !reflect.DeepEqual(pa, pb) {
		t.Fatal("InitWeights is not a function of its seed")
	}
	std := func(v []float32) float64 { return math.Sqrt(sumSquares(v) / float64(len(v))) }
	if v := pa["model.layers.0.input_layernorm.weight"]; slices.ContainsFunc(v, func(x float32) bool { return x != 1 }) {
		t.Error("norms should start at 1")
	}
	q, o := std(pa["model.layers.1.self_attn.q_proj.weight"]), std(pa["model.layers.1.mlp.down_proj.weight"])
	if math.Abs(q-0.02) > 0.003 || math.Abs(o-0.01) > 0.002 {
		t.Errorf("std q_proj %.4f (want 0.02), down_proj %.4f (want 0.02/√4)", q, o)
	}
}

// A few steps of full-parameter pretraining on a tiny model lower the
// validation loss, deterministically.
func TestPretrainLowersLoss(t *testing.T) {
	_, tok := testmodel.Stories260K(t)
	c, err := BuildCorpus(tok, []string{"stories.txt"}, []string{storyText(200)}, CorpusOptions{SeqLen: 32, ValFrac: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	run := func() ([]float64, float64, float64) {
		m, err := model.Random(tinyConfig(t, tok.VocabSize()), 1)
		if err != nil {
			t.Fatal(err)
		}
		InitWeights(m, 1)
		before, n, err := EvalLoss(m, c.Val, 8)
		if err != nil || n == 0 {
			t.Fatal(n, err)
		}
		tr, err := NewTrainer(m, nil, c.Train, Options{Full: true, LR: 1e-2, BatchSize: 8, Steps: 40, ClipNorm: 1, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		after, _, err := EvalLoss(m, c.Val, 3)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Losses, before, after
	}
	losses, before, after := run()
	t.Logf("validation loss %.3f → %.3f; train %.3f → %.3f", before, after, losses[0], losses[len(losses)-1])
	if math.Abs(before-math.Log(float64(tok.VocabSize()))) > 0.1 {
		t.Errorf("fresh model's loss %.3f, want about ln(V) = %.3f", before, math.Log(float64(tok.VocabSize())))
	}
	if after > before-1.5 {
		t.Errorf("validation loss went from %.3f to only %.3f", before, after)
	}
	if again, _, after2 := run(); !slices.Equal(again, losses) || after2 != after {
		t.Error("the same seed gave another run")
	}
}

func TestSpread(t *testing.T) {
	seqs := make([]Sequence, 10)
	for i := range seqs {
		seqs[i].Weight = float64(i)
	}
	got := Spread(seqs, 3)
	if len(got) != 3 || got[0].Weight != 0 || got[1].Weight != 3 || got[2].Weight != 6 {
		t.Errorf("Spread: %+v", got)
	}
	if len(Spread(seqs, 0)) != 10 || len(Spread(seqs, 20)) != 10 {
		t.Error("Spread should keep everything for n ≤ 0 or n ≥ len")
	}
}
