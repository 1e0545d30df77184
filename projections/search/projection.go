package search

import (
	"context"
	"fmt"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/schemas"
)

// Projection feeds an Indexer from the search consumer group
// (schemas.GroupSearch over chat.events). It holds no state; it is safe
// for concurrent use if its Indexer is.
type Projection struct {
	Index Indexer
}

// Decode turns a chat.events record into a Doc. A chat.message.sent.v1
// becomes the message's document, versioned by its seq; every other type,
// known or not, becomes a KindNone doc so the batch still commits. A
// record without a conversation or seq, or a message that breaks its
// schema or disagrees with its headers, is an error: the runtime
// dead-letters it.
func (Projection) Decode(r consumers.Record) (Doc, error) {
	if r.Attrs.Subject == "" || !r.Attrs.HasSeq {
		return Doc{}, fmt.Errorf("%w: %s at offset %d has no %s or %s", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset, schemas.HeaderSubject, schemas.HeaderSeq)
	}
	switch r.Attrs.Type {
	case schemas.TypeMessageSent:
		v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
		if err != nil {
			return Doc{}, err
		}
		m := v.(*schemas.MessageSentV1)
		if m.ConversationID != r.Attrs.Subject || m.Seq != r.Attrs.Seq {
			return Doc{}, fmt.Errorf("%w: %s at offset %d is %s/%d but its headers say %s/%d", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset, m.ConversationID, m.Seq, r.Attrs.Subject, r.Attrs.Seq)
		}
		if !InTimeRange(m.SentAt) {
			return Doc{}, fmt.Errorf("%w: %s at offset %d has sent_at %s, outside what an index can hold", schemas.ErrInvalid, r.Attrs.Type, r.Message.Offset, m.SentAt)
		}
		return Doc{
			Kind:           KindIndex,
			ConversationID: m.ConversationID,
			Seq:            m.Seq,
			Version:        m.Seq,
			SenderID:       m.SenderID,
			Body:           m.Body,
			SentAt:         m.SentAt.UTC(),
		}, nil
	default:
		// Creations, and types of later versions, change no document.
		// Edits and deletions will map here to KindIndex and KindDelete
		// docs of the edited message, versioned by their own seq.
		return Doc{Kind: KindNone, ConversationID: r.Attrs.Subject, Version: r.Attrs.Seq}, nil
	}
}

// Apply indexes a batch.
func (p Projection) Apply(ctx context.Context, batch []Doc) error {
	n := 0
	for _, d := range batch {
		if d.Kind != KindNone {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return p.Index.Index(ctx, batch)
}

var _ consumers.Projection[Doc] = Projection{}
