// Package models ships the default base model inside the roe binary.
package models

import (
	"embed"
	"io/fs"
)

//go:embed stories260K
var files embed.FS

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
