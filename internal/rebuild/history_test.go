package rebuild_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/rebuild"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

func eventRecord(ev history.Event) kafka.Message {
	return kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
		Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data)
}

func receiptRecord(t *testing.T, conv, user, kind string, seq uint64) kafka.Message {
	t.Helper()
	r := schemas.ReceiptV1{ConversationID: conv, UserID: user, Kind: kind, Seq: seq, At: historytest.MessageTime(seq)}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	m := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeReceipt, conv, r.At), b)
	m.Key = []byte(schemas.ReceiptKey(conv, user, kind))
	return m
}

// workload is a mixed history: a group with messages, replies, files,
// edits, a deletion, reactions added and removed, members added, removed
// and promoted, a rename and an archive; a direct conversation; read and
// delivered markers; and a record the projection dead-letters.
func workload(t *testing.T) (events, receipts []kafka.Message) {
	t.Helper()
	const g, at0 = "g_rebuild", 0
	at := historytest.MessageTime
	evs := []history.Event{historytest.Group(g, at(at0), historytest.Owner("alice"), historytest.Member("bob"))}
	evs = append(evs, historytest.Messages(g, 1, 4, "alice")...)
	evs = append(evs,
		historytest.MessageV2(g, 5, "bob", "a reply", 2, at(5)),
		historytest.MessageV3(g, 6, "bob", "the plan", at(6), "plan.pdf", "photo.jpg"),
		historytest.Edited(g, 7, "alice", 1, "hello, edited", at(7)),
		historytest.Deleted(g, 8, "bob", 5, at(8)),
		historytest.Reacted(g, 9, "bob", 1, "👍", at(9)),
		historytest.Reacted(g, 10, "alice", 1, "🎉", at(10)),
		historytest.Unreacted(g, 11, "alice", 1, "🎉", at(11)),
		historytest.Added(g, 12, "alice", at(12), historytest.Member("carol"), historytest.Member("dave")),
		historytest.RolesChanged(g, 13, "alice", at(13), historytest.Admin("carol")),
		historytest.Removed(g, 14, "carol", "dave", at(14)),
		historytest.Renamed(g, 15, "alice", "Plans", at(15)),
		historytest.Message(g, 16, "carol", "hi all", at(16)),
		historytest.Edited(g, 17, "bob", 6, "the new plan", at(17)),
		historytest.Archived(g, 18, "alice", true, at(18)),
	)
	direct := historytest.Direct("erin", "frank", at(0))
	evs = append(evs, direct)
	evs = append(evs, historytest.Messages(direct.ConversationID, 1, 3, "erin")...)
	for _, ev := range evs {
		events = append(events, eventRecord(ev))
	}
	poison := eventRecord(historytest.Message(g, 19, "alice", "x", at(19)))
	poison.Value = []byte(`{"seq":"not a number"}`)
	events = append(events, poison)
	receipts = []kafka.Message{
		receiptRecord(t, g, "bob", schemas.ReceiptRead, 4),
		receiptRecord(t, g, "bob", schemas.ReceiptDelivered, 16),
		receiptRecord(t, g, "carol", schemas.ReceiptRead, 16),
		receiptRecord(t, direct.ConversationID, "frank", schemas.ReceiptRead, 2),
	}
	return events, receipts
}

func openStore(t *testing.T) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// liveHistory runs the history and receipts groups into a store of their
// own, as internal/app wires them, until the test ends.
func liveHistory(t *testing.T, k kafkatest.Cluster) *pebblestore.Store {
	t.Helper()
	live := openStore(t)
	cfg := func(group, topic string) consumers.GroupConfig {
		return consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(group), Topic: k.Names.Topic(topic),
			ApplyAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	}
	grouptest.Run(t, cfg(schemas.GroupHistory, schemas.TopicEvents), history.Projection{W: live})
	grouptest.Run(t, cfg(schemas.GroupReceipts, schemas.TopicReceipts), history.ReceiptProjection{W: live})
	return live
}

// After a mixed workload, the history store rebuilt from the log equals
// the live one, conversation by conversation and inbox by inbox; then a
// live store altered behind the log's back is caught.
func TestHistoryRebuildFindsNoDifferenceThenCatchesAnAlteredStore(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	live := liveHistory(t, k)
	events, receipts := workload(t)
	dlqtest.Write(t, k, schemas.TopicEvents, events...)
	dlqtest.Write(t, k, schemas.TopicReceipts, receipts...)

	var last [2]int64
	cfg := rebuild.HistoryConfig{
		Config: rebuild.Config{Kafka: k.Cluster, WaitLive: time.Minute, Progress: func(done, total int64) { last = [2]int64{done, total} }},
		Names:  k.Names, Live: live, Fresh: openStore(t),
	}
	rep, err := rebuild.History(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, rep, last, len(events)+len(receipts))

	// An edit applied to the live store only, as a bug or a hand
	// would, and frank's read marker moved: both conversations, the
	// group's members' inboxes and frank's differ from what the log
	// says; erin's does not.
	ctx := context.Background()
	if err := live.Apply(ctx, []history.Event{historytest.Edited("g_rebuild", 19, "alice", 2, "not in the log", historytest.MessageTime(19))}); err != nil {
		t.Fatal(err)
	}
	d := historytest.Direct("erin", "frank", historytest.MessageTime(0)).ConversationID
	if err := live.ApplyReceipts(ctx, []history.Receipt{{ConversationID: d, UserID: "frank", ReadSeq: 3}}); err != nil {
		t.Fatal(err)
	}
	cfg.Fresh = openStore(t)
	rep, err = rebuild.History(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := differingKeys(t, rep)
	for _, key := range []string{"conversation/g_rebuild", "conversation/" + d, "user/frank"} {
		if !slices.Contains(got, key) {
			t.Errorf("differences %v; want %s among them", got, key)
		}
	}
	if slices.Contains(got, "user/erin") {
		t.Errorf("differences %v: erin's inbox did not change", got)
	}
}

// checkClean checks the report of a rebuild of the workload's records
// (records of them), whose last progress was last: every record read, the
// one undecodable skipped, the live groups caught up, progress at the
// end, seven keys compared — two conversations; alice, bob, carol (dave
// was removed), erin, frank — and no difference.
func checkClean(t *testing.T, rep rebuild.Report, last [2]int64, records int) {
	t.Helper()
	want := int64(records)
	if rep.Records != want || rep.Skipped != 1 || rep.LiveBehind != 0 {
		t.Errorf("report %+v; want %d records, 1 skipped, the live groups caught up", rep, want)
	}
	if last != [2]int64{want, want} {
		t.Errorf("last progress %v; want %d of %d", last, want, want)
	}
	if rep.Keys != 2+5 || len(rep.Differences) != 0 {
		t.Fatalf("%d keys compared, differences %v; want 7 keys and none", rep.Keys, rep.Differences)
	}
}

// differingKeys returns the keys of rep's differences, each checked to
// have both checksums, unequal.
func differingKeys(t *testing.T, rep rebuild.Report) []string {
	t.Helper()
	var got []string
	for _, diff := range rep.Differences {
		got = append(got, diff.Key)
		if diff.Live == "" || diff.Rebuilt == "" || diff.Live == diff.Rebuilt {
			t.Errorf("difference %+v: want both checksums, unequal", diff)
		}
	}
	return got
}

func TestCompare(t *testing.T) {
	t.Parallel()
	got := rebuild.Compare(rebuild.Checksums{"a": "1", "b": "2", "c": "3"}, rebuild.Checksums{"a": "1", "b": "9", "d": "4"})
	want := []rebuild.Difference{{Key: "b", Live: "2", Rebuilt: "9"}, {Key: "c", Live: "3"}, {Key: "d", Rebuilt: "4"}}
	if !slices.Equal(got, want) {
		t.Errorf("Compare = %v; want %v", got, want)
	}
}
