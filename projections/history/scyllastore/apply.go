package scyllastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

const (
	// bucketSize is the number of seqs per messages partition: bucket =
	// seq / bucketSize (schemas/cql/0001_history.cql).
	bucketSize = 1000
	// maxBatchStatements and maxBatchBytes bound one unlogged batch of
	// message rows, well below ScyllaDB's batch size warning (128 KiB by
	// default) and failure (1 MiB) thresholds.
	maxBatchStatements = 200
	maxBatchBytes      = 64 << 10
	// previewRunes is the length of a message preview in the inbox.
	previewRunes = 140
)

// writeMode is how Apply writes message rows.
type writeMode int

const (
	// writeBatches sends the rows of one messages partition as unlogged
	// batches (the default; see the package doc for the measurements).
	writeBatches writeMode = iota
	// writeConcurrent sends one INSERT per row, with bounded parallelism.
	writeConcurrent
)

func bucketOf(seq uint64) int64 { return int64(seq / bucketSize) }

// micros is the write timestamp of a time-valued cell: the time in
// microseconds, so that the newest time wins (a tie within one
// microsecond is resolved by the larger value, the later nanosecond).
func micros(ns int64) int64 { return ns / 1000 }

// Apply writes a batch of events; see history.Writer. It returns an error
// if any write failed; some writes may then have been applied, which is
// safe because the projection retries the whole batch and every write is
// an idempotent upsert with an event-derived timestamp.
//
// Per conversation of the batch, in this order (conversations in
// parallel): the message rows; the summary (one single-partition batch);
// a read of the summary back; then the inbox row of every member (one
// single-partition batch each). Writing the message rows before last_seq
// means a reader that sees last_seq n finds every event up to n. Reading
// the summary after writing it means that of two concurrent Applies of
// one conversation at least one sees the other's effect, so the inbox
// converges whatever the interleaving.
func (s *Store) Apply(ctx context.Context, events []history.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	sem := make(chan struct{}, s.concurrency)
	convs := groupByConversation(events)
	fns := make([]func(context.Context) error, len(convs))
	for i, c := range convs {
		fns[i] = func(ctx context.Context) error { return s.applyConversation(ctx, sem, c) }
	}
	if err := parallel(ctx, nil, fns); err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	return nil
}

// convEvents are the events of one conversation in a batch, each seq once.
type convEvents struct {
	id     string
	events []history.Event
}

func groupByConversation(events []history.Event) []convEvents {
	index := map[string]int{}
	seen := map[string]map[uint64]bool{}
	var out []convEvents
	for _, ev := range events {
		i, ok := index[ev.ConversationID]
		if !ok {
			i = len(out)
			index[ev.ConversationID] = i
			out = append(out, convEvents{id: ev.ConversationID})
			seen[ev.ConversationID] = map[uint64]bool{}
		}
		if seen[ev.ConversationID][ev.Seq] {
			continue
		}
		seen[ev.ConversationID][ev.Seq] = true
		out[i].events = append(out[i].events, ev)
	}
	return out
}

// lastMessage is the newest chat message of a batch.
type lastMessage struct {
	seq     uint64
	sender  string
	preview string
}

// preview returns body cut to previewRunes runes, an ellipsis marking a
// cut.
func preview(body string) string {
	n := 0
	for i := range body {
		if n == previewRunes-1 {
			if utf8.RuneCountInString(body[i:]) > 1 {
				return body[:i] + "…"
			}
			return body
		}
		n++
	}
	return body
}

// sentMessage is the part of chat.message.sent.v1 the inbox needs. The
// projection validated the record against its schema before Apply.
type sentMessage struct {
	SenderID string `json:"sender_id"`
	Body     string `json:"body"`
}

// folded is what a batch says about its conversation's summary.
type folded struct {
	sum     history.Conversation
	created bool
	last    *lastMessage
	senders map[string]uint64 // sender → newest seq they sent
	left    map[string]uint64 // member → seq of their departure
}

func (s *Store) fold(c convEvents) folded {
	f := folded{senders: map[string]uint64{}, left: map[string]uint64{}}
	for _, ev := range c.events {
		_, err := history.ApplyToSummary(&f.sum, ev)
		if err != nil {
			// The event is stored anyway: the log is the source of truth
			// and the projection must not wedge on one record.
			s.log.Warn("event does not fit the conversation summary; stored as is",
				"conversation_id", c.id, "seq", ev.Seq, "type", ev.Type, "err", err)
		}
		switch ev.Type {
		case schemas.TypeConversationCreated:
			f.created = f.created || err == nil
		case schemas.TypeMemberLeft:
			var m struct {
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal(ev.Data, &m); err == nil && m.UserID != "" && ev.Seq > f.left[m.UserID] {
				f.left[m.UserID] = ev.Seq
			}
		case schemas.TypeMessageSent:
			var m sentMessage
			if err := json.Unmarshal(ev.Data, &m); err != nil || m.SenderID == "" {
				s.log.Warn("undecodable message stored without preview",
					"conversation_id", c.id, "seq", ev.Seq, "err", err)
				continue
			}
			if f.last == nil || ev.Seq > f.last.seq {
				f.last = &lastMessage{seq: ev.Seq, sender: m.SenderID, preview: preview(m.Body)}
			}
			if ev.Seq > f.senders[m.SenderID] {
				f.senders[m.SenderID] = ev.Seq
			}
		}
	}
	return f
}

func (s *Store) applyConversation(ctx context.Context, sem chan struct{}, c convEvents) error {
	if err := s.writeMessages(ctx, sem, c); err != nil {
		return fmt.Errorf("writing events of %s: %w", c.id, err)
	}
	f := s.fold(c)
	err := slot(ctx, sem, func(ctx context.Context) error { return s.summaryBatch(ctx, c.id, f).Exec() })
	if err != nil {
		return fmt.Errorf("writing summary of %s: %w", c.id, err)
	}
	var snap summaryRow
	err = slot(ctx, sem, func(ctx context.Context) (err error) {
		snap, err = s.readSummary(ctx, c.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading back summary of %s: %w", c.id, err)
	}
	fns := make([]func(context.Context) error, 0, len(snap.members)+len(f.left))
	for user, seq := range f.left {
		fns = append(fns, func(ctx context.Context) error {
			return s.session.Query(s.q.deleteInbox, int64(seq)+1, user, c.id).WithContext(ctx).
				Idempotent(true).DefaultTimestamp(false).Exec()
		})
	}
	for user, role := range snap.members {
		read, sent := f.senders[user]
		fns = append(fns, func(ctx context.Context) error {
			return s.inboxBatch(ctx, c.id, user, role, snap, read, sent).Exec()
		})
	}
	if err := parallel(ctx, sem, fns); err != nil {
		return fmt.Errorf("writing inbox rows of %s: %w", c.id, err)
	}
	return nil
}

// writeMessages writes the message rows of a conversation's events.
func (s *Store) writeMessages(ctx context.Context, sem chan struct{}, c convEvents) error {
	args := func(ev history.Event) []any {
		return []any{ev.ConversationID, bucketOf(ev.Seq), int64(ev.Seq), ev.ID, ev.Type,
			ev.Time.UnixNano(), []byte(ev.Data), int64(ev.Seq) + 1}
	}
	var fns []func(context.Context) error
	if s.writeMode == writeConcurrent {
		for _, ev := range c.events {
			fns = append(fns, func(ctx context.Context) error {
				return s.session.Query(s.q.insertMessage, args(ev)...).WithContext(ctx).
					Idempotent(true).DefaultTimestamp(false).Exec()
			})
		}
		return parallel(ctx, sem, fns)
	}
	// One unlogged batch per messages partition (conversation, bucket),
	// split to stay small: a single-partition batch is applied by its
	// replicas as one mutation, so it costs one request instead of one
	// per row, without the coordinator fan-out of a multi-partition
	// batch.
	var chunk []gocql.BatchEntry
	bytes, bucket := 0, int64(-1)
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		entries := chunk
		fns = append(fns, func(ctx context.Context) error {
			b := s.batch(ctx)
			b.Entries = entries
			return b.Exec()
		})
		chunk, bytes = nil, 0
	}
	for _, ev := range c.events {
		size := len(ev.Data) + len(ev.ID) + len(ev.Type) + len(ev.ConversationID) + 64
		if b := bucketOf(ev.Seq); b != bucket || len(chunk) == maxBatchStatements || bytes+size > maxBatchBytes {
			flush()
			bucket = b
		}
		chunk = append(chunk, gocql.BatchEntry{Stmt: s.q.insertMessage, Args: args(ev), Idempotent: true})
		bytes += size
	}
	flush()
	return parallel(ctx, sem, fns)
}

// batch returns an empty unlogged batch. Every statement the store
// batches carries its own USING TIMESTAMP, so the batch sends no
// client-side default timestamp.
func (s *Store) batch(ctx context.Context) *gocql.Batch {
	return s.session.Batch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(false)
}

// summaryBatch writes what a batch says about its conversation's
// summary, each cell with its own event-derived timestamp, in one
// single-partition batch.
func (s *Store) summaryBatch(ctx context.Context, id string, f folded) *gocql.Batch {
	b := s.batch(ctx)
	add := func(stmt string, args ...any) {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
	}
	if f.created {
		members := make(map[string]string, len(f.sum.Members))
		for _, m := range f.sum.Members {
			members[m.UserID] = string(m.Role)
		}
		// The creation is seq 0: timestamp 1.
		add(s.q.insertCreation, id, string(f.sum.Kind), f.sum.Title, f.sum.CreatedBy,
			f.sum.CreatedAt.UnixNano(), members, int64(1))
	}
	add(s.q.setLastSeq, int64(f.sum.LastSeq)+1, int64(f.sum.LastSeq), id)
	act := f.sum.LastActivity.UnixNano()
	add(s.q.setLastActivity, micros(act), act, id)
	if f.last != nil {
		add(s.q.setLastMessage, int64(f.last.seq)+1, int64(f.last.seq), f.last.sender, f.last.preview, id)
	}
	for user, seq := range f.left {
		add(s.q.deleteMember, user, int64(seq)+1, id)
	}
	return b
}

// inboxBatch writes user's inbox row of a conversation from a snapshot
// of its summary, each cell with the timestamp of the summary cell it
// copies, so the newest snapshot wins cell by cell; read is the newest
// seq user sent in this batch, which user has read.
func (s *Store) inboxBatch(ctx context.Context, id, user, role string, snap summaryRow, read uint64, sent bool) *gocql.Batch {
	b := s.batch(ctx)
	add := func(stmt string, args ...any) {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
	}
	add(s.q.inboxSummary, snap.lastSeq+1, role, snap.lastSeq, user, id)
	add(s.q.inboxActivity, micros(snap.lastActivity), snap.lastActivity, user, id)
	if snap.lastMessageSeq != nil && snap.lastSender != nil && snap.lastPreview != nil {
		add(s.q.inboxLastMessage, *snap.lastMessageSeq+1, *snap.lastSender, *snap.lastPreview, user, id)
	}
	if sent {
		add(s.q.inboxReadSeq, int64(read)+1, int64(read), user, id)
	}
	return b
}

// slot runs one request while holding a slot of sem.
func slot(ctx context.Context, sem chan struct{}, fn func(context.Context) error) error {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sem }()
	return fn(ctx)
}

// parallel runs fns concurrently, each in a slot of sem (none when sem is
// nil), and returns the first error; a failure cancels the others.
func parallel(ctx context.Context, sem chan struct{}, fns []func(context.Context) error) error {
	switch len(fns) {
	case 0:
		return nil
	case 1:
		if sem == nil {
			return fns[0](ctx)
		}
		return slot(ctx, sem, fns[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, fn := range fns {
		wg.Go(func() {
			var err error
			if sem == nil {
				err = fn(ctx)
			} else {
				err = slot(ctx, sem, fn)
			}
			if err != nil {
				mu.Lock()
				if first == nil || (errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return first
}
