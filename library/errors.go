package library

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers can use errors.Is, while the message names the expert and the exact
// problem.
var (
	// ErrNotFound reports an expert name that is not in the library.
	ErrNotFound = errors.New("expert not found")
	// ErrExists reports an Add whose name is already taken.
	ErrExists = errors.New("expert already exists")
	// ErrFingerprint reports an expert trained on a different base model
	// than the one the library serves.
	ErrFingerprint = errors.New("base model fingerprint mismatch")
	// ErrCorrupt reports stored data that fails its checksum or cannot be
	// decoded; the message names the key (chunk) that is bad.
	ErrCorrupt = errors.New("library data corrupt")
	// ErrInvalid reports an expert or import folder that cannot be stored as
	// given (bad name, kind, tensors, instances or embeddings).
	ErrInvalid = errors.New("invalid expert")
	// ErrClosed reports use of a Library after Close.
	ErrClosed = errors.New("library closed")
	// ErrNotEmpty reports a Restore into a library that already holds data.
	ErrNotEmpty = errors.New("library not empty")
	// ErrUnavailable reports a write that the library's Remote (the shared
	// store it writes through) could not take now; nothing was stored.
	ErrUnavailable = errors.New("library store unavailable")
)
