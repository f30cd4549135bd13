package library

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
)

// Change is one event of the change feed.
type Change struct {
	Op       string    // "add" or "remove"
	Name, ID string    // the expert
	Manifest *Manifest // the new manifest for "add"; nil for "remove"
}

// Subscribe calls fn, in commit order and from one goroutine, for every
// expert added or removed after the subscription is registered, until ctx is
// done (it then returns nil) or the library is closed. Only manifests travel
// through the feed, never tensors or embeddings. To build an index that
// misses nothing, use SubscribeList.
func (l *Library) Subscribe(ctx context.Context, fn func(Change)) error {
	return l.SubscribeList(ctx, nil, fn)
}

var probeSeq atomic.Uint64

// SubscribeList registers a change feed, then calls list with the library's
// manifests as of a moment after registration, then calls fn for every
// change after that moment (see Subscribe). A change committed around the
// registration may show both in the list and as a Change: treat an "add" of
// a known ID as a no-op. A nil list skips the listing.
func (l *Library) SubscribeList(ctx context.Context, list func([]Manifest), fn func(Change)) error {
	if fn == nil {
		return fmt.Errorf("%w: nil change callback", ErrInvalid)
	}
	if err := l.rlock(); err != nil {
		return err
	}
	db := l.db // Restore may replace l.db; this feed stays with its database
	l.wg.Add(1)
	l.mu.RUnlock()
	defer l.wg.Done()

	// Badger registers the subscription inside its blocking Subscribe call;
	// we learn that it is registered when a probe key we keep writing comes
	// through the feed. Probes expire at birth, so no reader ever sees them.
	probe := fmt.Sprintf("%s%d", prefixProbe, probeSeq.Add(1))
	var ready atomic.Bool
	var failed error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for d := time.Millisecond; !ready.Load(); d = min(2*d, 100*time.Millisecond) {
			e := badger.NewEntry([]byte(probe), nil)
			e.ExpiresAt = 1
			if err := db.Update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
				return // closed; Subscribe returns too
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}()
	cb := func(kvs *badger.KVList) error {
		for _, kv := range kvs.Kv {
			key := string(kv.Key)
			if !ready.Load() {
				if key != probe {
					continue // committed before the probe: in the list
				}
				ready.Store(true)
				if list != nil {
					ms, err := l.List()
					if err != nil {
						failed = err
						cancel()
						return nil
					}
					list(ms)
				}
				continue
			}
			name, ok := strings.CutPrefix(key, prefixManifest)
			if !ok {
				continue
			}
			var r record
			if len(kv.Value) == 0 {
				fn(Change{Op: "remove", Name: name})
				continue
			}
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				continue // unreadable manifest; Get reports it
			}
			if r.Removed {
				fn(Change{Op: "remove", Name: name, ID: r.ID})
			} else {
				m := r.Manifest
				fn(Change{Op: "add", Name: name, ID: r.ID, Manifest: &m})
			}
		}
		return nil
	}
	err := db.Subscribe(ctx, cb, []pb.Match{{Prefix: []byte(prefixManifest)}, {Prefix: []byte(probe)}})
	if failed != nil {
		return failed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
