package serve

import (
	"io"
	"log/slog"
	"os"
	"roe/model"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

func modelOptions(maxTokens int) model.GenerateOptions {
	return model.GenerateOptions{MaxTokens: maxTokens}
}

type modelStep = model.Step

func argmax(v []float32) int { return model.Argmax(v) }
