// Package keystoretest is the conformance suite of contentkeys.Store:
// every adapter's test calls Run with a factory of empty stores.
package keystoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/contentkeys"
)

// Run runs every case against stores made by newStore, each empty and
// its own.
func Run(t *testing.T, newStore func(t *testing.T) contentkeys.Store) {
	ctx := context.Background()
	t.Run("a user without a key has none", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if _, err := s.Get(ctx, "alice"); !errors.Is(err, contentkeys.ErrNoKey) {
			t.Errorf("Get = %v; want ErrNoKey", err)
		}
	})
	t.Run("the first claim wins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		got, err := s.Claim(ctx, "alice", []byte("first"))
		if err != nil || string(got) != "first" {
			t.Fatalf("Claim = %q, %v; want first", got, err)
		}
		if got, err = s.Claim(ctx, "alice", []byte("second")); err != nil || string(got) != "first" {
			t.Errorf("second Claim = %q, %v; want the first key", got, err)
		}
		if got, err = s.Get(ctx, "alice"); err != nil || string(got) != "first" {
			t.Errorf("Get = %q, %v; want first", got, err)
		}
		if _, err := s.Get(ctx, "bob"); !errors.Is(err, contentkeys.ErrNoKey) {
			t.Errorf("Get of another user = %v; want ErrNoKey", err)
		}
	})
	t.Run("concurrent claims agree", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const n = 16
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k, err := s.Claim(ctx, "carol", fmt.Appendf(nil, "key-%d", i))
				if err != nil {
					t.Error(err)
				}
				got[i] = k
			})
		}
		wg.Wait()
		for i := range got {
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("claims returned %q and %q; want one key", got[0], got[i])
			}
		}
	})
	t.Run("a deleted key is gone and a new one may follow", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if _, err := s.Claim(ctx, "dave", []byte("old")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "dave"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "dave"); !errors.Is(err, contentkeys.ErrNoKey) {
			t.Errorf("Get after Delete = %v; want ErrNoKey", err)
		}
		if err := s.Delete(ctx, "dave"); err != nil {
			t.Errorf("deleting again: %v", err)
		}
		if err := s.Delete(ctx, "nobody"); err != nil {
			t.Errorf("deleting a user without a key: %v", err)
		}
		if got, err := s.Claim(ctx, "dave", []byte("new")); err != nil || string(got) != "new" {
			t.Errorf("Claim after Delete = %q, %v; want the new key", got, err)
		}
	})
}
