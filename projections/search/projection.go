// The search projection: chat.events into index documents, versioned by
// seq.

package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

// Projection feeds an Indexer from the search consumer group
// (schemas.GroupSearch over chat.events). It holds no state; it is safe
// for concurrent use if its Indexer is.
type Projection struct {
	Index Indexer
	// Audit is the resolved name of chat.audit, which the group reads
	// beside chat.events: a record there of a type other than an erasure
	// (one a later version adds) changes nothing, and is not
	// dead-lettered.
	Audit string
}

// Decode turns a chat.events record into a Doc. A message
// (chat.message.sent.v1, .v2 or .v3) becomes its document, versioned by
// its seq, with the names of its files; an edit (KindEdit) gives the
// message its new body, keeping its files, and a deletion deletes it,
// both versioned by their own seq, so an older event arriving late
// cannot undo them. Every other type, known or not,
// becomes a KindNone doc so the batch still commits. A record without a
// conversation or seq, or one that breaks its schema (a type of a later
// version: one that is not JSON) or disagrees with its headers, is an
// error: the runtime dead-letters it.
//
// A user's erasure (chat.user.erased.v1, which the group reads from
// chat.audit) becomes a KindErase doc that Apply passes to the index's
// Eraser; one that breaks its schema is dead-lettered.
func (p Projection) Decode(r consumers.Record) (Doc, error) {
	a := r.Attrs
	if a.Type == schemas.TypeUserErased {
		v, err := schemas.Decode(a.Type, r.Message.Value)
		if err != nil {
			return Doc{}, err
		}
		e, ok := v.(*schemas.UserErasedV1)
		if !ok || e.SubjectRef == "" || e.ErasedAt.IsZero() {
			return Doc{}, fmt.Errorf("%w: %s at offset %d names no reference or time", schemas.ErrInvalid, a.Type, r.Message.Offset)
		}
		return Doc{Kind: KindErase, SenderID: e.SubjectRef, SentAt: e.ErasedAt.UTC()}, nil
	}
	if p.Audit != "" && r.Message.Topic == p.Audit {
		return Doc{Kind: KindNone}, nil
	}
	if a.Subject == "" || !a.HasSeq {
		return Doc{}, fmt.Errorf("%w: %s at offset %d has no %s or %s", schemas.ErrInvalid, a.Type, r.Message.Offset, schemas.HeaderSubject, schemas.HeaderSeq)
	}
	switch a.Type {
	case schemas.TypeMessageSent, schemas.TypeMessageSentV2, schemas.TypeMessageSentV3, schemas.TypeMessageEdited, schemas.TypeMessageDeleted:
	default:
		// Creations, membership, reactions and types of later versions
		// change no document, but are checked as history checks them,
		// so that every group dead-letters the same events.
		_, err := schemas.Decode(a.Type, r.Message.Value)
		switch {
		case errors.Is(err, schemas.ErrUnknownType):
			if !json.Valid(r.Message.Value) {
				return Doc{}, fmt.Errorf("%w: %s at offset %d is not JSON", schemas.ErrInvalid, a.Type, r.Message.Offset)
			}
		case err != nil:
			return Doc{}, err
		}
		return Doc{Kind: KindNone, ConversationID: a.Subject, Version: a.Seq}, nil
	}
	v, err := schemas.Decode(a.Type, r.Message.Value)
	if err != nil {
		return Doc{}, err
	}
	var d Doc
	switch e := v.(type) {
	case *schemas.MessageEditedV1:
		d = Doc{Kind: KindEdit, ConversationID: e.ConversationID, Seq: e.MessageSeq, Version: e.Seq,
			SenderID: e.UserID, Body: e.Body, SentAt: e.MessageSentAt.UTC()}
	case *schemas.MessageDeletedV1:
		d = Doc{Kind: KindDelete, ConversationID: e.ConversationID, Seq: e.MessageSeq, Version: e.Seq}
	default:
		m, _ := schemas.AsMessage(v)
		d = Doc{Kind: KindIndex, ConversationID: m.ConversationID, Seq: m.Seq, Version: m.Seq,
			SenderID: m.SenderID, Body: m.Body, Files: fileNames(m.Attachments), SentAt: m.SentAt.UTC()}
	}
	if d.ConversationID != a.Subject || d.Version != a.Seq {
		return Doc{}, fmt.Errorf("%w: %s at offset %d is %s/%d but its headers say %s/%d", schemas.ErrInvalid, a.Type, r.Message.Offset, d.ConversationID, d.Version, a.Subject, a.Seq)
	}
	if (d.Kind == KindIndex || d.Kind == KindEdit) && !InTimeRange(d.SentAt) {
		return Doc{}, fmt.Errorf("%w: %s at offset %d has a message time %s, outside what an index can hold", schemas.ErrInvalid, a.Type, r.Message.Offset, d.SentAt)
	}
	return d, nil
}

// fileNames returns the names of attachments, in order; nil for none.
func fileNames(attachments []schemas.Attachment) []string {
	var names []string
	for _, a := range attachments {
		names = append(names, a.Name)
	}
	return names
}

// Apply indexes a batch, and applies the erasures among it in their
// place: the documents before an erasure are indexed before it, so it
// blanks what was indexed before it (what comes after it was sealed
// under a key that is gone, and decodes blank already).
func (p Projection) Apply(ctx context.Context, batch []Doc) error {
	start := 0
	for i, d := range batch {
		if d.Kind != KindErase {
			continue
		}
		if err := p.index(ctx, batch[start:i]); err != nil {
			return err
		}
		e, ok := p.Index.(Eraser)
		if !ok {
			return fmt.Errorf("the search index cannot erase (%T is no search.Eraser)", p.Index)
		}
		if err := e.Erase(ctx, Erasure{SubjectRef: d.SenderID, At: d.SentAt}); err != nil {
			return fmt.Errorf("erasing %s: %w", d.SenderID, err)
		}
		start = i + 1
	}
	return p.index(ctx, batch[start:])
}

// index indexes docs unless none changes anything.
func (p Projection) index(ctx context.Context, docs []Doc) error {
	for _, d := range docs {
		if d.Kind != KindNone {
			return p.Index.Index(ctx, docs)
		}
	}
	return nil
}

// Probe tells the consumer runtime whether the index takes writes: it
// pings Index if Index is a Pinger (the Bleve adapter is), and otherwise
// reports that it cannot say, so that no document is ever dead-lettered
// for an index that cannot be probed (the Elasticsearch adapter: a
// cluster that answers may still refuse writes).
func (p Projection) Probe(ctx context.Context) error {
	if pi, ok := p.Index.(Pinger); ok {
		return pi.Ping(ctx)
	}
	return errCannotProbe
}

// errCannotProbe is Probe's error for an Indexer that is not a Pinger.
var errCannotProbe = errors.New("search index cannot be probed")

var (
	_ consumers.Projection[Doc] = Projection{}
	_ consumers.Prober          = Projection{}
)
