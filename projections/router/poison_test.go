package router

import (
	"encoding/json"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// The router's group dead-letters each poison record of chat.events,
// chat.receipts and chat.ephemeral, counts it, commits past it and
// routes the good record after it (same key, so same partition).
func TestRouterDeadLettersPoisonAndGoesOn(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	m := telemetry.New()
	r := New(Config{Kafka: k.Cluster, Topology: k.Topology(kafkalog.Topology{}), History: openStore(t), Metrics: m})
	runUntilCleanup(t, "router", r.Run, r.Ready())

	const conv = "g_poison"
	at := time.Now().UTC()
	event := func(typ string, seq uint64, value string) kafka.Message {
		ev := historytest.Message(conv, seq, "alice", "x", at)
		if typ != "" {
			ev.Type, ev.Data = typ, []byte(value)
		}
		return kafkalog.Encode(attrsOf(ev), ev.Data)
	}
	signal := func(typ, key string, v any, value string) kafka.Message {
		if value == "" {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			value = string(b)
		}
		msg := kafkalog.Encode(kafkalog.NewAttributes(typ, conv, at), []byte(value))
		msg.Key = []byte(key)
		return msg
	}
	receiptKey := schemas.ReceiptKey(conv, "bob", schemas.ReceiptRead)
	receipt := func(seq uint64) kafka.Message {
		return signal(schemas.TypeReceipt, receiptKey, schemas.ReceiptV1{ConversationID: conv, UserID: "bob", Kind: schemas.ReceiptRead, Seq: seq, At: at}, "")
	}
	typing := signal(schemas.TypeTyping, conv, schemas.TypingV1{ConversationID: conv, UserID: "bob", At: at, ExpiresAt: at.Add(time.Minute)}, "")
	noSeqAttrs := attrsOf(historytest.Message(conv, 94, "alice", "x", at))
	noSeqAttrs.HasSeq = false
	noSeq := kafkalog.Encode(noSeqAttrs, event("", 94, "").Value)
	type poison struct {
		name string
		msg  kafka.Message
		err  string
	}
	cases := []struct {
		topic   string
		poisons []poison
		good    func(i int) kafka.Message
	}{
		{schemas.TopicEvents, []poison{
			{"no CloudEvents headers", kafka.Message{Key: []byte(conv), Value: event("", 90, "").Value}, schemas.HeaderSpecVersion},
			{"a value breaking its schema", event(schemas.TypeMessageSent, 91, `{"seq":"one"}`), "invalid"},
			{"an unknown schema version that is no JSON", event("chat.message.sent.v9", 93, `poison`), "not JSON"},
			{"no seq", noSeq, schemas.HeaderSeq},
		}, func(i int) kafka.Message { return event("", uint64(i+1), "") }},
		{schemas.TopicReceipts, []poison{
			{"no CloudEvents headers", kafka.Message{Key: []byte(receiptKey), Value: receipt(90).Value}, schemas.HeaderSpecVersion},
			{"a value breaking its schema", signal(schemas.TypeReceipt, receiptKey, nil, `{"conversation_id":"g_poison","user_id":"bob","kind":"seen","seq":91}`), "kind"},
			{"an unknown schema version", signal("chat.receipt.v9", receiptKey, nil, `{}`), "chat.receipt.v9"},
		}, func(i int) kafka.Message { return receipt(uint64(i + 1)) }},
		{schemas.TopicEphemeral, []poison{
			{"a value breaking its schema", signal(schemas.TypeTyping, conv, nil, `{"conversation_id":5}`), "invalid"},
		}, func(int) kafka.Message { return typing }},
	}
	// The conversation, for the router to know its members.
	created := historytest.Group(conv, at, historytest.Owner("alice"), historytest.Member("bob"))
	dlqtest.Write(t, k, schemas.TopicEvents, kafkalog.Encode(attrsOf(created), created.Data))
	total := 0
	for _, c := range cases {
		var msgs []kafka.Message
		for i, p := range c.poisons {
			msgs = append(msgs, p.msg, c.good(i))
		}
		dlqtest.Write(t, k, c.topic, msgs...)
		total += len(c.poisons)
	}

	var dead []kafka.Message
	dlqtest.WaitFor(t, 30*time.Second, "every dead letter", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= total
	})
	for _, c := range cases {
		dlqtest.WaitCommitted(t, k, schemas.GroupRouter, c.topic)
	}
	if len(dead) != total {
		t.Fatalf("%d dead letters, want %d", len(dead), total)
	}
	byTopic := map[string][]kafka.Message{}
	for _, d := range dead {
		tp := dlqtest.Header(d, schemas.HeaderDLQTopic)
		byTopic[tp] = append(byTopic[tp], d)
	}
	for _, c := range cases {
		got := byTopic[k.Names.Topic(c.topic)]
		if len(got) != len(c.poisons) {
			t.Errorf("%s: %d dead letters, want %d", c.topic, len(got), len(c.poisons))
			continue
		}
		for i, p := range c.poisons {
			t.Run(c.topic+"/"+p.name, func(t *testing.T) {
				dlqtest.Check(t, k, got[i], p.msg, c.topic, schemas.GroupRouter, p.err)
			})
		}
		// Every good record was routed: read, not dropped.
		want := len(c.poisons)
		if c.topic == schemas.TopicEvents {
			want++ // the creation
		}
		var pm dto.Metric
		if err := m.RouterRecordsRead.WithLabelValues(k.Names.Topic(c.topic)).Write(&pm); err != nil {
			t.Fatal(err)
		}
		if got := pm.GetCounter().GetValue(); got != float64(want) {
			t.Errorf("%s: the router routed %v records, want the %d good ones", c.topic, got, want)
		}
	}
	if n := dlqtest.Count(t, k, m, schemas.GroupRouter); n != float64(total) {
		t.Errorf("dead letters counted %v, want %d", n, total)
	}
}
