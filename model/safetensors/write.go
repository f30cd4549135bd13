package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"roe/internal/atomicfile"
	"sort"
	"strconv"
)

// Tensor is a tensor to write: Data holds its little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// F32Tensor builds an F32 tensor from v.
func F32Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// BF16Tensor builds a BF16 tensor from v, rounding to nearest even.
func BF16Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], F32ToBF16(x))
	}
	return Tensor{Name: name, DType: BF16, Shape: append([]int(nil), shape...), Data: b}
}

// F16Tensor builds an F16 tensor from v, rounding to nearest even.
func F16Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], F32ToF16(x))
	}
	return Tensor{Name: name, DType: F16, Shape: append([]int(nil), shape...), Data: b}
}

// I32Tensor builds an I32 tensor from v.
func I32Tensor(name string, shape []int, v []int32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return Tensor{Name: name, DType: I32, Shape: append([]int(nil), shape...), Data: b}
}

// Encode writes tensors and metadata in safetensors format. Everything is
// validated before the first byte is written, so an invalid tensor never
// produces partial output.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr, order, err := buildHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(hdr)))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, i := range order {
		if _, err := w.Write(tensors[i].Data); err != nil {
			return err
		}
	}
	return nil
}

// buildHeader validates the tensors and returns the padded JSON header and
// the order in which their data follows.
func buildHeader(tensors []Tensor, metadata map[string]string) ([]byte, []int, error) {
	seen := map[string]bool{}
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, nil, fmt.Errorf("safetensors: invalid tensor name %q: %w", t.Name, ErrHeader)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", t.Name, ErrDuplicate)
		}
		seen[t.Name] = true
		size := t.DType.Size()
		if size == 0 {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q: %w", t.Name, string(t.DType), ErrDType)
		}
		want, ok := nbytes(t.Shape, size)
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: invalid shape %v: %w", t.Name, t.Shape, ErrShape)
		}
		if want != int64(len(t.Data)) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, data has %d: %w",
				t.Name, t.Shape, t.DType, want, len(t.Data), ErrShape)
		}
	}

	// Data order as in the Hugging Face library: larger elements first,
	// then by name, so that each tensor starts at a multiple of its
	// element size (the header is padded to 8 bytes).
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := tensors[order[a]], tensors[order[b]]
		if sa, sb := ta.DType.Size(), tb.DType.Size(); sa != sb {
			return sa > sb
		}
		return ta.Name < tb.Name
	})
	offsets := make([][2]int64, len(tensors))
	var off int64
	for _, i := range order {
		offsets[i] = [2]int64{off, off + int64(len(tensors[i].Data))}
		off += int64(len(tensors[i].Data))
	}

	// Keys in sorted order, __metadata__ first (omitted when empty).
	byName := append([]int(nil), order...)
	sort.Slice(byName, func(a, b int) bool { return tensors[byName[a]].Name < tensors[byName[b]].Name })
	var buf bytes.Buffer
	buf.WriteByte('{')
	if len(metadata) > 0 {
		buf.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(&buf, k)
			buf.WriteByte(':')
			writeJSONString(&buf, metadata[k])
		}
		buf.WriteByte('}')
	}
	for n, i := range byName {
		if n > 0 || len(metadata) > 0 {
			buf.WriteByte(',')
		}
		t := tensors[i]
		writeJSONString(&buf, t.Name)
		buf.WriteString(`:{"dtype":`)
		writeJSONString(&buf, string(t.DType))
		buf.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&buf, `],"data_offsets":[%d,%d]}`, offsets[i][0], offsets[i][1])
	}
	buf.WriteByte('}')
	// Pad with spaces to a multiple of 8, as the Hugging Face library does.
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	if buf.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit: %w", buf.Len(), MaxHeaderSize, ErrHeader)
	}
	return buf.Bytes(), order, nil
}

// writeJSONString writes s as a JSON string without HTML escaping (the
// Hugging Face library writes '<', '>' and '&' as is).
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)               // cannot fail for a string
	buf.Truncate(buf.Len() - 1) // drop Encode's newline
}

// Write writes a safetensors file atomically: into a temporary file in the
// same folder, fsync'ed, then renamed over path, so readers see either the
// old file or the complete new one, never a half-written file.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	// Validate first so a bad tensor does not even create the temp file.
	if _, _, err := buildHeader(tensors, metadata); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}
