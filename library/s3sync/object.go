package s3sync

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"roe/library"
	"roe/model/safetensors"
)

// objectMagic starts every expert object; the number is the format version.
const objectMagic = "roe-expert/1\n"

// maxHeader bounds the JSON header of an expert object.
const maxHeader = 64 << 20

// objectHeader is the JSON after the magic and its uint32 length; the
// tensors' bytes follow it in order, then the embeddings as float32
// little-endian [len(Instances), Dim].
type objectHeader struct {
	Manifest      library.Manifest   `json:"manifest"`
	AdapterConfig json.RawMessage    `json:"adapter_config"`
	Tensors       []objectTensor     `json:"tensors"`
	Instances     []library.Instance `json:"instances"` // without embeddings
}

type objectTensor struct {
	Name  string            `json:"name"`
	DType safetensors.DType `json:"dtype"`
	Shape []int             `json:"shape"`
	Size  int64             `json:"size"`
}

// encodeExpert serialises e (its embeddings all of e.Dim elements).
func encodeExpert(e *library.Expert) ([]byte, error) {
	h := objectHeader{Manifest: e.Manifest, AdapterConfig: json.RawMessage(e.AdapterConfig)}
	var size int
	for _, t := range e.Tensors {
		h.Tensors = append(h.Tensors, objectTensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Size: int64(len(t.Data))})
		size += len(t.Data)
	}
	for _, in := range e.Instances {
		if len(in.Embedding) != e.Dim {
			return nil, fmt.Errorf("%w: expert %s: a %d-dim embedding in a %d-dim expert", library.ErrInvalid, e.Name, len(in.Embedding), e.Dim)
		}
		in.Embedding = nil
		h.Instances = append(h.Instances, in)
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("%w: expert %s: %w", library.ErrInvalid, e.Name, err)
	}
	var b bytes.Buffer
	b.Grow(len(objectMagic) + 4 + len(hb) + size + 4*e.Dim*len(e.Instances))
	b.WriteString(objectMagic)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(hb))))
	b.Write(hb)
	for _, t := range e.Tensors {
		b.Write(t.Data)
	}
	var f [4]byte
	for _, in := range e.Instances {
		for _, v := range in.Embedding {
			binary.LittleEndian.PutUint32(f[:], math.Float32bits(v))
			b.Write(f[:])
		}
	}
	return b.Bytes(), nil
}

// decodeExpert parses an expert object; every length is checked against
// the bytes present (errors wrap library.ErrCorrupt). The library validates
// the content when it applies it.
func decodeExpert(key string, b []byte) (*library.Expert, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: object %s: %s", library.ErrCorrupt, key, fmt.Sprintf(format, a...))
	}
	if !bytes.HasPrefix(b, []byte(objectMagic)) {
		return nil, bad("not a roe expert object")
	}
	b = b[len(objectMagic):]
	if len(b) < 4 {
		return nil, bad("truncated header length")
	}
	n := int64(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > maxHeader || n > int64(len(b)) {
		return nil, bad("header of %d bytes, %d present", n, len(b))
	}
	var h objectHeader
	if err := json.Unmarshal(b[:n], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	b = b[n:]
	e := &library.Expert{Manifest: h.Manifest, AdapterConfig: []byte(h.AdapterConfig)}
	for _, t := range h.Tensors {
		if t.Size < 0 || t.Size > int64(len(b)) {
			return nil, bad("tensor %q of %d bytes, %d left", t.Name, t.Size, len(b))
		}
		e.Tensors = append(e.Tensors, safetensors.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: b[:t.Size:t.Size]})
		b = b[t.Size:]
	}
	dim := h.Manifest.Dim
	if dim < 0 || (len(h.Instances) > 0 && int64(len(b)) != 4*int64(dim)*int64(len(h.Instances))) || (len(h.Instances) == 0 && len(b) != 0) {
		return nil, bad("%d bytes of embeddings for %d instances of dim %d", len(b), len(h.Instances), dim)
	}
	for i, in := range h.Instances {
		in.Embedding = make([]float32, dim)
		for j := range in.Embedding {
			in.Embedding[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(i*dim+j):]))
		}
		e.Instances = append(e.Instances, in)
	}
	return e, nil
}
