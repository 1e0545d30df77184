// The CloudEvents binary-mode codec of Parley's records, both directions.
package kafkalog

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/schemas"
)

// NewID returns a random 128-bit id in hex, for ce_id and generated
// command ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Encode builds the Kafka message of a record: key = conversation id
// (ce_subject), CloudEvents attributes as headers, value = the JSON.
// The header list has no room to spare: an append to it copies.
func Encode(attrs schemas.Attributes, value []byte) kafka.Message {
	headers := slices.Clip(schemas.AppendHeaders([]kafka.Header(nil), attrs))
	return kafka.Message{Key: []byte(attrs.Subject), Value: value, Headers: headers}
}

// Decode decodes the CloudEvents attributes of a Kafka message.
func Decode(m kafka.Message) (schemas.Attributes, error) {
	return schemas.ParseHeaders(m.Headers)
}

// NewAttributes returns the attributes of a new record of type typ about
// conversation: a fresh id, Parley's source, the current time, and no seq
// or command offset.
func NewAttributes(typ, conversation string, now time.Time) schemas.Attributes {
	return schemas.Attributes{
		ID:            NewID(),
		Type:          typ,
		Source:        schemas.Source,
		Subject:       conversation,
		Time:          now,
		CommandOffset: -1,
	}
}
