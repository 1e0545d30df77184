package kafkalog_test

import (
	"bytes"
	"context"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// TestClosingStopsTheTransport: a writer or client, once closed with
// CloseWriter or CloseClient, leaves nothing behind that goes on asking
// its brokers for metadata. kafka-go's shared DefaultTransport kept such
// a refresh running for every broker address ever used, for the life of
// the process. Not parallel: it counts the process's goroutines.
func TestClosingStopsTheTransport(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	base := metadataRefreshers()

	w := kafkalog.NewWriter(k.Brokers, k.Names.Topic(schemas.TopicEvents))
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if n := metadataRefreshers(); n <= base {
		t.Fatalf("%d metadata refreshers with a writer in use, %d before: the test cannot see them", n, base)
	}
	if err := kafkalog.CloseWriter(w); err != nil {
		t.Fatal(err)
	}
	waitRefreshersAtMost(t, base, "the closed writer's")

	c := kafkalog.NewClient(k.Brokers)
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := metadataRefreshers(); n <= base {
		t.Fatalf("%d metadata refreshers with a client in use, %d before: the test cannot see them", n, base)
	}
	kafkalog.CloseClient(c)
	waitRefreshersAtMost(t, base, "the closed client's")
}

// metadataRefreshers counts the goroutines refreshing a kafka-go
// connection pool's metadata: one per broker address per transport.
func metadataRefreshers() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return bytes.Count(buf.Bytes(), []byte("kafka-go.(*connPool).discover("))
}

func waitRefreshersAtMost(t *testing.T, n int, whose string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metadataRefreshers() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%s metadata refresh still runs: %d refreshers, %d before", whose, metadataRefreshers(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
