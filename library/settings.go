package library

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// prefixSetting keys the library's own small settings (s/<key>): facts about
// the library as a whole, such as whether a first-start import finished.
const prefixSetting = "s/"

// Setting returns the value stored under key, and whether there is one.
func (l *Library) Setting(key string) (string, bool, error) {
	if err := l.rlock(); err != nil {
		return "", false, err
	}
	defer l.mu.RUnlock()
	var v []byte
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(prefixSetting + key))
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("setting %s: %w", key, err)
	}
	return string(v), true, nil
}

// SetSetting stores value under key, synced to disk before it returns.
func (l *Library) SetSetting(key, value string) error {
	if key == "" || len(key) > maxNameLen {
		return fmt.Errorf("%w: setting key of %d bytes", ErrInvalid, len(key))
	}
	if err := l.rlock(); err != nil {
		return err
	}
	defer l.mu.RUnlock()
	err := l.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(prefixSetting+key), []byte(value))
	})
	if err == nil {
		err = l.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("set setting %s: %w", key, err)
	}
	return nil
}
