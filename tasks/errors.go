package tasks

import "errors"

// ErrBadTemplate marks a template file or template that cannot be parsed or rendered.
var ErrBadTemplate = errors.New("tasks: bad template")

// ErrMalformedData marks a dataset file that cannot be parsed; the wrapping error names the file and line.
var ErrMalformedData = errors.New("tasks: malformed dataset")

// ErrNoEvalItems reports that nothing could be scored.
var ErrNoEvalItems = errors.New("tasks: no example has answer choices that include its target")

// ErrNoTarget reports that a template yields no target for an example (promptsource's apply
// returns a single part, or an empty target): callers skip that example for that template.
var ErrNoTarget = errors.New("tasks: template gives no target for this example")

// ErrUnknownTask reports a task name with no known promptsource templates.
var ErrUnknownTask = errors.New("tasks: unknown task")

// ErrEmpty reports a prompt or target that tokenizes to nothing.
var ErrEmpty = errors.New("tasks: empty prompt or target")
