// Applying events to ScyllaDB: per-partition batches written with
// timestamps derived from seq, so a replay never overwrites newer state.

package scyllastore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/internal/fold"
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
	// maxSeq is the greatest seq a timestamp seq + 1 can carry.
	maxSeq = math.MaxInt64 - 1
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

// ts is the write timestamp derived from a seq: seq + 1, so that the
// creation (seq 0) writes at 1 and a higher seq always wins.
func ts(seq uint64) int64 { return int64(seq) + 1 }

// micros is the write timestamp of a time-valued cell: the time in
// microseconds, so that the newest time wins (a tie within one
// microsecond is resolved by the larger value, the later nanosecond).
func micros(ns int64) int64 { return ns / 1000 }

// Apply writes a batch of events; see history.Writer. It returns an error
// if any write failed; some writes may then have been applied, which is
// safe because the projection retries the whole batch and every write is
// an idempotent upsert with an event-derived timestamp.
//
// Apply holds the in-process locks of the batch's conversations, so two
// Applies of one conversation in this process never fold from the same
// summary. Per conversation (conversations in parallel): read the
// summary; fold the batch into it (internal/fold: what changed and at
// which seq, the messages through each seq, the senders' read seqs, the
// message states and the bodies a deletion erases); write the message
// rows, counts, states and erased bodies; then the inbox rows and
// receipts; then the summary, last. The summary is the commit point: a
// batch that failed before it is folded again from the same summary when
// retried, and a batch folded already (a replay) folds nothing and
// writes only its message rows again.
func (s *Store) Apply(ctx context.Context, events []history.Event) (err error) {
	defer s.healOn(&err)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	convs := groupByConversation(events)
	ids := make([]string, len(convs))
	for i, c := range convs {
		if c.id == "" {
			return fmt.Errorf("scyllastore: apply: event %d has no conversation id", c.events[0].Seq)
		}
		ids[i] = c.id
	}
	unlock, err := s.locks.Lock(ctx, ids)
	if err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	defer unlock()
	sem := make(chan struct{}, s.concurrency)
	fns := make([]func(context.Context) error, len(convs))
	for i, c := range convs {
		fns[i] = func(ctx context.Context) error { return s.applyConversation(ctx, sem, c) }
	}
	if err := parallel(ctx, nil, fns); err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	return nil
}

// convEvents are the events of one conversation in a batch, each seq
// once, in ascending seq order.
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
	for _, c := range out {
		slices.SortStableFunc(c.events, func(a, b history.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return out
}

func (s *Store) applyConversation(ctx context.Context, sem chan struct{}, c convEvents) error {
	for _, ev := range c.events {
		if ev.Seq > maxSeq {
			return fmt.Errorf("event %d of %s: seq above %d", ev.Seq, c.id, uint64(maxSeq))
		}
	}
	var base summaryRow
	err := slot(ctx, sem, func(ctx context.Context) (err error) {
		base, err = s.readSummary(ctx, c.id)
		return err
	})
	found := err == nil
	if err != nil && !errors.Is(err, history.ErrNotFound) {
		return fmt.Errorf("reading summary of %s: %w", c.id, err)
	}
	var before history.Conversation
	if found {
		before = base.conversation(c.id)
	}
	warn := func(ev history.Event, err error) {
		// The event is stored anyway: the log is the source of truth and
		// the projection must not wedge on one record.
		s.log.Warn("event stored without interpreting it",
			"conversation_id", c.id, "seq", ev.Seq, "type", ev.Type, "err", err)
	}
	f := fold.Conversation(before, c.events, warn)
	batch := make(map[uint64]history.Event, len(c.events))
	for _, ev := range c.events {
		batch[ev.Seq] = ev
	}
	msgs, err := fold.FoldMessages(ctx, c.events, s.loader(sem, c.id, batch), warn)
	if err != nil {
		return fmt.Errorf("folding messages of %s: %w", c.id, err)
	}
	if err := s.writeMessages(ctx, sem, c, f, msgs); err != nil {
		return fmt.Errorf("writing events of %s: %w", c.id, err)
	}
	// The seq of the event that last changed the preview: the inbox rows
	// copy the preview with its timestamp. Rows written before the
	// column existed have the newest message's seq.
	previewVersion := deref(base.lastMessageSeq)
	if base.previewVersion != nil {
		previewVersion = *base.previewVersion
	}
	if f.PreviewSeq > 0 {
		previewVersion = int64(f.PreviewSeq)
	}
	if err := parallel(ctx, sem, append(s.markerWrites(c.id, f, previewVersion), s.authorWrites(c.id, c.events)...)); err != nil {
		return fmt.Errorf("writing inbox rows of %s: %w", c.id, err)
	}
	if !f.Changed {
		return nil
	}
	err = slot(ctx, sem, func(ctx context.Context) error { return s.summaryBatch(ctx, c.id, f, previewVersion).Exec() })
	if err != nil {
		return fmt.Errorf("writing summary of %s: %w", c.id, err)
	}
	return nil
}

// loader loads the events the batch's edits, deletions and reactions
// target, with their stored state: from the store, or from the batch for
// an event not stored yet.
func (s *Store) loader(sem chan struct{}, conv string, batch map[uint64]history.Event) fold.Loader {
	return func(ctx context.Context, seq uint64) (history.Event, *history.MessageState, bool, error) {
		var (
			id, typ     string
			ns          int64
			data, state []byte
		)
		err := slot(ctx, sem, func(ctx context.Context) error {
			return s.session().Query(s.q.selectMessage, conv, bucketOf(seq), int64(seq)).WithContext(ctx).
				Idempotent(true).Scan(&id, &typ, &ns, &data, &state)
		})
		if errors.Is(err, gocql.ErrNotFound) {
			ev, ok := batch[seq]
			return ev, nil, ok, nil
		}
		if err != nil {
			return history.Event{}, nil, false, err
		}
		ev := history.Event{ConversationID: conv, Seq: seq, ID: id, Type: typ, Time: time.Unix(0, ns).UTC(), Data: data}
		if len(state) == 0 {
			return ev, nil, true, nil
		}
		st, err := fold.DecodeState(state)
		if err != nil {
			return history.Event{}, nil, false, fmt.Errorf("message %d: %w", seq, err)
		}
		return ev, st, true, nil
	}
}

// rowWrite is one write to a messages partition (conversation, bucket).
type rowWrite struct {
	bucket int64
	stmt   string
	args   []any
	size   int
}

// writeMessages writes the message rows of a conversation's events (with
// the bodies the batch erases already erased, and the messages through
// the seq of each event folded), the changed message states and the
// erased bodies of events stored before.
func (s *Store) writeMessages(ctx context.Context, sem chan struct{}, c convEvents, f fold.Summary, msgs fold.Messages) error {
	counts := make(map[uint64]uint64, len(f.Counts))
	for _, n := range f.Counts {
		counts[n.Seq] = n.Messages
	}
	var writes []rowWrite
	for _, ev := range c.events {
		data := ev.Data
		if r, ok := msgs.Redacted[ev.Seq]; ok {
			data = r.Event.Data
		}
		w := rowWrite{bucketOf(ev.Seq), s.q.insertMessage, []any{c.id, bucketOf(ev.Seq), int64(ev.Seq),
			ev.ID, ev.Type, ev.Time.UnixNano(), []byte(data), ts(ev.Seq)},
			len(data) + len(ev.ID) + len(ev.Type) + len(c.id) + 64}
		if n, ok := counts[ev.Seq]; ok {
			w.stmt = s.q.insertCounted
			w.args = slices.Insert(w.args, 7, any(int64(n)))
		}
		writes = append(writes, w)
	}
	for _, seq := range slices.Sorted(maps.Keys(msgs.States)) {
		st := msgs.States[seq]
		v, err := fold.EncodeState(st)
		if err != nil {
			return err
		}
		writes = append(writes, rowWrite{bucketOf(seq), s.q.setState,
			[]any{ts(st.Version), v, c.id, bucketOf(seq), int64(seq)}, len(v) + len(c.id) + 48})
	}
	for _, seq := range slices.Sorted(maps.Keys(msgs.Redacted)) {
		r := msgs.Redacted[seq]
		writes = append(writes, rowWrite{bucketOf(seq), s.q.setData,
			[]any{ts(r.By), []byte(r.Event.Data), c.id, bucketOf(seq), int64(seq)}, len(r.Event.Data) + len(c.id) + 48})
	}
	var fns []func(context.Context) error
	if s.writeMode == writeConcurrent {
		for _, w := range writes {
			fns = append(fns, func(ctx context.Context) error {
				return s.session().Query(w.stmt, w.args...).WithContext(ctx).
					Idempotent(true).DefaultTimestamp(false).Exec()
			})
		}
		return parallel(ctx, sem, fns)
	}
	// Unlogged batches per messages partition (conversation, bucket),
	// split to stay small: a single-partition batch is applied by its
	// replicas as one mutation, so it costs one request instead of one
	// per row, without the coordinator fan-out of a multi-partition
	// batch.
	slices.SortStableFunc(writes, func(a, b rowWrite) int { return cmp.Compare(a.bucket, b.bucket) })
	var chunk []gocql.BatchEntry
	size, bucket := 0, int64(-1)
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
		chunk, size = nil, 0
	}
	for _, w := range writes {
		if w.bucket != bucket || len(chunk) == maxBatchStatements || size+w.size > maxBatchBytes {
			flush()
			bucket = w.bucket
		}
		chunk = append(chunk, gocql.BatchEntry{Stmt: w.stmt, Args: w.args, Idempotent: true})
		size += w.size
	}
	flush()
	return parallel(ctx, sem, fns)
}

// batch returns an empty unlogged batch. Every statement the store
// batches carries its own USING TIMESTAMP, so the batch sends no
// client-side default timestamp.
func (s *Store) batch(ctx context.Context) *gocql.Batch {
	return s.session().Batch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(false)
}

// batchAdder returns a function adding an idempotent statement to b.
func batchAdder(b *gocql.Batch) func(stmt string, args ...any) {
	return func(stmt string, args ...any) {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
	}
}

// summaryBatch writes what a batch changed in its conversation's
// summary, each cell with the timestamp of the event that changed it,
// in one single-partition batch.
func (s *Store) summaryBatch(ctx context.Context, id string, f fold.Summary, previewVersion int64) *gocql.Batch {
	b := s.batch(ctx)
	add := batchAdder(b)
	sum := f.Conversation
	if f.Created {
		members := make(map[string]string, len(sum.Members))
		for _, m := range sum.Members {
			members[m.UserID] = string(m.Role)
		}
		// The creation is seq 0: timestamp 1. Later changes of the
		// same batch are written below with their own, higher ones.
		add(s.q.insertCreation, id, string(sum.Kind), sum.Title, sum.CreatedBy,
			sum.CreatedAt.UnixNano(), members, ts(0))
	}
	add(s.q.setLastSeq, ts(sum.LastSeq), int64(sum.LastSeq), int64(sum.Messages), id)
	act := sum.LastActivity.UnixNano()
	add(s.q.setLastActivity, micros(act), act, id)
	if p := sum.LastMessage; f.PreviewSeq > 0 && p != nil {
		add(s.q.setLastMessage, ts(f.PreviewSeq), int64(p.Seq), p.SenderID, p.Body,
			p.Edited, p.Deleted, p.SentAt.UnixNano(), previewVersion, p.Files, id)
	}
	if f.TitleSeq > 0 {
		add(s.q.setTitle, ts(f.TitleSeq), sum.Title, id)
	}
	if f.ArchivedSeq > 0 {
		add(s.q.setArchived, ts(f.ArchivedSeq), sum.Archived, id)
	}
	if f.Encryption {
		add(s.q.setEncryption, ts(f.EncryptionSeq), sum.Encrypted, int64(sum.Epoch),
			encodeDevices(sum.Devices), sum.Leaving, id)
	}
	for _, user := range slices.Sorted(maps.Keys(f.Members)) {
		ch := f.Members[user]
		if ch.Removed {
			add(s.q.deleteMember, user, ts(ch.Seq), id)
		} else {
			add(s.q.setMember, ts(ch.Seq), user, string(ch.Role), id)
		}
	}
	for _, user := range slices.Sorted(maps.Keys(f.Blocks)) {
		ch := f.Blocks[user]
		stmt := s.q.removeBlock
		if ch.Blocked {
			stmt = s.q.addBlock
		}
		add(stmt, ts(ch.Seq), []string{user}, id)
	}
	return b
}

// markerWrites returns the writes of a batch to its conversation's inbox
// rows and receipts: the inbox row of every member when the summary
// changed, each cell with the timestamp of the summary cell it copies;
// the read seq of every sender, who has read up to their newest message
// (in the inbox row and the receipts); and the deletion of the inbox
// rows of those who left or were removed.
func (s *Store) markerWrites(id string, f fold.Summary, previewVersion int64) []func(context.Context) error {
	sum := f.Conversation
	users := map[string]bool{}
	if f.Changed {
		for _, m := range sum.Members {
			users[m.UserID] = true
		}
	}
	for u := range f.Read {
		users[u] = true
	}
	var fns []func(context.Context) error
	for user := range users {
		fns = append(fns, func(ctx context.Context) error {
			b := s.batch(ctx)
			add := batchAdder(b)
			if role, member := sum.Role(user); member && f.Changed {
				add(s.q.inboxSummary, ts(sum.LastSeq), string(role), int64(sum.LastSeq), user, id)
				act := sum.LastActivity.UnixNano()
				add(s.q.inboxActivity, micros(act), act, user, id)
				if p := sum.LastMessage; p != nil {
					add(s.q.inboxLastMessage, previewVersion+1, p.SenderID, p.Body, user, id)
				}
			}
			if read, ok := f.Read[user]; ok {
				add(s.q.inboxReadSeq, ts(read), int64(read), user, id)
			}
			return b.Exec()
		})
	}
	if len(f.Read) > 0 {
		fns = append(fns, func(ctx context.Context) error {
			b := s.batch(ctx)
			add := batchAdder(b)
			for user, read := range f.Read {
				add(s.q.receiptRead, ts(read), int64(read), id, user)
			}
			return b.Exec()
		})
	}
	for user, ch := range f.Members {
		if !ch.Removed || sum.IsMember(user) {
			continue
		}
		fns = append(fns, func(ctx context.Context) error {
			return s.session().Query(s.q.deleteInbox, ts(ch.Seq), user, id).WithContext(ctx).
				Idempotent(true).DefaultTimestamp(false).Exec()
		})
	}
	return fns
}

// ApplyReceipts writes read and delivered markers; see history.Writer.
// Each marker is written with timestamp seq + 1, so the highest seq
// wins whatever the order: the read seq in the receipts row and in the
// inbox row (read by Conversations), the delivered seq in the receipts
// row. Writes are grouped into one single-partition batch per
// conversation (receipts) and per user (inbox).
func (s *Store) ApplyReceipts(ctx context.Context, receipts []history.Receipt) (err error) {
	defer s.healOn(&err)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scyllastore: apply receipts: %w", err)
	}
	byConv := map[string]*gocql.Batch{}
	byUser := map[string]*gocql.Batch{}
	batchOf := func(m map[string]*gocql.Batch, key string) func(string, ...any) {
		b, ok := m[key]
		if !ok {
			b = s.batch(ctx)
			m[key] = b
		}
		return batchAdder(b)
	}
	for _, r := range receipts {
		if r.ConversationID == "" || r.UserID == "" {
			return fmt.Errorf("scyllastore: apply receipts: a receipt without conversation or user id (%q, %q)", r.ConversationID, r.UserID)
		}
		if r.ReadSeq > maxSeq || r.DeliveredSeq > maxSeq {
			s.log.Warn("receipt with a seq out of range ignored",
				"conversation_id", r.ConversationID, "user_id", r.UserID, "read_seq", r.ReadSeq, "delivered_seq", r.DeliveredSeq)
			continue
		}
		if r.ReadSeq > 0 {
			batchOf(byConv, r.ConversationID)(s.q.receiptRead, ts(r.ReadSeq), int64(r.ReadSeq), r.ConversationID, r.UserID)
			batchOf(byUser, r.UserID)(s.q.inboxReadSeq, ts(r.ReadSeq), int64(r.ReadSeq), r.UserID, r.ConversationID)
		}
		if r.DeliveredSeq > 0 {
			batchOf(byConv, r.ConversationID)(s.q.receiptDelivered, ts(r.DeliveredSeq), int64(r.DeliveredSeq), r.ConversationID, r.UserID)
		}
	}
	var fns []func(context.Context) error
	for _, m := range []map[string]*gocql.Batch{byConv, byUser} {
		for _, b := range m {
			fns = append(fns, func(ctx context.Context) error { return b.WithContext(ctx).Exec() })
		}
	}
	if err := parallel(ctx, make(chan struct{}, s.concurrency), fns); err != nil {
		return fmt.Errorf("scyllastore: apply receipts: %w", err)
	}
	return nil
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

// authorWrites returns the writes recording, for each owner of personal
// content among events, that they wrote in conversation id
// (content_authors, by erasure reference).
func (s *Store) authorWrites(id string, events []history.Event) []func(context.Context) error {
	refs := map[string]bool{}
	for _, ev := range events {
		if owner, ok := contentkeys.Owner(ev.Type, ev.Data); ok {
			refs[schemas.ErasureRef(owner)] = true
		}
	}
	var fns []func(context.Context) error
	for ref := range refs {
		fns = append(fns, func(ctx context.Context) error {
			return s.session().Query(s.q.insertAuthor, ref, id).WithContext(ctx).Idempotent(true).Exec()
		})
	}
	return fns
}

// Erase blanks the content of the user e names; see history.Writer. It
// reads the conversations of their reference (content_authors) and, in
// each, the summary and every event with its state, blanks them
// (internal/fold's Erase) and writes what changed — event data, message
// states, title, preview, and the members' inbox rows' copy of the
// preview — with the timestamp last seq + 2: above every write of the
// events it read (seq + 1 at most), below those of any event from
// last seq + 2 on, which were folded from what they read and win. An
// event of seq last seq + 1 applied at the same moment by another
// process ties with it; an erasure applied again (or a rebuild) settles
// that.
func (s *Store) Erase(ctx context.Context, e history.Erasure) (err error) {
	defer s.healOn(&err)
	var convs []string
	iter := s.session().Query(s.q.selectAuthors, e.SubjectRef).WithContext(ctx).Idempotent(true).Iter()
	var conv string
	for iter.Scan(&conv) {
		convs = append(convs, conv)
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("erasing: reading the conversations of %s: %w", e.SubjectRef, err)
	}
	if len(convs) == 0 {
		return nil
	}
	unlock, err := s.locks.Lock(ctx, convs)
	if err != nil {
		return fmt.Errorf("erasing: %w", err)
	}
	defer unlock()
	for _, id := range convs {
		if err := s.eraseConversation(ctx, id, e); err != nil {
			return fmt.Errorf("erasing in %s: %w", id, err)
		}
	}
	return nil
}

func (s *Store) eraseConversation(ctx context.Context, id string, e history.Erasure) error {
	row, err := s.readSummary(ctx, id)
	if errors.Is(err, history.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	sum := row.conversation(id)
	version := deref(row.lastMessageSeq)
	if row.previewVersion != nil {
		version = *row.previewVersion
	}
	// Backward pages, newest first: a forward page starts after a seq,
	// and would miss the creation (seq 0).
	var events []history.Event
	for before := uint64(0); ; {
		p, err := s.Page(ctx, id, history.PageQuery{Before: before, Limit: 500})
		if err != nil {
			return err
		}
		events = append(events, p.Events...)
		if !p.HasMore || len(p.Events) == 0 {
			break
		}
		before = p.Events[len(p.Events)-1].Seq
	}
	slices.Reverse(events)
	out, err := fold.Erase(sum, events, e.SubjectRef, e.At)
	if err != nil {
		return err
	}
	at := ts(sum.LastSeq) + 1
	exec := func(ctx context.Context, stmt string, args ...any) error {
		return s.session().Query(stmt, args...).WithContext(ctx).Idempotent(true).DefaultTimestamp(false).Exec()
	}
	var fns []func(context.Context) error
	for _, ev := range out.Events {
		fns = append(fns, func(ctx context.Context) error {
			return exec(ctx, s.q.setData, at, []byte(ev.Data), id, bucketOf(ev.Seq), int64(ev.Seq))
		})
	}
	for seq, st := range out.States {
		v, err := fold.EncodeState(st)
		if err != nil {
			return err
		}
		fns = append(fns, func(ctx context.Context) error {
			return exec(ctx, s.q.setState, at, v, id, bucketOf(seq), int64(seq))
		})
	}
	if out.Changed {
		c := out.Conversation
		if c.Title != sum.Title {
			fns = append(fns, func(ctx context.Context) error { return exec(ctx, s.q.setTitle, at, c.Title, id) })
		}
		if p := c.LastMessage; p != nil && (sum.LastMessage == nil || p.Body != sum.LastMessage.Body || !slices.Equal(p.Files, sum.LastMessage.Files)) {
			fns = append(fns, func(ctx context.Context) error {
				return exec(ctx, s.q.setLastMessage, at, int64(p.Seq), p.SenderID, p.Body, p.Edited, p.Deleted, p.SentAt.UnixNano(), version, p.Files, id)
			})
			for _, m := range c.Members {
				fns = append(fns, func(ctx context.Context) error {
					return exec(ctx, s.q.inboxLastMessage, at, p.SenderID, p.Body, m.UserID, id)
				})
			}
		}
	}
	return parallel(ctx, make(chan struct{}, s.concurrency), fns)
}
