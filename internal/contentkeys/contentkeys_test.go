package contentkeys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
)

// keyringFor returns a Keyring over a store of its own, for tests and
// benchmarks.
func keyringFor(tb testing.TB) *contentkeys.Keyring {
	tb.Helper()
	s, err := pebblekeys.Open(tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	k := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(k)
	r, err := contentkeys.New(s, k)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func kek(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, contentkeys.KEKSize)
	_, _ = rand.Read(k)
	return k
}

func store(t *testing.T) *pebblekeys.Store {
	t.Helper()
	s, err := pebblekeys.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func keyring(t *testing.T, s contentkeys.Store, k []byte) *contentkeys.Keyring {
	t.Helper()
	r, err := contentkeys.New(s, k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenAndErase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, k := store(t), kek(t)
	r := keyring(t, s, k)
	secret := []byte("meet me at the old mill")
	ct, err := r.Seal(ctx, "alice", "ev-1", "g_1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("the ciphertext holds the plaintext")
	}
	// A second Keyring over the same store and KEK (another process)
	// opens it.
	if pt, err := keyring(t, s, k).Open(ctx, "alice", "ev-1", "g_1", ct); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	for _, tc := range []struct{ name, user, id, subject string }{
		{"another event", "alice", "ev-2", "g_1"},
		{"another conversation", "alice", "ev-1", "g_2"},
		{"another user", "bob", "ev-1", "g_1"},
	} {
		if _, err := r.Open(ctx, tc.user, tc.id, tc.subject, ct); !errors.Is(err, contentkeys.ErrUnreadable) {
			t.Errorf("opened as %s: %v; want ErrUnreadable", tc.name, err)
		}
	}
	if _, err := keyring(t, s, kek(t)).Open(ctx, "alice", "ev-1", "g_1", ct); err == nil {
		t.Error("a Keyring with another KEK opened the content")
	}
	if _, err := contentkeys.New(s, []byte("short")); err == nil {
		t.Error("New took a 5-byte KEK")
	}

	bobs, err := r.Seal(ctx, "bob", "ev-3", "g_1", []byte("bob's"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Erase(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(ctx, "alice", "ev-1", "g_1", ct); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("Open after Erase = %v; want ErrUnreadable", err)
	}
	if _, err := keyring(t, s, k).Open(ctx, "alice", "ev-1", "g_1", ct); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("Open after Erase, by a fresh Keyring = %v; want ErrUnreadable", err)
	}
	if pt, err := r.Open(ctx, "bob", "ev-3", "g_1", bobs); err != nil || string(pt) != "bob's" {
		t.Errorf("bob's content after alice's erasure: %q, %v", pt, err)
	}
	// Alice writes again: a new key, which opens the new content and
	// not the erased.
	ct2, err := r.Seal(ctx, "alice", "ev-4", "g_1", []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := r.Open(ctx, "alice", "ev-4", "g_1", ct2); err != nil || string(pt) != "new" {
		t.Errorf("new content after erasure: %q, %v", pt, err)
	}
	if _, err := r.Open(ctx, "alice", "ev-1", "g_1", ct); !errors.Is(err, contentkeys.ErrUnreadable) {
		t.Errorf("the erased content opened with the new key: %v", err)
	}
}

// Concurrent first seals of one user, by Keyrings of several processes,
// agree on one key: everything each sealed opens with the others.
func TestConcurrentFirstSealsShareAKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, k := store(t), kek(t)
	rings := []*contentkeys.Keyring{keyring(t, s, k), keyring(t, s, k), keyring(t, s, k)}
	cts := make([][]byte, len(rings))
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() {
			ct, err := r.Seal(ctx, "carol", "ev", "g", []byte("hi"))
			if err != nil {
				t.Error(err)
			}
			cts[i] = ct
		})
	}
	wg.Wait()
	for i, ct := range cts {
		for j, r := range rings {
			if _, err := r.Open(ctx, "carol", "ev", "g", ct); err != nil {
				t.Errorf("keyring %d cannot open what keyring %d sealed: %v", j, i, err)
			}
		}
	}
}
