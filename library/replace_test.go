package library

import (
	"errors"
	"testing"
)

// Replace swaps an expert for a new version under a new id, drops the old
// data, and refuses a name that is not there; an expert may have no instances.
func TestReplace(t *testing.T) {
	l := openMem(t)
	bare := synth("lora", small)
	bare.Instances = nil
	m0, err := l.Add(bare)
	if err != nil {
		t.Fatal(err)
	}
	if m0.NumInstances != 0 || m0.Dim != 0 {
		t.Fatalf("an expert without instances: %+v", m0)
	}
	if _, err := l.Add(synth("other", small)); err != nil {
		t.Fatal(err)
	}
	full := synth("lora", small)
	m1, err := l.Replace(full)
	if err != nil {
		t.Fatal(err)
	}
	if m1.ID == m0.ID || m1.NumInstances != small.inst {
		t.Fatalf("replaced manifest %+v (old id %s)", m1, m0.ID)
	}
	got, err := l.Get("lora")
	if err != nil {
		t.Fatal(err)
	}
	full.Manifest = m1
	sameExpert(t, got, full, true)
	ids := dataIDs(t, l)
	if _, ok := ids[m0.ID]; ok || len(ids) != 2 {
		t.Fatalf("data ids after replace: %v (old %s)", ids, m0.ID)
	}
	if _, err := l.Replace(synth("missing", small)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Replace of a missing expert: %v", err)
	}
	if ms, _ := l.List(); len(ms) != 2 {
		t.Fatalf("list %v", ms)
	}
}
