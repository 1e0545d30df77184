package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// startKafka starts the embedded broker on a free port with Parley's
// topics; it stops when t ends.
func startKafka(t *testing.T, partitions int) []string {
	t.Helper()
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := []string{b.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkalog.Provision(ctx, kafkalog.NewClient(brokers), kafkalog.Topology{Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	return brokers
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
func produce(t *testing.T, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: schemas.TopicEvents, Balancer: kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
	}
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
