package model

import (
	"fmt"
	"io/fs"

	"roe/model/safetensors"
)

// LoadFS reads config.json and model.safetensors from a file system, such as the
// embedded default model.
func LoadFS(fsys fs.FS) (*Model, error) {
	b, err := fs.ReadFile(fsys, "config.json")
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	data, err := fs.ReadFile(fsys, "model.safetensors")
	if err != nil {
		return nil, fmt.Errorf("load weights: %w", err)
	}
	f, err := safetensors.FromBytes("model.safetensors", data)
	if err != nil {
		return nil, err
	}
	return New(cfg, f)
}
