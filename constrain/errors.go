package constrain

import "errors"

// Sentinel errors; the messages name the keyword or value at fault.
var (
	// ErrUnsupported means the schema uses a keyword or form outside the supported subset.
	ErrUnsupported = errors.New("unsupported JSON Schema")
	// ErrSchema means the schema is not a valid JSON Schema (wrong types, malformed JSON).
	ErrSchema = errors.New("invalid JSON Schema")
	// ErrUnsatisfiable means no JSON value validates against the schema.
	ErrUnsatisfiable = errors.New("unsatisfiable JSON Schema")
	// ErrVocab means the vocabulary cannot spell what the schema needs one byte at a time.
	ErrVocab = errors.New("vocabulary unsuitable for constrained decoding")
	// ErrRejected means a token was accepted that the mask did not allow.
	ErrRejected = errors.New("token not allowed by the constraint")
)
