package pebblekeys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/keystoretest"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/disktest"
)

func open(t *testing.T, dir string) *pebblekeys.Store {
	t.Helper()
	s, err := pebblekeys.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	keystoretest.Run(t, func(t *testing.T) contentkeys.Store { return open(t, t.TempDir()) })
}

// After Delete, the wrapped key is in no file of the store's directory:
// not in a table, a log or a manifest.
func TestDeletedKeyLeavesNoBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	wrapped := make([]byte, 64)
	_, _ = rand.Read(wrapped)
	other := make([]byte, 64)
	_, _ = rand.Read(other)
	if _, err := s.Claim(ctx, "alice", wrapped); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "bob", other); err != nil {
		t.Fatal(err)
	}
	if !dirHolds(t, dir, wrapped) {
		t.Fatal("the wrapped key is in no file before Delete: the scan cannot see it")
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// Pebble's cleaner removes the files compaction made obsolete in the
	// background, moments after Delete returns.
	deadline := time.Now().Add(30 * time.Second)
	for dirHolds(t, dir, wrapped) {
		if time.Now().After(deadline) {
			t.Fatal("30s after Delete, a file of the store still holds the deleted wrapped key")
		}
		time.Sleep(50 * time.Millisecond) // polling the directory: nothing to wait on
	}
	if got, err := s.Get(ctx, "bob"); err != nil || !bytes.Equal(got, other) {
		t.Errorf("bob's key after alice's deletion: %v", err)
	}
}

func dirHolds(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	found, _, err := disktest.FilesHolding(dir, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return len(found) > 0
}

// After Close every call is refused with ErrClosed, never a panic.
func TestClosedStoreRefuses(t *testing.T) {
	t.Parallel()
	s, err := pebblekeys.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Claim(ctx, "alice", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("closing again: %v", err)
	}
	if _, err := s.Get(ctx, "alice"); !errors.Is(err, pebblekeys.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Claim(ctx, "bob", []byte("k")); !errors.Is(err, pebblekeys.ErrClosed) {
		t.Errorf("Claim after Close: %v", err)
	}
	if err := s.Delete(ctx, "alice"); !errors.Is(err, pebblekeys.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
}
