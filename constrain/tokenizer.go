package constrain

import "roe/model/tokenizer"

// FromTokenizer is the Vocab of a tokenizer for a model with size logits:
// special tokens are never generated under a constraint, stops end it.
func FromTokenizer(tok *tokenizer.Tokenizer, size int, stops []int) *Vocab {
	return NewVocab(size, func(id int) ([]byte, bool) {
		if tok.IsSpecial(id) {
			return nil, false
		}
		b := tok.TokenBytes(id, false)
		return b, len(b) > 0
	}, stops)
}
