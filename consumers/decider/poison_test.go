package decider_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/schemas"
)

// A poison command — no CloudEvents headers, a value that is no JSON, a
// type of an unknown version — is dead-lettered whole, counted, and
// the command after it in the same partition is decided.
func TestDeciderDeadLettersPoisonCommandsAndGoesOn(t *testing.T) {
	t.Parallel()
	const partitions = 3
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := startTail(t, k, schemas.TopicEvents, partitions)
	cw := commandWriter(t, k)
	w := newWorld(1)
	conv := w.convs[0]
	want := w.create(ctx, t, cw)
	m := telemetry.New()
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Metrics: m})

	valid := func(typ string, value string) kafka.Message {
		return kafkalog.Encode(kafkalog.NewAttributes(typ, conv, time.Now()), []byte(value))
	}
	poisons := []struct {
		name string
		msg  kafka.Message
		err  string
	}{
		{"no CloudEvents headers", kafka.Message{Key: []byte(conv), Value: []byte(`{"command_id":"h"}`)}, schemas.HeaderSpecVersion},
		{"a value that is no JSON", valid(schemas.TypeSendMessage, `{"command_id":`), "invalid"},
		{"an unknown schema version", valid("chat.message.send.v9", `{"command_id":"v9"}`), "chat.message.send.v9"},
	}
	raw := kafkalog.NewWriter(k.Cluster, k.Names.Topic(schemas.TopicCommands))
	defer raw.Close()
	for i, p := range poisons {
		if err := raw.WriteMessages(ctx, p.msg); err != nil {
			t.Fatal(err)
		}
		// The next good command, in the same partition (same key).
		s, err := w.sendOne(ctx, cw, "after", i*2)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s...)
	}
	var dead []kafka.Message
	waitFor(t, 30*time.Second, "the dead letters and the events after them", func() bool {
		dead = dlqtest.Read(t, k)
		return len(dead) >= len(poisons) && events.len() >= len(want)
	})
	checkEvents(t, events.snapshot(), partitions, want)
	// Every command with its headers is timed from its ce_time to its
	// decision: one per event, and the two poisons that have headers.
	var wait dto.Metric
	if err := m.CommandWait.Write(&wait); err != nil {
		t.Fatal(err)
	}
	if got, least := wait.GetHistogram().GetSampleCount(), uint64(len(want)+2); got < least {
		t.Errorf("command waits observed %d times, want at least %d", got, least)
	}
	if len(dead) != len(poisons) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(poisons))
	}
	for i, p := range poisons {
		t.Run(p.name, func(t *testing.T) {
			dlqtest.Check(t, k, dead[i], p.msg, schemas.TopicCommands, schemas.GroupDecider, p.err)
		})
	}
	if n := dlqtest.Count(t, k, m, schemas.GroupDecider); n != float64(len(poisons)) {
		t.Errorf("dead letters counted %v for the decider, want %d", n, len(poisons))
	}
	// Every good command is counted as the group's applied record, as a
	// projection's are; the poisons are not.
	decided := m.ConsumedRecords.WithLabelValues(k.Names.Group(schemas.GroupDecider))
	waitFor(t, 10*time.Second, fmt.Sprintf("%d commands counted as decided", len(want)), func() bool {
		return testutil.ToFloat64(decided) == float64(len(want))
	})
	hw := highWatermarks(t, k, schemas.TopicCommands, partitions)
	waitFor(t, 10*time.Second, "commits past the poison", func() bool {
		c := committed(t, k, partitions)
		for p := range c {
			if c[p] == -1 && hw[p] == 0 {
				c[p] = 0
			}
		}
		return c[0] == hw[0] && c[1] == hw[1] && c[2] == hw[2]
	})
}
