// Package models ships base models and the starter expert library inside the
// roe binary.
package models

import (
	"embed"
	"io/fs"
	"slices"
)

// Both base models are compiled in: roe-base is the default (it routes
// better; benchmarks/results/quality.md, section 8), stories260K is kept for
// its golden outputs and as the other candidate.
//
//go:embed stories260K roe-base
var files embed.FS

// The starter expert library: LoRA experts trained on the default model by
// scripts/starter-library.sh, one folder per expert as `roe experts export`
// writes it (nested names are nested folders: experts/sst2/review).
//
//go:embed experts
var starter embed.FS

// The routing encoder, roe's default routing embedder: trained by `roe
// embedder train` (scripts/router.sh) on the starter library's tasks.
//
//go:embed roe-router
var router embed.FS

// DefaultName is the id of the embedded default model.
const DefaultName = "roe-base"

// Names lists the embedded models.
func Names() []string { return []string{"roe-base", "stories260K"} }

// Default returns the embedded default model's Hugging Face folder.
func Default() fs.FS {
	f, _ := Embedded(DefaultName)
	return f
}

// Stories260K returns the embedded stories260K folder (Karpathy's llama2.c
// TinyStories model, MIT).
func Stories260K() fs.FS {
	f, _ := Embedded("stories260K")
	return f
}

// Embedded returns the embedded model called name (one of Names).
func Embedded(name string) (fs.FS, bool) {
	if !slices.Contains(Names(), name) {
		return nil, false
	}
	sub, err := fs.Sub(files, name)
	if err != nil {
		panic(err) // the folder is compiled in; this cannot fail
	}
	return sub, true
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

// Router returns the embedded routing encoder's folder (retriever.LoadEncoder).
func Router() fs.FS {
	sub, err := fs.Sub(router, "roe-router")
	if err != nil {
		panic(err) // the folder is compiled in; this cannot fail
	}
	return sub
}

// The background requests: general requests to a chat assistant, none of
// them a task of the starter library, that auto routing measures a request
// against before serving an expert (experts.Config.Background).
//
//go:embed background/requests.jsonl
var background []byte

// Background returns the embedded background requests, JSON Lines of
// {"prompt", "kind"} (experts.ReadBackground reads them).
func Background() []byte { return background }
