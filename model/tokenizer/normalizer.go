package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer transforms one piece of input text (the HF Normalizer, without alignments).
type normalizer interface {
	normalize(s string) string
}

type normSequence []normalizer

func (n normSequence) normalize(s string) string {
	for _, x := range n {
		s = x.normalize(s)
	}
	return s
}

type normPrepend struct{ prepend string }

func (n normPrepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prepend + s
}

type normReplace struct {
	pat     pattern
	content string
}

func (n normReplace) normalize(s string) string { return replaceAll(n.pat, s, n.content) }

type normUnicode struct{ form norm.Form }

func (n normUnicode) normalize(s string) string {
	// fast path: ASCII is invariant under every normalization form
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return n.form.String(s)
		}
	}
	return s
}

type normLowercase struct{}

func (normLowercase) normalize(s string) string { return lowercase(s) }

// lowercase is Rust's char::to_lowercase applied per char (full mapping, no final-sigma rule).
func lowercase(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if r == 0x130 { // İ -> i + combining dot above
			sb.WriteString("i\u0307")
			continue
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return sb.String()
}

type normStrip struct{ left, right bool }

func (n normStrip) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// normStripAccents drops combining marks (Mn, Mc, Me), like the library's StripAccents.
type normStripAccents struct{}

func (normStripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsMark(r) {
			return -1
		}
		return r
	}, s)
}

// normBert is the BertNormalizer.
type normBert struct {
	cleanText, chineseChars, stripAccents, lowercase bool
}

func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Cn, unicode.Co)
}

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func (n normBert) normalize(s string) string {
	if n.cleanText {
		var sb strings.Builder
		for _, r := range s {
			if r == 0 || r == 0xFFFD || isBertControl(r) {
				continue
			}
			if unicode.IsSpace(r) {
				sb.WriteByte(' ')
			} else {
				sb.WriteRune(r)
			}
		}
		s = sb.String()
	}
	if n.chineseChars {
		var sb strings.Builder
		for _, r := range s {
			if isChineseChar(r) {
				sb.WriteByte(' ')
				sb.WriteRune(r)
				sb.WriteByte(' ')
			} else {
				sb.WriteRune(r)
			}
		}
		s = sb.String()
	}
	if n.stripAccents { // BertNormalizer drops only non-spacing marks (Mn)
		s = strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Mn, r) {
				return -1
			}
			return r
		}, norm.NFD.String(s))
	}
	if n.lowercase {
		s = lowercase(s)
	}
	return s
}
