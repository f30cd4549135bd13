package model

import (
	"strings"
	"testing"
)

// pieceDecoder maps ids to fixed strings, like a tokenizer's stream decoder.
type pieceDecoder []string

func (d pieceDecoder) Next(id int) string { return d[id] }
func (d pieceDecoder) Flush() string      { return "" }

func oneHot(id, v int) []float32 {
	l := make([]float32, v)
	l[id] = 1
	return l
}

// Stop strings that span tokens are held back until they can be ruled out, and
// the text is cut before them.
func TestSequenceStopStrings(t *testing.T) {
	m := &Model{Config: Config{VocabSize: 6, MaxPositions: 100, EOS: []int{5}}}
	dec := pieceDecoder{"a", "b", "<", "/s", ">", ""}
	cases := []struct {
		ids          []int
		stops        []string
		max          int
		pieces, text string
		reason       string
	}{
		{[]int{0, 1, 2, 3, 4, 0}, []string{"</s>"}, 0, "a|b|||", "ab", "stop"},
		{[]int{0, 2, 1, 0}, []string{"</s>"}, 0, "a||<b|a", "a<ba", "length"},
		{[]int{0, 1, 5}, nil, 0, "a|b|", "ab", "stop"},
		{[]int{0, 1, 0, 1}, []string{"ba"}, 0, "a||", "a", "stop"},
		{[]int{0, 0, 0}, nil, 2, "a|a", "aa", "length"},
	}
	for _, c := range cases {
		max := c.max
		if max == 0 {
			max = len(c.ids)
		}
		s, err := m.NewSequence([]int{0}, dec, GenerateOptions{StopStrings: c.stops, MaxTokens: max})
		if err != nil {
			t.Fatal(err)
		}
		var pieces []string
		for _, id := range c.ids {
			if s.Done() {
				break
			}
			pieces = append(pieces, s.Accept(oneHot(id, 6)))
		}
		got := strings.Join(pieces, "|")
		if got != c.pieces || s.Text() != c.text || s.FinishReason != c.reason {
			t.Errorf("%v stops %q: pieces %q text %q reason %q; want %q %q %q", c.ids, c.stops, got, s.Text(), s.FinishReason, c.pieces, c.text, c.reason)
		}
	}
}
