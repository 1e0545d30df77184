package contentkeys

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// ErasureRecord is the chat.audit record of user's erasure by by at at:
// chat.user.erased.v1, naming the user only by their reference, and
// keyed by it.
func ErasureRecord(user, by string, at time.Time) (kafka.Message, error) {
	ref := schemas.ErasureRef(user)
	value, err := json.Marshal(schemas.UserErasedV1{SubjectRef: ref, ErasedBy: by, ErasedAt: at})
	if err != nil {
		return kafka.Message{}, fmt.Errorf("contentkeys: the erasure record: %w", err)
	}
	return kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeUserErased, ref, at), value), nil
}
