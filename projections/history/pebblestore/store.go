package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// ErrClosed is returned by calls on a Store after Close.
var ErrClosed = errors.New("history store closed")

// lockStripes is the number of conversation locks; conversations share
// them by hash, which only costs parallelism when two busy conversations
// collide.
const lockStripes = 64

// ctxCheckEvery is how many records a read handles between checks of its
// context.
const ctxCheckEvery = 1024

var _ history.Store = (*Store)(nil)

// Store is the history store on Pebble. See the package documentation for
// its keys and its concurrency contract.
type Store struct {
	db   *pebble.DB
	log  *slog.Logger
	seed maphash.Seed
	// locks are the conversation locks: a conversation's lock is held
	// while it is sent a value.
	locks [lockStripes]chan struct{}

	// mu is held for reading by every call and for writing by Close.
	mu     sync.RWMutex
	closed bool
}

// Option configures Open.
type Option func(*config)

type config struct {
	log *slog.Logger
}

// WithLogger sets the logger of the store and of Pebble beneath it.
// Default: discard everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// Open opens the store in dir, creating it if needed.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := config{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{cfg.log},
	})
	if err != nil {
		return nil, fmt.Errorf("opening pebble in %s: %w", dir, err)
	}
	s := &Store{db: db, log: cfg.log, seed: maphash.MakeSeed()}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	return s, nil
}

// Close closes the store after the calls in progress have returned.
// Closing a closed store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing pebble: %w", err)
	}
	return nil
}

// begin starts a call: it checks ctx and that the store is open, and
// returns the function that ends the call.
func (s *Store) begin(ctx context.Context) (end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.mu.RUnlock, nil
}

// Apply stores the events not stored yet and folds them into their
// conversations' summaries and the members' inboxes, in one batch
// committed with pebble.Sync.
func (s *Store) Apply(ctx context.Context, events []history.Event) error {
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("applying events: %w", err)
	}
	defer end()
	if len(events) == 0 {
		return nil
	}

	// Group by conversation, keeping each conversation's order.
	byConversation := make(map[string][]history.Event)
	var order []string
	for _, ev := range events {
		if ev.ConversationID == "" {
			return fmt.Errorf("applying event %d: no conversation id", ev.Seq)
		}
		if _, ok := byConversation[ev.ConversationID]; !ok {
			order = append(order, ev.ConversationID)
		}
		byConversation[ev.ConversationID] = append(byConversation[ev.ConversationID], ev)
	}

	stripes := s.stripes(order)
	if err := s.lock(ctx, stripes); err != nil {
		return fmt.Errorf("applying events: %w", err)
	}
	defer s.unlock(stripes)

	b := s.db.NewBatch()
	defer b.Close()
	for _, conv := range order {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("applying events: %w", err)
		}
		if err := s.applyConversation(b, conv, byConversation[conv]); err != nil {
			return fmt.Errorf("applying events of %s: %w", conv, err)
		}
	}
	if b.Empty() {
		return nil
	}
	// The last point where giving up leaves the store as it was.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("applying events: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("committing batch: %w", err)
	}
	return nil
}

// applyConversation adds to b the writes for the events of one
// conversation. The caller holds the conversation's lock.
func (s *Store) applyConversation(b *pebble.Batch, conv string, events []history.Event) error {
	sum, found, err := getSummary(s.db, conv)
	if err != nil {
		return err
	}
	before := sum
	before.Members = slices.Clone(sum.Members)

	changed := false
	read := map[string]uint64{} // sender → newest seq they sent in this batch
	seen := make(map[uint64]struct{}, len(events))
	for _, ev := range events {
		if _, dup := seen[ev.Seq]; dup {
			continue
		}
		seen[ev.Seq] = struct{}{}
		key := messageKey(conv, ev.Seq)
		// LastSeq is the greatest seq stored, so only a seq at or
		// below it can be stored already.
		if found && ev.Seq <= before.LastSeq {
			stored, err := has(s.db, key)
			if err != nil {
				return err
			}
			if stored {
				continue
			}
		}
		if err := b.Set(key, encodeEvent(ev), nil); err != nil {
			return fmt.Errorf("writing event %d: %w", ev.Seq, err)
		}
		ch, err := history.ApplyToSummary(&sum, ev)
		if err != nil {
			s.log.Warn("event stored without interpreting it",
				"conversation_id", conv, "seq", ev.Seq, "type", ev.Type, "err", err)
		}
		changed = changed || ch
		if ev.Type == schemas.TypeMessageSent {
			var m struct {
				SenderID string `json:"sender_id"`
			}
			if json.Unmarshal(ev.Data, &m) == nil && m.SenderID != "" && ev.Seq > read[m.SenderID] {
				read[m.SenderID] = ev.Seq
			}
		}
	}
	if err := s.advanceRead(b, conv, read); err != nil {
		return err
	}
	if !changed {
		return nil
	}
	v, err := encodeSummary(sum)
	if err != nil {
		return err
	}
	if err := b.Set(conversationKey(conv), v, nil); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	if before.LastActivity.Equal(sum.LastActivity) && slices.Equal(before.Members, sum.Members) {
		return nil
	}
	return s.updateInboxes(b, conv, before.Members, sum)
}

// advanceRead raises each sender's read seq to the newest seq they sent;
// it never moves one back, so replays change nothing.
func (s *Store) advanceRead(b *pebble.Batch, conv string, read map[string]uint64) error {
	for user, seq := range read {
		key := readSeqKey(user, conv)
		v, found, err := get(s.db, key)
		if err != nil {
			return err
		}
		if found && len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			continue
		}
		if err := b.Set(key, binary.BigEndian.AppendUint64(nil, seq), nil); err != nil {
			return fmt.Errorf("writing read seq: %w", err)
		}
	}
	return nil
}

// updateInboxes moves conv to its new activity in the inbox of every
// member and removes it from the inboxes of former members.
func (s *Store) updateInboxes(b *pebble.Batch, conv string, formerMembers []schemas.Member, sum history.Conversation) error {
	members := make(map[string]struct{}, len(sum.Members))
	for _, m := range sum.Members {
		members[m.UserID] = struct{}{}
	}
	for _, m := range formerMembers {
		if _, ok := members[m.UserID]; ok {
			continue
		}
		pk := inboxPointerKey(m.UserID, conv)
		cur, found, err := get(s.db, pk)
		if err != nil {
			return err
		}
		if found {
			if err := b.Delete(inboxKey(m.UserID, cur, conv), nil); err != nil {
				return fmt.Errorf("deleting inbox entry: %w", err)
			}
			if err := b.Delete(pk, nil); err != nil {
				return fmt.Errorf("deleting inbox pointer: %w", err)
			}
		}
	}
	act := activity(sum.LastActivity)
	for _, m := range sum.Members {
		pk := inboxPointerKey(m.UserID, conv)
		cur, found, err := get(s.db, pk)
		if err != nil {
			return err
		}
		if found && bytes.Equal(cur, act) {
			continue
		}
		if found {
			if err := b.Delete(inboxKey(m.UserID, cur, conv), nil); err != nil {
				return fmt.Errorf("deleting inbox entry: %w", err)
			}
		}
		if err := b.Set(inboxKey(m.UserID, act, conv), nil, nil); err != nil {
			return fmt.Errorf("writing inbox entry: %w", err)
		}
		if err := b.Set(pk, act, nil); err != nil {
			return fmt.Errorf("writing inbox pointer: %w", err)
		}
	}
	return nil
}

// Page returns a page of a conversation's events.
func (s *Store) Page(ctx context.Context, conversationID string, q history.PageQuery) (history.Page, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	defer end()
	if err := q.Validate(); err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()

	found, err := has(snap, conversationKey(conversationID))
	if err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	if !found {
		return history.Page{}, fmt.Errorf("conversation %s: %w", conversationID, history.ErrNotFound)
	}
	if q.Forward && q.After == math.MaxUint64 {
		return history.Page{}, nil
	}

	prefix := messagePrefix(conversationID)
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	defer it.Close()

	var ok bool
	step := it.Next
	switch {
	case q.Forward:
		ok = it.SeekGE(messageKey(conversationID, q.After+1))
	case q.Before == 0:
		ok, step = it.Last(), it.Prev
	default:
		ok, step = it.SeekLT(messageKey(conversationID, q.Before)), it.Prev
	}
	page := history.Page{Events: make([]history.Event, 0, min(q.Limit, ctxCheckEvery))}
	for ; ok && len(page.Events) < q.Limit; ok = step() {
		if len(page.Events)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return history.Page{}, fmt.Errorf("reading page: %w", err)
			}
		}
		seq, err := seqOfMessageKey(it.Key())
		if err != nil {
			return history.Page{}, fmt.Errorf("reading page: %w", err)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return history.Page{}, fmt.Errorf("reading event %d: %w", seq, err)
		}
		ev, err := decodeEvent(conversationID, seq, v)
		if err != nil {
			return history.Page{}, fmt.Errorf("reading page: %w", err)
		}
		page.Events = append(page.Events, ev)
	}
	if err := it.Error(); err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	page.HasMore = ok
	return page, nil
}

// Conversation returns a conversation's summary.
func (s *Store) Conversation(ctx context.Context, conversationID string) (history.Conversation, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return history.Conversation{}, fmt.Errorf("reading conversation: %w", err)
	}
	defer end()
	c, found, err := getSummary(s.db, conversationID)
	if err != nil {
		return history.Conversation{}, fmt.Errorf("reading conversation: %w", err)
	}
	if !found {
		return history.Conversation{}, fmt.Errorf("conversation %s: %w", conversationID, history.ErrNotFound)
	}
	return c, nil
}

// Conversations returns the conversations of a user, most recent
// activity first.
func (s *Store) Conversations(ctx context.Context, userID string, limit int) ([]history.Conversation, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	defer end()
	if err := history.ValidateLimit(limit); err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()

	prefix := inboxPrefix(userID)
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	defer it.Close()

	var out []history.Conversation
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading conversations: %w", err)
		}
		conv, err := conversationOfInboxKey(userID, it.Key())
		if err != nil {
			return nil, fmt.Errorf("reading conversations: %w", err)
		}
		c, found, err := getSummary(snap, conv)
		if err != nil {
			return nil, fmt.Errorf("reading conversations: %w", err)
		}
		if !found || !c.IsMember(userID) {
			// Cannot happen: the index and the summary are written in
			// one batch and the snapshot sees both or neither.
			s.log.Error("inbox entry without membership",
				"user_id", userID, "conversation_id", conv)
			continue
		}
		v, found, err := get(snap, readSeqKey(userID, conv))
		if err != nil {
			return nil, fmt.Errorf("reading conversations: %w", err)
		}
		if found && len(v) == 8 {
			c.ReadSeq = binary.BigEndian.Uint64(v)
		}
		out = append(out, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	return out, nil
}

// stripes returns the indexes of the locks of the conversations, sorted
// and without repeats, the order in which they are taken.
func (s *Store) stripes(conversations []string) []int {
	out := make([]int, 0, len(conversations))
	for _, c := range conversations {
		out = append(out, int(maphash.String(s.seed, c)%lockStripes))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lock takes the locks of stripes in order, giving up when ctx is done.
func (s *Store) lock(ctx context.Context, stripes []int) error {
	for i, st := range stripes {
		select {
		case s.locks[st] <- struct{}{}:
		case <-ctx.Done():
			s.unlock(stripes[:i])
			return ctx.Err()
		}
	}
	return nil
}

// unlock releases the locks of stripes.
func (s *Store) unlock(stripes []int) {
	for _, st := range stripes {
		<-s.locks[st]
	}
}

// reader is what both the DB and a snapshot offer.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get returns a copy of the value of key.
func get(r reader, key []byte) (v []byte, found bool, err error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading key: %w", err)
	}
	v = bytes.Clone(val)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("reading key: %w", err)
	}
	return v, true, nil
}

// has reports whether key exists.
func has(r reader, key []byte) (bool, error) {
	_, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	if err := closer.Close(); err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	return true, nil
}

// storedConversation is the stored form of a summary; the id is in the
// key. Its JSON names are part of the on-disk format.
type storedConversation struct {
	Kind         schemas.Kind     `json:"kind,omitempty"`
	Title        string           `json:"title,omitempty"`
	CreatedBy    string           `json:"created_by,omitempty"`
	CreatedAt    time.Time        `json:"created_at"`
	Members      []schemas.Member `json:"members,omitempty"`
	LastSeq      uint64           `json:"last_seq"`
	LastActivity time.Time        `json:"last_activity"`
}

func encodeSummary(c history.Conversation) ([]byte, error) {
	v, err := json.Marshal(storedConversation{
		Kind:         c.Kind,
		Title:        c.Title,
		CreatedBy:    c.CreatedBy,
		CreatedAt:    c.CreatedAt.UTC(),
		Members:      c.Members,
		LastSeq:      c.LastSeq,
		LastActivity: c.LastActivity.UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding summary of %s: %w", c.ID, err)
	}
	return v, nil
}

// getSummary reads the summary of conv.
func getSummary(r reader, conv string) (history.Conversation, bool, error) {
	v, found, err := get(r, conversationKey(conv))
	if err != nil || !found {
		return history.Conversation{}, false, err
	}
	var sc storedConversation
	if err := json.Unmarshal(v, &sc); err != nil {
		return history.Conversation{}, false, fmt.Errorf("%w: summary of %s: %w", errCorrupt, conv, err)
	}
	return history.Conversation{
		ID:           conv,
		Kind:         sc.Kind,
		Title:        sc.Title,
		CreatedBy:    sc.CreatedBy,
		CreatedAt:    sc.CreatedAt.UTC(),
		Members:      sc.Members,
		LastSeq:      sc.LastSeq,
		LastActivity: sc.LastActivity.UTC(),
	}, true, nil
}

// pebbleLogger passes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

// Infof logs at debug level: Pebble's informational lines are about its
// internals, not about Parley.
func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("pebble", "detail", fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble", "detail", fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: Pebble calls it when it cannot go on, and
// expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble fatal", "detail", msg)
	panic("pebble: " + msg)
}
