// Benchmarks of the command and partition writers' allocation per
// message, at the one or two messages per batch they carry at thousands
// of messages a second.
package producers_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// BenchmarkAppend_OneCommandPerBatch: each command is appended and
// acknowledged before the next, so every batch holds one, as most do in
// `parley run`. The allocations counted include the embedded broker's.
func BenchmarkAppend_OneCommandPerBatch(b *testing.B) {
	k := kafkatest.Start(b, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cw := producers.NewCommandWriter(k.Cluster, k.Names, slogDiscard())
	defer cw.Close()
	cmd := schemas.SendMessageV1{CommandID: "cmd-0001", UserID: "alice", ConversationID: "conv-1", Body: "hello there, a message of a typical length", IssuedAt: time.Now()}
	if err := cw.Append(ctx, schemas.TypeSendMessage, "conv-1", cmd, ""); err != nil { // metadata, connection
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := cw.Append(ctx, schemas.TypeSendMessage, "conv-1", cmd, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPartitionWriter_OneEventPerCall: the decider's writer given
// one event per call, as most of its calls are at thousands of commands
// a second. The allocations counted include the embedded broker's.
func BenchmarkPartitionWriter_OneEventPerCall(b *testing.B) {
	k := kafkatest.Start(b, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := producers.NewPartitionWriter(k.Cluster, k.Names.Topic(schemas.TopicEvents), slogDiscard())
	defer w.Close()
	attrs := kafkalog.NewAttributes(schemas.TypeMessageSent, "conv-1", time.Now())
	m := kafkalog.Encode(attrs, []byte(`{"message_id":"m-1","conversation_id":"conv-1","sender_id":"alice","body":"hello there, a message of a typical length"}`))
	write := func() {
		msg := m
		msg.Partition = 0
		if err := w.WriteMessages(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	write()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		write()
	}
}
