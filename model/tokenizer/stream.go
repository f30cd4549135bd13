package tokenizer

import "strings"

// StreamDecoder decodes ids one at a time, emitting only text that can no longer change:
// a multi-byte character split over several tokens is emitted once complete, and the
// concatenation of everything Next and Flush return equals Decode of all the ids.
//
// It keeps a small window of ids: the tokens of the previously emitted chunk (as context,
// so decoder rules that depend on the position, like Strip of the leading space, give the
// same text as a full Decode) plus the tokens not emitted yet. Text is held back while it
// ends with U+FFFD (an incomplete UTF-8 sequence may still be completed), for decoders
// with ByteFallback while the last token is a <0xNN> byte token, and for BPEDecoder (which
// decodes the last token differently) the last token is always held back.
//
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int
	prefix      string // decode of ids[:prefixIndex] (more tokens following)
	prefixIndex int
}

// NewStreamDecoder returns a decoder for one stream of ids.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

func (d *StreamDecoder) decode(ids []int, open bool) string {
	return d.t.decodeTokens(d.t.tokens(ids, d.skipSpecial), open)
}

// Next adds one id and returns the text that became complete with it ("" if none).
func (d *StreamDecoder) Next(id int) string {
	d.ids = append(d.ids, id)
	if d.t.byteFallbackDecoder {
		if s, ok := d.t.idToToken(id); ok {
			if _, isByte := parseByteToken(s); isByte && !(d.skipSpecial && d.t.special[s]) {
				return ""
			}
		}
	}
	upto := len(d.ids)
	if d.t.lastDependent {
		upto--
	}
	if upto <= d.prefixIndex {
		return ""
	}
	s := d.decode(d.ids[:upto], true)
	if len(s) <= len(d.prefix) || strings.HasSuffix(s, "\uFFFD") {
		return ""
	}
	out := d.newText(s)
	// the emitted chunk becomes the context for what follows
	ctx := d.ids[d.prefixIndex:upto]
	d.prefix = d.decode(ctx, true)
	d.ids = append(append(make([]int, 0, len(d.ids)-d.prefixIndex+8), ctx...), d.ids[upto:]...)
	d.prefixIndex = len(ctx)
	return out
}

func (d *StreamDecoder) newText(s string) string {
	if strings.HasPrefix(s, d.prefix) {
		return s[len(d.prefix):]
	}
	// Does not happen with the supported decoders; emit what differs.
	k := 0
	for k < len(s) && k < len(d.prefix) && s[k] == d.prefix[k] {
		k++
	}
	return s[k:]
}

// Flush returns whatever has not been emitted yet (an incomplete UTF-8 sequence comes out
// as U+FFFD) and resets the decoder for a new stream.
func (d *StreamDecoder) Flush() string {
	var out string
	if len(d.ids) > d.prefixIndex {
		out = d.newText(d.decode(d.ids, false))
	}
	d.ids, d.prefix, d.prefixIndex = d.ids[:0], "", 0
	return out
}
