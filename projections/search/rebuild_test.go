package search_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/blevestore"
	"github.com/parley-chat/parley/projections/search/esindex"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
	"github.com/parley-chat/parley/projections/search/searchtest"
	"github.com/parley-chat/parley/schemas"
)

type rebuildable interface {
	search.Index
	search.Rebuildable
}

// TestRebuild rebuilds each adapter from the log: what the log says is
// found afterwards, what only the old index held is gone, and progress is
// reported up to the total.
func TestRebuild(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 4)
	var msgs []kafka.Message
	const convs, perConv = 6, 40
	for c := range convs {
		conv := fmt.Sprintf("g_%d", c)
		msgs = append(msgs, created(conv, t0, "ann"))
		for s := 1; s <= perConv; s++ {
			msgs = append(msgs, sent(conv, uint64(s), "ann", fmt.Sprintf("rebuilt message %d", s), t0.Add(time.Duration(s)*time.Millisecond)))
		}
	}
	msgs = append(msgs, withValue(sent("g_0", perConv+1, "ann", "x", t0), []byte("{")))
	produce(t, k, msgs...)
	all := make([]string, convs)
	for c := range all {
		all[c] = fmt.Sprintf("g_%d", c)
	}

	srv := esfake.Start(t)
	targets := map[string]func(t *testing.T) rebuildable{
		"bleve": func(t *testing.T) rebuildable {
			s, err := blevestore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"elasticsearch": func(t *testing.T) rebuildable {
			cfg := esindex.Config{Addresses: []string{srv.URL()}, Alias: "parley-rebuild-test"}
			ix, err := esindex.Open(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return ix
		},
	}
	for name, open := range targets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ix := open(t)
			defer ix.Close()
			ghost := searchtest.Msg("g_0", 999, "ann", "ghost message only the old index has", t0)
			if err := ix.Index(t.Context(), []search.Doc{ghost}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var calls [][2]int64
			st, err := search.Rebuild(t.Context(), search.RebuildConfig{
				Kafka: k.Cluster, Topic: k.Names.Topic(schemas.TopicEvents), Target: ix, BatchSize: 25, Concurrency: 2,
				Progress: func(done, total int64) {
					mu.Lock()
					calls = append(calls, [2]int64{done, total})
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatalf("Rebuild: %v", err)
			}
			if want := int64(len(msgs)); st.Records != want || st.Skipped != 1 {
				t.Errorf("stats %+v, want %d records, 1 skipped", st, want)
			}
			if len(calls) == 0 || calls[len(calls)-1][0] != int64(len(msgs)) || calls[len(calls)-1][1] != int64(len(msgs)) {
				t.Errorf("progress calls end with %v, want done = total = %d", calls[len(calls)-1:], len(msgs))
			}
			for i := 1; i < len(calls); i++ {
				if calls[i][0] < calls[i-1][0] {
					t.Errorf("progress went back: %v then %v", calls[i-1], calls[i])
				}
			}
			if err := ix.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			res, err := ix.Search(t.Context(), search.Query{Text: "message", Conversations: all, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			n := len(res.Hits)
			for res.Next != nil {
				next := *res.Next
				res, err = ix.Search(t.Context(), search.Query{Text: "message", Conversations: all, Limit: 100, After: &next})
				if err != nil {
					t.Fatal(err)
				}
				n += len(res.Hits)
			}
			if n != convs*perConv {
				t.Errorf("after the rebuild %d messages are found, want %d", n, convs*perConv)
			}
			ghosts, err := ix.Search(t.Context(), search.Query{Text: "ghost", Conversations: all, Limit: 10})
			if err != nil || len(ghosts.Hits) != 0 {
				t.Errorf("the old index's document survived the rebuild: %v, %v", ghosts.Hits, err)
			}
		})
	}
}

func TestRebuildKeepsTheLiveIndexOnFailure(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 2)
	produce(t, k, created("g_1", t0, "ann"), sent("g_1", 1, "ann", "from the log", t0))
	dir := t.TempDir()
	s, err := blevestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Index(t.Context(), []search.Doc{searchtest.Msg("g_1", 5, "ann", "live only", t0)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	_, err = search.Rebuild(ctx, search.RebuildConfig{Kafka: k.Cluster, Topic: k.Names.Topic(schemas.TopicEvents), Target: s, Progress: func(int64, int64) { cancel() }})
	if err == nil {
		t.Fatal("a cancelled rebuild succeeded")
	}
	res, err := s.Search(t.Context(), search.Query{Text: "live", Conversations: []string{"g_1"}, Limit: 10})
	if err != nil || len(res.Hits) != 1 {
		t.Errorf("the live index changed: %d hits, %v", len(res.Hits), err)
	}
	cur, _ := os.ReadFile(filepath.Join(dir, "CURRENT"))
	entries, _ := os.ReadDir(dir)
	if strings.TrimSpace(string(cur)) != "gen-000001" || len(entries) != 2 {
		t.Errorf("CURRENT %q and %d entries; want gen-000001 and the unfinished generation removed", cur, len(entries))
	}
}

// TestCatchUp reads into an index only what was appended after the given
// end offsets, up to the ends now: what a promoted generation misses.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	k := startKafka(t, 2)
	topic := k.Names.Topic(schemas.TopicEvents)
	produce(t, k, created("g_a", t0, "ann"), sent("g_a", 1, "ann", "before the rebuild", t0), created("g_b", t0, "bob"))
	ctx := context.Background()
	ends, err := kafkalog.Offsets(ctx, kafkalog.NewClient(k.Cluster), topic, 2, kafka.LastOffsetOf)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, k, sent("g_a", 2, "ann", "after the rebuild", t0.Add(time.Millisecond)), sent("g_b", 1, "bob", "also after", t0.Add(2*time.Millisecond)))
	ix, err := blevestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var last [2]int64
	st, err := search.CatchUp(ctx, search.RebuildConfig{Kafka: k.Cluster, Topic: topic, Progress: func(done, total int64) { last = [2]int64{done, total} }}, ix, ends)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 2 || last != [2]int64{2, 2} {
		t.Errorf("caught up %+v, last progress %v; want the 2 records appended after the ends", st, last)
	}
	for conv, want := range map[string][]uint64{"g_a": {2}, "g_b": {1}} {
		docs, err := ix.Documents(ctx, conv)
		var got []uint64
		for _, d := range docs {
			got = append(got, d.Seq)
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: documents of seqs %v (%v); want %v", conv, got, err, want)
		}
	}
}
