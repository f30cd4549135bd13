package model_test

import (
	"math"
	"testing"

	"roe/internal/testmodel"
	"roe/model"
)

// runSeqs drives sequences to the end through batched forwards, forking
// fork siblings of seqs[0] after its prefill.
func runSeqs(t *testing.T, m *model.Model, lead *model.Sequence, forks []model.SampleOptions, dec func() model.TextDecoder) []*model.Sequence {
	t.Helper()
	seqs := []*model.Sequence{lead}
	out, err := m.Forward([]model.Step{lead.Step()})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range forks {
		f, err := lead.Fork(dec(), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, f)
	}
	for _, s := range seqs {
		s.Accept(out[0].Logits)
	}
	for {
		var live []*model.Sequence
		var steps []model.Step
		for _, s := range seqs {
			if !s.Done() {
				live = append(live, s)
				steps = append(steps, s.Step())
			}
		}
		if len(live) == 0 {
			return seqs
		}
		out, err := m.Forward(steps)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range live {
			s.Accept(out[i].Logits)
		}
	}
}

// A fork continues as a fresh sequence with the same seed would, and the
// prompt is computed once.
func TestForkMatchesFresh(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	prompt := tok.Encode("Once upon a time", true)
	dec := func() model.TextDecoder { return tok.NewStreamDecoder(true) }
	seed := func(v uint64) *uint64 { return &v }
	opts := func(s uint64) model.GenerateOptions {
		return model.GenerateOptions{MaxTokens: 16, Sample: model.SampleOptions{Temperature: 1, Seed: seed(s)}, Logprobs: true, TopLogprobs: 2}
	}
	lead, err := m.NewSequence(prompt, dec(), opts(1))
	if err != nil {
		t.Fatal(err)
	}
	seqs := runSeqs(t, m, lead, []model.SampleOptions{opts(2).Sample, opts(3).Sample}, dec)
	for i, s := range seqs {
		fresh, err := m.NewSequence(prompt, dec(), opts(uint64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		want := runSeqs(t, m, fresh, nil, dec)[0]
		if s.Text() != want.Text() || len(s.Logprobs) != len(s.Tokens) {
			t.Errorf("choice %d: forked %q, fresh %q (%d logprobs for %d tokens)", i, s.Text(), want.Text(), len(s.Logprobs), len(s.Tokens))
		}
		for j := range s.Logprobs {
			if math.Abs(s.Logprobs[j].Logprob-want.Logprobs[j].Logprob) > 1e-5 {
				t.Errorf("choice %d token %d: logprob %v, fresh %v", i, j, s.Logprobs[j].Logprob, want.Logprobs[j].Logprob)
			}
		}
	}
	if seqs[0].Text() == seqs[1].Text() && seqs[1].Text() == seqs[2].Text() {
		t.Error("three seeds sampled the same text")
	}
	if _, err := seqs[0].Fork(dec(), model.SampleOptions{}, nil); err == nil {
		t.Error("fork after the first token was allowed")
	}
}

// The prompt's log-probabilities (echo) sum to LogLikelihood, and ScoreOnly
// generates nothing.
func TestPromptLogprobs(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	ctx, cont := tok.Encode("Once upon a time", true), tok.Encode("Once upon a time, there was a girl", true)[5:]
	all := append(append([]int(nil), ctx...), cont...)
	want, err := m.LogLikelihood(ctx, cont, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSequence(all, tok.NewStreamDecoder(true), model.GenerateOptions{PromptLogprobs: true, ScoreOnly: true, TopLogprobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	runSeqs(t, m, s, nil, nil)
	if len(s.PromptLogprobs) != len(all)-1 || len(s.Tokens) != 0 || s.FinishReason != "length" {
		t.Fatalf("%d prompt logprobs for %d tokens, %d generated, %q", len(s.PromptLogprobs), len(all), len(s.Tokens), s.FinishReason)
	}
	var got float64
	for _, lp := range s.PromptLogprobs[len(ctx)-1:] {
		got += lp.Logprob
		if len(lp.Top) != 1 || lp.Top[0].Logprob < lp.Logprob {
			t.Errorf("top alternative %v for %v", lp.Top, lp)
		}
	}
	if math.Abs(got-want) > 1e-4 {
		t.Errorf("echo logprobs sum %v, LogLikelihood %v", got, want)
	}
}

// onlyToken is a constraint that allows one token: it records what it was
// told, so that siblings can be seen to keep their own state.
type onlyToken struct {
	id       int
	accepted []int
}

func (c *onlyToken) Mask(logits []float32, left int) {
	for i := range logits {
		if i != c.id {
			logits[i] = float32(math.Inf(-1))
		}
	}
}

func (c *onlyToken) Accept(id int) error {
	c.accepted = append(c.accepted, id)
	return nil
}

// Forks of a constrained sequence each follow their own constraint; Accept
// leaves the shared logits as the model made them, and log-probabilities are
// the model's, not renormalised under the mask.
func TestForkConstrained(t *testing.T) {
	m, tok := testmodel.Stories260K(t)
	prompt := tok.Encode("Once upon a time", true)
	dec := func() model.TextDecoder { return tok.NewStreamDecoder(true) }
	const forced = 300
	lc := &onlyToken{id: forced}
	lead, err := m.NewSequence(prompt, dec(), model.GenerateOptions{MaxTokens: 3, Sample: model.SampleOptions{Temperature: 1}, Constraint: lc, Logprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward([]model.Step{lead.Step()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lead.Fork(dec(), model.SampleOptions{}, nil); err == nil {
		t.Error("a constrained sequence forked without a constraint")
	}
	fc := &onlyToken{id: forced}
	fork, err := lead.Fork(dec(), model.SampleOptions{Temperature: 1}, fc)
	if err != nil {
		t.Fatal(err)
	}
	row := append([]float32(nil), out[0].Logits...)
	lead.Accept(out[0].Logits)
	for i := range row {
		if row[i] != out[0].Logits[i] {
			t.Fatalf("Accept changed logit %d: %v → %v", i, row[i], out[0].Logits[i])
		}
	}
	fork.Accept(out[0].Logits)
	if len(lc.accepted) != 1 || len(fc.accepted) != 1 {
		t.Fatalf("lead's constraint saw %v, the fork's %v", lc.accepted, fc.accepted)
	}
	want := model.LogprobOf(row, forced, 0).Logprob
	if lp := lead.Logprobs[0].Logprob; lead.Tokens[0] != forced || math.Abs(lp-want) > 1e-9 || lp > -1e-3 {
		t.Errorf("token %d logprob %v, the model's %v", lead.Tokens[0], lp, want)
	}
	if fork.Tokens[0] != forced || math.Abs(fork.Logprobs[0].Logprob-want) > 1e-9 {
		t.Errorf("fork: token %d logprob %v, want %v", fork.Tokens[0], fork.Logprobs[0].Logprob, want)
	}
}
