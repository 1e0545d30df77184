package kafkalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// TestClusterSharesOneTransportAndClosesIt: a cluster's writers and admin
// clients share one connection pool — one metadata refresher, however
// many use it, and it outlives a closed writer — and Close ends it.
// kafka-go's package-level DefaultTransport, which they would otherwise
// share, kept such a refresher for every broker address ever used, for
// the life of the process. Not parallel: it counts the process's
// goroutines.
func TestClusterSharesOneTransportAndClosesIt(t *testing.T) {
	k := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	base := kafkatest.MetadataRefreshers()

	c := kafkalog.NewCluster(k.Brokers())
	defer c.Close()
	w := kafkalog.NewWriter(c, k.Names.Topic(schemas.TopicEvents))
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := kafkalog.NewClient(c).Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := kafkatest.MetadataRefreshers(); n != base+1 {
		t.Fatalf("%d metadata refreshers with a writer and a client of one cluster in use, %d before: want one more", n, base)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := kafkatest.MetadataRefreshers(); n != base+1 {
		t.Fatalf("%d metadata refreshers after the writer closed, %d before: the cluster's pool should stay until Close", n, base)
	}
	c.Close()
	kafkatest.WaitMetadataRefreshersAtMost(t, base, "the closed cluster's")
}
