// The history projections: chat.events into the store, chat.receipts
// into its markers.

package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

// Projection feeds a Writer from the history consumer group.
type Projection struct {
	W Writer
	// Audit is the resolved name of chat.audit, which the group reads
	// beside chat.events: a record there of a type other than an erasure
	// (one a later version adds) is passed over, not dead-lettered.
	Audit string
}

// Decode turns a chat.events record into an Event. A record without a
// conversation or seq, or whose value breaks its type's schema, is
// dead-lettered; a record of a type this version does not know is kept
// as it is, for later versions. A user's erasure (chat.user.erased.v1,
// which the group reads from chat.audit) becomes an Event that Apply
// passes to Writer.Erase; one that breaks its schema is dead-lettered.
func (p Projection) Decode(r consumers.Record) (Event, error) {
	if r.Attrs.Type == schemas.TypeUserErased {
		v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
		if err != nil {
			return Event{}, err
		}
		e, ok := v.(*schemas.UserErasedV1)
		if !ok || e.SubjectRef == "" || e.ErasedAt.IsZero() {
			return Event{}, fmt.Errorf("%w: %s at offset %d names no reference or time", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset)
		}
		return Event{Type: r.Attrs.Type, erasure: &Erasure{SubjectRef: e.SubjectRef, At: e.ErasedAt}}, nil
	}
	if p.Audit != "" && r.Message.Topic == p.Audit {
		return Event{Type: r.Attrs.Type, skip: true}, nil
	}
	if r.Attrs.Subject == "" || !r.Attrs.HasSeq {
		return Event{}, fmt.Errorf("%w: %s at offset %d has no %s or %s", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset, schemas.HeaderSubject, schemas.HeaderSeq)
	}
	// What a store keeps as text must be text: one record a store
	// refuses forever would otherwise wedge the projection.
	if !schemas.ValidConversationID(r.Attrs.Subject) || !utf8.ValidString(r.Attrs.ID) || !utf8.ValidString(r.Attrs.Type) {
		return Event{}, fmt.Errorf("%w: record at offset %d has a malformed conversation id, ce_id or ce_type", schemas.ErrInvalid, r.Message.Offset)
	}
	v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
	switch {
	case errors.Is(err, schemas.ErrUnknownType):
		// Kept for later versions, as long as it is JSON. A known type
		// decoded is JSON already: json.Unmarshal checks all of it.
		if !json.Valid(r.Message.Value) {
			return Event{}, fmt.Errorf("%w: %s at offset %d is not JSON", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset)
		}
	case err != nil:
		return Event{}, err
	}
	return Event{
		ConversationID: r.Attrs.Subject,
		Seq:            r.Attrs.Seq,
		ID:             r.Attrs.ID,
		Type:           r.Attrs.Type,
		Time:           r.Attrs.Time,
		Data:           r.Message.Value,
		value:          v,
	}, nil
}

// Apply writes a batch of events, and applies the erasures among them in
// their place: the events before an erasure are written before it, so it
// blanks what was projected before it (what comes after it was sealed
// under a key that is gone, and decodes blank already).
func (p Projection) Apply(ctx context.Context, batch []Event) error {
	if slices.ContainsFunc(batch, func(ev Event) bool { return ev.skip }) {
		batch = slices.DeleteFunc(slices.Clone(batch), func(ev Event) bool { return ev.skip })
		if len(batch) == 0 {
			return nil
		}
	}
	start := 0
	for i, ev := range batch {
		if ev.erasure == nil {
			continue
		}
		if i > start {
			if err := p.W.Apply(ctx, batch[start:i]); err != nil {
				return err
			}
		}
		if err := p.W.Erase(ctx, *ev.erasure); err != nil {
			return fmt.Errorf("erasing %s: %w", ev.erasure.SubjectRef, err)
		}
		start = i + 1
	}
	if start == 0 {
		return p.W.Apply(ctx, batch)
	}
	if start < len(batch) {
		return p.W.Apply(ctx, batch[start:])
	}
	return nil
}

// Probe tells the consumer runtime whether the store takes writes: it
// pings W if W is a Pinger, and otherwise reports that it cannot say, so
// that no event is ever dead-lettered for a store that cannot be probed.
func (p Projection) Probe(ctx context.Context) error { return probe(ctx, p.W) }

// Sync makes what Apply wrote durable, if W writes without waiting for
// the disk (see consumers.Syncer).
func (p Projection) Sync(ctx context.Context) error { return syncWriter(ctx, p.W) }

// syncWriter syncs w if it is a consumers.Syncer; a store whose writes
// are durable when they return (ScyllaDB's) has nothing to sync.
func syncWriter(ctx context.Context, w Writer) error {
	if s, ok := w.(consumers.Syncer); ok {
		return s.Sync(ctx)
	}
	return nil
}

// errCannotProbe is Probe's error for a Writer that is not a Pinger.
var errCannotProbe = errors.New("history store cannot be probed")

func probe(ctx context.Context, w Writer) error {
	if p, ok := w.(Pinger); ok {
		return p.Ping(ctx)
	}
	return errCannotProbe
}

// ReceiptProjection feeds a Writer's markers from the receipts consumer
// group (schemas.GroupReceipts over chat.receipts).
type ReceiptProjection struct {
	W Writer
}

// Decode turns a chat.receipts record into a Receipt; one that breaks its
// schema is dead-lettered.
func (ReceiptProjection) Decode(r consumers.Record) (Receipt, error) {
	v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
	if err != nil {
		return Receipt{}, err
	}
	m, ok := v.(*schemas.ReceiptV1)
	if !ok {
		return Receipt{}, fmt.Errorf("%w: %s at offset %d is not a receipt", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset)
	}
	out := Receipt{ConversationID: m.ConversationID, UserID: m.UserID}
	if m.Kind == schemas.ReceiptRead {
		out.ReadSeq = m.Seq
	} else {
		out.DeliveredSeq = m.Seq
	}
	return out, nil
}

// Apply folds a batch of markers.
func (p ReceiptProjection) Apply(ctx context.Context, batch []Receipt) error {
	return p.W.ApplyReceipts(ctx, batch)
}

// Probe is Projection.Probe for the receipts group.
func (p ReceiptProjection) Probe(ctx context.Context) error { return probe(ctx, p.W) }

// Sync is Projection.Sync for the receipts group.
func (p ReceiptProjection) Sync(ctx context.Context) error { return syncWriter(ctx, p.W) }

var (
	_ consumers.Prober = Projection{}
	_ consumers.Prober = ReceiptProjection{}
	// The Pebble store commits without waiting for the disk: its
	// groups must sync before they commit.
	_ consumers.Syncer = Projection{}
	_ consumers.Syncer = ReceiptProjection{}
)
