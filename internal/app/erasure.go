// Erasing users: the data key destroyed, then the erasure recorded on
// chat.audit.

package app

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// eraser is the gateway's Eraser: it destroys the user's data key, then
// appends chat.user.erased.v1 to chat.audit, keyed by the user's
// reference.
type eraser struct {
	keys *contentkeys.Keyring
	w    *kafka.Writer
	now  func() time.Time
}

func (e eraser) Erase(ctx context.Context, user, by string) (time.Time, error) {
	if err := e.keys.Erase(ctx, user); err != nil {
		return time.Time{}, err
	}
	at := e.now().UTC()
	rec, err := contentkeys.ErasureRecord(user, by, at)
	if err != nil {
		return time.Time{}, err
	}
	if err := e.w.WriteMessages(ctx, rec); err != nil {
		return time.Time{}, fmt.Errorf("recording the erasure: %w", err)
	}
	return at, nil
}

// erasure returns the gateway's Eraser, or nil when content is not
// sealed.
func (s *System) erasure() *eraser {
	if s.keys == nil {
		return nil
	}
	w := kafkalog.NewWriter(s.kafka, s.names.Topic(schemas.TopicAudit), kafkalog.FlushAtOnce())
	s.onClose(w.Close)
	return &eraser{keys: s.keys, w: w, now: time.Now}
}
