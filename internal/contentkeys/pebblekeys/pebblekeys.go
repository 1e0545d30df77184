// Package pebblekeys is the embedded key store of package contentkeys: a
// Pebble database of wrapped data keys, one per user.
//
// It runs without a write-ahead log, flushing every write to a table
// instead: Pebble recycles its log files, so a key once logged would stay
// on disk in a recycled log after its deletion. Keys are written once per
// user, so a flush per write costs little. Delete flushes the deletion
// and compacts the key's range, so that moments after it returns (when
// Pebble's cleaner has removed the obsolete files) no file of the
// directory holds the key. A Store is safe for concurrent use.
package pebblekeys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/pebblelog"
)

// Store is the embedded key store.
type Store struct {
	db *pebble.DB
	mu sync.Mutex // serializes Claim's read-then-write and Delete

	// life guards closed: calls hold it shared, Close exclusively, so
	// that no call reaches Pebble after Close (Pebble panics then).
	life   sync.RWMutex
	closed bool
}

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("pebblekeys: closed")

// begin admits a call, or refuses it after Close; end must be called
// when the call is done.
func (s *Store) begin() (end func(), err error) {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, ErrClosed
	}
	return s.life.RUnlock, nil
}

var _ contentkeys.Store = (*Store)(nil)

// Open opens the store in dir, creating it if needed.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebblelog.NewLogger(log), DisableWAL: true})
	if err != nil {
		return nil, fmt.Errorf("pebblekeys: opening %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store after the calls in progress; later calls get
// ErrClosed. Closing again does nothing.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

func key(user string) []byte { return append([]byte("k\x00"), user...) }

// Get returns user's wrapped key.
func (s *Store) Get(ctx context.Context, user string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	return s.get(user)
}

func (s *Store) get(user string) ([]byte, error) {
	v, closer, err := s.db.Get(key(user))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("pebblekeys: %s: %w", user, contentkeys.ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("pebblekeys: reading %s: %w", user, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Claim stores wrapped unless user has a key, and returns user's key.
func (s *Store) Claim(ctx context.Context, user string, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.get(user)
	if err == nil {
		return cur, nil
	}
	if !errors.Is(err, contentkeys.ErrNoKey) {
		return nil, err
	}
	if err := s.db.Set(key(user), wrapped, pebble.NoSync); err != nil {
		return nil, fmt.Errorf("pebblekeys: storing %s: %w", user, err)
	}
	if err := s.db.Flush(); err != nil {
		return nil, fmt.Errorf("pebblekeys: flushing %s: %w", user, err)
	}
	return bytes.Clone(wrapped), nil
}

// Delete removes user's key, flushed, and compacts its range so that the
// bytes leave the files too.
func (s *Store) Delete(ctx context.Context, user string) error {
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(user)
	if err := s.db.Delete(k, pebble.NoSync); err != nil {
		return fmt.Errorf("pebblekeys: deleting %s: %w", user, err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("pebblekeys: flushing: %w", err)
	}
	if err := s.db.Compact(ctx, k, append(bytes.Clone(k), 0), true); err != nil {
		return fmt.Errorf("pebblekeys: compacting %s: %w", user, err)
	}
	return nil
}
