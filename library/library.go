package library

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Library is an open expert library. Its methods are safe for concurrent use.
type Library struct {
	opts Options
	db   *badger.DB
	log  *slog.Logger

	mu sync.RWMutex // write-locked by Restore and Close
	// applyMu orders the local writes of a library with a Remote: the
	// writer's own and the sync's (storeAs, Drop).
	applyMu sync.Mutex
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup // GC goroutine and running Subscribes
}

// Open opens (or creates) the library in opts.Dir, or in memory. It removes
// data left by an Add or Remove that was interrupted (a crash between the
// data and the manifest) and wipes a library whose Restore was interrupted.
func Open(opts Options) (*Library, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !opts.InMemory {
		if err := removeEmptyLogs(opts.Dir, log); err != nil {
			return nil, fmt.Errorf("open library %s: %w", opts.Dir, err)
		}
	}
	db, err := badger.Open(opts.badger())
	if err != nil {
		return nil, fmt.Errorf("open library %s: %w", opts.Dir, err)
	}
	l := &Library{opts: opts, db: db, log: log, stop: make(chan struct{})}
	if err := l.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open library %s: %w", opts.Dir, err)
	}
	if !opts.InMemory && opts.GCInterval > 0 {
		l.wg.Add(1)
		go l.gcLoop()
	}
	return l, nil
}

// removeEmptyLogs deletes zero-length value-log (.vlog) and memtable WAL
// (.mem) files. Badger creates such a file, then sizes it; a process killed in
// between leaves a file with no header and no entries, and Badger v4.9 then
// refuses to open ("Open existing file ... Create a new file"). Found by
// TestCrash.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ent := range ents {
		name := ent.Name()
		if !ent.Type().IsRegular() || !(strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".mem")) {
			continue
		}
		if fi, err := ent.Info(); err == nil && fi.Size() == 0 {
			log.Warn("library: removing empty log file left by a crash", "file", name)
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// recover finishes what a crash interrupted.
func (l *Library) recover() error {
	restoring := false
	err := l.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyRestoring))
		restoring = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if restoring {
		l.log.Warn("library: an interrupted Restore left partial data; wiping the library", "dir", l.opts.Dir)
		if err := l.db.DropAll(); err != nil {
			return err
		}
	}
	return l.removeOrphans()
}

// removeOrphans deletes data under d/<id>/ that no manifest points to.
func (l *Library) removeOrphans() error {
	live := map[string]bool{}
	var orphans []string
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixManifest), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			name := strings.TrimPrefix(string(item.Key()), prefixManifest)
			var r record
			if err := item.Value(func(v []byte) error { return decodeRecord(name, v, &r) }); err != nil {
				return err // unknown ids: deleting anything would be a guess
			}
			live[r.ID] = true
		}
		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixData), PrefetchValues: false})
		defer it2.Close()
		last := ""
		for it2.Rewind(); it2.Valid(); it2.Next() {
			k := strings.TrimPrefix(string(it2.Item().Key()), prefixData)
			id, _, _ := strings.Cut(k, "/")
			if id != last && !live[id] {
				orphans = append(orphans, id)
			}
			last = id
		}
		return nil
	})
	if err != nil {
		l.log.Warn("library: orphan cleanup skipped", "err", err)
		return nil
	}
	if len(orphans) == 0 {
		return nil
	}
	l.log.Info("library: removing data of interrupted adds/removes", "ids", len(orphans))
	return l.deleteData(orphans...)
}

func (l *Library) gcLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.GC(); err != nil && !errors.Is(err, ErrClosed) {
				l.log.Warn("library: value log GC", "err", err)
			}
		}
	}
}

// GC reclaims value-log space left by removed experts (Badger's value log
// GC, run until it finds nothing to rewrite). It is a no-op in memory mode.
func (l *Library) GC() error {
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	if l.opts.InMemory {
		return nil
	}
	for {
		err := l.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Close closes the library; running Subscribes return.
func (l *Library) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	err := l.db.Close()
	l.wg.Wait()
	return err
}

func (l *Library) rlock() error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Add validates e and stores it; it returns the stored manifest with ID,
// Created and the derived counts filled in. More than S instances are
// sampled down to S. The expert appears all at once (one transaction writes
// its manifest after its data) and is synced to disk before Add returns.
func (l *Library) Add(e *Expert) (Manifest, error) { return l.put(e, false) }

// Replace stores e in place of the expert of the same name (ErrNotFound when
// there is none), as Add stores a new one: readers see the old expert until
// the new manifest lands in one transaction, then the new one, under a new
// ID. The old data is deleted afterwards (what a crash leaves, the next Open
// removes).
func (l *Library) Replace(e *Expert) (Manifest, error) { return l.put(e, true) }

func (l *Library) put(e *Expert, replace bool) (Manifest, error) {
	c, err := l.prepare(e)
	if err != nil {
		return Manifest{}, err
	}
	if err := l.rlock(); err != nil {
		return Manifest{}, err
	}
	defer l.mu.RUnlock()
	// Refuse a taken (or, to replace, a missing) name before writing
	// megabytes (checked again at the end).
	err = l.db.View(func(txn *badger.Txn) error {
		_, err := getRecord(txn, c.Name)
		return err
	})
	switch {
	case err == nil && !replace:
		return Manifest{}, fmt.Errorf("%w: %s", ErrExists, c.Name)
	case errors.Is(err, ErrNotFound) && replace:
		return Manifest{}, fmt.Errorf("%w: %s", ErrNotFound, c.Name)
	case err != nil && !errors.Is(err, ErrNotFound):
		return Manifest{}, err
	}
	c.ID = newID()
	c.Created = time.Now().UTC().Round(0)
	if l.opts.Remote != nil {
		return l.putRemote(c, replace)
	}
	x, err := l.encode(c)
	if err != nil {
		return Manifest{}, err
	}
	rec, err := json.Marshal(x.rec)
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: expert %s: %w", ErrInvalid, c.Name, err)
	}
	if len(rec) >= maxValue {
		return Manifest{}, fmt.Errorf("%w: expert %s: manifest of %d bytes is over %d", ErrInvalid, c.Name, len(rec), maxValue)
	}
	// Data first, in as many transactions as needed, under a fresh id that
	// nothing points to yet...
	if err := l.writeBatched(x.entries(), setEntry); err != nil {
		l.cleanup(c.Name, c.ID)
		return Manifest{}, fmt.Errorf("add %s: %w", c.Name, err)
	}
	// ...then the manifest, which makes the expert visible.
	// A conflict (a concurrent Add or Remove of the name) is retried: the
	// rerun sees the winner's manifest (ErrExists) or a free name.
	var old string // the replaced expert's id
	err = l.update(func(txn *badger.Txn) error {
		r, err := getRecord(txn, c.Name)
		switch {
		case err == nil && !replace:
			return fmt.Errorf("%w: %s", ErrExists, c.Name)
		case errors.Is(err, ErrNotFound) && replace:
			return fmt.Errorf("%w: %s", ErrNotFound, c.Name)
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
		old = r.ID
		return txn.Set(manifestKey(c.Name), rec)
	})
	if err != nil {
		l.cleanup(c.Name, c.ID)
		if !errors.Is(err, ErrExists) && !errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("add %s: %w", c.Name, err)
		}
		return Manifest{}, err
	}
	if old != "" {
		if err := l.deleteData(old); err != nil {
			l.log.Warn("library: data of a replaced expert left for the next open", "expert", c.Name, "id", old, "err", err)
		}
	}
	return c.Manifest, nil
}

// cleanup removes the data of a failed Add, unless m/<name> points to it
// after all: a commit that reports an error may still have landed, and
// deleting then would leave a visible expert with no data. What it leaves,
// the next Open removes if no manifest names it.
func (l *Library) cleanup(name, id string) {
	err := l.db.View(func(txn *badger.Txn) error {
		r, err := getRecord(txn, name)
		if err == nil && r.ID == id {
			return fmt.Errorf("manifest %s%s names id %s", prefixManifest, name, id)
		}
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return err
	})
	if err == nil {
		err = l.deleteData(id)
	}
	if err != nil {
		l.log.Warn("library: data of a failed add left in place", "expert", name, "id", id, "err", err)
	}
}

// Get reads a whole expert, verifying every chunk's checksum.
func (l *Library) Get(name string) (*Expert, error) {
	var e *Expert
	err := l.viewExpert(name, func(txn *badger.Txn, r record, m meta) error {
		ts, err := readTensors(txn, r, m)
		if err != nil {
			return err
		}
		ins, err := readInstances(txn, r, m)
		if err != nil {
			return err
		}
		e = &Expert{Manifest: r.Manifest, AdapterConfig: []byte(m.AdapterConfig), Tensors: ts, Instances: ins}
		return nil
	})
	return e, err
}

// AdapterConfig returns one expert's adapter_config.json with the manifest
// it belongs to, without reading its tensors or instances.
func (l *Library) AdapterConfig(name string) (cfg []byte, man Manifest, err error) {
	err = l.viewExpert(name, func(_ *badger.Txn, r record, m meta) error {
		cfg, man = []byte(m.AdapterConfig), r.Manifest
		return nil
	})
	return cfg, man, err
}

// viewExpert runs fn on an expert's record and metadata in one read
// transaction.
func (l *Library) viewExpert(name string, fn func(txn *badger.Txn, r record, m meta) error) error {
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	return l.db.View(func(txn *badger.Txn) error {
		r, err := getRecord(txn, name)
		if err != nil {
			return err
		}
		m, err := getMeta(txn, r)
		if err != nil {
			return err
		}
		return fn(txn, r, m)
	})
}

// Manifest returns one expert's manifest.
func (l *Library) Manifest(name string) (Manifest, error) {
	if err := l.rlock(); err != nil {
		return Manifest{}, err
	}
	defer l.mu.RUnlock()
	var r record
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		r, err = getRecord(txn, name)
		return err
	})
	return r.Manifest, err
}

// List returns every expert's manifest, sorted by name.
func (l *Library) List() ([]Manifest, error) {
	if err := l.rlock(); err != nil {
		return nil, err
	}
	defer l.mu.RUnlock()
	out := []Manifest{}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixManifest), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			name := strings.TrimPrefix(string(item.Key()), prefixManifest)
			var r record
			if err := item.Value(func(v []byte) error { return decodeRecord(name, v, &r) }); err != nil {
				return err
			}
			if !r.Removed {
				out = append(out, r.Manifest)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Instances returns an expert's sampled instances with their embeddings,
// without reading its adapter tensors.
func (l *Library) Instances(name string) ([]Instance, error) {
	var out []Instance
	err := l.viewExpert(name, func(txn *badger.Txn, r record, m meta) (err error) {
		out, err = readInstances(txn, r, m)
		return err
	})
	return out, err
}

// Embeddings returns an expert's instance embeddings as one matrix
// (emb: [NumInstances, Dim]) with its manifest, reading nothing else.
func (l *Library) Embeddings(name string) (emb []float32, man Manifest, err error) {
	err = l.viewExpert(name, func(txn *badger.Txn, r record, m meta) error {
		man = r.Manifest
		emb, err = readEmbeddings(txn, r, m)
		return err
	})
	return emb, man, err
}

// Remove deletes an expert and its data in one transaction. (Should the
// data be too big for one transaction, the manifest goes first, in one
// transaction, and the data after it; data left by a crash in between is
// removed by the next Open.)
func (l *Library) Remove(name string) error {
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	if l.opts.Remote != nil {
		return l.removeRemote(name)
	}
	return l.remove(name)
}

func (l *Library) remove(name string) error {
	var id string
	tooBig := false
	err := l.update(func(txn *badger.Txn) error {
		tooBig = false
		r, err := getRecord(txn, name)
		if err != nil {
			return err
		}
		id = r.ID
		if err := txn.SetEntry(tombstone(r)); err != nil {
			return err
		}
		keys, err := keysWithPrefix(txn, dataPrefix(id))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				if errors.Is(err, badger.ErrTxnTooBig) {
					tooBig = true
				}
				return err
			}
		}
		return nil
	})
	if tooBig {
		err = l.update(func(txn *badger.Txn) error {
			r, err := getRecord(txn, name)
			if err != nil {
				return err
			}
			id = r.ID
			return txn.SetEntry(tombstone(r))
		})
		if err == nil {
			if derr := l.deleteData(id); derr != nil {
				l.log.Warn("library: removing data", "expert", name, "err", derr)
			}
		}
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return err
}

// tombstone is what Remove writes over m/<name>: the manifest marked
// removed, expired at birth, so that readers see no key while the change
// feed learns the removed expert's id.
func tombstone(r record) *badger.Entry {
	r.Removed = true
	b, _ := json.Marshal(r) // it was decoded from JSON
	e := badger.NewEntry(manifestKey(r.Name), b)
	e.ExpiresAt = 1 // 1970: already expired
	return e
}

// maxConflictRetries bounds the reruns of a transaction that lost a race;
// each rerun sees the winner's commit, so a handful settles any real race.
const maxConflictRetries = 16

// update runs fn in a read-write transaction, rerunning it while Badger
// reports a conflict (a key fn read was written by a transaction that
// committed first). fn must be safe to rerun: it starts from scratch.
func (l *Library) update(fn func(*badger.Txn) error) error {
	for try := 0; ; try++ {
		err := l.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || try == maxConflictRetries {
			return err
		}
		// Jitter, so that the losers do not collide again in lockstep.
		time.Sleep(time.Duration(mrand.IntN(100<<min(try, 6))) * time.Microsecond)
	}
}
