// Package tasks is roe's data side of experts: task datasets (JSONL splits),
// promptsource templates (YAML + Jinja, rendered as promptsource renders them),
// the field maps that let one task borrow another's templates, the rendered
// items that training and evaluation consume, decontamination of a corpus
// against every task's evaluation text, and rank-classification evaluation.
//
// It knows nothing of training: serving imports templates and instances from
// here without the trainer (roe/train), which takes rendered items as input.
package tasks
