package library

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Remote is the source of truth of a library that several processes share
// (library/s3sync keeps it in an S3 bucket). With Options.Remote set, Add
// and Replace hand the prepared expert (ID, Created, sampled instances and
// derived counts filled in) to Put before storing it here, and Remove calls
// Delete first; if the Remote refuses, nothing changes here. Other
// processes' writes reach this library through Apply and Drop.
type Remote interface {
	// Put stores e under e.Name: a new name when replace is false (else
	// ErrExists), an existing one when it is true (else ErrNotFound).
	// ErrUnavailable when the store cannot be reached.
	Put(e *Expert, replace bool) error
	// Delete removes the expert name (ErrNotFound when there is none).
	Delete(name string) error
}

func (l *Library) putRemote(c *Expert, replace bool) (Manifest, error) {
	if err := l.opts.Remote.Put(c, replace); err != nil {
		return Manifest{}, err
	}
	// The Remote holds it now: a local failure is repaired by the next sync.
	if err := l.storeAs(c); err != nil {
		l.log.Warn("library: stored remotely, local copy waits for the next sync", "expert", c.Name, "err", err)
	}
	return c.Manifest, nil
}

func (l *Library) removeRemote(name string) error {
	if err := l.opts.Remote.Delete(name); err != nil {
		return err
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if err := l.remove(name); err != nil && !errors.Is(err, ErrNotFound) {
		l.log.Warn("library: removed remotely, local copy waits for the next sync", "expert", name, "err", err)
	}
	return nil
}

// Apply stores e exactly as another process stored it (keeping its ID,
// Created and SampledFrom), in place of any other version of its name,
// without calling the Remote; a no-op when that version is already here.
// e is validated as Add validates it.
func (l *Library) Apply(e *Expert) error {
	c, err := l.prepare(e)
	if err != nil {
		return err
	}
	if !validID(e.ID) {
		return fmt.Errorf("%w: expert %s: id %q is not 32 hex digits", ErrInvalid, e.Name, e.ID)
	}
	c.ID, c.Created, c.SampledFrom = e.ID, e.Created, e.SampledFrom
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	return l.storeAs(c)
}

// Drop removes the expert name when its ID is id, without calling the
// Remote (another process removed or replaced it). Absent is not an error.
func (l *Library) Drop(name, id string) error {
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	cur, err := l.currentID(name)
	if err != nil || cur != id {
		return err
	}
	if err := l.remove(name); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// currentID is the ID stored under name, "" when there is none.
func (l *Library) currentID(name string) (string, error) {
	var id string
	err := l.db.View(func(txn *badger.Txn) error {
		r, err := getRecord(txn, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		id = r.ID
		return err
	})
	return id, err
}

// storeAs writes the prepared c (its ID set) and points m/<name> at it,
// whatever was there, then deletes the old version's data. The caller holds
// l.mu for reading.
func (l *Library) storeAs(c *Expert) error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if cur, err := l.currentID(c.Name); err != nil || cur == c.ID {
		return err
	}
	x, err := l.encode(c)
	if err != nil {
		return err
	}
	rec, err := json.Marshal(x.rec)
	if err != nil {
		return fmt.Errorf("%w: expert %s: %w", ErrInvalid, c.Name, err)
	}
	if len(rec) >= maxValue {
		return fmt.Errorf("%w: expert %s: manifest of %d bytes is over %d", ErrInvalid, c.Name, len(rec), maxValue)
	}
	if err := l.writeBatched(x.entries(), setEntry); err != nil {
		l.cleanup(c.Name, c.ID)
		return fmt.Errorf("apply %s: %w", c.Name, err)
	}
	var old string
	err = l.update(func(txn *badger.Txn) error {
		old = ""
		r, err := getRecord(txn, c.Name)
		switch {
		case err == nil:
			old = r.ID
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return txn.Set(manifestKey(c.Name), rec)
	})
	if err != nil {
		l.cleanup(c.Name, c.ID)
		return fmt.Errorf("apply %s: %w", c.Name, err)
	}
	if old != "" && old != c.ID {
		if err := l.deleteData(old); err != nil {
			l.log.Warn("library: data of a replaced expert left for the next open", "expert", c.Name, "id", old, "err", err)
		}
	}
	return nil
}

// validID reports whether id looks like newID's: 32 lowercase hex digits.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
