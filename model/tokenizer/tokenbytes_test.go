package tokenizer

import (
	"bytes"
	"testing"
)

// The bytes of each token, in order, are the decoded text.
func TestTokenBytes(t *testing.T) {
	corpus := readCorpus(t)
	for _, v := range vocabCases() {
		t.Run(v.name, func(t *testing.T) {
			tok := loadVocab(t, v)
			checked := 0
			for _, text := range corpus {
				ids := tok.Encode(text, false)
				want := tok.Decode(ids, false)
				var got []byte
				for i, id := range ids {
					got = append(got, tok.TokenBytes(id, i == 0)...)
				}
				if tok.lastDependent {
					continue // BPEDecoder renders the last token's suffix differently
				}
				if !bytes.Equal([]byte(utf8Lossy(got)), []byte(want)) {
					t.Errorf("%q:\n got %q\nwant %q", trunc(text), got, want)
					continue
				}
				checked++
			}
			if checked == 0 && !tok.lastDependent {
				t.Error("no text checked")
			}
		})
	}
}
