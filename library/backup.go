package library

import (
	"bytes"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// Backup writes every expert to w in Badger's backup format (a stream of
// protobuf key-value lists), as of one consistent moment.
func (l *Library) Backup(w io.Writer) error {
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	st := l.db.NewStream()
	st.LogPrefix = "library.Backup"
	st.ChooseKey = func(item *badger.Item) bool {
		k := item.Key()
		return bytes.HasPrefix(k, []byte(prefixManifest)) || bytes.HasPrefix(k, []byte(prefixData)) || bytes.HasPrefix(k, []byte(prefixSetting))
	}
	if _, err := st.Backup(w, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a Backup into this library, which must be empty
// (ErrNotEmpty otherwise). It blocks every other call while it runs. Should
// it fail or crash half-way, the library is wiped (at once, or by the next
// Open), never left half-restored.
func (l *Library) Restore(r io.Reader) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	empty := true
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if !bytes.HasPrefix(it.Item().Key(), []byte(prefixProbe)) {
				empty = false
				break
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !empty {
		return fmt.Errorf("restore: %w: restore into a new library", ErrNotEmpty)
	}
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyRestoring), nil) }); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := l.db.Load(r, 256); err != nil {
		// A Load that fails half-way leaves Badger's transaction watermark
		// behind (every later read would wait forever), so reopen the
		// database: on disk, Open finds the marker and wipes the library;
		// in memory, the reopened database is empty.
		if rerr := l.reopen(); rerr != nil {
			return fmt.Errorf("restore: %w (reopening after it: %v)", err, rerr)
		}
		return fmt.Errorf("restore: %w", err)
	}
	if err := l.db.Sync(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := l.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyRestoring)) }); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Drop data that no manifest points to (a backup taken mid-Add).
	return l.removeOrphans()
}

// reopen closes and reopens the Badger database; l.mu must be write-locked.
// Running Subscribes return. If it fails, the library is closed.
func (l *Library) reopen() error {
	cerr := l.db.Close()
	if cerr != nil {
		l.log.Warn("library: closing for reopen", "err", cerr)
	}
	db, err := badger.Open(l.opts.badger())
	if err == nil {
		l.db = db
		if err = l.recover(); err != nil {
			db.Close()
		}
	}
	if err != nil {
		l.closed = true
		close(l.stop)
		return err
	}
	return nil
}
