// The push projection's store: membership, read markers, and what is due
// and what was sent, in Pebble.

package push

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/internal/pebblelog"
)

// Key layout. Ids never contain a zero byte (see schemas), which
// separates their parts.
const (
	prefixConv    = "c\x00" // conv -> convState
	prefixMember  = "m\x00" // user, conv -> (empty): the user's conversations
	prefixRead    = "r\x00" // user, conv -> read seq
	prefixPending = "p\x00" // user, device, conv -> pending
	prefixClear   = "x\x00" // user, device, conv -> clearing
	prefixSent    = "s\x00" // user, device, conv -> sent
	prefixMessage = "n\x00" // conv, seq (8 bytes, big-endian) -> (empty): the messages
	prefixDue     = "d\x00" // due (8 bytes, big-endian Unix ns), 'p' or 'x', user, device, conv -> (empty): the pending and clearing entries by when they are due
	keyProbe      = "probe"
)

func key(prefix string, parts ...string) []byte {
	b := []byte(prefix)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// dueEntry is a pending or clearing entry: what the due index orders.
type dueEntry interface{ due() time.Time }

func (p pending) due() time.Time  { return p.Due }
func (c clearing) due() time.Time { return c.Due }

// dueKey is the due index's key of the entry under prefix (prefixPending
// or prefixClear) of user, device and conv, due at due.
func dueKey(prefix string, due time.Time, user, device, conv string) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefixDue), uint64(max(due.UnixNano(), 0)))
	k = append(k, prefix[0], 0)
	return append(k, key("", user, device, conv)...)
}

// putDue writes v as the entry under prefix of user, device and conv,
// with its due index key; old is the entry it replaces, if there is one.
func putDue[T dueEntry](b *pebble.Batch, prefix, user, device, conv string, old *T, v T) error {
	if old != nil {
		if err := b.Delete(dueKey(prefix, (*old).due(), user, device, conv), nil); err != nil {
			return err
		}
	}
	if err := setJSON(b, key(prefix, user, device, conv), v); err != nil {
		return err
	}
	return b.Set(dueKey(prefix, v.due(), user, device, conv), nil, nil)
}

// deleteDue deletes old, the entry under prefix of user, device and
// conv, with its due index key.
func deleteDue[T dueEntry](b *pebble.Batch, prefix, user, device, conv string, old T) error {
	if err := b.Delete(dueKey(prefix, old.due(), user, device, conv), nil); err != nil {
		return err
	}
	return b.Delete(key(prefix, user, device, conv), nil)
}

// messageKey is the key of conv's message seq; a conversation's keys
// sort by seq.
func messageKey(conv string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(key(prefixMessage, conv), 0), seq)
}

// splitKey returns the parts of a key after its prefix.
func splitKey(k []byte, prefix string) []string {
	var out []string
	rest := k[len(prefix):]
	for {
		i := slices.Index(rest, 0)
		if i < 0 {
			return append(out, string(rest))
		}
		out = append(out, string(rest[:i]))
		rest = rest[i+1:]
	}
}

// convState is what the projection knows of a conversation.
type convState struct {
	Members []string `json:"members"`
	LastSeq uint64   `json:"last_seq"`
	// Encrypted: the conversation is end-to-end encrypted.
	Encrypted bool `json:"encrypted,omitempty"`
}

// pending is the notification due to one device for one conversation:
// the messages not notified yet, coalesced.
type pending struct {
	// LastSeq is the newest message's seq; Count how many messages there
	// are.
	LastSeq  uint64 `json:"last_seq"`
	Count    int    `json:"count"`
	SenderID string `json:"sender_id"`
	// Preview is the newest message's preview; empty when the
	// conversation's bodies must not leave the server.
	Preview string `json:"preview,omitempty"`
	// Mentioned: one of the messages mentions the user.
	Mentioned bool `json:"mentioned,omitempty"`
	// EventTime is when the newest message was accepted.
	EventTime time.Time `json:"event_time"`
	// Due is when it may be sent: at once, or once the window since the
	// last notification of the conversation to the device has passed.
	Due      time.Time `json:"due"`
	Attempts int       `json:"attempts,omitempty"`
}

// clearing is a background push due to a device that was notified of
// messages the user has since read on another device.
type clearing struct {
	ReadSeq  uint64    `json:"read_seq"`
	Due      time.Time `json:"due"`
	Attempts int       `json:"attempts,omitempty"`
}

// sent records the last notification sent to a device for a
// conversation.
type sent struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Cleared: a clear for it has been scheduled.
	Cleared bool `json:"cleared,omitempty"`
}

// Store is the push projection's Pebble database. What is due must
// survive a crash: the sender's writes are synced, and the projection's
// are synced before its consumer group commits (Projection.Sync).
type Store struct {
	db *pebble.DB
}

// sync syncs the write-ahead log, and with it every write committed
// before: an empty record of the log's own, written with a sync.
func (s *Store) sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("syncing the push store: %w", err)
	}
	return nil
}

// OpenStore opens (or creates) the store in dir; log may be nil.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebblelog.NewLogger(log),
		Cleaner: pebblelog.DeletingCleaner{}}) // see applyErasure
	if err != nil {
		return nil, fmt.Errorf("opening the push store in %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// getJSON reads key into v; false if it is absent.
func getJSON(r pebble.Reader, k []byte, v any) (bool, error) {
	b, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	return true, json.Unmarshal(b, v)
}

func setJSON(b *pebble.Batch, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Set(k, raw, nil)
}

func getUint(r pebble.Reader, k []byte) (uint64, error) {
	b, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if len(b) != 8 {
		return 0, fmt.Errorf("bad value of %q", k)
	}
	return binary.BigEndian.Uint64(b), nil
}

// scan calls fn for every key under prefix in r, until fn returns false.
func scan(r pebble.Reader, prefix string, fn func(k, v []byte) (bool, error)) error {
	end := []byte(prefix)
	end[len(end)-1]++
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: end})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil || !more {
			return errors.Join(err, it.Close())
		}
	}
	return it.Close()
}

// member reports whether user is a member of conv now.
func (s *Store) member(user, conv string) (bool, error) {
	_, c, err := s.db.Get(key(prefixMember, user, conv))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, c.Close()
}

// badge is user's unread total, as the inbox counts it: over the user's
// conversations, the messages after the user's read seq.
func (s *Store) badge(user string) (uint64, error) {
	var total uint64
	err := scan(s.db, string(key(prefixMember, user))+"\x00", func(k, _ []byte) (bool, error) {
		parts := splitKey(k, prefixMember)
		conv := parts[len(parts)-1]
		read, err := getUint(s.db, key(prefixRead, user, conv))
		if err != nil {
			return false, err
		}
		n, err := s.unread(conv, read)
		total += n
		return err == nil, err
	})
	return total, err
}
