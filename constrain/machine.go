package constrain

import "sort"

// The automaton: a state is a set of alternative stacks (anyOf and key
// prefixes make it nondeterministic); a stack is a persistent linked list of
// frames, one per value being written, so stepping one byte copies only the
// top frame and states can share their lower frames.

// Phases of a frame, by kind.
const (
	rPre, rVal, rSuf, rDone = 0, 1, 2, 3 // root

	oStart, oOpen, oComma, oKey, oColon, oValue, oAfter = 0, 1, 2, 3, 4, 5, 6 // object, array

	sStart, sBody, sEsc, sHex, sUTF = 0, 1, 2, 3, 4 // string

	nStart, nMinus, nZero, nInt, nFrac0, nFrac, nExp0, nExpSign, nExp = 0, 1, 2, 3, 4, 5, 6, 7, 8 // number
)

const (
	maxIntDigits  = 16
	maxFracDigits = 16
	maxExpDigits  = 3
)

type frame struct {
	n  *node
	ph uint8
	ws uint8 // whitespace bytes in the current gap
	i  int32 // object: property; array: items so far; string: code points so far; literal: first candidate
	j  int32 // number: digits; string: pending bytes (hex digits, UTF-8 continuation); literal: end of candidates
	k  int32 // object: byte of the key; root and literal: byte position
}

type stack struct {
	f     frame
	up    *stack
	base  int32 // cost of the frames below
	depth int32
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func wsLimit(depth int32) uint8 { return uint8(min(1+2*depth, 33)) }

// dist is the length in bytes of the stack's shortest completion.
func (s *stack) dist() int { return add(int(s.base), rem(&s.f)) }

// rem is the length of the shortest completion of the top frame's value alone.
func rem(f *frame) int {
	n := f.n
	switch n.kind {
	case kRoot:
		switch f.ph {
		case rPre:
			return add(len(n.pre)-int(f.k), n.items.ml, len(n.suf))
		case rVal:
			return add(n.items.ml, len(n.suf))
		case rSuf:
			return len(n.suf) - int(f.k)
		}
		return 0
	case kObject:
		if len(n.props) == 0 {
			var ml int
			if n.addl != nil {
				ml = n.addl.ml
			}
			switch f.ph {
			case oStart:
				return 2
			case oOpen, oAfter:
				return 1
			case oComma:
				return add(2, 1, ml, 1)
			case oColon:
				return add(1, ml, 1)
			case oValue:
				return add(ml, 1)
			}
			return inf
		}
		switch f.ph {
		case oStart:
			return n.ml
		case oOpen:
			if n.firstReq[0] == len(n.props) {
				return 1
			}
			return add(n.emit[0], 1)
		case oComma:
			return add(n.emit[f.i], 1)
		case oKey:
			p := n.props[f.i]
			return add(len(p.key)-int(f.k), 1, p.n.ml, n.tail[f.i], 1)
		case oColon:
			return add(1, n.props[f.i].n.ml, n.tail[f.i], 1)
		case oValue:
			return add(n.props[f.i].n.ml, n.tail[f.i], 1)
		case oAfter:
			return add(n.tail[f.i], 1)
		}
		return inf
	case kArray:
		ml, need := n.items.ml, n.minItems-int(f.i)
		switch f.ph {
		case oStart:
			return n.ml
		case oOpen:
			if n.minItems == 0 {
				return 1
			}
			return add(mul(n.minItems, ml), n.minItems-1, 1)
		case oComma:
			return add(ml, mul(max(0, need-1), 1+ml), 1)
		case oAfter:
			return add(mul(max(0, need), 1+ml), 1)
		}
		return inf
	case kString:
		left := max(0, n.minLen-int(f.i))
		switch f.ph {
		case sStart:
			return n.ml
		case sBody:
			return 1 + left
		case sEsc:
			return 2 + max(0, left-1)
		case sHex:
			return int(4-f.j) + 1 + max(0, left-1)
		case sUTF:
			return int(f.j&15) + 1 + left
		}
		return inf
	case kNumber, kInteger:
		switch f.ph {
		case nZero, nInt, nFrac, nExp:
			return 0
		}
		return 1
	case kLiteral:
		return n.litRangeMin(int(f.i), int(f.j)) - int(f.k)
	}
	return inf
}

func (s *stack) with(f frame) *stack { return &stack{f: f, up: s.up, base: s.base, depth: s.depth} }

// push starts a value of n above up (whose frame is already past the value),
// one stack per alternative.
func push(up *stack, n *node, out []*stack) []*stack {
	if n.kind == kAnyOf {
		for _, a := range n.alts {
			out = push(up, a, out)
		}
		return out
	}
	f := frame{n: n}
	if n.kind == kLiteral {
		f.j = int32(len(n.lits))
	}
	return append(out, &stack{f: f, up: up, base: int32(min(up.dist(), inf)), depth: up.depth + 1})
}

// pushFeed starts a value of n above up and feeds it its first byte.
func pushFeed(up *stack, n *node, c byte, out []*stack) []*stack {
	if n.kind != kAnyOf {
		var one [1]*stack
		for _, s := range push(up, n, one[:0]) {
			out = step(s, c, out)
		}
		return out
	}
	for _, s := range push(up, n, nil) {
		out = step(s, c, out)
	}
	return out
}

// gap consumes one whitespace byte, within the gap's limit.
func gap(s *stack, out []*stack) []*stack {
	if s.f.ws >= wsLimit(s.depth) {
		return out
	}
	f := s.f
	f.ws++
	return append(out, s.with(f))
}

// step appends the stacks that s becomes after byte c (none: c is rejected).
func step(s *stack, c byte, out []*stack) []*stack {
	f := s.f
	n := f.n
	switch n.kind {
	case kRoot:
		return stepRoot(s, f, c, out)
	case kObject:
		if len(n.props) == 0 {
			return stepFree(s, f, c, out)
		}
		return stepObject(s, f, c, out)
	case kArray:
		return stepArray(s, f, c, out)
	case kString:
		return stepString(s, f, c, out)
	case kNumber, kInteger:
		return stepNumber(s, f, c, out)
	case kLiteral:
		return stepLiteral(s, f, c, out)
	}
	return out
}

func stepRoot(s *stack, f frame, c byte, out []*stack) []*stack {
	n := f.n
	switch f.ph {
	case rPre:
		if c != n.pre[f.k] {
			return out
		}
		f.k++
		if int(f.k) == len(n.pre) {
			f.ph, f.k = rVal, 0
		}
		return append(out, s.with(f))
	case rVal:
		if isWS(c) {
			return gap(s, out)
		}
		f.ws = 0
		if len(n.suf) > 0 {
			f.ph = rSuf
		} else {
			f.ph = rDone
		}
		return pushFeed(s.with(f), n.items, c, out)
	case rSuf:
		if c != n.suf[f.k] {
			return out
		}
		f.k++
		if int(f.k) == len(n.suf) {
			f.ph = rDone
		}
		return append(out, s.with(f))
	}
	return out
}

func stepObject(s *stack, f frame, c byte, out []*stack) []*stack {
	n := f.n
	P := int32(len(n.props))
	switch f.ph {
	case oStart:
		if c != '{' {
			return out
		}
		f.ph = oOpen
		return append(out, s.with(f))
	case oOpen, oComma:
		if isWS(c) {
			return gap(s, out)
		}
		if c == '}' && f.ph == oOpen && n.firstReq[0] == len(n.props) {
			return append(out, s.up)
		}
		if c != '"' {
			return out
		}
		from := f.i
		if f.ph == oOpen {
			from = 0
		}
		for j := from; j < P && j <= int32(n.firstReq[from]); j++ {
			out = append(out, s.with(frame{n: n, ph: oKey, i: j, k: 1}))
		}
		return out
	case oKey:
		key := n.props[f.i].key
		if c != key[f.k] {
			return out
		}
		f.k++
		if int(f.k) == len(key) {
			f.ph, f.k = oColon, 0
		}
		return append(out, s.with(f))
	case oColon:
		if isWS(c) {
			return gap(s, out)
		}
		if c != ':' {
			return out
		}
		f.ph, f.ws = oValue, 0
		return append(out, s.with(f))
	case oValue:
		if isWS(c) {
			return gap(s, out)
		}
		f.ph, f.ws = oAfter, 0
		return pushFeed(s.with(f), n.props[f.i].n, c, out)
	case oAfter:
		if isWS(c) {
			return gap(s, out)
		}
		switch c {
		case ',':
			if f.i+1 < P {
				f.ph, f.ws, f.i = oComma, 0, f.i+1
				return append(out, s.with(f))
			}
		case '}':
			if n.firstReq[f.i+1] == len(n.props) {
				return append(out, s.up)
			}
		}
	}
	return out
}

// stepFree steps an object without declared properties: any keys.
func stepFree(s *stack, f frame, c byte, out []*stack) []*stack {
	n := f.n
	switch f.ph {
	case oStart:
		if c != '{' {
			return out
		}
		f.ph = oOpen
		return append(out, s.with(f))
	case oOpen, oComma:
		if isWS(c) {
			return gap(s, out)
		}
		if c == '}' && f.ph == oOpen {
			return append(out, s.up)
		}
		if c != '"' || n.addl == nil {
			return out
		}
		f.ph, f.ws = oColon, 0
		return pushFeed(s.with(f), keyNode(n), c, out)
	case oColon:
		if isWS(c) {
			return gap(s, out)
		}
		if c != ':' {
			return out
		}
		f.ph, f.ws = oValue, 0
		return append(out, s.with(f))
	case oValue:
		if isWS(c) {
			return gap(s, out)
		}
		f.ph, f.ws = oAfter, 0
		return pushFeed(s.with(f), n.addl, c, out)
	case oAfter:
		if isWS(c) {
			return gap(s, out)
		}
		switch c {
		case ',':
			f.ph, f.ws = oComma, 0
			return append(out, s.with(f))
		case '}':
			return append(out, s.up)
		}
	}
	return out
}

// keyString is the node of a free object's keys: any string.
var keyString = &node{id: -1, kind: kString, maxLen: -1, maxItems: -1, ml: 2}

func keyNode(*node) *node { return keyString }

func stepArray(s *stack, f frame, c byte, out []*stack) []*stack {
	n := f.n
	limit := int32(max(n.minItems, n.maxItems))
	switch f.ph {
	case oStart:
		if c != '[' {
			return out
		}
		f.ph = oOpen
		return append(out, s.with(f))
	case oOpen, oComma:
		if isWS(c) {
			return gap(s, out)
		}
		if f.ph == oOpen {
			if c == ']' {
				if n.minItems == 0 {
					return append(out, s.up)
				}
				return out
			}
			if n.maxItems == 0 {
				return out
			}
		}
		f.ph, f.ws, f.i = oAfter, 0, min(f.i+1, limit)
		return pushFeed(s.with(f), n.items, c, out)
	case oAfter:
		if isWS(c) {
			return gap(s, out)
		}
		switch c {
		case ',':
			if n.maxItems < 0 || int(f.i) < n.maxItems {
				f.ph, f.ws = oComma, 0
				return append(out, s.with(f))
			}
		case ']':
			if int(f.i) >= n.minItems {
				return append(out, s.up)
			}
		}
	}
	return out
}

// UTF-8 continuation ranges, by the code in bits 4..7 of a string frame's j.
var contLo = [5]byte{0x80, 0xA0, 0x80, 0x90, 0x80}
var contHi = [5]byte{0xBF, 0xBF, 0x9F, 0xBF, 0x8F}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func stepString(s *stack, f frame, c byte, out []*stack) []*stack {
	n := f.n
	limit := int32(max(n.minLen, n.maxLen))
	full := n.maxLen >= 0 && int(f.i) >= n.maxLen
	switch f.ph {
	case sStart:
		if c != '"' {
			return out
		}
		f.ph = sBody
		return append(out, s.with(f))
	case sBody:
		switch {
		case c == '"':
			if int(f.i) >= n.minLen {
				return append(out, s.up)
			}
			return out
		case full || c < 0x20:
			return out
		case c == '\\':
			f.ph = sEsc
			return append(out, s.with(f))
		case c < 0x80:
			f.i = min(f.i+1, limit)
			return append(out, s.with(f))
		}
		var code, more int32
		switch {
		case c >= 0xC2 && c <= 0xDF:
			code, more = 0, 1
		case c == 0xE0:
			code, more = 1, 2
		case c == 0xED:
			code, more = 2, 2
		case c >= 0xE1 && c <= 0xEF:
			code, more = 0, 2
		case c == 0xF0:
			code, more = 3, 3
		case c >= 0xF1 && c <= 0xF3:
			code, more = 0, 3
		case c == 0xF4:
			code, more = 4, 3
		default:
			return out
		}
		f.ph, f.i, f.j = sUTF, min(f.i+1, limit), code<<4|more
		return append(out, s.with(f))
	case sEsc:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			f.ph, f.i = sBody, min(f.i+1, limit)
			return append(out, s.with(f))
		case 'u':
			f.ph, f.j = sHex, 0
			return append(out, s.with(f))
		}
		return out
	case sHex:
		if !isHex(c) || (f.j == 0 && (c == 'd' || c == 'D')) {
			return out
		}
		f.j++
		if f.j == 4 {
			f.ph, f.j, f.i = sBody, 0, min(f.i+1, limit)
		}
		return append(out, s.with(f))
	case sUTF:
		code, more := f.j>>4, f.j&15
		if c < contLo[code] || c > contHi[code] {
			return out
		}
		if more == 1 {
			f.ph, f.j = sBody, 0
		} else {
			f.j = more - 1
		}
		return append(out, s.with(f))
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func stepNumber(s *stack, f frame, c byte, out []*stack) []*stack {
	integer := f.n.kind == kInteger
	next := func(ph uint8, digits int32) []*stack {
		f.ph, f.j = ph, digits
		return append(out, s.with(f))
	}
	switch f.ph {
	case nStart, nMinus:
		switch {
		case c == '-' && f.ph == nStart:
			return next(nMinus, 0)
		case c == '0':
			return next(nZero, 0)
		case c >= '1' && c <= '9':
			return next(nInt, 1)
		}
		return out
	case nZero, nInt:
		if f.ph == nInt && isDigit(c) {
			if f.j < maxIntDigits {
				return next(nInt, f.j+1)
			}
			return out
		}
		if !integer {
			if c == '.' {
				return next(nFrac0, 0)
			}
			if c == 'e' || c == 'E' {
				return next(nExp0, 0)
			}
		}
	case nFrac0:
		if isDigit(c) {
			return next(nFrac, 1)
		}
		return out
	case nFrac:
		if isDigit(c) {
			if f.j < maxFracDigits {
				return next(nFrac, f.j+1)
			}
			return out
		}
		if c == 'e' || c == 'E' {
			return next(nExp0, 0)
		}
	case nExp0, nExpSign:
		if (c == '+' || c == '-') && f.ph == nExp0 {
			return next(nExpSign, 0)
		}
		if isDigit(c) {
			return next(nExp, 1)
		}
		return out
	case nExp:
		if isDigit(c) {
			if f.j < maxExpDigits {
				return next(nExp, f.j+1)
			}
			return out
		}
	}
	// The number is complete and c is not part of it: the parent reads c.
	if isDigit(c) {
		return out
	}
	return step(s.up, c, out)
}

func stepLiteral(s *stack, f frame, c byte, out []*stack) []*stack {
	lits := f.n.lits
	lo, hi, k := int(f.i), int(f.j), int(f.k)
	complete := len(lits[lo]) == k // sorted: a literal equal to the common prefix comes first
	a := lo + sort.Search(hi-lo, func(x int) bool { l := lits[lo+x]; return len(l) > k && l[k] >= c })
	b := lo + sort.Search(hi-lo, func(x int) bool { l := lits[lo+x]; return len(l) > k && l[k] > c })
	if a < b {
		f.i, f.j, f.k = int32(a), int32(b), int32(k+1)
		return append(out, s.with(f))
	}
	if complete {
		return step(s.up, c, out)
	}
	return out
}
