package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/schemas"
)

// Store is the file store as the projection and the sweep use it
// (s3store.Store).
type Store interface {
	Put(ctx context.Context, key, contentType string, body []byte) error
	// Get returns an error wrapping files.ErrNotFound for a missing key.
	Get(ctx context.Context, key string, limit int64) ([]byte, error)
	// Delete deletes key; a missing key is no error.
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error
}

// The key prefixes of the projection's records in the file store: an
// upload attached to a message is marked AttachedPrefix + conversation +
// "/" + upload id (its body the message's seq), and the uploads of a
// message are listed under MessagesPrefix + conversation + "/" + seq (a
// JSON array of upload ids). They are what the log decides of the store;
// the uploads and thumbnails themselves are not.
const (
	AttachedPrefix = "attached/"
	MessagesPrefix = "messages/"
)

func attachedKey(conv, uploadID string) string { return AttachedPrefix + conv + "/" + uploadID }

func messageKey(conv string, seq uint64) string {
	return MessagesPrefix + conv + "/" + strconv.FormatUint(seq, 10)
}

// Op is what one event asks of the file store.
type Op struct {
	// Kind is OpNone, OpAttach or OpDelete.
	Kind           int
	ConversationID string
	// Seq is the message's seq: of the message sent (OpAttach) or
	// deleted (OpDelete).
	Seq       uint64
	UploadIDs []string
}

// Kinds of Op.
const (
	OpNone = iota
	OpAttach
	OpDelete
)

// Projection feeds the file store from the files consumer group
// (schemas.GroupFiles over chat.events).
type Projection struct {
	Store Store
}

var _ consumers.Projection[Op] = Projection{}

// Decode turns a chat.events record into an Op: a message with files
// becomes OpAttach, a deletion OpDelete, anything else OpNone. A record
// that breaks its schema is an error (dead-lettered).
func (Projection) Decode(r consumers.Record) (Op, error) {
	switch r.Attrs.Type {
	case schemas.TypeMessageSentV3, schemas.TypeMessageDeleted:
	default:
		return Op{}, nil
	}
	v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
	if err != nil {
		return Op{}, err
	}
	switch e := v.(type) {
	case *schemas.MessageSentV3:
		op := Op{Kind: OpAttach, ConversationID: e.ConversationID, Seq: e.Seq}
		for _, a := range e.Attachments {
			op.UploadIDs = append(op.UploadIDs, a.UploadID)
		}
		if len(op.UploadIDs) == 0 {
			op.Kind = OpNone
		}
		return op, nil
	case *schemas.MessageDeletedV1:
		return Op{Kind: OpDelete, ConversationID: e.ConversationID, Seq: e.MessageSeq}, nil
	}
	return Op{}, nil
}

// Apply applies a batch in order.
func (p Projection) Apply(ctx context.Context, batch []Op) error {
	for _, op := range batch {
		var err error
		switch op.Kind {
		case OpAttach:
			err = p.attach(ctx, op)
		case OpDelete:
			err = p.delete(ctx, op)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p Projection) attach(ctx context.Context, op Op) error {
	seq := []byte(strconv.FormatUint(op.Seq, 10))
	for _, id := range op.UploadIDs {
		if err := p.Store.Put(ctx, attachedKey(op.ConversationID, id), "text/plain", seq); err != nil {
			return fmt.Errorf("marking upload %s attached: %w", id, err)
		}
	}
	list, err := json.Marshal(op.UploadIDs)
	if err != nil {
		return err
	}
	if err := p.Store.Put(ctx, messageKey(op.ConversationID, op.Seq), "application/json", list); err != nil {
		return fmt.Errorf("recording the uploads of message %d: %w", op.Seq, err)
	}
	return nil
}

func (p Projection) delete(ctx context.Context, op Op) error {
	key := messageKey(op.ConversationID, op.Seq)
	raw, err := p.Store.Get(ctx, key, 64<<10)
	switch {
	case errors.Is(err, files.ErrNotFound):
		return nil // a message without files, or already done
	case err != nil:
		return fmt.Errorf("reading the uploads of message %d: %w", op.Seq, err)
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return fmt.Errorf("reading the uploads of message %d: %w", op.Seq, err)
	}
	for _, id := range ids {
		// The object first: a marker without its upload is harmless, an
		// upload without its marker would only wait for the sweep.
		for _, k := range []string{files.Key(op.ConversationID, id), files.ThumbnailKey(op.ConversationID, id), attachedKey(op.ConversationID, id)} {
			if err := p.Store.Delete(ctx, k); err != nil {
				return fmt.Errorf("deleting the files of message %d: %w", op.Seq, err)
			}
		}
	}
	return p.Store.Delete(ctx, key)
}
