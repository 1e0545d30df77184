// Benchmarks of the record codec: every record of every hop is encoded
// or decoded once.
package kafkalog_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// eventAttributes are the attributes of a chat.message.sent event as
// the decider writes them.
func eventAttributes() schemas.Attributes {
	a := kafkalog.NewAttributes(schemas.TypeMessageSent, "4f1c2a9e-5b7d-4c3e-9a8f-1d2e3f4a5b6c", time.Date(2026, 12, 6, 13, 55, 1, 123456789, time.UTC))
	a.Seq, a.HasSeq = 123456, true
	a.CommandOffset = 987654
	a.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a.OriginNode = "node-1"
	return a
}

func BenchmarkEncode_MessageSentEvent(b *testing.B) {
	a := eventAttributes()
	value := []byte(`{"message_id":"m-1"}`)
	b.ReportAllocs()
	for range b.N {
		m := kafkalog.Encode(a, value)
		if len(m.Headers) == 0 {
			b.Fatal("no headers")
		}
	}
}

func BenchmarkDecode_MessageSentEvent(b *testing.B) {
	m := kafkalog.Encode(eventAttributes(), []byte(`{"message_id":"m-1"}`))
	b.ReportAllocs()
	for range b.N {
		if _, err := kafkalog.Decode(m); err != nil {
			b.Fatal(err)
		}
	}
}
