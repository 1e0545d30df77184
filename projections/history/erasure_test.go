package history_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/consumers/grouptest"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

// erasureRecord is the chat.audit record of user's erasure at at, as the
// gateway appends it, or with value instead of its value when given.
func erasureRecord(user string, at time.Time, value string) kafka.Message {
	if value == "" {
		m, err := contentkeys.ErasureRecord(user, "olga", at)
		if err != nil {
			panic(err)
		}
		return m
	}
	return kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeUserErased, schemas.ErasureRef(user), at), []byte(value))
}

// The history group, reading chat.events and chat.audit as internal/app
// wires it, blanks an erased user's content live, dead-letters an
// erasure record that breaks its schema, passes over an audit record of
// a type it does not know, and goes on.
func TestHistoryGroupAppliesErasures(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 2}))
	s, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const conv = "g_erased"
	evs := []history.Event{
		historytest.Group(conv, historytest.MessageTime(0), historytest.Owner("alice"), historytest.Member("bob")),
		historytest.Message(conv, 1, "alice", "alices words", historytest.MessageTime(1)),
		historytest.Message(conv, 2, "bob", "bobs words", historytest.MessageTime(2)),
	}
	var recs []kafka.Message
	for _, ev := range evs {
		recs = append(recs, eventRecord(ev))
	}
	dlqtest.Write(t, k, schemas.TopicEvents, recs...)
	bad := erasureRecord("alice", historytest.MessageTime(3), `{"subject_ref":"x"}`)
	dlqtest.Write(t, k, schemas.TopicAudit, bad)
	m := telemetry.New()
	grouptest.Run(t, consumers.GroupConfig{
		Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(schemas.GroupHistory),
		Topics: []string{k.Names.Topic(schemas.TopicEvents), k.Names.Topic(schemas.TopicAudit)}, Metrics: m,
	}, history.Projection{W: s, Audit: k.Names.Topic(schemas.TopicAudit)})
	dlqtest.WaitFor(t, 30*time.Second, "the malformed erasure dead-lettered", func() bool {
		return len(dlqtest.Read(t, k)) == 1
	})
	dlqtest.Check(t, k, dlqtest.Read(t, k)[0], bad, schemas.TopicAudit, schemas.GroupHistory, "erased")
	body := func(seq int) string {
		p, err := s.Page(t.Context(), conv, history.PageQuery{Forward: true, Limit: 10})
		if err != nil || len(p.Events) != 2 {
			return "?"
		}
		return string(p.Events[seq-1].Data)
	}
	dlqtest.WaitFor(t, 30*time.Second, "both messages projected", func() bool { return bytes.Contains([]byte(body(2)), []byte("bobs words")) })
	if !bytes.Contains([]byte(body(1)), []byte("alices words")) {
		t.Fatalf("before the erasure alice's message is %s: the check below proves nothing", body(1))
	}

	// An audit record of a type a later version adds is passed over.
	later := kafkalog.Encode(kafkalog.NewAttributes("chat.user.suspended.v1", schemas.ErasureRef("alice"), historytest.MessageTime(3)), []byte(`{"later":true}`))
	dlqtest.Write(t, k, schemas.TopicAudit, later, erasureRecord("alice", historytest.MessageTime(3), ""))
	dlqtest.WaitFor(t, 30*time.Second, "alice's message blanked", func() bool {
		return !bytes.Contains([]byte(body(1)), []byte("alices words")) && bytes.Contains([]byte(body(1)), []byte(`"sender_id":"alice"`))
	})
	if !bytes.Contains([]byte(body(2)), []byte("bobs words")) {
		t.Errorf("bob's message after alice's erasure: %s", body(2))
	}
	if c, err := s.Conversation(t.Context(), conv); err != nil || c.Title != "" || c.LastMessage == nil || c.LastMessage.Body != "bobs words" {
		t.Errorf("summary after the erasure: %+v, %v; want her title gone, bob's preview", c, err)
	}
	if n := dlqtest.Count(t, k, m, schemas.GroupHistory); n != 1 {
		t.Errorf("dead letters counted %v, want 1", n)
	}
}
