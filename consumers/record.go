// The one decoding of a record that every reader of Parley's topics uses:
// its CloudEvents attributes, and a sealed value opened.

package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// Opener opens sealed records (*contentkeys.Keyring): OpenEvent returns
// the event with its personal fields, or the redacted event and an error
// wrapping contentkeys.ErrUnreadable once the owner's key is erased.
type Opener interface {
	OpenEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, error)
}

// DecodeRecord decodes m's CloudEvents attributes and, when m is sealed
// (schemas.ContentTypeSealed), replaces its value by the event it holds:
// opened with o, or, without o or once the owner's key is erased, the
// envelope's redacted event (personal fields blank, metadata intact).
// Either way the Record's value is an event valid against its ce_type,
// and Attrs.Sealed tells that it was sealed. Every consumer of
// chat.events decodes through here, so sealing is invisible to them but
// for the content an erasure blanks. An error other than an erasure
// (the key store out of reach) is returned: the record is not read
// redacted by mistake.
func DecodeRecord(ctx context.Context, m kafka.Message, o Opener) (Record, error) {
	attrs, err := kafkalog.Decode(m)
	if err != nil {
		return Record{}, err
	}
	return OpenRecord(ctx, m, attrs, o)
}

// OpenRecord is DecodeRecord for a record whose attributes the caller
// has decoded already (kafkalog.Decode), for a reader that looks at them
// before it opens the value: one that drops records it has had.
func OpenRecord(ctx context.Context, m kafka.Message, attrs schemas.Attributes, o Opener) (Record, error) {
	var err error
	if !attrs.Sealed {
		return Record{Message: m, Attrs: attrs}, nil
	}
	var value []byte
	if o == nil {
		value, err = contentkeys.Redact(m.Value)
	} else if value, err = o.OpenEvent(ctx, attrs, m.Value); errors.Is(err, contentkeys.ErrUnreadable) && value != nil {
		err = nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("opening the sealed record at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	sealed := m.Value
	m.Value = value
	return Record{Message: m, Attrs: attrs, sealed: sealed}, nil
}
