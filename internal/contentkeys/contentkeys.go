// Package contentkeys is crypto-shredding: the personal content of events
// (message bodies, file names, conversation titles) is encrypted with a
// data key of its author, so that destroying that one key erases the
// author's content everywhere the log and its copies reach — every
// replica, every backup, every projection rebuilt from it — while the
// events themselves, their order and their metadata stay.
//
// A Keyring holds one Tink AEAD keyset (AES-256-GCM) per user. The keyset
// is stored wrapped (envelope encryption) by a key-encryption key (KEK)
// that never leaves the process's configuration, with the user id as
// associated data, in a Store: the key store, a port with an embedded
// adapter (pebblekeys) and a conformance suite (keystoretest). Content is
// sealed with the event id and the conversation id as associated data,
// so a ciphertext cannot be moved to another event. Erase deletes the
// user's keyset from the store: from then on every ciphertext of theirs
// opens to ErrUnreadable, and nothing in the log, the projections or the
// key store can recover it. Wrapped keys are never written to Kafka:
// a wrapped key in a topic would outlive the erasure (until compaction,
// in every replica and topic backup) and the KEK would still open it.
//
// The commands that carry such content are sealed the same way (by the
// gateway, under the key of the command's user), so chat.commands and
// its dead letters hold none in clear either. Blank gives a value as it
// reads once its owner is erased: what the projections that blank an
// erased user's content live write, so that they end where a rebuild
// from the log ends.
//
// A Keyring is safe for concurrent use.
package contentkeys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Errors of the package.
var (
	// ErrNoKey is returned by a Store for a user without a key.
	ErrNoKey = errors.New("no data key")
	// ErrUnreadable is returned by Open for content whose key was erased
	// (or that was altered, or moved to another event).
	ErrUnreadable = errors.New("content unreadable: its key is erased")
)

// Store keeps each user's wrapped data key. Implementations are safe for
// concurrent use.
type Store interface {
	// Claim stores wrapped as user's key unless user has one already,
	// and returns the key user has after the call: wrapped, or the one
	// stored before. Concurrent claims of one user all return the same
	// key.
	Claim(ctx context.Context, user string, wrapped []byte) ([]byte, error)
	// Get returns user's wrapped key, or an error wrapping ErrNoKey.
	Get(ctx context.Context, user string) ([]byte, error)
	// Delete removes user's key for good: when it returns, no read of the
	// store returns it, and the adapter has asked its engine to drop the
	// bytes (Pebble: a synced delete, compacted away; ScyllaDB: a
	// tombstone). Deleting a key that does not exist does nothing.
	Delete(ctx context.Context, user string) error
}

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// Keyring seals and opens content with per-user data keys.
type Keyring struct {
	store Store
	kek   tink.AEAD

	now   func() time.Time
	mu    sync.Mutex
	cache map[string]cached // unwrapped keys; a user's entry goes on Erase
}

// cached is an unwrapped key and when it must be read from the store
// again.
type cached struct {
	aead  tink.AEAD
	until time.Time
}

// CacheTTL is how long a Keyring keeps a key unwrapped in memory before
// it reads the store again: the longest an erasure made by another
// process takes to reach this one.
const CacheTTL = time.Minute

// New returns a Keyring over store whose data keys are wrapped with kek,
// a 32-byte AES-256-GCM key.
func New(store Store, kek []byte) (*Keyring, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("contentkeys: the key-encryption key has %d bytes, want %d", len(kek), KEKSize)
	}
	a, err := subtle.NewAESGCM(bytes.Clone(kek))
	if err != nil {
		return nil, fmt.Errorf("contentkeys: %w", err)
	}
	return &Keyring{store: store, kek: a, now: time.Now, cache: map[string]cached{}}, nil
}

// wrapAD is the associated data of user's wrapped key: a wrapped key
// moved to another user does not unwrap.
func wrapAD(user string) []byte { return []byte("parley data key v1\x00" + user) }

// contentAD is the associated data of content sealed for event id of
// conversation subject.
func contentAD(user, eventID, subject string) []byte {
	return []byte("parley content v1\x00" + user + "\x00" + eventID + "\x00" + subject)
}

// key returns user's data key, creating it when create is set and user
// has none; without create, a user without a key gives ErrUnreadable.
func (k *Keyring) key(ctx context.Context, user string, create bool) (tink.AEAD, error) {
	k.mu.Lock()
	c, ok := k.cache[user]
	k.mu.Unlock()
	if ok && k.now().Before(c.until) {
		return c.aead, nil
	}
	wrapped, err := k.store.Get(ctx, user)
	switch {
	case errors.Is(err, ErrNoKey) && !create:
		return nil, ErrUnreadable
	case errors.Is(err, ErrNoKey):
		h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, fmt.Errorf("contentkeys: new data key: %w", err)
		}
		var buf bytes.Buffer
		if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), k.kek, wrapAD(user)); err != nil {
			return nil, fmt.Errorf("contentkeys: wrapping the data key of %s: %w", user, err)
		}
		if wrapped, err = k.store.Claim(ctx, user, buf.Bytes()); err != nil {
			return nil, fmt.Errorf("contentkeys: storing the data key of %s: %w", user, err)
		}
	case err != nil:
		return nil, fmt.Errorf("contentkeys: reading the data key of %s: %w", user, err)
	}
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), k.kek, wrapAD(user))
	if err != nil {
		return nil, fmt.Errorf("contentkeys: unwrapping the data key of %s: %w", user, err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("contentkeys: %w", err)
	}
	k.mu.Lock()
	k.cache[user] = cached{aead: a, until: k.now().Add(CacheTTL)}
	k.mu.Unlock()
	return a, nil
}

// Seal encrypts plaintext with user's data key (made on first use) for
// event eventID of conversation subject.
func (k *Keyring) Seal(ctx context.Context, user, eventID, subject string, plaintext []byte) ([]byte, error) {
	a, err := k.key(ctx, user, true)
	if err != nil {
		return nil, err
	}
	ct, err := a.Encrypt(plaintext, contentAD(user, eventID, subject))
	if err != nil {
		return nil, fmt.Errorf("contentkeys: sealing: %w", err)
	}
	return ct, nil
}

// Open decrypts what Seal sealed for the same user, event and
// conversation. Content whose key was erased, or that was altered or
// sealed for another event, gives an error wrapping ErrUnreadable.
func (k *Keyring) Open(ctx context.Context, user, eventID, subject string, ciphertext []byte) ([]byte, error) {
	a, err := k.key(ctx, user, false)
	if err != nil {
		return nil, err
	}
	pt, err := a.Decrypt(ciphertext, contentAD(user, eventID, subject))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrUnreadable, user)
	}
	return pt, nil
}

// Erase destroys user's data key: in the store and in this Keyring's
// memory. Other Keyrings over the same store stop using it within
// CacheTTL, or at once when told (Forget).
func (k *Keyring) Erase(ctx context.Context, user string) error {
	k.Forget(user)
	if err := k.store.Delete(ctx, user); err != nil {
		return fmt.Errorf("contentkeys: erasing the data key of %s: %w", user, err)
	}
	k.Forget(user) // a Seal that raced the delete may have cached it again
	return nil
}

// Forget drops user's unwrapped key from memory.
func (k *Keyring) Forget(user string) {
	k.mu.Lock()
	delete(k.cache, user)
	k.mu.Unlock()
}
