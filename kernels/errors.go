package kernels

import "errors"

// Sentinel errors of the quantized-weight API; returned errors wrap them.
var (
	// ErrType: a tensor type roe cannot compute with.
	ErrType = errors.New("unsupported tensor type")
	// ErrSize: a row or matrix whose sizes disagree with its type.
	ErrSize = errors.New("wrong tensor size")
	// ErrRange: weights a type cannot represent (non-finite, or too large
	// for its f16 scales).
	ErrRange = errors.New("weight out of range")
)
