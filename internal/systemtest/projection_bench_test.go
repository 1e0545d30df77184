package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/history/scyllastore"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/schemas"
)

// benchEventCount is the size of the projection benchmarks' log:
// PARLEY_BENCH_EVENTS, default 100,000 (rounded down to whole
// conversations of 1,000 messages, plus one creation event each).
func benchEventCount() (convs, perConv int) {
	const perConv0 = 1000
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_EVENTS")); err == nil && v >= perConv0 {
		n = v
	}
	return n / perConv0, perConv0
}

// fillEvents starts the benchmark's cluster (kafkatest) and appends convs
// conversations of perConv messages each (100-byte-ish bodies) to
// chat.events (12 partitions). It returns the cluster and the number of
// records.
func fillEvents(b *testing.B, convs, perConv int) (kafkatest.Cluster, int) {
	k := kafkatest.Start(b, kafkatest.Topics(kafkalog.Topology{}))
	ctx := context.Background()
	w := kafkalog.NewWriter(k.Cluster, k.Names.Topic(schemas.TopicEvents), kafkalog.BatchSize(1000))
	defer w.Close()
	now := time.Now().UTC()
	total := 0
	msgs := make([]kafka.Message, 0, 10*(perConv+1))
	flush := func() {
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		total += len(msgs)
		msgs = msgs[:0]
	}
	for c := range convs {
		id := fmt.Sprintf("g_bench%04d", c)
		for seq := 0; seq <= perConv; seq++ {
			var typ string
			var v any
			if seq == 0 {
				typ, v = schemas.TypeConversationCreated, schemas.ConversationCreatedV1{ConversationID: id, Kind: schemas.KindGroup, Title: "bench", CreatedBy: "alice",
					Members: []schemas.Member{{UserID: "alice", Role: schemas.RoleOwner}, {UserID: "bob", Role: schemas.RoleMember}}, CommandID: "c", CreatedAt: now}
			} else {
				typ, v = schemas.TypeMessageSent, schemas.MessageSentV1{ConversationID: id, Seq: uint64(seq), SenderID: "alice", Body: "a message of a typical length, about sixty bytes long.", CommandID: fmt.Sprint("m", seq), SentAt: now}
			}
			data, _ := json.Marshal(v)
			a := kafkalog.NewAttributes(typ, id, now)
			a.Seq, a.HasSeq = uint64(seq), true
			msgs = append(msgs, kafkalog.Encode(a, data))
		}
		if len(msgs) >= 10*(perConv+1) {
			flush()
		}
	}
	if len(msgs) > 0 {
		flush()
	}
	return k, total
}

// BenchmarkHistoryProjection_100000Events measures the history
// projection's throughput from chat.events (embedded broker, 12
// partitions, 100 conversations) into each store: the time from starting
// the consumer group until the store holds every event. Run with
// -benchtime=1x; the CQL stand-in figure is protocol overhead only.
// PARLEY_BENCH_EVENTS=1000000 replays 1,000,000 events (1,000
// conversations) instead of 100,000; the name stays.
func BenchmarkHistoryProjection_100000Events(b *testing.B) {
	convs, perConv := benchEventCount()
	ctx := context.Background()
	k, total := fillEvents(b, convs, perConv)

	run := func(b *testing.B, store history.Store, group string) {
		defer store.Close()
		b.ResetTimer()
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- consumers.RunGroup(rctx, consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(group), Topic: k.Names.Topic(schemas.TopicEvents)}, history.Projection{W: store})
		}()
		for c := range convs {
			id := fmt.Sprintf("g_bench%04d", c)
			if !within(10*time.Minute, func() bool {
				conv, err := store.Conversation(ctx, id)
				return err == nil && conv.LastSeq == uint64(perConv)
			}) {
				b.Fatalf("%s did not reach seq %d", id, perConv)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	}
	b.Run("pebble", func(b *testing.B) {
		s, err := pebblestore.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		run(b, s, fmt.Sprint("bench-pebble-", time.Now().UnixNano()))
	})
	b.Run("cql-standin", func(b *testing.B) {
		fake := cqlfake.Start(b)
		s, err := scyllastore.Open(ctx, scyllastore.Config{Hosts: []string{fake.Addr()}, Keyspace: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		run(b, s, fmt.Sprint("bench-cql-", time.Now().UnixNano()))
	})
}
