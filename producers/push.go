// The push writer: device registrations and notification settings on
// chat.push.

package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// PushWriter appends records of chat.push synchronously: a caller told
// its registration or setting is recorded can count on it. It is safe
// for concurrent use.
type PushWriter struct {
	w *kafka.Writer
}

// NewPushWriter returns a PushWriter; names resolves chat.push.
func NewPushWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger) *PushWriter {
	return &PushWriter{w: kafkalog.NewWriter(cluster, names.Topic(schemas.TopicPush), kafkalog.ErrorLog(log, "component", "push-writer"))}
}

// Append appends v, one of *schemas.DeviceRegisteredV1,
// *schemas.DeviceRemovedV1, *schemas.ConversationNotificationsV1 or
// *schemas.UserNotificationsV1, keyed by schemas.PushKey.
func (p *PushWriter) Append(ctx context.Context, v any) error {
	m, err := PushMessage(v, time.Now())
	if err != nil {
		return err
	}
	if err := p.w.WriteMessages(ctx, m); err != nil {
		return fmt.Errorf("appending to %s: %w", schemas.TopicPush, err)
	}
	return nil
}

// PushMessage encodes v (see Append) as a chat.push record at now.
func PushMessage(v any, now time.Time) (kafka.Message, error) {
	var typ, user string
	switch e := v.(type) {
	case *schemas.DeviceRegisteredV1:
		typ, user = schemas.TypePushDeviceRegistered, e.UserID
	case *schemas.DeviceRemovedV1:
		typ, user = schemas.TypePushDeviceRemoved, e.UserID
	case *schemas.ConversationNotificationsV1:
		typ, user = schemas.TypeConversationNotifications, e.UserID
	case *schemas.UserNotificationsV1:
		typ, user = schemas.TypeUserNotifications, e.UserID
	default:
		return kafka.Message{}, errors.New("not a chat.push record")
	}
	value, err := json.Marshal(v)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding %s: %w", typ, err)
	}
	if _, err := schemas.Decode(typ, value); err != nil {
		return kafka.Message{}, err
	}
	m := kafkalog.Encode(kafkalog.NewAttributes(typ, user, now), value)
	m.Key = []byte(schemas.PushKey(v))
	return m, nil
}

// Close flushes and closes the writer.
func (p *PushWriter) Close() error { return p.w.Close() }
