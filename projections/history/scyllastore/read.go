// Reading history from ScyllaDB: summaries, pages across buckets,
// inboxes and receipts.

package scyllastore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/internal/fold"
	"github.com/parley-chat/parley/schemas"
)

// summaryRow is a row of conversations.
type summaryRow struct {
	kind, title, createdBy string
	createdAt              int64
	members                map[string]string
	lastSeq, lastActivity  int64
	lastMessageSeq         *int64
	lastSender             *string
	lastPreview            *string
	archived               bool
	blockedBy              []string
	messages               int64
	lastEdited             bool
	lastDeleted            bool
	lastSentAt             int64
	previewVersion         *int64
	lastFiles              []string
	encrypted              bool
	epoch                  int64
	devices, leaving       []string
}

func (s *Store) readSummary(ctx context.Context, id string) (summaryRow, error) {
	var r summaryRow
	var kind, title, createdBy *string
	var createdAt, lastSeq, lastActivity, messages, lastSentAt *int64
	var archived, lastEdited, lastDeleted, encrypted *bool
	var epoch *int64
	err := s.session().Query(s.q.selectSummary, id).WithContext(ctx).Idempotent(true).
		Scan(&kind, &title, &createdBy, &createdAt, &r.members, &lastSeq, &lastActivity,
			&r.lastMessageSeq, &r.lastSender, &r.lastPreview,
			&archived, &r.blockedBy, &messages, &lastEdited, &lastDeleted, &lastSentAt, &r.previewVersion, &r.lastFiles,
			&encrypted, &epoch, &r.devices, &r.leaving)
	if errors.Is(err, gocql.ErrNotFound) {
		return r, fmt.Errorf("conversation %s: %w", id, history.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	r.kind, r.title, r.createdBy = deref(kind), deref(title), deref(createdBy)
	r.createdAt, r.lastSeq, r.lastActivity = deref(createdAt), deref(lastSeq), deref(lastActivity)
	r.archived, r.messages, r.lastEdited = deref(archived), deref(messages), deref(lastEdited)
	r.lastDeleted, r.lastSentAt = deref(lastDeleted), deref(lastSentAt)
	r.encrypted, r.epoch = deref(encrypted), deref(epoch)
	return r, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// conversation is the summary a row holds: the same value pebblestore
// keeps, so both adapters fold the next batch from the same summary.
func (r summaryRow) conversation(id string) history.Conversation {
	c := history.Conversation{
		State: conversation.State{
			ID:        id,
			Kind:      schemas.Kind(r.kind),
			Title:     r.title,
			CreatedBy: r.createdBy,
			CreatedAt: fromNanos(r.createdAt),
			LastSeq:   uint64(r.lastSeq),
			Archived:  r.archived,
			Encrypted: r.encrypted,
			Epoch:     uint64(max(r.epoch, 0)),
			Devices:   decodeDevices(r.devices),
		},
		LastActivity: fromNanos(r.lastActivity),
		Messages:     uint64(max(r.messages, 0)),
	}
	for user, role := range r.members {
		c.Members = append(c.Members, schemas.Member{UserID: user, Role: schemas.Role(role)})
	}
	slices.SortFunc(c.Members, func(a, b schemas.Member) int { return cmp.Compare(a.UserID, b.UserID) })
	if len(r.blockedBy) > 0 {
		c.BlockedBy = slices.Sorted(slices.Values(r.blockedBy))
	}
	if len(r.leaving) > 0 {
		c.Leaving = r.leaving
	}
	if r.lastMessageSeq != nil {
		c.LastMessage = &history.Preview{
			Seq: uint64(*r.lastMessageSeq), SenderID: deref(r.lastSender), Body: deref(r.lastPreview),
			Edited: r.lastEdited, Deleted: r.lastDeleted, SentAt: fromNanos(r.lastSentAt),
			Files: r.lastFiles,
		}
	}
	return c
}

// Conversation returns a conversation's summary: one point read.
func (s *Store) Conversation(ctx context.Context, conversationID string) (_ history.Conversation, err error) {
	defer s.healOn(&err)
	if err := ctx.Err(); err != nil {
		return history.Conversation{}, fmt.Errorf("scyllastore: conversation: %w", err)
	}
	r, err := s.readSummary(ctx, conversationID)
	if err != nil {
		return history.Conversation{}, fmt.Errorf("scyllastore: conversation: %w", err)
	}
	return r.conversation(conversationID), nil
}

// Page returns a page of a conversation's events. It reads the
// conversation's last seq, then walks the messages buckets from the
// query's starting seq towards the end it asks for, one single-partition
// slice per bucket, until it has Limit+1 events (the extra one tells
// HasMore) or passes the conversation's first or last seq. Seqs are
// contiguous, so every bucket it reads holds events; reads never go past
// last seq, so they see no event whose summary update is not visible yet.
func (s *Store) Page(ctx context.Context, conversationID string, q history.PageQuery) (_ history.Page, err error) {
	defer s.healOn(&err)
	if err := q.Validate(); err != nil {
		return history.Page{}, err
	}
	if err := ctx.Err(); err != nil {
		return history.Page{}, fmt.Errorf("scyllastore: page: %w", err)
	}
	var last int64
	err = s.session().Query(s.q.selectLastSeq, conversationID).WithContext(ctx).Idempotent(true).Scan(&last)
	if errors.Is(err, gocql.ErrNotFound) {
		return history.Page{}, fmt.Errorf("scyllastore: page: conversation %s: %w", conversationID, history.ErrNotFound)
	}
	if err != nil {
		return history.Page{}, fmt.Errorf("scyllastore: page: reading last seq of %s: %w", conversationID, err)
	}
	lastSeq := uint64(last)
	want := q.Limit + 1
	var events []history.Event
	read := func(stmt string, bucket int64, args ...any) error {
		limit := min(want-len(events), math.MaxInt32)
		args = append(append([]any{conversationID, bucket}, args...), limit)
		iter := s.session().Query(stmt, args...).WithContext(ctx).Idempotent(true).PageSize(min(limit, bucketSize)).Iter()
		var (
			seq, ns     int64
			id, typ     string
			data, state []byte
		)
		var stateErr error
		for iter.Scan(&seq, &id, &typ, &ns, &data, &state) {
			ev := history.Event{
				ConversationID: conversationID, Seq: uint64(seq), ID: id, Type: typ,
				Time: time.Unix(0, ns).UTC(), Data: data,
			}
			if len(state) > 0 && stateErr == nil {
				ev.Message, stateErr = fold.DecodeState(state)
			}
			events = append(events, ev)
			data, state = nil, nil
		}
		if err := iter.Close(); err != nil {
			return fmt.Errorf("scyllastore: page: reading bucket %d of %s: %w", bucket, conversationID, err)
		}
		if stateErr != nil {
			return fmt.Errorf("scyllastore: page: bucket %d of %s: %w", bucket, conversationID, stateErr)
		}
		return nil
	}
	if q.Forward {
		if q.After >= lastSeq {
			return history.Page{}, nil
		}
		lo, hi := q.After+1, lastSeq
		for b := lo / bucketSize; b <= hi/bucketSize && len(events) < want; b++ {
			from := max(lo, b*bucketSize)
			to := min(hi, b*bucketSize+bucketSize-1)
			if err := read(s.q.pageForward, int64(b), int64(from), int64(to)); err != nil {
				return history.Page{}, err
			}
		}
	} else {
		hi := lastSeq
		if q.Before > 0 {
			if q.Before-1 < hi {
				hi = q.Before - 1
			}
		}
		for b := hi / bucketSize; len(events) < want; b-- {
			to := min(hi, b*bucketSize+bucketSize-1)
			if err := read(s.q.pageBackward, int64(b), int64(to)); err != nil {
				return history.Page{}, err
			}
			if b == 0 {
				break
			}
		}
	}
	p := history.Page{Events: events}
	if len(events) > q.Limit {
		p.Events, p.HasMore = events[:q.Limit], true
	}
	return p, nil
}

// Conversations returns user's conversations, most recent activity first
// (ties by conversation id). It reads the user's whole inbox partition
// (paged), sorts it by last activity in the client, then reads the
// summaries of the first limit conversations, concurrently, and keeps
// those user is still a member of; the summaries, not the inbox rows,
// are authoritative, so the result is sorted again by their activity.
func (s *Store) Conversations(ctx context.Context, userID string, limit int) (_ []history.Conversation, err error) {
	defer s.healOn(&err)
	if err := history.ValidateLimit(limit); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scyllastore: conversations: %w", err)
	}
	type candidate struct {
		id       string
		activity int64
		read     int64
	}
	var cands []candidate
	iter := s.session().Query(s.q.selectInbox, userID).WithContext(ctx).Idempotent(true).PageSize(s.inboxPageSize).Iter()
	var (
		id   string
		act  *int64
		read *int64
	)
	for iter.Scan(&id, &act, &read) {
		cands = append(cands, candidate{id, deref(act), deref(read)})
		act, read = nil, nil
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("scyllastore: conversations: reading inbox of %s: %w", userID, err)
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(b.activity, a.activity), cmp.Compare(a.id, b.id))
	})

	sem := make(chan struct{}, s.concurrency)
	var out []history.Conversation
	for len(cands) > 0 && len(out) < limit {
		chunk := cands[:min(limit-len(out), len(cands))]
		cands = cands[len(chunk):]
		got := make([]*history.Conversation, len(chunk))
		fns := make([]func(context.Context) error, len(chunk))
		for i, c := range chunk {
			fns[i] = func(ctx context.Context) error {
				r, err := s.readSummary(ctx, c.id)
				if errors.Is(err, history.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				conv := r.conversation(c.id)
				if !conv.IsMember(userID) {
					return nil
				}
				conv.ReadSeq = uint64(max(c.read, 0))
				if conv.ReadMessages, err = s.readMessages(ctx, conv); err != nil {
					return err
				}
				got[i] = &conv
				return nil
			}
		}
		if err := parallel(ctx, sem, fns); err != nil {
			return nil, fmt.Errorf("scyllastore: conversations of %s: %w", userID, err)
		}
		for _, c := range got {
			if c != nil {
				out = append(out, *c)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b history.Conversation) int {
		return cmp.Or(b.LastActivity.Compare(a.LastActivity), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// readMessages returns how many of c's messages have a seq at or below
// c.ReadSeq: none at 0; all of them from LastSeq on (a read marker may
// name a seq not applied yet); otherwise messages_through of the row at
// ReadSeq or, when that row has none (its event filled a gap late, or
// was applied before the column existed), of the nearest lower row in
// the same bucket that has one, else 0. One single-partition slice,
// whose first row answers unless something filled a gap.
func (s *Store) readMessages(ctx context.Context, c history.Conversation) (uint64, error) {
	switch {
	case c.ReadSeq == 0:
		return 0, nil
	case c.ReadSeq >= c.LastSeq:
		return c.Messages, nil
	}
	iter := s.session().Query(s.q.selectCount, c.ID, bucketOf(c.ReadSeq), int64(c.ReadSeq)).WithContext(ctx).
		Idempotent(true).PageSize(16).Iter()
	var n *int64
	for iter.Scan(&n) {
		if n != nil {
			break
		}
	}
	if err := iter.Close(); err != nil {
		return 0, fmt.Errorf("reading messages through %d of %s: %w", c.ReadSeq, c.ID, err)
	}
	return uint64(max(deref(n), 0)), nil
}

// Receipts returns the markers of a conversation's members: a read of
// the summary (for the members) and of the conversation's receipts
// partition, which is clustered by user id.
func (s *Store) Receipts(ctx context.Context, conversationID string) (_ []history.Receipt, err error) {
	defer s.healOn(&err)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scyllastore: receipts: %w", err)
	}
	r, err := s.readSummary(ctx, conversationID)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: receipts: %w", err)
	}
	c := r.conversation(conversationID)
	iter := s.session().Query(s.q.selectReceipts, conversationID).WithContext(ctx).Idempotent(true).PageSize(s.inboxPageSize).Iter()
	var (
		out             []history.Receipt
		user            string
		read, delivered *int64
	)
	for iter.Scan(&user, &read, &delivered) {
		rc := history.Receipt{ConversationID: conversationID, UserID: user,
			ReadSeq: uint64(max(deref(read), 0)), DeliveredSeq: uint64(max(deref(delivered), 0))}
		if c.IsMember(user) && (rc.ReadSeq > 0 || rc.DeliveredSeq > 0) {
			out = append(out, rc)
		}
		read, delivered = nil, nil
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("scyllastore: receipts of %s: %w", conversationID, err)
	}
	return out, nil
}

// encodeDevices gives each device of an encrypted conversation as
// "user_id/device_id" (neither id holds a slash), in their order.
func encodeDevices(devices []schemas.DeviceRef) []string {
	if len(devices) == 0 {
		return nil
	}
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.UserID + "/" + d.DeviceID
	}
	return out
}

// decodeDevices is the inverse of encodeDevices.
func decodeDevices(devices []string) []schemas.DeviceRef {
	if len(devices) == 0 {
		return nil
	}
	out := make([]schemas.DeviceRef, len(devices))
	for i, d := range devices {
		out[i].UserID, out[i].DeviceID, _ = strings.Cut(d, "/")
	}
	return out
}
