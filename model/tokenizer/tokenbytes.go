package tokenizer

import "strings"

// TokenBytes returns the bytes that token id adds to decoded text in the middle
// of a text (decoders may strip a leading space at the very start). ok is false
// for special tokens and unknown ids, which decode to no text, and for tokens
// that decode to nothing. Constrained decoding walks these bytes.
func (t *Tokenizer) TokenBytes(id int) (b []byte, ok bool) {
	s, ok := t.idToToken(id)
	if !ok || t.special[s] {
		return nil, false
	}
	if t.byteFallbackDecoder {
		if c, isByte := parseByteToken(s); isByte {
			return []byte{c}, true
		}
	}
	if t.decoder != nil && containsDecoder(t.decoder, func(d decoder) bool { _, ok := d.(decByteLevel); return ok }) {
		// Byte-level decoding ends in a lossy UTF-8 conversion: take the raw bytes.
		b = appendByteLevelDecoded(nil, s)
		return b, len(b) > 0
	}
	// Decode after a reference token, so that position-dependent rules (a
	// stripped leading space, the first metaspace) act on the reference only.
	ref, ok := t.referenceToken()
	if !ok {
		return nil, false
	}
	base := t.decodeTokens([]string{ref}, true)
	full := t.decodeTokens([]string{ref, s}, true)
	rest, ok := strings.CutPrefix(full, base)
	if !ok || rest == "" {
		return nil, false
	}
	return []byte(rest), true
}

// referenceToken is a plain vocabulary token that decodes to some text on its own.
func (t *Tokenizer) referenceToken() (string, bool) {
	for _, want := range []string{"a", "e", "x"} {
		if id, ok := t.model.vocab[want]; ok && t.hasR[id] {
			return want, true
		}
	}
	for id, s := range t.vocabR {
		if !t.hasR[id] || t.special[s] {
			continue
		}
		if _, isByte := parseByteToken(s); isByte {
			continue
		}
		if t.decodeTokens([]string{s}, true) != "" {
			return s, true
		}
	}
	return "", false
}
