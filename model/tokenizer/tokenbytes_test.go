package tokenizer

import (
	"bytes"
	"os"
	"testing"
)

// Concatenated token bytes are the decoded text (past its first token, whose
// leading space a decoder may strip), for both embedded vocabularies.
func TestTokenBytes(t *testing.T) {
	for _, dir := range []string{"../../models/roe-base", "../../models/stories260K"} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{"Once upon a time, {\"a\": [1, 2.5e3, \"x\\n\"]} café ☃ 𝄞", "  two  spaces\n\nand\ttabs"} {
			ids := tok.Encode(text, false)
			var got []byte
			for i, id := range ids {
				b, ok := tok.TokenBytes(id)
				if !ok {
					t.Fatalf("%s: token %d has no bytes", dir, id)
				}
				if i > 0 {
					got = append(got, b...)
				}
			}
			first := tok.Decode(ids[:1], true)
			want := tok.Decode(ids, true)[len(first):]
			if !bytes.Equal(got, []byte(want)) {
				t.Errorf("%s: token bytes %q, decoded %q", dir, got, want)
			}
		}
		for _, id := range tok.SpecialIDs() {
			if _, ok := tok.TokenBytes(id); ok {
				t.Errorf("%s: special token %d has bytes", dir, id)
			}
		}
	}
}
