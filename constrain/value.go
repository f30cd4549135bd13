package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// value is a JSON value with object keys in document order (the declared
// order of properties is the order they are generated in).
type value struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false, 'z' null
	obj  []member
	arr  []value
	str  string
	num  json.Number
}

type member struct {
	key string
	val value
}

const maxParseDepth = 128

// parseJSON reads one JSON document, refusing trailing data and duplicate keys.
func parseJSON(b []byte) (value, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return value{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return value{}, fmt.Errorf("%w: data after the schema", ErrSchema)
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (value, error) {
	if depth > maxParseDepth {
		return value{}, fmt.Errorf("%w: nested deeper than %d", ErrUnsupported, maxParseDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return value{}, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			v := value{kind: 'o'}
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return value{}, fmt.Errorf("%w: %v", ErrSchema, err)
				}
				key := k.(string)
				if seen[key] {
					return value{}, fmt.Errorf("%w: duplicate key %q", ErrSchema, key)
				}
				seen[key] = true
				x, err := parseValue(dec, depth+1)
				if err != nil {
					return value{}, err
				}
				v.obj = append(v.obj, member{key, x})
			}
			_, err := dec.Token()
			if err != nil {
				return value{}, fmt.Errorf("%w: %v", ErrSchema, err)
			}
			return v, nil
		}
		v := value{kind: 'a'}
		for dec.More() {
			x, err := parseValue(dec, depth+1)
			if err != nil {
				return value{}, err
			}
			v.arr = append(v.arr, x)
		}
		if _, err := dec.Token(); err != nil {
			return value{}, fmt.Errorf("%w: %v", ErrSchema, err)
		}
		return v, nil
	case string:
		return value{kind: 's', str: t}, nil
	case json.Number:
		return value{kind: 'n', num: t}, nil
	case bool:
		if t {
			return value{kind: 't'}, nil
		}
		return value{kind: 'f'}, nil
	case nil:
		return value{kind: 'z'}, nil
	}
	return value{}, fmt.Errorf("%w: unexpected token", ErrSchema)
}

// appendJSON writes v compactly, keys in document order.
func (v value) appendJSON(b []byte) []byte {
	switch v.kind {
	case 'o':
		b = append(b, '{')
		for i, m := range v.obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.key)
			b = append(b, ':')
			b = m.val.appendJSON(b)
		}
		return append(b, '}')
	case 'a':
		b = append(b, '[')
		for i, x := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = x.appendJSON(b)
		}
		return append(b, ']')
	case 's':
		return appendString(b, v.str)
	case 'n':
		return append(b, v.num...)
	case 't':
		return append(b, "true"...)
	case 'f':
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

// appendString writes s as a JSON string: control characters, quote and
// backslash escaped, everything else as its UTF-8 bytes.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// isInteger reports whether a JSON number has an integral value (1.0 and 1e2
// do), from its digits: no big-number arithmetic on an exponent like 1e999999999.
func isInteger(n json.Number) bool {
	s := strings.TrimPrefix(string(n), "-")
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart)
	if hasExp {
		e, err := strconv.Atoi(expPart)
		if err != nil { // out of int range
			if strings.HasPrefix(expPart, "-") {
				return strings.Trim(digits, "0") == ""
			}
			return true
		}
		point = max(-1, min(point+e, len(digits)))
	}
	if point < 0 {
		point = 0
	}
	return strings.Trim(digits[point:], "0") == ""
}

// valid reports whether v validates against n (used to filter enum values).
func (n *node) valid(v value) bool {
	switch n.kind {
	case kAnyOf:
		for _, a := range n.alts {
			if a.valid(v) {
				return true
			}
		}
		return false
	case kLiteral:
		lit := v.appendJSON(nil)
		for _, l := range n.lits {
			if bytes.Equal(l, lit) {
				return true
			}
		}
		return false
	case kObject:
		if v.kind != 'o' {
			return false
		}
		have := map[string]bool{}
		for _, m := range v.obj {
			have[m.key] = true
			if p := n.prop(m.key); p != nil {
				if !p.n.valid(m.val) {
					return false
				}
			} else if n.addl == nil || !n.addl.valid(m.val) {
				return false
			}
		}
		for _, p := range n.props {
			if p.required && !have[p.name] {
				return false
			}
		}
		return true
	case kArray:
		if v.kind != 'a' || len(v.arr) < n.minItems || (n.maxItems >= 0 && len(v.arr) > n.maxItems) {
			return false
		}
		for _, x := range v.arr {
			if !n.items.valid(x) {
				return false
			}
		}
		return true
	case kString:
		if v.kind != 's' {
			return false
		}
		l := utf8.RuneCountInString(v.str)
		return l >= n.minLen && (n.maxLen < 0 || l <= n.maxLen)
	case kNumber:
		return v.kind == 'n'
	case kInteger:
		return v.kind == 'n' && isInteger(v.num)
	}
	return false
}

func (n *node) prop(name string) *prop {
	for i := range n.props {
		if n.props[i].name == name {
			return &n.props[i]
		}
	}
	return nil
}
