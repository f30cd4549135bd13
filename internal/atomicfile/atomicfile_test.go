package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := WriteFile(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	b, _ := os.ReadFile(p)
	ents, _ := os.ReadDir(dir)
	if string(b) != "old" || len(ents) != 1 {
		t.Errorf("a failed write left %q and %d files", b, len(ents))
	}
	if err := WriteFile(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("got %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

// Write passes the bytes on in order whatever the sizes of fill's writes
// (smaller than a chunk, straddling chunks, several chunks at once).
func TestWriteChunks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.gguf")
	want := make([]byte, 0, 3*chunk+123)
	for i := range cap(want) {
		want = append(want, byte(i*7+i/251))
	}
	sizes := []int{1, 100, chunk - 101, chunk, 5, 2*chunk + 3}
	err := Write(p, func(w io.Writer) error {
		rest := want
		for i := 0; len(rest) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(rest))
			if k, err := w.Write(rest[:n]); k != n || err != nil {
				return fmt.Errorf("write %d: %d, %v", n, k, err)
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (%v), wrote %d; equal %v", len(got), err, len(want), bytes.Equal(got, want))
	}
}
