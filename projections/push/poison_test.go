package push_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// The push group dead-letters each poison record of chat.events and
// chat.receipts, counts it, and goes on: the good message after it is
// notified.
func TestPushGroupDeadLettersPoisonAndGoesOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerWebPush("bob", "bob-laptop")
	e.start(push.Config{Window: time.Millisecond})
	e.waitRegistered("bob", "bob-laptop")
	e.create("g1", "alice", "bob")
	withValue := func(m kafka.Message, v string) kafka.Message { m.Value = []byte(v); return m }
	good := func(seq uint64) kafka.Message {
		return e.event(schemas.TypeMessageSentV3, "g1", seq, schemas.MessageSentV3{ConversationID: "g1", Seq: seq, SenderID: "alice", Body: "fine", CommandID: fmt.Sprintf("cmd-%d", seq), SentAt: time.Now().UTC()})
	}
	poisons := []struct {
		name, topic string
		msg         kafka.Message
		err         string
	}{
		{"no CloudEvents headers", schemas.TopicEvents, kafka.Message{Key: []byte("g1"), Value: good(90).Value}, schemas.HeaderSpecVersion},
		{"a message breaking its schema", schemas.TopicEvents, withValue(good(91), `{"seq":"one"}`), "invalid"},
		{"a membership change that is no JSON", schemas.TopicEvents, withValue(e.event(schemas.TypeMembersAdded, "g1", 92, nil), `{"conversation_id":`), "invalid"},
	}
	for i, p := range poisons {
		dlqtest.Write(t, e.k, p.topic, p.msg, good(uint64(i+1)))
	}
	bad := e.event(schemas.TypeReceipt, "g1", 0, nil)
	bad.Value = []byte(`{"conversation_id":"g1","user_id":"bob","kind":"seen","seq":1}`)
	dlqtest.Write(t, e.k, schemas.TopicReceipts, bad)
	poisons = append(poisons, struct {
		name, topic string
		msg         kafka.Message
		err         string
	}{"a receipt breaking its schema", schemas.TopicReceipts, bad, "kind"})

	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "every dead letter", func() bool {
		dead = dlqtest.Read(t, e.k)
		return len(dead) >= len(poisons)
	})
	if len(dead) != len(poisons) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(poisons))
	}
	// Each topic's dead letters are in its order; the two topics' may
	// interleave.
	byTopic := map[string][]kafka.Message{}
	for _, d := range dead {
		topic := e.k.Names.Base(dlqtest.Header(d, schemas.HeaderDLQTopic))
		byTopic[topic] = append(byTopic[topic], d)
	}
	seen := map[string]int{}
	for _, p := range poisons {
		t.Run(p.name, func(t *testing.T) {
			i := seen[p.topic]
			seen[p.topic]++
			if i >= len(byTopic[p.topic]) {
				t.Fatalf("no dead letter %d of %s", i, p.topic)
			}
			dlqtest.Check(t, e.k, byTopic[p.topic][i], p.msg, p.topic, schemas.GroupPush, p.err)
		})
	}
	if n := dlqtest.Count(t, e.k, e.metrics, schemas.GroupPush); n != float64(len(poisons)) {
		t.Errorf("dead letters counted %v, want %d", n, len(poisons))
	}
	eventually(t, "the good messages notified", func() bool {
		ns := e.webPushes("bob-laptop")
		return len(ns) > 0 && ns[len(ns)-1].Seq == 3
	})
}
