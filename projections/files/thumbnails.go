package files

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/schemas"
)

// Appender appends commands to chat.commands (producers.CommandWriter).
type Appender interface {
	// Enqueue queues cmd for the log; written then gets the write's
	// outcome, once.
	Enqueue(ctx context.Context, typ, conversation string, cmd any, traceParent string) (written <-chan error, err error)
}

// Image is an image a message carries, to make a thumbnail of.
type Image struct {
	ConversationID string
	MessageSeq     uint64
	SenderID       string
	UploadID       string
	ContentType    string
}

// Thumbnailer is the thumbnail projection (schemas.GroupThumbnails over
// chat.events): for each JPEG, PNG or GIF a message carries, it reads the
// image from the file store, stores a JPEG of at most 320×320 beside it
// (files.ThumbnailKey) and appends chat.thumbnail.add.v1 on behalf of
// the sender, whose command id, "thumb-" and the upload id, makes the
// decider record it once however often this runs.
type Thumbnailer struct {
	Store    Store
	Commands Appender
	Logger   *slog.Logger
}

var _ consumers.Projection[[]Image] = Thumbnailer{}

// Decode returns the images of a message with files; nothing for any
// other record. A record that breaks its schema is an error.
func (Thumbnailer) Decode(r consumers.Record) ([]Image, error) {
	if r.Attrs.Type != schemas.TypeMessageSentV3 {
		return nil, nil
	}
	v, err := schemas.Decode(r.Attrs.Type, r.Message.Value)
	if err != nil {
		return nil, err
	}
	m := v.(*schemas.MessageSentV3)
	var out []Image
	for _, a := range m.Attachments {
		if Thumbnailable(a.ContentType, a.Size) {
			out = append(out, Image{ConversationID: m.ConversationID, MessageSeq: m.Seq, SenderID: m.SenderID, UploadID: a.UploadID, ContentType: a.ContentType})
		}
	}
	return out, nil
}

// Apply makes the thumbnails of a batch. An image that is gone (its
// message was deleted) or is not a decodable image gets none; a store or
// log failure fails the batch, which is retried.
func (t Thumbnailer) Apply(ctx context.Context, batch [][]Image) error {
	for _, images := range batch {
		for _, img := range images {
			if err := t.thumbnail(ctx, img); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t Thumbnailer) thumbnail(ctx context.Context, img Image) error {
	src, err := t.Store.Get(ctx, files.Key(img.ConversationID, img.UploadID), MaxThumbnailSource)
	switch {
	case errors.Is(err, files.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("reading image %s: %w", img.UploadID, err)
	}
	jpg, w, h, err := MakeThumbnail(src, img.ContentType)
	if errors.Is(err, ErrNotAnImage) {
		if t.Logger != nil {
			t.Logger.Info("no thumbnail: not an image of its type", "conversation_id", img.ConversationID, "upload_id", img.UploadID, "err", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.Store.Put(ctx, files.ThumbnailKey(img.ConversationID, img.UploadID), "image/jpeg", jpg); err != nil {
		return fmt.Errorf("storing a thumbnail: %w", err)
	}
	cmd := &schemas.AddThumbnailV1{
		CommandID: "thumb-" + img.UploadID, UserID: img.SenderID, ConversationID: img.ConversationID,
		MessageSeq: img.MessageSeq, UploadID: img.UploadID, Width: uint64(w), Height: uint64(h), Size: uint64(len(jpg)),
		IssuedAt: time.Now().UTC(),
	}
	written, err := t.Commands.Enqueue(ctx, schemas.TypeAddThumbnail, img.ConversationID, cmd, "")
	if err != nil {
		return fmt.Errorf("appending a thumbnail: %w", err)
	}
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("appending a thumbnail: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
