package retriever

import "errors"

// Sentinel errors; wrapped with context by the functions that return them.
var (
	// ErrDim means a vector's length differs from the index's dimension.
	ErrDim = errors.New("dimension mismatch")
	// ErrInput means an argument is invalid: no rows, mismatched texts, k < 1, an empty name.
	ErrInput = errors.New("invalid input")
	// ErrNonFinite means a vector holds NaN or ±Inf.
	ErrNonFinite = errors.New("non-finite value")
	// ErrExists means Add was given an expert name the index already holds.
	ErrExists = errors.New("expert already indexed")
	// ErrNormalization means an unknown Normalization value.
	ErrNormalization = errors.New("unknown normalization")
	// ErrAggregation means an unknown Aggregation value.
	ErrAggregation = errors.New("unknown aggregation")
	// ErrEmbed means the embedder could not embed a text.
	ErrEmbed = errors.New("embed")
	// ErrLexical means the bleve lexical index failed.
	ErrLexical = errors.New("lexical index")
)
