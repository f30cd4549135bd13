package tokenizer

import "errors"

// Sentinel errors. Errors returned by Load, FromJSON and FromGGUF wrap one of these, so callers can
// test with errors.Is; the message itself names the file and the offending component, e.g.
//
//	tokenizer.json: unsupported pre_tokenizer type "BertPreTokenizer"
var (
	// ErrUnsupported: the file uses a component type (normalizer, pre_tokenizer, model,
	// post_processor, decoder) or an option this package does not implement.
	ErrUnsupported = errors.New("tokenizer: unsupported component")
	// ErrMalformed: the file is not valid JSON or does not have the expected structure
	// (wrong field types, merges naming tokens that are not in the vocabulary, bad regex...).
	ErrMalformed = errors.New("tokenizer: malformed definition")
	// ErrNotFound: Load could not read tokenizer.json in the given directory.
	ErrNotFound = errors.New("tokenizer: tokenizer.json not found")
)

// LoadError is the error type returned by Load, FromJSON and FromGGUF.
type LoadError struct {
	File string // "tokenizer.json", "tokenizer_config.json" or "gguf" (or a path for Load)
	Msg  string // what is wrong, e.g. `unsupported pre_tokenizer type "BertPreTokenizer"`
	Err  error  // one of the sentinel errors above
}

func (e *LoadError) Error() string { return e.File + ": " + e.Msg }
func (e *LoadError) Unwrap() error { return e.Err }
