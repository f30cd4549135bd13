package model

import "errors"

// Sentinel errors; wrapped with context by the functions that return them.
var (
	// ErrConfig means config.json is malformed or inconsistent.
	ErrConfig = errors.New("invalid config")
	// ErrArchitecture means config.json names a model class roe does not run.
	ErrArchitecture = errors.New("unsupported architecture")
	// ErrUnsupported means config.json asks for a setting roe does not implement.
	ErrUnsupported = errors.New("unsupported setting")
	// ErrWeights means a checkpoint tensor is missing or has the wrong dtype or shape.
	ErrWeights = errors.New("invalid weights")
	// ErrContext means a sequence would exceed the model's context length.
	ErrContext = errors.New("context length exceeded")
	// ErrInput means a caller passed an invalid token id or empty input.
	ErrInput = errors.New("invalid input")
)
