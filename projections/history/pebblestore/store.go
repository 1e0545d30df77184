// The Pebble history store: applying batches of events and receipts,
// and serving pages, summaries, inboxes and receipts.

package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/pebblelog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/internal/convlock"
	"github.com/parley-chat/parley/projections/history/internal/fold"
	"github.com/parley-chat/parley/schemas"
)

// ErrClosed is returned by calls on a Store after Close.
var ErrClosed = errors.New("history store closed")

// ctxCheckEvery is how many records a read handles between checks of its
// context.
const ctxCheckEvery = 1024

var _ history.Store = (*Store)(nil)

// Store is the history store on Pebble. See the package documentation for
// its keys and its concurrency contract.
type Store struct {
	db  *pebble.DB
	log *slog.Logger
	// locks are held by Apply and ApplyReceipts for the conversations
	// they write.
	locks *convlock.Locks

	// mu is held for reading by every call and for writing by Close.
	mu     sync.RWMutex
	closed bool

	// summaries are the buffers conversation summaries are encoded
	// into (setSummary).
	summaries sync.Pool

	// folded are the summaries Apply wrote last, decoded.
	folded summaryCache
}

// memTableSize is the size of Pebble's memtables (its default is 4 MiB):
// see the package doc, Memtables.
const memTableSize = 32 << 20

// Option configures Open.
type Option func(*config)

type config struct {
	log *slog.Logger
	fs  vfs.FS // nil: the operating system's
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
		Logger:             pebblelog.NewLogger(cfg.log),
		Cleaner:            pebblelog.DeletingCleaner{}, // see Erase
		MemTableSize:       memTableSize,
		FS:                 cfg.fs,
	})
	if err != nil {
		return nil, fmt.Errorf("opening pebble in %s: %w", dir, err)
	}
	s := &Store{db: db, log: cfg.log, locks: convlock.New()}
	if err := s.dropInboxPointers(); err != nil {
		return nil, errors.Join(fmt.Errorf("opening %s: %w", dir, err), db.Close())
	}
	return s, nil
}

// dropInboxPointers converts a store written when the inbox kept a
// pointer to each (user, conversation)'s current inbox key (the 'u'
// keys): every member's inbox key is put at its conversation's
// LastActivity, where Apply now expects it, a former member's is
// deleted, and so are the pointers, pointerChunk of them per synced
// batch. A store without pointers costs one seek. Stopped halfway, it
// goes on at the next Open from the pointers left.
func (s *Store) dropInboxPointers() error {
	total := 0
	for {
		n, err := s.dropInboxPointerChunk()
		if err != nil {
			return fmt.Errorf("converting the inbox: %w", err)
		}
		if n == 0 {
			break
		}
		if total == 0 {
			s.log.Info("history store: converting the inbox, which no longer keeps pointers")
		}
		total += n
	}
	if total > 0 {
		s.log.Info("history store: inbox converted", "pointers", total)
	}
	return nil
}

// pointerChunk is how many inbox pointers one batch of dropInboxPointers
// converts.
const pointerChunk = 10_000

func (s *Store) dropInboxPointerChunk() (n int, err error) {
	prefix := []byte{tagInboxPointer}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	b := s.db.NewBatch()
	defer b.Close()
	type summary struct {
		c     history.Conversation
		found bool
	}
	summaries := make(map[string]summary)
	for ok := it.First(); ok && n < pointerChunk; ok = it.Next() {
		user, rest, err := readString(it.Key()[len(prefix):])
		if err != nil {
			return 0, err
		}
		conv, rest, err := readString(rest)
		if err != nil {
			return 0, err
		}
		if len(rest) != 0 {
			return 0, fmt.Errorf("%w: trailing bytes in an inbox pointer", errCorrupt)
		}
		sum, cached := summaries[conv]
		if !cached {
			if sum.c, sum.found, err = getSummary(s.db, conv); err != nil {
				return 0, err
			}
			summaries[conv] = sum
		}
		cur, want := it.Value(), activity(sum.c.LastActivity)
		member := sum.found && slices.ContainsFunc(sum.c.Members, func(m schemas.Member) bool { return m.UserID == user })
		if !member || !bytes.Equal(cur, want) {
			if err := b.Delete(inboxKey(user, cur, conv), nil); err != nil {
				return 0, err
			}
			if member {
				if err := b.Set(inboxKey(user, want, conv), nil, nil); err != nil {
					return 0, err
				}
			}
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return 0, err
		}
		n++
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, b.Commit(pebble.Sync)
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

var _ history.Pinger = (*Store)(nil)

// probeKey is the key Ping writes and deletes; its tag is no table's.
var probeKey = []byte{'p', 'r', 'o', 'b', 'e'}

// Ping writes a key and deletes it again in a synced batch: it succeeds
// when the store takes writes now (it is open, the disk has room).
func (s *Store) Ping(ctx context.Context) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(probeKey, nil, nil); err != nil {
		return fmt.Errorf("pebblestore: ping: %w", err)
	}
	if err := b.Delete(probeKey, nil); err != nil {
		return fmt.Errorf("pebblestore: ping: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: ping: %w", err)
	}
	return nil
}

// Sync makes everything Apply and ApplyReceipts wrote before it was
// called durable: they commit their batches without waiting for the
// disk, and Sync syncs Pebble's write-ahead log, which holds them in the
// order they were committed (see the package doc, Durability and
// concurrency). The
// history projections are consumers.Syncers through it.
func (s *Store) Sync(ctx context.Context) error {
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("syncing: %w", err)
	}
	defer end()
	// An empty record of the log's own, written with a sync: the log
	// is synced through every record before it.
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("syncing the write-ahead log: %w", err)
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
// conversations' summaries and the members' inboxes, in one batch,
// durable once Sync returns.
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

	unlock, err := s.locks.Lock(ctx, order)
	if err != nil {
		return fmt.Errorf("applying events: %w", err)
	}
	defer unlock()

	b := s.db.NewBatch()
	defer b.Close()
	var written []history.Conversation
	for _, conv := range order {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("applying events: %w", err)
		}
		if err := s.applyConversation(ctx, b, conv, byConversation[conv], &written); err != nil {
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
	if err := b.Commit(pebble.NoSync); err != nil { // durable at Sync
		return fmt.Errorf("committing batch: %w", err)
	}
	s.folded.put(written)
	return nil
}

// applyConversation adds to b the writes for the events of one
// conversation: the events not stored yet, the messages through each
// folded seq, the states of the messages they edit, delete or react to
// (and the bodies a deletion erases), the senders' read seqs, the
// summary and the members' inboxes; it appends the summary it writes to
// written. The caller holds the conversation's lock.
func (s *Store) applyConversation(ctx context.Context, b *pebble.Batch, conv string, events []history.Event, written *[]history.Conversation) error {
	sum, found := s.folded.get(conv)
	if !found {
		var err error
		if sum, found, err = getSummary(s.db, conv); err != nil {
			return err
		}
	}
	slices.SortStableFunc(events, func(a, b history.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	events = slices.CompactFunc(events, func(a, b history.Event) bool { return a.Seq == b.Seq })
	fresh := make([]history.Event, 0, len(events))
	batch := make(map[uint64]history.Event, len(events))
	for _, ev := range events {
		// LastSeq is the greatest seq stored, so only a seq at or
		// below it can be stored already.
		if found && ev.Seq <= sum.LastSeq {
			stored, err := has(s.db, messageKey(conv, ev.Seq))
			if err != nil {
				return err
			}
			if stored {
				continue
			}
		}
		fresh = append(fresh, ev)
		batch[ev.Seq] = ev
	}
	if len(fresh) == 0 {
		return nil
	}
	warn := func(ev history.Event, err error) {
		s.log.Warn("event stored without interpreting it",
			"conversation_id", conv, "seq", ev.Seq, "type", ev.Type, "err", err)
	}
	f := fold.Conversation(sum, fresh, warn)
	msgs, err := fold.FoldMessages(ctx, fresh, s.loader(conv, batch), warn)
	if err != nil {
		return err
	}
	for _, ev := range fresh {
		if r, ok := msgs.Redacted[ev.Seq]; ok {
			ev = r.Event
		}
		if err := b.Set(messageKey(conv, ev.Seq), encodeEvent(ev), nil); err != nil {
			return fmt.Errorf("writing event %d: %w", ev.Seq, err)
		}
	}
	for seq, r := range msgs.Redacted {
		if _, ok := batch[seq]; ok {
			continue
		}
		if err := b.Set(messageKey(conv, seq), encodeEvent(r.Event), nil); err != nil {
			return fmt.Errorf("erasing event %d: %w", seq, err)
		}
	}
	for _, c := range f.Counts {
		if err := b.Set(countKey(conv, c.Seq), encodeSeqs(c.Messages), nil); err != nil {
			return fmt.Errorf("writing count of %d: %w", c.Seq, err)
		}
	}
	for _, ev := range fresh {
		if owner, ok := contentkeys.Owner(ev.Type, ev.Data); ok {
			if err := b.Set(authorKey(schemas.ErasureRef(owner), conv), nil, nil); err != nil {
				return fmt.Errorf("writing author of %d: %w", ev.Seq, err)
			}
		}
	}
	for seq, st := range msgs.States {
		v, err := fold.EncodeState(st)
		if err != nil {
			return err
		}
		if err := b.Set(stateKey(conv, seq), v, nil); err != nil {
			return fmt.Errorf("writing state of message %d: %w", seq, err)
		}
	}
	for user, seq := range f.Read {
		if err := s.raiseMarkers(b, conv, user, seq, 0); err != nil {
			return err
		}
	}
	if !f.Changed {
		return nil
	}
	if err := s.setSummary(b, conv, f.Conversation); err != nil {
		return err
	}
	*written = append(*written, f.Conversation)
	if sum.LastActivity.Equal(f.Conversation.LastActivity) && slices.Equal(sum.Members, f.Conversation.Members) {
		return nil
	}
	return s.updateInboxes(b, conv, sum, f.Conversation)
}

// loader loads the events a batch's edits, deletions and reactions
// target: from the batch's new events (which have no state yet), else
// from the store with their stored state.
func (s *Store) loader(conv string, batch map[uint64]history.Event) fold.Loader {
	return func(_ context.Context, seq uint64) (history.Event, *history.MessageState, bool, error) {
		if ev, ok := batch[seq]; ok {
			return ev, nil, true, nil
		}
		v, found, err := get(s.db, messageKey(conv, seq))
		if err != nil || !found {
			return history.Event{}, nil, false, err
		}
		ev, err := decodeEvent(conv, seq, v)
		if err != nil {
			return history.Event{}, nil, false, err
		}
		v, found, err = get(s.db, stateKey(conv, seq))
		if err != nil || !found {
			return ev, nil, true, err
		}
		st, err := fold.DecodeState(v)
		if err != nil {
			return history.Event{}, nil, false, fmt.Errorf("%w: message %d of %s: %w", errCorrupt, seq, conv, err)
		}
		return ev, st, true, nil
	}
}

// Erase blanks the content of the user e names (see history.Writer and
// the package doc).
func (s *Store) Erase(ctx context.Context, e history.Erasure) error {
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	defer end()
	var convs []string
	prefix := authorPrefix(e.SubjectRef)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		conv, _, err := readString(it.Key()[len(prefix):])
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("erasing: %w", err)
		}
		convs = append(convs, conv)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	if len(convs) == 0 {
		return nil
	}
	unlock, err := s.locks.Lock(ctx, convs)
	if err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	defer unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var written []string
	for _, conv := range convs {
		n := b.Count()
		if err := s.eraseConversation(ctx, b, conv, e); err != nil {
			return fmt.Errorf("erasing in %s: %w", conv, err)
		}
		if b.Count() != n {
			written = append(written, conv)
		}
	}
	if b.Empty() {
		return nil
	}
	s.folded.forget(written)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("erasing: committing: %w", err)
	}
	// The plaintext is still in the memtable's log and in older tables:
	// flush, then compact what was rewritten.
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("erasing: flushing: %w", err)
	}
	for _, conv := range written {
		for _, p := range [][]byte{messagePrefix(conv), seqPrefix(tagState, conv), conversationKey(conv)} {
			if err := s.db.Compact(ctx, p, prefixEnd(p), true); err != nil {
				return fmt.Errorf("erasing: compacting %s: %w", conv, err)
			}
		}
	}
	return nil
}

// eraseConversation adds to b the writes that blank e's user's content
// in conv. The caller holds conv's lock.
func (s *Store) eraseConversation(ctx context.Context, b *pebble.Batch, conv string, e history.Erasure) error {
	sum, found, err := getSummary(s.db, conv)
	if err != nil || !found {
		return err
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	prefix := messagePrefix(conv)
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	var events []history.Event
	for ok := it.First(); ok; ok = it.Next() {
		seq, err := seqOfMessageKey(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		ev, err := decodeEvent(conv, seq, v)
		if err != nil {
			_ = it.Close()
			return err
		}
		events = append(events, ev)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if err := attachStates(ctx, snap, conv, events); err != nil {
		return err
	}
	out, err := fold.Erase(sum, events, e.SubjectRef, e.At)
	if err != nil {
		return err
	}
	for _, ev := range out.Events {
		if err := b.Set(messageKey(conv, ev.Seq), encodeEvent(ev), nil); err != nil {
			return err
		}
	}
	for seq, st := range out.States {
		v, err := fold.EncodeState(st)
		if err != nil {
			return err
		}
		if err := b.Set(stateKey(conv, seq), v, nil); err != nil {
			return err
		}
	}
	if out.Changed {
		if err := s.setSummary(b, conv, out.Conversation); err != nil {
			return err
		}
	}
	return nil
}

// raiseMarkers raises user's read and delivered seqs in conv to read and
// delivered where they are lower, in the receipts key and (read) in the
// inbox's read seq key; it never lowers one, so replays and markers out
// of order change nothing. It reads the store, not b: the caller passes
// each (conversation, user) once per batch.
func (s *Store) raiseMarkers(b *pebble.Batch, conv, user string, read, delivered uint64) error {
	key := receiptKey(conv, user)
	v, found, err := get(s.db, key)
	if err != nil {
		return err
	}
	cur := []uint64{0, 0}
	if found {
		if cur, err = decodeSeqs(v, 2); err != nil {
			return fmt.Errorf("receipt of %s in %s: %w", user, conv, err)
		}
	}
	if read > cur[0] || delivered > cur[1] {
		if err := b.Set(key, encodeSeqs(max(read, cur[0]), max(delivered, cur[1])), nil); err != nil {
			return fmt.Errorf("writing receipt: %w", err)
		}
	}
	if read == 0 {
		return nil
	}
	key = readSeqKey(user, conv)
	v, found, err = get(s.db, key)
	if err != nil {
		return err
	}
	if found && len(v) == 8 && binary.BigEndian.Uint64(v) >= read {
		return nil
	}
	if err := b.Set(key, encodeSeqs(read), nil); err != nil {
		return fmt.Errorf("writing read seq: %w", err)
	}
	return nil
}

// ApplyReceipts raises the read and delivered seqs of the receipts, in
// one batch, durable once Sync returns.
func (s *Store) ApplyReceipts(ctx context.Context, receipts []history.Receipt) error {
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("applying receipts: %w", err)
	}
	defer end()
	type key struct{ conv, user string }
	merged := map[key][2]uint64{}
	var convs []string
	for _, r := range receipts {
		if r.ConversationID == "" || r.UserID == "" {
			return fmt.Errorf("applying receipts: a receipt without conversation or user id (%q, %q)", r.ConversationID, r.UserID)
		}
		k := key{r.ConversationID, r.UserID}
		m := merged[k]
		merged[k] = [2]uint64{max(m[0], r.ReadSeq), max(m[1], r.DeliveredSeq)}
		convs = append(convs, r.ConversationID)
	}
	if len(merged) == 0 {
		return nil
	}
	unlock, err := s.locks.Lock(ctx, convs)
	if err != nil {
		return fmt.Errorf("applying receipts: %w", err)
	}
	defer unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for k, m := range merged {
		if err := s.raiseMarkers(b, k.conv, k.user, m[0], m[1]); err != nil {
			return fmt.Errorf("applying receipts of %s: %w", k.conv, err)
		}
	}
	if b.Empty() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("applying receipts: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil { // durable at Sync
		return fmt.Errorf("committing receipts: %w", err)
	}
	return nil
}

// updateInboxes moves conv to its new activity in the inbox of every
// member and removes it from the inboxes of former members. former is
// the summary before the batch: every one of its members has conv's
// inbox key at its LastActivity (the inbox invariant, see the package
// doc), so no key needs reading to find the one to delete.
func (s *Store) updateInboxes(b *pebble.Batch, conv string, former, sum history.Conversation) error {
	was := make(map[string]struct{}, len(former.Members))
	for _, m := range former.Members {
		was[m.UserID] = struct{}{}
	}
	members := make(map[string]struct{}, len(sum.Members))
	for _, m := range sum.Members {
		members[m.UserID] = struct{}{}
	}
	prev, act := activity(former.LastActivity), activity(sum.LastActivity)
	for _, m := range former.Members {
		if _, ok := members[m.UserID]; ok {
			continue
		}
		if err := b.Delete(inboxKey(m.UserID, prev, conv), nil); err != nil {
			return fmt.Errorf("deleting inbox entry: %w", err)
		}
	}
	for _, m := range sum.Members {
		if _, ok := was[m.UserID]; ok {
			if bytes.Equal(prev, act) {
				continue
			}
			if err := b.Delete(inboxKey(m.UserID, prev, conv), nil); err != nil {
				return fmt.Errorf("deleting inbox entry: %w", err)
			}
		}
		if err := b.Set(inboxKey(m.UserID, act, conv), nil, nil); err != nil {
			return fmt.Errorf("writing inbox entry: %w", err)
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
	if err := attachStates(ctx, snap, conversationID, page.Events); err != nil {
		return history.Page{}, fmt.Errorf("reading page: %w", err)
	}
	return page, nil
}

// attachStates sets the Message of the events that have a stored message
// state, reading the states of the events' seq range in one pass.
func attachStates(ctx context.Context, snap *pebble.Snapshot, conv string, events []history.Event) error {
	if len(events) == 0 {
		return nil
	}
	index := make(map[uint64]int, len(events))
	lo, hi := events[0].Seq, events[0].Seq
	for i, ev := range events {
		index[ev.Seq] = i
		lo, hi = min(lo, ev.Seq), max(hi, ev.Seq)
	}
	upper := prefixEnd(seqPrefix(tagState, conv))
	if hi < math.MaxUint64 {
		upper = stateKey(conv, hi+1)
	}
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: stateKey(conv, lo), UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seq, err := seqOfMessageKey(it.Key())
		if err != nil {
			return err
		}
		i, ok := index[seq]
		if !ok {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("reading state of message %d: %w", seq, err)
		}
		st, err := fold.DecodeState(v)
		if err != nil {
			return fmt.Errorf("%w: message %d of %s: %w", errCorrupt, seq, conv, err)
		}
		events[i].Message = st
	}
	return it.Error()
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
		if c.ReadMessages, err = readMessages(ctx, snap, c); err != nil {
			return nil, fmt.Errorf("reading conversations: %w", err)
		}
		out = append(out, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	return out, nil
}

// readMessages returns how many of c's messages have a seq at or below
// c.ReadSeq: none at 0; all of them from LastSeq on (a read marker may
// name a seq not applied yet); otherwise the count stored with the event
// at ReadSeq or, if that event has none (it is not stored or filled a
// gap late), with the nearest lower one in the same bucket, else 0.
func readMessages(ctx context.Context, snap *pebble.Snapshot, c history.Conversation) (uint64, error) {
	switch {
	case c.ReadSeq == 0:
		return 0, nil
	case c.ReadSeq >= c.LastSeq:
		return c.Messages, nil
	}
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: countKey(c.ID, c.ReadSeq/bucketSize*bucketSize),
		UpperBound: countKey(c.ID, c.ReadSeq+1),
	})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, err
	}
	n, err := decodeSeqs(v, 1)
	if err != nil {
		return 0, fmt.Errorf("messages through %d of %s: %w", c.ReadSeq, c.ID, err)
	}
	return n[0], nil
}

// Receipts returns the read and delivered seqs of the members of a
// conversation who have any, sorted by user id.
func (s *Store) Receipts(ctx context.Context, conversationID string) ([]history.Receipt, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading receipts: %w", err)
	}
	defer end()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	c, found, err := getSummary(snap, conversationID)
	if err != nil {
		return nil, fmt.Errorf("reading receipts: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("conversation %s: %w", conversationID, history.ErrNotFound)
	}
	prefix := receiptPrefix(conversationID)
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("reading receipts: %w", err)
	}
	defer it.Close()
	var out []history.Receipt
	for ok := it.First(); ok; ok = it.Next() {
		user, err := userOfReceiptKey(conversationID, it.Key())
		if err != nil {
			return nil, fmt.Errorf("reading receipts: %w", err)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("reading receipts: %w", err)
		}
		seqs, err := decodeSeqs(v, 2)
		if err != nil {
			return nil, fmt.Errorf("reading receipt of %s: %w", user, err)
		}
		if !c.IsMember(user) || (seqs[0] == 0 && seqs[1] == 0) {
			continue
		}
		out = append(out, history.Receipt{ConversationID: conversationID, UserID: user, ReadSeq: seqs[0], DeliveredSeq: seqs[1]})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading receipts: %w", err)
	}
	return out, nil
}

// reader is what both the DB and a snapshot offer.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get returns a copy of the value of key.
func get(r reader, key []byte) (v []byte, found bool, err error) {
	found, err = view(r, key, func(val []byte) error {
		v = bytes.Clone(val)
		return nil
	})
	return v, found, err
}

// view calls f with the value of key, if it exists, and reports
// whether it does. The value is pebble's: f must not keep it.
func view(r reader, key []byte, f func(val []byte) error) (found bool, err error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	ferr := f(val)
	if err := closer.Close(); err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	return true, ferr
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
	Archived     bool             `json:"archived,omitempty"`
	BlockedBy    []string         `json:"blocked_by,omitempty"`
	Messages     uint64           `json:"messages,omitempty"`
	LastMessage  *storedPreview   `json:"last_message,omitempty"`
	// The state of an encrypted conversation (conversation.State).
	Encrypted bool                `json:"encrypted,omitempty"`
	Epoch     uint64              `json:"epoch,omitempty"`
	Devices   []schemas.DeviceRef `json:"devices,omitempty"`
	Leaving   []string            `json:"leaving,omitempty"`
}

// storedPreview is the stored form of a history.Preview.
type storedPreview struct {
	Seq      uint64    `json:"seq"`
	SenderID string    `json:"sender_id"`
	Body     string    `json:"body,omitempty"`
	Edited   bool      `json:"edited,omitempty"`
	Deleted  bool      `json:"deleted,omitempty"`
	SentAt   time.Time `json:"sent_at"`
	// Files are the names of the message's files; summaries stored
	// before they were kept have none.
	Files []string `json:"files,omitempty"`
}

// setSummary writes the summary c of conv to b. It is encoded into a
// buffer of the store's pool, which b copies.
func (s *Store) setSummary(b *pebble.Batch, conv string, c history.Conversation) error {
	buf, ok := s.summaries.Get().(*bytes.Buffer)
	if !ok {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= maxPooledSummary {
			buf.Reset()
			s.summaries.Put(buf)
		}
	}()
	if err := encodeSummary(buf, c); err != nil {
		return err
	}
	if err := b.Set(conversationKey(conv), buf.Bytes(), nil); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// maxPooledSummary is the largest buffer setSummary gives back to the
// pool: a large group's summary leaves its buffer to the collector.
const maxPooledSummary = 64 << 10

// encodeSummary appends the stored summary of c to buf: its JSON, as
// json.Marshal writes it.
func encodeSummary(buf *bytes.Buffer, c history.Conversation) error {
	sc := storedConversation{
		Kind:         c.Kind,
		Title:        c.Title,
		CreatedBy:    c.CreatedBy,
		CreatedAt:    c.CreatedAt.UTC(),
		Members:      c.Members,
		LastSeq:      c.LastSeq,
		LastActivity: c.LastActivity.UTC(),
		Archived:     c.Archived,
		BlockedBy:    c.BlockedBy,
		Messages:     c.Messages,
		Encrypted:    c.Encrypted,
		Epoch:        c.Epoch,
		Devices:      c.Devices,
		Leaving:      c.Leaving,
	}
	if p := c.LastMessage; p != nil {
		sc.LastMessage = &storedPreview{Seq: p.Seq, SenderID: p.SenderID, Body: p.Body, Edited: p.Edited, Deleted: p.Deleted, SentAt: p.SentAt.UTC(), Files: p.Files}
	}
	if err := json.NewEncoder(buf).Encode(sc); err != nil {
		return fmt.Errorf("encoding summary of %s: %w", c.ID, err)
	}
	buf.Truncate(buf.Len() - 1) // the newline Encode ends with
	return nil
}

// getSummary reads the summary of conv.
func getSummary(r reader, conv string) (history.Conversation, bool, error) {
	var sc storedConversation
	// Decoded in place: json.Unmarshal copies what it keeps.
	found, err := view(r, conversationKey(conv), func(v []byte) error {
		if err := json.Unmarshal(v, &sc); err != nil {
			return fmt.Errorf("%w: summary of %s: %w", errCorrupt, conv, err)
		}
		return nil
	})
	if err != nil || !found {
		return history.Conversation{}, false, err
	}
	c := history.Conversation{
		State: conversation.State{
			ID:        conv,
			Kind:      sc.Kind,
			Title:     sc.Title,
			CreatedBy: sc.CreatedBy,
			CreatedAt: sc.CreatedAt.UTC(),
			Members:   sc.Members,
			LastSeq:   sc.LastSeq,
			Archived:  sc.Archived,
			BlockedBy: sc.BlockedBy,
			Encrypted: sc.Encrypted,
			Epoch:     sc.Epoch,
			Devices:   sc.Devices,
			Leaving:   sc.Leaving,
		},
		LastActivity: sc.LastActivity.UTC(),
		Messages:     sc.Messages,
	}
	if p := sc.LastMessage; p != nil {
		c.LastMessage = &history.Preview{Seq: p.Seq, SenderID: p.SenderID, Body: p.Body, Edited: p.Edited, Deleted: p.Deleted, SentAt: p.SentAt.UTC(), Files: p.Files}
	}
	return c, true, nil
}
