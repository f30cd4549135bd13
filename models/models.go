// Package models ships the default base model inside the roe binary.
package models

import (
	"embed"
	"io/fs"
)

//go:embed stories260K
var files embed.FS

// The starter expert library: LoRA experts trained on stories260K by
// scripts/starter-library.sh, one folder per expert as `roe experts export`
// writes it (nested names are nested folders: experts/sst2/review).
//
//go:embed experts
var starter embed.FS

// DefaultName is the id of the embedded default model.
const DefaultName = "stories260K"

// Default returns the embedded stories260K Hugging Face folder.
func Default() fs.FS {
	sub, err := fs.Sub(files, "stories260K")
	if err != nil {
		panic(err) // the folder is compiled in; this cannot fail
	}
	return sub
}

// StarterExperts returns the embedded starter expert library: every folder
// with an expert.json (adapter_config.json, adapter_model.safetensors,
// instances.jsonl, expert.json) is one expert, named by its path.
func StarterExperts() fs.FS {
	sub, err := fs.Sub(starter, "experts")
	if err != nil {
		panic(err) // the folder is compiled in; this cannot fail
	}
	return sub
}
