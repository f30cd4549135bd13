package library

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// memRemote is a Remote in memory: what a bucket would hold.
type memRemote struct {
	mu   sync.Mutex
	m    map[string]*Expert
	down bool
}

func (r *memRemote) Put(e *Expert, replace bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return fmt.Errorf("%w: down", ErrUnavailable)
	}
	if _, ok := r.m[e.Name]; ok != replace {
		if replace {
			return fmt.Errorf("%w: %s", ErrNotFound, e.Name)
		}
		return fmt.Errorf("%w: %s", ErrExists, e.Name)
	}
	r.m[e.Name] = e
	return nil
}

func (r *memRemote) Delete(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return fmt.Errorf("%w: down", ErrUnavailable)
	}
	if _, ok := r.m[name]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	delete(r.m, name)
	return nil
}

func TestRemoteWriteThrough(t *testing.T) {
	r := &memRemote{m: map[string]*Expert{}}
	a := openMem(t, func(o Options) Options { o.Remote = r; return o })
	b := openMem(t)

	m, err := a.Add(synth("x/one", small))
	if err != nil {
		t.Fatal(err)
	}
	got := r.m["x/one"]
	if got == nil || got.ID != m.ID || !got.Created.Equal(m.Created) {
		t.Fatalf("remote holds %+v, Add returned %+v", got, m)
	}
	if lm, err := a.Manifest("x/one"); err != nil || lm.ID != m.ID {
		t.Fatalf("local manifest %+v, %v", lm, err)
	}
	// Another replica applies what the remote holds: same ID, same expert.
	if err := b.Apply(got); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(got); err != nil { // already there: a no-op
		t.Fatal(err)
	}
	ea, _ := a.Get("x/one")
	eb, err := b.Get("x/one")
	if err != nil || !reflect.DeepEqual(ea, eb) {
		t.Fatalf("applied expert differs: %v", err)
	}

	// Refusals of the remote change nothing here.
	if _, err := a.Add(synth("x/one", small)); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v, want ErrExists", err)
	}
	r.down = true
	if _, err := a.Add(synth("x/two", small)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("add while down: %v, want ErrUnavailable", err)
	}
	if err := a.Remove("x/one"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("remove while down: %v", err)
	}
	if ms, _ := a.List(); len(ms) != 1 {
		t.Fatalf("library has %d experts after refused writes, want 1", len(ms))
	}
	r.down = false

	// Replace moves every copy to the new version; Drop of an old id is a no-op.
	nm, err := a.Replace(synth("x/one", small))
	if err != nil || nm.ID == m.ID {
		t.Fatalf("replace: %+v, %v", nm, err)
	}
	if err := b.Apply(r.m["x/one"]); err != nil {
		t.Fatal(err)
	}
	if err := b.Drop("x/one", m.ID); err != nil {
		t.Fatal(err)
	}
	if bm, err := b.Manifest("x/one"); err != nil || bm.ID != nm.ID {
		t.Fatalf("after replace b has %+v, %v", bm, err)
	}
	if err := a.Remove("x/one"); err != nil {
		t.Fatal(err)
	}
	if len(r.m) != 0 {
		t.Fatal("remove did not reach the remote")
	}
	if err := b.Drop("x/one", nm.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Manifest("x/one"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped expert still there: %v", err)
	}
	bad := *got
	bad.ID = "../../x"
	if err := b.Apply(&bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("apply with a bad id: %v", err)
	}
}
