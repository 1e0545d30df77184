package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/projections/search/esindex"
	"github.com/parley-chat/parley/projections/search/esindex/esfake"
	"github.com/parley-chat/parley/schemas"
)

// `parley rebuild search` on Elasticsearch (esfake): after the search
// role indexed a conversation, the rebuild into an index beside the
// alias finds nothing different; after a document is changed in the
// live index behind the log's back, it names the conversation and exits
// 1; -swap moves the alias to the rebuilt index (the altered one is
// deleted) and exits 0, as on Bleve, after which nothing differs.
func TestRebuildSearchCommandOnElasticsearch(t *testing.T) {
	t.Parallel()
	es := esfake.Start(t)
	dir := t.TempDir()
	settings := runSettings(dir, "-elasticsearch-url", es.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys := startRun(ctx, t, app.Roles{Search: true}, settings)
	const g = "g_es"
	evs := append([]history.Event{historytest.Group(g, historytest.MessageTime(0), historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages(g, 1, 5, "alice")...)
	evs = append(evs, historytest.Deleted(g, 6, "alice", 3, historytest.MessageTime(6)))
	var recs []kafka.Message
	for _, ev := range evs {
		recs = append(recs, kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: g,
			Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data))
	}
	k := kafkatest.Cluster{Cluster: sys.Kafka(), Names: sys.TopicNames()}
	dlqtest.Write(t, k, schemas.TopicEvents, recs...)

	live, err := esindex.Open(ctx, esindex.Config{Addresses: []string{es.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dlqtest.WaitFor(t, time.Minute, "the search role indexed the deletion", func() bool {
		if err := live.Refresh(ctx); err != nil {
			return false
		}
		docs, err := live.Documents(ctx, g)
		return err == nil && len(docs) == 5 && docs[2].Kind == search.KindDelete
	})
	if err := sys.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	rebuildSearch := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append(append([]string{"rebuild", "search"}, args...), settings...), noEnv, nil, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	printed, err := rebuildSearch()
	if err != nil || !strings.Contains(printed, "search rebuild: 7 records (0 skipped), 1 conversations compared, 0 differ") {
		t.Fatalf("rebuild search: %v\n%s", err, printed)
	}
	if got := es.Indices(); len(got) != 1 {
		t.Errorf("indices after a rebuild without -swap: %v; want the live one only (the rebuilt one deleted)", got)
	}

	// Behind the log's back: message 2's text in the live index.
	if err := live.Index(ctx, []search.Doc{{Kind: search.KindIndex, ConversationID: g, Seq: 2, Version: 99, SenderID: "alice",
		Body: "not in the log", SentAt: historytest.MessageTime(2)}}); err != nil {
		t.Fatal(err)
	}
	printed, err = rebuildSearch()
	if !errors.Is(err, app.ErrRebuildDiffers) || exitCode(err) != 1 || !strings.Contains(printed, "differs: conversation/"+g+" live=") {
		t.Errorf("rebuild search of an altered index: %v (exit %d); want ErrRebuildDiffers, exit 1, naming %s\n%s", err, exitCode(err), g, printed)
	}

	before := es.Indices()
	printed, err = rebuildSearch("-swap")
	if err != nil || !strings.Contains(printed, " 1 differ") || !strings.Contains(printed, "the rebuilt index replaced the live one (0 records appended meanwhile read into it)") {
		t.Fatalf("rebuild search -swap: %v\n%s", err, printed)
	}
	after := es.Indices()
	if len(before) != 1 || len(after) != 1 || after[0] == before[0] {
		t.Errorf("indices %v before -swap, %v after; want the alias moved to a new index and the old one deleted", before, after)
	}
	printed, err = rebuildSearch()
	if err != nil || !strings.Contains(printed, " 0 differ") {
		t.Errorf("rebuild search after -swap: %v\n%s", err, printed)
	}
	docs, err := live.Documents(ctx, g)
	if err != nil || len(docs) != 5 || docs[1].Body != fmt.Sprintf("message 2 of %s", g) {
		t.Errorf("the live index after -swap: %v %+v; want message 2 as the log says", err, docs)
	}
}

// `parley rebuild search` on Elasticsearch while the search role runs,
// reading the running broker (-kafka-brokers): it waits for the live
// group, finds nothing different, and with -swap moves the alias; the
// live role then writes what comes next through the alias into the
// rebuilt index, which a later comparison finds complete.
func TestRebuildSearchOnElasticsearchWithTheRolesRunning(t *testing.T) {
	t.Parallel()
	es := esfake.Start(t)
	dir := t.TempDir()
	settings := runSettings(dir, "-elasticsearch-url", es.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys := startRun(ctx, t, app.Roles{Search: true}, settings)
	defer func() { _ = sys.Stop(context.WithoutCancel(ctx)) }()
	const g = "g_live"
	write := func(evs ...history.Event) {
		t.Helper()
		var recs []kafka.Message
		for _, ev := range evs {
			recs = append(recs, kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: g,
				Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data))
		}
		dlqtest.Write(t, kafkatest.Cluster{Cluster: sys.Kafka(), Names: sys.TopicNames()}, schemas.TopicEvents, recs...)
	}
	live, err := esindex.Open(ctx, esindex.Config{Addresses: []string{es.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	indexed := func(n int) func() bool {
		return func() bool {
			if err := live.Refresh(ctx); err != nil {
				return false
			}
			docs, err := live.Documents(ctx, g)
			return err == nil && len(docs) == n
		}
	}
	write(append([]history.Event{historytest.Group(g, historytest.MessageTime(0), historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages(g, 1, 5, "alice")...)...)
	dlqtest.WaitFor(t, time.Minute, "the search role indexed five messages", indexed(5))

	// The running broker as an external cluster, which every command
	// refuses with the public dev secret.
	args := append(append([]string{}, settings...), "-kafka-brokers", strings.Join(sys.Kafka().Brokers(), ","), "-jwt-secret", strings.Repeat("s", 32))
	rebuildSearch := func(extra ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append(append([]string{"rebuild", "search"}, extra...), args...), noEnv, nil, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	printed, err := rebuildSearch()
	if err != nil || !strings.Contains(printed, "1 conversations compared, 0 differ") || strings.Contains(printed, "had not committed") {
		t.Fatalf("rebuild search with the role running: %v\n%s", err, printed)
	}
	before := es.Indices()
	printed, err = rebuildSearch("-swap")
	if err != nil || !strings.Contains(printed, "the rebuilt index replaced the live one") {
		t.Fatalf("rebuild search -swap with the role running: %v\n%s", err, printed)
	}
	if after := es.Indices(); len(after) != 1 || after[0] == before[0] {
		t.Errorf("indices %v before -swap, %v after; want the alias on a new index", before, after)
	}
	write(historytest.Messages(g, 6, 8, "bob")...)
	dlqtest.WaitFor(t, time.Minute, "the search role indexed through the moved alias", indexed(8))
	printed, err = rebuildSearch()
	if err != nil || !strings.Contains(printed, "1 conversations compared, 0 differ") {
		t.Errorf("rebuild search after -swap and more messages: %v\n%s", err, printed)
	}
}
