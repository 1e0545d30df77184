package rebuild_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/rebuild"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/esindex"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
	"github.com/parley-chat/parley/schemas"
)

// After the mixed workload (messages with files, edits, a deletion), the
// search index rebuilt from the log into a generation beside the live one
// equals it conversation by conversation; a document changed behind the
// log's back is caught.
//
// It runs on the embedded Bleve index and on the Elasticsearch adapter
// against esfake (listing through points in time).
func TestSearchRebuildFindsNoDifferenceThenCatchesAnAlteredIndex(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) liveIndex{
		"bleve": func(t *testing.T) liveIndex {
			live, err := blevestore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return live
		},
		"elasticsearch": func(t *testing.T) liveIndex {
			srv := esfake.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			live, err := esindex.Open(ctx, esindex.Config{Addresses: []string{srv.URL()}, Alias: "parley-messages"})
			if err != nil {
				t.Fatal(err)
			}
			return live
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			searchRebuildFindsNoDifferenceThenCatchesAnAlteredIndex(t, open(t))
		})
	}
}

// liveIndex is a search index a verified rebuild can compare with.
type liveIndex interface {
	search.Index
	search.Lister
	search.Rebuildable
}

func searchRebuildFindsNoDifferenceThenCatchesAnAlteredIndex(t *testing.T, live liveIndex) {
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	t.Cleanup(func() { _ = live.Close() })
	grouptest.Run(t, consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupSearch), Topic: k.Names.Topic(schemas.TopicEvents),
		ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, search.Projection{Index: live})
	events, _ := workload(t)
	dlqtest.Write(t, k, schemas.TopicEvents, events...)

	ctx := context.Background()
	verify := func() rebuild.Report {
		t.Helper()
		gen, err := live.NewGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = gen.Discard(ctx) }()
		rep, err := rebuild.Search(ctx, rebuild.SearchConfig{
			Config: rebuild.Config{Kafka: k.Cluster, WaitLive: time.Minute},
			Names:  k.Names, Live: live, Fresh: gen.(rebuild.FreshIndex),
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := verify()
	// The rebuild skips what the live group dead-lettered: the poison
	// record, and the workload's edits, which carry no message_sent_at
	// (history takes them, the search projection refuses them).
	if dead := len(dlqtest.Read(t, k)); rep.Records != int64(len(events)) || rep.Skipped != int64(dead) || dead == 0 || rep.LiveBehind != 0 {
		t.Errorf("report %+v; want %d records, %d skipped as the live group dead-lettered, the live group caught up", rep, len(events), dead)
	}
	if rep.Keys != 2 || len(rep.Differences) != 0 {
		t.Fatalf("%d conversations compared, differences %v; want 2 and none", rep.Keys, rep.Differences)
	}
	docs, err := live.Documents(ctx, "g_rebuild")
	if err != nil || len(docs) != 7 {
		t.Fatalf("the live index lists %d documents of g_rebuild (%v); want 7 (six messages, one deleted, and carol's)", len(docs), err)
	}

	// A body changed in the live index only.
	if err := live.Index(ctx, []search.Doc{{Kind: search.KindIndex, ConversationID: "g_rebuild", Seq: 2, Version: 99, SenderID: "alice",
		Body: "not in the log", SentAt: historytest.MessageTime(2)}}); err != nil {
		t.Fatal(err)
	}
	rep = verify()
	var got []string
	for _, d := range rep.Differences {
		got = append(got, d.Key)
	}
	if !slices.Equal(got, []string{"conversation/g_rebuild"}) {
		t.Errorf("differences %v; want conversation/g_rebuild only", got)
	}
}
