package experts

import (
	"io/fs"
	"strings"
	"testing"

	"roe/library"
	"roe/model"
	"roe/models"
	"roe/retriever"
)

// prefixFS shows only the files under folders whose path starts with prefix:
// what a first-start import had written when it was killed.
type prefixFS struct {
	fs.FS
	prefix string
}

func (p prefixFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(p.FS, name)
	if err != nil || name != "." {
		return ents, err
	}
	var out []fs.DirEntry
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), p.prefix) {
			out = append(out, e)
		}
	}
	return out, nil
}

// starterFixture is the default model, the shipped instances' embedder (so
// nothing is re-embedded) and an empty in-memory library on that model.
func starterFixture(t *testing.T) (*model.Model, retriever.Embedder, *library.Library) {
	t.Helper()
	m, err := model.LoadFS(models.Default())
	if err != nil {
		t.Fatal(err)
	}
	emb, err := retriever.LoadEncoder(models.Router())
	if err != nil {
		t.Fatal(err)
	}
	lib, err := library.Open(library.DefaultOptions("").WithInMemory(true).WithFingerprint(m.Fingerprint()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	return m, emb, lib
}

// A kill during the first-start import leaves some starter experts; the next
// start finishes the import, and after that a removed expert stays removed.
func TestImportStarterResumes(t *testing.T) {
	m, emb, lib := starterFixture(t)
	all, err := ReadFS(models.StarterExperts(), m)
	if err != nil {
		t.Fatal(err)
	}
	// The killed import: the experts of the folders starting with "s".
	partial, err := ImportFS(lib, m, emb, "", prefixFS{models.StarterExperts(), "s"})
	if err != nil {
		t.Fatal(err)
	}
	if partial == 0 || partial >= len(all) {
		t.Fatalf("partial import added %d of %d", partial, len(all))
	}
	n, err := ImportStarter(lib, m, emb, "", models.StarterExperts())
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := lib.List()
	if n != len(all)-partial || len(ms) != len(all) {
		t.Fatalf("resumed import added %d (want %d); library has %d of %d", n, len(all)-partial, len(ms), len(all))
	}
	if err := lib.Remove(all[0].Name); err != nil {
		t.Fatal(err)
	}
	if n, err := ImportStarter(lib, m, emb, "", models.StarterExperts()); err != nil || n != 0 {
		t.Errorf("after a finished import: added %d (%v), want 0", n, err)
	}
	if _, err := lib.Manifest(all[0].Name); err == nil {
		t.Errorf("%s came back after the user removed it", all[0].Name)
	}
}

// A library with experts of its own and no record of an import is left alone.
func TestImportStarterLeavesOwnLibrary(t *testing.T) {
	m, emb, lib := starterFixture(t)
	x := randomExpert(t, m.Config, "mine", 1, "text")
	if err := Prepare(x, m, emb, "", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Add(x); err != nil {
		t.Fatal(err)
	}
	n, err := ImportStarter(lib, m, emb, "", models.StarterExperts())
	if err != nil || n != 0 {
		t.Errorf("added %d (%v), want 0", n, err)
	}
	if ms, _ := lib.List(); len(ms) != 1 {
		t.Errorf("library has %d experts, want 1", len(ms))
	}
}
