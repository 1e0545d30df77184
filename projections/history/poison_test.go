package history_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

// poison is a record a group must dead-letter and what its error says.
type poison struct {
	name string
	msg  kafka.Message
	err  string
}

func eventRecord(ev history.Event) kafka.Message {
	return kafkalog.Encode(schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
		Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}, ev.Data)
}

// withValue is the record of a valid event of type typ and seq, but with
// value as its value.
func withValue(conv, typ string, seq uint64, value string) kafka.Message {
	ev := historytest.Message(conv, seq, "alice", "x", historytest.MessageTime(seq))
	ev.Type, ev.Data = typ, []byte(value)
	return eventRecord(ev)
}

func receiptRecord(typ string, r schemas.ReceiptV1, value string) kafka.Message {
	if value == "" {
		b, err := json.Marshal(r)
		if err != nil {
			panic(err)
		}
		value = string(b)
	}
	m := kafkalog.Encode(kafkalog.NewAttributes(typ, r.ConversationID, r.At), []byte(value))
	m.Key = []byte(schemas.ReceiptKey(r.ConversationID, r.UserID, r.Kind))
	return m
}

// runGroup runs a group as internal/app wires it until the test ends.
func runGroup[T any](t *testing.T, k kafkatest.Cluster, group, topic string, m *telemetry.Metrics, p consumers.Projection[T]) {
	t.Helper()
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(group), Topic: k.Names.Topic(topic), Metrics: m,
	}, p)
}

// The history group over chat.events and the receipts group over
// chat.receipts dead-letter each poison record, count it, commit past it
// and apply the good record after it (same key, so same partition).
func TestHistoryGroupsDeadLetterPoisonAndGoOn(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	s, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const conv = "g_poison"
	good := func(seq uint64) kafka.Message {
		return eventRecord(historytest.Message(conv, seq, "alice", "good", historytest.MessageTime(seq)))
	}
	events := []poison{
		{"no CloudEvents headers", kafka.Message{Key: []byte(conv), Value: good(90).Value}, schemas.HeaderSpecVersion},
		{"a value breaking its schema", withValue(conv, schemas.TypeMessageSent, 91, `{"seq":"one"}`), "invalid"},
		{"a value that is no JSON", withValue(conv, schemas.TypeMessageSent, 92, `{"seq":`), "invalid"},
		{"an unknown schema version that is no JSON", withValue(conv, "chat.message.sent.v9", 93, `not json`), "not JSON"},
	}
	receipt := func(seq uint64) schemas.ReceiptV1 {
		return schemas.ReceiptV1{ConversationID: conv, UserID: "bob", Kind: schemas.ReceiptRead, Seq: seq, At: historytest.MessageTime(seq)}
	}
	receipts := []poison{
		{"no CloudEvents headers", kafka.Message{Key: receiptRecord(schemas.TypeReceipt, receipt(90), "").Key, Value: receiptRecord(schemas.TypeReceipt, receipt(90), "").Value}, schemas.HeaderSpecVersion},
		{"a value breaking its schema", receiptRecord(schemas.TypeReceipt, receipt(91), `{"conversation_id":"g_poison","user_id":"bob","kind":"seen","seq":91}`), "kind"},
		{"an unknown schema version", receiptRecord("chat.receipt.v9", receipt(92), ""), "chat.receipt.v9"},
	}

	var evs, rcs []kafka.Message
	evs = append(evs, eventRecord(historytest.Group(conv, historytest.MessageTime(0), historytest.Owner("alice"), historytest.Member("bob"))))
	for i, p := range events {
		evs = append(evs, p.msg, good(uint64(i+1)))
	}
	// Of a later version but JSON: kept for later versions, not poison.
	evs = append(evs, withValue(conv, "chat.future.v9", uint64(len(events)+1), `{"later":true}`))
	for i, p := range receipts {
		rcs = append(rcs, p.msg, receiptRecord(schemas.TypeReceipt, receipt(uint64(i+1)), ""))
	}
	dlqtest.Write(t, k, schemas.TopicEvents, evs...)
	dlqtest.Write(t, k, schemas.TopicReceipts, rcs...)
	m := telemetry.New()
	runGroup(t, k, schemas.GroupHistory, schemas.TopicEvents, m, history.Projection{W: s})
	runGroup(t, k, schemas.GroupReceipts, schemas.TopicReceipts, m, history.ReceiptProjection{W: s})

	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "every dead letter", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= len(events)+len(receipts)
	})
	dlqtest.WaitCommitted(t, k, schemas.GroupHistory, schemas.TopicEvents)
	dlqtest.WaitCommitted(t, k, schemas.GroupReceipts, schemas.TopicReceipts)
	if len(dead) != len(events)+len(receipts) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(events)+len(receipts))
	}
	byGroup := map[string][]kafka.Message{}
	for _, d := range dead {
		g := dlqtest.Header(d, schemas.HeaderDLQGroup)
		byGroup[g] = append(byGroup[g], d)
	}
	for _, c := range []struct {
		group, topic string
		poisons      []poison
	}{
		{schemas.GroupHistory, schemas.TopicEvents, events},
		{schemas.GroupReceipts, schemas.TopicReceipts, receipts},
	} {
		got := byGroup[k.Names.Group(c.group)]
		if len(got) != len(c.poisons) {
			t.Errorf("%s: %d dead letters, want %d", c.group, len(got), len(c.poisons))
			continue
		}
		for i, p := range c.poisons {
			t.Run(c.group+"/"+p.name, func(t *testing.T) {
				dlqtest.Check(t, k, got[i], p.msg, c.topic, c.group, p.err)
			})
		}
		if n := dlqtest.Count(t, k, m, c.group); n != float64(len(c.poisons)) {
			t.Errorf("%s: dead letters counted %v, want %d", c.group, n, len(c.poisons))
		}
	}

	ctx := t.Context()
	sum, err := s.Conversation(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(events) + 1); sum.LastSeq != want || sum.Messages != uint64(len(events)) {
		t.Errorf("history has last seq %d and %d messages, want %d and %d: every good event", sum.LastSeq, sum.Messages, want, len(events))
	}
	page, err := s.Page(ctx, conv, history.PageQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		if ev.Seq >= 90 {
			t.Errorf("history holds poison seq %d", ev.Seq)
		}
	}
	rs, err := s.Receipts(ctx, conv)
	if err != nil && !errors.Is(err, history.ErrNotFound) {
		t.Fatal(err)
	}
	var bob *history.Receipt
	for i := range rs {
		if rs[i].UserID == "bob" {
			bob = &rs[i]
		}
	}
	if bob == nil || bob.ReadSeq != uint64(len(receipts)) {
		t.Errorf("receipts %+v, want bob read up to %d: the good receipts only", rs, len(receipts))
	}
}
