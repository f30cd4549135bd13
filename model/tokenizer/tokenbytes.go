package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// TokenBytes returns the bytes one token adds to decoded text: byte-level and
// <0xNN> byte tokens give their raw bytes (possibly part of a UTF-8
// character, where Decode would show U+FFFD), other tokens what the decoder
// chain makes of them. first says the token opens the text, where decoders
// drop a leading space. Special tokens give their content; unknown ids nil.
func (t *Tokenizer) TokenBytes(id int, first bool) []byte {
	s, ok := t.idToToken(id)
	if !ok {
		return nil
	}
	if t.decoder == nil {
		if !first {
			s = " " + s
		}
		return []byte(s)
	}
	merged := false
	return []byte(rawDecode(t.decoder, s, first, &merged))
}

// rawDecode runs one token through the decoder chain keeping raw bytes.
// merged turns true once a decoder has joined the tokens into one text, after
// which Strip acts on the text's ends only.
func rawDecode(d decoder, s string, first bool, merged *bool) string {
	// one runs a per-token decoder on s at its position (index 0 or not).
	one := func(d decoder, open bool) string {
		if first {
			return d.decodeChain([]string{s}, open)[0]
		}
		return d.decodeChain([]string{"", s}, open)[1]
	}
	switch d := d.(type) {
	case decSequence:
		for _, x := range d {
			s = rawDecode(x, s, first, merged)
		}
		return s
	case decByteLevel:
		*merged = true
		return string(appendByteLevelDecoded(nil, s))
	case decByteFallback:
		if b, ok := parseByteToken(s); ok {
			return string([]byte{b})
		}
		return s
	case decFuse:
		*merged = true
		return s
	case decStrip:
		c := string(d.content)
		if !*merged || first {
			for k := 0; k < d.start && strings.HasPrefix(s, c); k++ {
				s = s[len(c):]
			}
		}
		if !*merged {
			for k := 0; k < d.stop && strings.HasSuffix(s, c); k++ {
				s = s[:len(s)-len(c)]
			}
		}
		return s
	case decMetaspace, decWordPiece:
		if !utf8.ValidString(s) {
			return s
		}
		return one(d, true)
	case decReplace, decBPE:
		return one(d, true)
	}
	return s
}
