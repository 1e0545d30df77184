// The decider's state on disk: what would grow with the log if it were
// kept in memory.

package decider

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/pebblelog"
)

// errStore marks an error of the state store: the state can no longer be
// trusted, so the partition is given up and rebuilt rather than the
// command dead-lettered.
var errStore = errors.New("decider state store")

// Store keeps, for every partition a decider owns, the state that grows
// with the log: each message's author, time, deletion and reactions,
// every command id answered, and the conversations evicted from memory.
// It is a scratch Pebble database: it holds nothing that chat.events
// does not, so it keeps no write-ahead log and each partition's keys are
// dropped when the partition is rebuilt. Its memory is bounded by
// Pebble's memtables and block cache, not by the log.
//
// A Store is safe for concurrent use by the partitions' goroutines; each
// partition touches only its own keys.
type Store struct {
	db    *pebble.DB
	cache *pebble.Cache
}

// storeCacheBytes is the block cache shared by a decider's partitions.
const storeCacheBytes = 16 << 20

// OpenStore opens the store in dir, creating it if needed, and drops
// whatever an earlier process left there. Pebble locks dir: two deciders
// cannot share one.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	return openStore(dir, vfs.Default, log)
}

// openMemStore opens a store whose files are in memory, for tests of the
// state alone.
func openMemStore() (*Store, error) {
	return openStore("", vfs.NewMem(), slog.New(slog.DiscardHandler))
}

func openStore(dir string, fs vfs.FS, log *slog.Logger) (*Store, error) {
	cache := pebble.NewCache(storeCacheBytes)
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		MemTableSize:       4 << 20,
		DisableWAL:         true,
		Logger:             pebblelog.NewLogger(log),
	})
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("%w: opening pebble in %s: %w", errStore, dir, err)
	}
	s := &Store{db: db, cache: cache}
	if err := db.DeleteRange([]byte{}, []byte{0xff, 0xff, 0xff}, pebble.NoSync); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: dropping an earlier state: %w", errStore, err)
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error {
	err := s.db.Close()
	s.cache.Unref()
	if err != nil {
		return fmt.Errorf("%w: closing: %w", errStore, err)
	}
	return nil
}

// partition returns the keys of partition p, emptied.
func (s *Store) partition(p int) (*partitionStore, error) {
	ps := &partitionStore{db: s.db, prefix: binary.BigEndian.AppendUint16(nil, uint16(p))}
	end := binary.BigEndian.AppendUint16(nil, uint16(p)+1)
	if p == 0xffff {
		end = []byte{0xff, 0xff, 0xff}
	}
	if err := s.db.DeleteRange(ps.prefix, end, pebble.NoSync); err != nil {
		return nil, fmt.Errorf("%w: emptying partition %d: %w", errStore, p, err)
	}
	return ps, nil
}

// partitionStore is one partition's keys:
//
//	p 'c' conv               → the conversation, evicted from memory (JSON)
//	p 'm' conv seq           → the message at seq
//	p 'k' conv user command  → the seq the command produced
//
// where p is the partition (2 bytes), seq 8 bytes big-endian, and every
// string but the last is prefixed by its length, so that no two keys of
// different parts are equal.
type partitionStore struct {
	db     *pebble.DB
	prefix []byte
	buf    []byte
}

func (ps *partitionStore) key(kind byte, conv string, last string, parts ...string) []byte {
	k := append(ps.buf[:0], ps.prefix...)
	k = append(k, kind)
	k = binary.AppendUvarint(k, uint64(len(conv)))
	k = append(k, conv...)
	for _, p := range parts {
		k = binary.AppendUvarint(k, uint64(len(p)))
		k = append(k, p...)
	}
	k = append(k, last...)
	ps.buf = k
	return k
}

func (ps *partitionStore) get(k []byte, f func([]byte) error) (bool, error) {
	v, closer, err := ps.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: reading: %w", errStore, err)
	}
	defer closer.Close()
	if err := f(v); err != nil {
		return false, fmt.Errorf("%w: decoding %q: %w", errStore, k, err)
	}
	return true, nil
}

func (ps *partitionStore) set(k, v []byte) error {
	if err := ps.db.Set(k, v, pebble.NoSync); err != nil {
		return fmt.Errorf("%w: writing: %w", errStore, err)
	}
	return nil
}

func seqKey(seq uint64) string {
	return string(binary.BigEndian.AppendUint64(nil, seq))
}

// message reads the message at seq of conv.
func (ps *partitionStore) message(conv string, seq uint64) (message, bool, error) {
	var m message
	ok, err := ps.get(ps.key('m', conv, seqKey(seq)), m.decode)
	return m, ok, err
}

func (ps *partitionStore) putMessage(conv string, seq uint64, m *message) error {
	return ps.set(ps.key('m', conv, seqKey(seq)), m.encode())
}

// command reads the seq that user's command produced in conv.
func (ps *partitionStore) command(conv, user, command string) (uint64, bool, error) {
	var seq uint64
	ok, err := ps.get(ps.key('k', conv, command, user), func(v []byte) error {
		var n int
		seq, n = binary.Uvarint(v)
		if n <= 0 {
			return errors.New("bad seq")
		}
		return nil
	})
	return seq, ok, err
}

func (ps *partitionStore) putCommand(conv, user, command string, seq uint64) error {
	return ps.set(ps.key('k', conv, command, user), binary.AppendUvarint(nil, seq))
}

// storedConversation is a conversation evicted from memory.
type storedConversation struct {
	State     conversation.State `json:"state"`
	CreateCmd string             `json:"create_command"`
}

func (ps *partitionStore) conversation(conv string) (*tracked, bool, error) {
	var sc storedConversation
	ok, err := ps.get(ps.key('c', conv, ""), func(v []byte) error { return json.Unmarshal(v, &sc) })
	if !ok || err != nil {
		return nil, false, err
	}
	return &tracked{State: sc.State, createCmd: sc.CreateCmd}, true, nil
}

func (ps *partitionStore) putConversation(c *tracked) error {
	v, err := json.Marshal(storedConversation{State: c.State, CreateCmd: c.createCmd})
	if err != nil {
		return fmt.Errorf("%w: encoding conversation %s: %w", errStore, c.ID, err)
	}
	return ps.set(ps.key('c', c.ID, ""), v)
}

// encode is m as stored:
//
//	author (uvarint length, bytes), sent at (8 bytes), deleted (1 byte),
//	uploads and thumbs (each: count, then length, bytes),
//	then per emoji: emoji (length, bytes), users (count, then length, bytes)
func (m *message) encode() []byte {
	b := make([]byte, 0, 16+len(m.author))
	b = appendString(b, m.author)
	b = binary.BigEndian.AppendUint64(b, uint64(m.sentAt))
	if m.deleted {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendStrings(b, m.uploads)
	b = appendStrings(b, m.thumbs)
	for emoji, users := range m.reactions {
		b = appendString(b, emoji)
		b = binary.AppendUvarint(b, uint64(len(users)))
		for u := range users {
			b = appendString(b, u)
		}
	}
	return b
}

func (m *message) decode(b []byte) error {
	var ok bool
	if m.author, b, ok = readString(b); !ok || len(b) < 9 {
		return errors.New("truncated message")
	}
	m.sentAt = int64(binary.BigEndian.Uint64(b))
	m.deleted = b[8] == 1
	b = b[9:]
	if m.uploads, b, ok = readStrings(b); !ok {
		return errors.New("truncated uploads")
	}
	if m.thumbs, b, ok = readStrings(b); !ok {
		return errors.New("truncated thumbnails")
	}
	for len(b) > 0 {
		var emoji string
		if emoji, b, ok = readString(b); !ok {
			return errors.New("truncated reaction")
		}
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)) {
			return errors.New("truncated reaction")
		}
		b = b[w:]
		users := make(map[string]struct{}, n)
		for range n {
			var u string
			if u, b, ok = readString(b); !ok {
				return errors.New("truncated reaction")
			}
			users[u] = struct{}{}
		}
		if m.reactions == nil {
			m.reactions = make(map[string]map[string]struct{})
		}
		m.reactions[emoji] = users
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func readStrings(b []byte) ([]string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	b = b[w:]
	var ss []string
	for range n {
		var s string
		var ok bool
		if s, b, ok = readString(b); !ok {
			return nil, nil, false
		}
		ss = append(ss, s)
	}
	return ss, b, true
}

func readString(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}
