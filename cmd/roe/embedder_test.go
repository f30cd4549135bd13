package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// roe embedder train refuses a request share outside (0, 1) and a requests
// file it cannot read, naming the flag, before it reads any task data or
// writes anything.
func TestEmbedderTrainRequestFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "enc")
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--request-share", "1.5"}, "--request-share", 2},
		{[]string{"--request-share", "0"}, "--request-share", 2},
		{[]string{"--requests", filepath.Join(t.TempDir(), "missing.jsonl")}, "--requests", 1},
		{[]string{"--requests", writeFile(t, "bad.jsonl", "{\"prompt\": 3}\n")}, "--requests", 1},
	} {
		args := append([]string{"embedder", "train", "--data", t.TempDir(), "--templates", t.TempDir(), "--out", out}, c.args...)
		_, stderr, code := roe(t, "", args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d naming %s", c.args, code, stderr, c.code, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%v: %s was written", c.args, out)
		}
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
