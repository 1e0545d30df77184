package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// startKafka returns the test's cluster (see kafkatest) with Parley's
// topics; it stops when t ends.
func startKafka(t *testing.T, partitions int) kafkatest.Cluster {
	t.Helper()
	return kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: partitions, ReplicationFactor: 1}))
}

// event is the chat.events record of v (a *V1 event) about conv at seq.
func event(typ, conv string, seq uint64, at time.Time, v any) kafka.Message {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return kafkalog.Encode(schemas.Attributes{
		ID: fmt.Sprintf("evt-%s-%d", conv, seq), Type: typ, Source: schemas.Source, Subject: conv,
		Time: at, Seq: seq, HasSeq: true, CommandOffset: -1,
	}, data)
}

func created(conv string, at time.Time, members ...string) kafka.Message {
	ms := make([]schemas.Member, len(members))
	for i, m := range members {
		ms[i] = schemas.Member{UserID: m, Role: schemas.RoleMember}
	}
	return event(schemas.TypeConversationCreated, conv, 0, at, schemas.ConversationCreatedV1{
		ConversationID: conv, Kind: schemas.KindGroup, Title: "t", CreatedBy: members[0], Members: ms, CommandID: "create-" + conv, CreatedAt: at,
	})
}

func sent(conv string, seq uint64, sender, body string, at time.Time) kafka.Message {
	return event(schemas.TypeMessageSent, conv, seq, at, schemas.MessageSentV1{
		ConversationID: conv, Seq: seq, SenderID: sender, Body: body, CommandID: fmt.Sprintf("cmd-%s-%d", conv, seq), SentAt: at,
	})
}

// produce appends msgs to chat.events, keyed by conversation.
func produce(t *testing.T, k kafkatest.Cluster, msgs ...kafka.Message) {
	t.Helper()
	w := kafkalog.NewWriter(k.Cluster, k.Names.Topic(schemas.TopicEvents))
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
