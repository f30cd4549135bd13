package serve

import (
	"io"
	"log/slog"
	"os"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }
