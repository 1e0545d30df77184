package systemtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/schemas"
)

// BenchmarkSearchProjection_100000Events measures rebuilding the embedded
// (Bleve) search index from offset 0 of chat.events, the same log as
// BenchmarkHistoryProjection_100000Events (PARLEY_BENCH_EVENTS sets its
// size), two ways:
//
//   - group: the live path, search.Projection under consumers.RunGroup
//     with a fresh consumer group, from starting the group until the index
//     holds every message;
//   - rebuild: search.Rebuild (`parley run --rebuild search`), partition
//     readers straight into a new generation, until it is promoted.
//
// events/s counts every record read (creations included). Run with
// -benchtime=1x.
func BenchmarkSearchProjection_100000Events(b *testing.B) {
	convs, perConv := benchEventCount()
	ctx := context.Background()
	k, total := fillEvents(b, convs, perConv)
	messages := uint64(convs * perConv)

	b.Run("bleve-group", func(b *testing.B) {
		s, err := blevestore.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ResetTimer()
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- consumers.RunGroup(rctx, consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(fmt.Sprint("bench-search-", time.Now().UnixNano())), Topic: k.Names.Topic(schemas.TopicEvents)}, search.Projection{Index: s})
		}()
		if !within(10*time.Minute, func() bool {
			n, err := s.DocCount()
			return err == nil && n >= messages
		}) {
			b.Fatal("the index did not reach every message")
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	})
	b.Run("bleve-rebuild", func(b *testing.B) {
		s, err := blevestore.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ResetTimer()
		st, err := search.Rebuild(ctx, search.RebuildConfig{Kafka: k.Cluster, Topic: k.Names.Topic(schemas.TopicEvents), Target: s})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n, err := s.DocCount(); err != nil || n < messages {
			b.Fatalf("rebuilt index holds %d documents (%v), want %d", n, err, messages)
		}
		b.ReportMetric(float64(st.Records)/st.Took.Seconds(), "events/s")
	})
}
