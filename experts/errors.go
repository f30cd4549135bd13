package experts

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound reports an expert or model name the catalog does not serve.
	ErrNotFound = errors.New("experts: not found")
	// ErrInvalid reports a request or an expert that cannot be served as given.
	ErrInvalid = errors.New("experts: invalid")
	// ErrReserved reports an expert name that would shadow a model id (auto or the base model).
	ErrReserved = errors.New("experts: reserved name")
	// ErrBusy reports that every embedding slot is taken: retry later.
	ErrBusy = errors.New("experts: too many concurrent embeddings")
	// ErrOtherBase reports experts trained on another base model than the one served.
	ErrOtherBase = errors.New("experts: trained on another base model")
)

// FieldError is an ErrInvalid (or another sentinel) caused by one request
// field, named by its JSON path (routing.queries, experts[1].weight).
type FieldError struct {
	Field string
	Err   error // a sentinel of this package
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }
func (e *FieldError) Unwrap() error { return e.Err }

// invalid is an ErrInvalid naming field.
func invalid(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: ErrInvalid, Msg: fmt.Sprintf(format, a...)}
}

// notFound is an ErrNotFound naming field.
func notFound(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: ErrNotFound, Msg: fmt.Sprintf(format, a...)}
}
