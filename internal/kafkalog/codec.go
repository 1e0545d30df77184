// The CloudEvents binary-mode codec of Parley's records, both directions.
package kafkalog

import (
	"crypto/rand"
	"encoding/hex"
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
func Encode(attrs schemas.Attributes, value []byte) kafka.Message {
	hs := attrs.Headers()
	headers := make([]kafka.Header, len(hs))
	for i, h := range hs {
		headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
	}
	return kafka.Message{Key: []byte(attrs.Subject), Value: value, Headers: headers}
}

// Decode decodes the CloudEvents attributes of a Kafka message.
func Decode(m kafka.Message) (schemas.Attributes, error) {
	hs := make([]schemas.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = schemas.Header{Key: h.Key, Value: h.Value}
	}
	return schemas.ParseAttributes(hs)
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
