package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder is the HF Decoder::decode_chain: tokens in, tokens out; the final text is the
// concatenation of the output.
type decoder interface {
	decodeChain(tokens []string, open bool) []string
}

type decSequence []decoder

func (d decSequence) decodeChain(t []string, open bool) []string {
	for _, x := range d {
		t = x.decodeChain(t, open)
	}
	return t
}

// decByteLevel maps byte-level chars back to bytes; all tokens become one string.
type decByteLevel struct{}

func (decByteLevel) decodeChain(tokens []string, open bool) []string {
	n := 0
	for _, t := range tokens {
		n += len(t)
	}
	buf := make([]byte, 0, n)
	for _, t := range tokens {
		buf = appendByteLevelDecoded(buf, t)
	}
	return []string{utf8Lossy(buf)}
}

// appendByteLevelDecoded appends the bytes of one byte-level token, or the token itself
// when one of its chars is not in the byte-level alphabet.
func appendByteLevelDecoded(buf []byte, t string) []byte {
	start := len(buf)
	for _, r := range t {
		if r >= 0 && int(r) < len(runeToByteA) && runeToByteA[r] >= 0 {
			buf = append(buf, byte(runeToByteA[r]))
			continue
		}
		return append(buf[:start], t...)
	}
	return buf
}

type decByteFallback struct{}

func (decByteFallback) decodeChain(tokens []string, open bool) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type decFuse struct{}

func (decFuse) decodeChain(tokens []string, open bool) []string {
	return []string{strings.Join(tokens, "")}
}

type decStrip struct {
	content     rune
	start, stop int
}

func (d decStrip) decodeChain(tokens []string, open bool) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		chars := []rune(t)
		startCut := 0
		for k := 0; k < d.start && k < len(chars); k++ {
			if chars[k] != d.content {
				break
			}
			startCut = k + 1
		}
		stopCut := len(chars)
		for k := 0; k < d.stop; k++ {
			idx := len(chars) - k - 1
			if idx < 0 || chars[idx] != d.content {
				break
			}
			stopCut = idx
		}
		if stopCut < startCut {
			stopCut = startCut
		}
		out[i] = string(chars[startCut:stopCut])
	}
	return out
}

type decReplace struct {
	pat     pattern
	content string
}

func (d decReplace) decodeChain(tokens []string, open bool) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = replaceAll(d.pat, t, d.content)
	}
	return out
}

type decMetaspace struct {
	replacement rune
	prepend     bool // prepend_scheme != never
}

func (d decMetaspace) decodeChain(tokens []string, open bool) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var sb strings.Builder
		for _, c := range t {
			if c == d.replacement {
				if i == 0 && d.prepend {
					continue
				}
				sb.WriteByte(' ')
			} else {
				sb.WriteRune(c)
			}
		}
		out[i] = sb.String()
	}
	return out
}

type decWordPiece struct {
	prefix  string
	cleanup bool
}

func wpCleanup(s string) string {
	// the library applies the replacements one after the other
	for _, p := range [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}

func (d decWordPiece) decodeChain(tokens []string, open bool) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i != 0 {
			if d.prefix != "" && strings.HasPrefix(t, d.prefix) {
				t = strings.Replace(t, d.prefix, "", 1)
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = wpCleanup(t)
		}
		out[i] = t
	}
	return out
}

type decBPE struct{ suffix string }

func (d decBPE) decodeChain(tokens []string, open bool) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 && !open {
			rep = ""
		}
		if d.suffix != "" {
			t = strings.ReplaceAll(t, d.suffix, rep)
		}
		out[i] = t
	}
	return out
}

// containsDecoder reports whether the chain has a decoder for which f is true.
func containsDecoder(d decoder, f func(decoder) bool) bool {
	if f(d) {
		return true
	}
	if x, ok := d.(decSequence); ok {
		for _, y := range x {
			if containsDecoder(y, f) {
				return true
			}
		}
	}
	return false
}
