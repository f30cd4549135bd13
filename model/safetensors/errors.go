package safetensors

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (header
// problems also wrap ErrHeader), so callers can use errors.Is while the
// message itself names the file and the exact problem.
var (
	// ErrHeader reports a malformed or invalid header; every header
	// validation error wraps it, together with a more specific sentinel
	// where one applies.
	ErrHeader = errors.New("invalid safetensors header")
	// ErrTruncated reports a file too short for its header or its data.
	ErrTruncated = errors.New("truncated safetensors file")
	// ErrOverlap reports two tensors whose data ranges overlap.
	ErrOverlap = errors.New("overlapping tensors")
	// ErrDType reports an unknown dtype, or a dtype the requested
	// conversion does not support.
	ErrDType = errors.New("unsupported dtype")
	// ErrShape reports a negative dimension, an overflowing element count,
	// or a byte size that does not match the shape.
	ErrShape = errors.New("invalid shape")
	// ErrOffsets reports data_offsets that are malformed or have begin > end.
	ErrOffsets = errors.New("invalid data_offsets")
	// ErrDuplicate reports a key that appears twice (tensor name, metadata
	// key, weight_map entry).
	ErrDuplicate = errors.New("duplicate key")
	// ErrMetadata reports a __metadata__ entry that is not string→string.
	ErrMetadata = errors.New("invalid metadata")
	// ErrNotFound reports a tensor or file that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrIndex reports an invalid sharded index (model.safetensors.index.json).
	ErrIndex = errors.New("invalid safetensors index")
	// ErrRange reports an integer value that does not fit the requested type.
	ErrRange = errors.New("value out of range")
	// ErrClosed reports use of a File or Set after Close.
	ErrClosed = errors.New("safetensors file closed")
)

// formatError is a header validation error: its message is
// "file: tensor "name": problem" and it unwraps to its kind and ErrHeader.
type formatError struct {
	file   string // file name for messages; empty when parsing a bare header
	tensor string // tensor name, if the problem belongs to one tensor
	msg    string
	kind   error // specific sentinel, or nil
}

func (e *formatError) Error() string {
	s := ""
	if e.file != "" {
		s = e.file + ": "
	}
	if e.tensor != "" {
		s += "tensor " + quote(e.tensor) + ": "
	}
	return s + e.msg
}

// Unwrap lets errors.Is match both the specific kind and ErrHeader.
func (e *formatError) Unwrap() []error {
	if e.kind == nil || e.kind == ErrHeader {
		return []error{ErrHeader}
	}
	return []error{e.kind, ErrHeader}
}
