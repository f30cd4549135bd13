package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// GPT-2 byte-level alphabet: every byte maps to a printable rune.
var (
	byteToRune  [256]rune
	byteToStr   [256]string
	runeToByte  = map[rune]byte{}
	runeToByteA [324]int16 // fast path: all mapped runes are < 324; -1 when unmapped
)

func init() {
	n := 0
	for i := range runeToByteA {
		runeToByteA[i] = -1
	}
	for b := 0; b < 256; b++ {
		var r rune
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			r = rune(b)
		} else {
			r = rune(256 + n)
			n++
		}
		byteToRune[b] = r
		byteToStr[b] = string(r)
		runeToByte[r] = byte(b)
		runeToByteA[r] = int16(b)
	}
}

// byteLevelEncode maps every byte of s to its byte-level rune.
func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteToStr[s[i]])
	}
	return sb.String()
}

// utf8Lossy converts b to a string like Rust's String::from_utf8_lossy: every maximal
// invalid subpart (Unicode "substitution of maximal subparts") becomes one U+FFFD.
func utf8Lossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	i := 0
	for i < len(b) {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		// invalid: consume the maximal prefix of a valid sequence
		i += maximalSubpart(b[i:])
		sb.WriteString("\uFFFD")
	}
	return sb.String()
}

// maximalSubpart returns how many bytes at the start of b (which does not start with a
// valid UTF-8 sequence) form one maximal subpart to replace by a single U+FFFD (>= 1).
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 {
			if x < lo || x > hi {
				return n
			}
		} else if x < 0x80 || x > 0xBF {
			return n
		}
		n++
	}
	return n
}

// validString returns s with invalid UTF-8 replaced as Rust's from_utf8_lossy does.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return utf8Lossy([]byte(s))
}
