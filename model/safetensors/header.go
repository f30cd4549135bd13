package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// MaxHeaderSize caps the JSON header length (the Hugging Face library uses
// the same 100 MB limit) so that a corrupt length cannot make us allocate
// gigabytes before anything is validated.
const MaxHeaderSize = 100_000_000

// TensorInfo describes one tensor of a file; Begin and End are byte offsets
// relative to the start of the data buffer.
type TensorInfo struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// Numel returns the number of elements (1 for a scalar with shape []).
func (t TensorInfo) Numel() int64 {
	n, _ := numel(t.Shape) // validated at parse time, cannot overflow
	return n
}

// Size returns the tensor's size in bytes.
func (t TensorInfo) Size() int64 { return t.End - t.Begin }

// clone returns t with its own copy of Shape, so callers cannot alter ours.
func (t TensorInfo) clone() TensorInfo {
	t.Shape = append([]int(nil), t.Shape...)
	return t
}

// ParseHeader validates and parses a safetensors header. b holds the first
// bytes of the file (at least 8+N; more is ignored) and fileSize is the size
// of the whole file. It returns the tensors sorted by name, the
// __metadata__ map (never nil) and the absolute offset of the data buffer.
// It is pure and never panics, whatever b holds.
func ParseHeader(b []byte, fileSize int64) (infos []TensorInfo, metadata map[string]string, dataStart int64, err error) {
	return parseHeader("", b, fileSize)
}

// parseHeader is ParseHeader with a file name for error messages.
func parseHeader(file string, b []byte, fileSize int64) ([]TensorInfo, map[string]string, int64, error) {
	fail := func(kind error, tensor, format string, args ...any) ([]TensorInfo, map[string]string, int64, error) {
		return nil, nil, 0, &formatError{file: file, tensor: tensor, msg: fmt.Sprintf(format, args...), kind: kind}
	}
	if fileSize < 8 || len(b) < 8 {
		n := fileSize
		if int64(len(b)) < n {
			n = int64(len(b))
		}
		return fail(ErrTruncated, "", "file is %d bytes, shorter than the 8-byte header length", n)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return fail(ErrHeader, "", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > fileSize-8 {
		return fail(ErrTruncated, "", "header length %d past end of file (%d bytes)", n, fileSize)
	}
	if uint64(len(b)-8) < n {
		return fail(ErrTruncated, "", "header cut: need %d bytes, have %d", n, len(b)-8)
	}
	if n < 2 {
		return fail(ErrHeader, "", "header length %d too small for a JSON object", n)
	}
	dataStart := 8 + int64(n)
	dataSize := fileSize - dataStart

	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(b[8:dataStart]))}
	p.dec.UseNumber()
	raw, metadata, kind, tensor, msg := p.parse()
	if msg != "" {
		return fail(kind, tensor, "%s", msg)
	}

	infos := make([]TensorInfo, 0, len(raw))
	for _, r := range raw {
		if !r.hasDType || !r.hasShape || !r.hasOffsets {
			var missing string
			switch {
			case !r.hasDType:
				missing = "dtype"
			case !r.hasShape:
				missing = "shape"
			default:
				missing = "data_offsets"
			}
			return fail(ErrHeader, r.name, "missing %q", missing)
		}
		size := r.dtype.Size()
		if size == 0 {
			return fail(ErrDType, r.name, "unknown dtype %q", string(r.dtype))
		}
		for _, d := range r.shape {
			if d < 0 {
				return fail(ErrShape, r.name, "negative dimension in shape %v", r.shape)
			}
		}
		begin, end := r.offsets[0], r.offsets[1]
		if begin > end {
			return fail(ErrOffsets, r.name, "data_offsets [%d %d] has begin > end", begin, end)
		}
		if end > dataSize {
			return fail(ErrTruncated, r.name, "data_offsets [%d %d] past end of data (%d bytes)", begin, end, dataSize)
		}
		want, ok := nbytes(r.shape, size)
		if !ok {
			return fail(ErrShape, r.name, "shape %v overflows", r.shape)
		}
		if want != end-begin {
			return fail(ErrShape, r.name, "shape %v of %s needs %d bytes, data_offsets [%d %d] hold %d", r.shape, r.dtype, want, begin, end, end-begin)
		}
		infos = append(infos, TensorInfo{Name: r.name, DType: r.dtype, Shape: r.shape, Begin: begin, End: end})
	}

	// Overlap check: sort by offset and compare each tensor with the
	// furthest end seen so far. Empty tensors occupy no bytes and cannot
	// overlap anything, so they are skipped.
	byOff := make([]int, len(infos))
	for i := range byOff {
		byOff[i] = i
	}
	sort.Slice(byOff, func(i, j int) bool {
		a, b := infos[byOff[i]], infos[byOff[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var maxEnd int64
	prev := -1
	for _, i := range byOff {
		t := infos[i]
		if t.Begin == t.End {
			continue
		}
		if prev >= 0 && t.Begin < maxEnd {
			q := infos[prev]
			return fail(ErrOverlap, t.Name, "data_offsets [%d %d] overlap tensor %q [%d %d]", t.Begin, t.End, q.Name, q.Begin, q.End)
		}
		if t.End > maxEnd {
			maxEnd, prev = t.End, i
		}
	}

	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, metadata, dataStart, nil
}

// rawTensor is one header entry before semantic validation.
type rawTensor struct {
	name                           string
	dtype                          DType
	shape                          []int
	offsets                        [2]int64
	hasDType, hasShape, hasOffsets bool
}

// headerParser walks the header with json.Decoder tokens rather than
// json.Unmarshal, because Unmarshal silently keeps the last of duplicate
// keys, and a header with two entries for one name is ambiguous.
type headerParser struct {
	dec *json.Decoder
}

// parse returns the raw entries and metadata, or a problem (kind, tensor,
// msg) with msg non-empty.
func (p *headerParser) parse() (raw []rawTensor, metadata map[string]string, kind error, tensor, msg string) {
	metadata = map[string]string{}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, nil, ErrHeader, "", "invalid JSON: " + jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, ErrHeader, "", fmt.Sprintf("header is not a JSON object (starts with %s)", describe(tok))
	}
	seen := map[string]bool{}
	sawMeta := false
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, nil, ErrHeader, "", "invalid JSON: " + jsonErr(err)
		}
		name, ok := tok.(string)
		if !ok { // cannot happen for valid JSON, kept for safety
			return nil, nil, ErrHeader, "", "invalid JSON: object key is not a string"
		}
		if name == "__metadata__" {
			if sawMeta {
				return nil, nil, ErrDuplicate, "", `duplicate key "__metadata__"`
			}
			sawMeta = true
			if kind, msg := p.metadata(metadata); msg != "" {
				return nil, nil, kind, "", msg
			}
			continue
		}
		if seen[name] {
			return nil, nil, ErrDuplicate, name, "duplicate tensor name"
		}
		seen[name] = true
		r, kind, msg := p.tensor(name)
		if msg != "" {
			return nil, nil, kind, name, msg
		}
		raw = append(raw, r)
	}
	if _, err := p.dec.Token(); err != nil { // the closing '}'
		return nil, nil, ErrHeader, "", "invalid JSON: " + jsonErr(err)
	}
	// Only whitespace (the spaces padding the header) may follow.
	if tok, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, ErrHeader, "", "invalid JSON after the header object: " + jsonErr(err)
		}
		return nil, nil, ErrHeader, "", fmt.Sprintf("trailing data after the header object (%s)", describe(tok))
	}
	return raw, metadata, nil, "", ""
}

// metadata reads the __metadata__ value into m; it must be an object of
// strings (or null, which the Rust reference accepts as "no metadata").
func (p *headerParser) metadata(m map[string]string) (kind error, msg string) {
	tok, err := p.dec.Token()
	if err != nil {
		return ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	if tok == nil {
		return nil, ""
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return ErrMetadata, fmt.Sprintf("__metadata__ is %s, want an object of strings", describe(tok))
	}
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return ErrHeader, "invalid JSON: " + jsonErr(err)
		}
		k, _ := tok.(string)
		if _, dup := m[k]; dup {
			return ErrDuplicate, fmt.Sprintf("__metadata__: duplicate key %q", k)
		}
		tok, err = p.dec.Token()
		if err != nil {
			return ErrHeader, "invalid JSON: " + jsonErr(err)
		}
		v, ok := tok.(string)
		if !ok {
			return ErrMetadata, fmt.Sprintf("__metadata__[%q] is %s, want a string", k, describe(tok))
		}
		m[k] = v
	}
	if _, err := p.dec.Token(); err != nil {
		return ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	return nil, ""
}

// tensor reads one tensor entry object. Unknown fields are skipped, like the
// reference implementation does; known fields may appear only once.
func (p *headerParser) tensor(name string) (r rawTensor, kind error, msg string) {
	r.name = name
	tok, err := p.dec.Token()
	if err != nil {
		return r, ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return r, ErrHeader, fmt.Sprintf("entry is %s, want an object", describe(tok))
	}
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return r, ErrHeader, "invalid JSON: " + jsonErr(err)
		}
		field, _ := tok.(string)
		switch field {
		case "dtype":
			if r.hasDType {
				return r, ErrDuplicate, `duplicate field "dtype"`
			}
			r.hasDType = true
			tok, err := p.dec.Token()
			if err != nil {
				return r, ErrHeader, "invalid JSON: " + jsonErr(err)
			}
			s, ok := tok.(string)
			if !ok {
				return r, ErrDType, fmt.Sprintf("dtype is %s, want a string", describe(tok))
			}
			r.dtype = DType(s)
		case "shape":
			if r.hasShape {
				return r, ErrDuplicate, `duplicate field "shape"`
			}
			r.hasShape = true
			vals, kind, msg := p.intArray("shape", ErrShape)
			if msg != "" {
				return r, kind, msg
			}
			r.shape = make([]int, len(vals))
			for i, v := range vals {
				if int64(int(v)) != v { // 32-bit platforms
					return r, ErrShape, fmt.Sprintf("shape dimension %d too large", v)
				}
				r.shape[i] = int(v)
			}
		case "data_offsets":
			if r.hasOffsets {
				return r, ErrDuplicate, `duplicate field "data_offsets"`
			}
			r.hasOffsets = true
			vals, kind, msg := p.intArray("data_offsets", ErrOffsets)
			if msg != "" {
				return r, kind, msg
			}
			if len(vals) != 2 {
				return r, ErrOffsets, fmt.Sprintf("data_offsets has %d values, want 2", len(vals))
			}
			if vals[0] < 0 || vals[1] < 0 {
				return r, ErrOffsets, fmt.Sprintf("negative data_offsets %v", vals)
			}
			r.offsets = [2]int64{vals[0], vals[1]}
		default:
			var skip json.RawMessage
			if err := p.dec.Decode(&skip); err != nil {
				return r, ErrHeader, "invalid JSON: " + jsonErr(err)
			}
		}
	}
	if _, err := p.dec.Token(); err != nil {
		return r, ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	return r, nil, ""
}

// intArray reads a JSON array of integers (no fractions or exponents).
func (p *headerParser) intArray(what string, kind error) ([]int64, error, string) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, kind, fmt.Sprintf("%s is %s, want an array of integers", what, describe(tok))
	}
	var vals []int64
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, ErrHeader, "invalid JSON: " + jsonErr(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, kind, fmt.Sprintf("%s contains %s, want an integer", what, describe(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, kind, fmt.Sprintf("%s contains %s, not a 64-bit integer", what, num)
		}
		if len(vals) >= 1<<16 { // no real tensor has that many dimensions
			return nil, kind, fmt.Sprintf("%s has too many values", what)
		}
		vals = append(vals, v)
	}
	if _, err := p.dec.Token(); err != nil {
		return nil, ErrHeader, "invalid JSON: " + jsonErr(err)
	}
	return vals, nil, ""
}

// describe names a JSON token's kind for error messages.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return "'" + v.String() + "'"
	case string:
		return "a string"
	case json.Number:
		return "a number (" + string(v) + ")"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", tok)
}

// jsonErr turns a decoder error into text; io.EOF means the JSON stopped early.
func jsonErr(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "unexpected end of JSON"
	}
	return err.Error()
}
