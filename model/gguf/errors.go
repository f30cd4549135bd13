package gguf

import "errors"

// Sentinel errors. Every error of this package wraps one of them; the
// message names the file, key or tensor and the exact problem.
var (
	// ErrFormat reports a malformed or corrupt file (or, from Write, input
	// that would make one).
	ErrFormat = errors.New("malformed GGUF")
	// ErrUnsupported reports a valid GGUF file that uses something roe does
	// not read: a version, byte order, tensor type or nesting depth; the
	// message names it.
	ErrUnsupported = errors.New("unsupported GGUF feature")
	// ErrNotFound reports a tensor or metadata key that the file lacks.
	ErrNotFound = errors.New("not found")
	// ErrClosed reports use of a File's data after Close.
	ErrClosed = errors.New("gguf file closed")
)
