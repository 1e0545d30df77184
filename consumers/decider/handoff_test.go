package decider_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// handoffRecorder is a decider.Handoff that checks, at each call, that
// the log already holds what it is handed.
type handoffRecorder struct {
	t      *testing.T
	k      kafkatest.Cluster
	client *kafka.Client

	mu      sync.Mutex
	events  map[int][]string // ce_ids by partition, in the order handed
	replies []string
}

func (h *handoffRecorder) AppendedEvents(ctx context.Context, records []kafka.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range records {
		h.events[m.Partition] = append(h.events[m.Partition], id(h.t, m))
	}
	// The decider is the only writer of chat.events: the partition's
	// high watermark must already count every event handed so far.
	topic := h.k.Names.Topic(schemas.TopicEvents)
	p := records[0].Partition
	resp, err := h.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
	if err != nil {
		h.t.Errorf("listing offsets: %v", err)
		return
	}
	if hw := resp.Topics[topic][0].LastOffset; hw < int64(len(h.events[p])) {
		h.t.Errorf("partition %d: %d events handed off, but the log holds %d", p, len(h.events[p]), hw)
	}
}

func (h *handoffRecorder) AppendedReplies(_ context.Context, records []kafka.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range records {
		h.replies = append(h.replies, id(h.t, m))
	}
}

func id(t *testing.T, m kafka.Message) string {
	attrs, err := kafkalog.Decode(m)
	if err != nil {
		t.Errorf("a handed-off record: %v", err)
	}
	return attrs.ID
}

// TestDeciderHandsOffWhatItAppended: the decider hands its Handoff every
// event and reply it appended, once each, in each partition's log order,
// and only once the log holds it.
func TestDeciderHandsOffWhatItAppended(t *testing.T) {
	t.Parallel()
	const partitions = 3
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	rec := &handoffRecorder{t: t, k: k, client: kafkalog.NewClient(k.Cluster), events: map[int][]string{}}

	w := newWorld(4)
	want := w.create(ctx, t, cw)
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Handoff: rec})
	sends, err := w.sendAll(ctx, cw, "m", 40)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, sends...)
	retry := schemas.SendMessageV1{CommandID: "m0", UserID: w.pairs[0][0], ConversationID: w.convs[0], Body: "again", IssuedAt: time.Now()}
	if err := cw.Append(ctx, schemas.TypeSendMessage, retry.ConversationID, retry, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every event and the reply", func() bool {
		return events.len() >= len(want) && replies.len() >= 1
	})
	waitFor(t, 10*time.Second, "every hand-off", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, ids := range rec.events {
			n += len(ids)
		}
		return n >= len(want) && len(rec.replies) >= 1
	})
	logged := map[int][]string{}
	for _, m := range events.snapshot() {
		logged[m.Partition] = append(logged[m.Partition], id(t, m))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for p := range partitions {
		if !slices.Equal(rec.events[p], logged[p]) {
			t.Errorf("partition %d: handed off %v, the log holds %v", p, rec.events[p], logged[p])
		}
	}
	if r := replies.snapshot(); len(r) != 1 || !slices.Equal(rec.replies, []string{id(t, r[0])}) {
		t.Errorf("replies handed off %v, the log holds %d", rec.replies, len(r))
	}
}

// TestDeciderTakesHandedCommandsInLogOrder: two gateways append to the
// same conversations at once, one handing its commands to the decider in
// process and one not. Every command is decided exactly once, each
// partition's in the log's order, and each event names its command's
// offset as the log holds it — whichever copy the decider took — while
// commands were taken from both the hand-off and the log.
func TestDeciderTakesHandedCommandsInLogOrder(t *testing.T) {
	t.Parallel()
	const partitions = 3
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events, _, other := decisionLogs(t, k, partitions)
	commands := startTail(t, k, schemas.TopicCommands, partitions)
	metrics := telemetry.New()
	d := start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Metrics: metrics})
	handing := producers.NewCommandWriter(k.Cluster, k.Names, discard, producers.Handoff(d))
	t.Cleanup(func() { _ = handing.Close() })

	w := newWorld(6)
	want := w.create(ctx, t, other)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []struct {
		cw     *producers.CommandWriter
		prefix string
	}{{handing, "h"}, {other, "o"}} {
		wg.Go(func() {
			sent, err := w.sendAll(ctx, s.cw, s.prefix, 90)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			want = append(want, sent...)
			mu.Unlock()
		})
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "every event", func() bool { return events.len() >= len(want) })
	got := events.snapshot()
	checkEvents(t, got, partitions, want)

	// Where the log holds each command.
	type command struct{ conv, id string }
	offsets := map[command]int64{}
	waitFor(t, 10*time.Second, "every command read back", func() bool { return commands.len() >= len(want) })
	for _, m := range commands.snapshot() {
		var c struct {
			CommandID      string `json:"command_id"`
			ConversationID string `json:"conversation_id"`
		}
		if err := json.Unmarshal(m.Value, &c); err != nil {
			t.Fatal(err)
		}
		offsets[command{c.ConversationID, c.CommandID}] = m.Offset
	}
	last := map[int]int64{}
	for _, m := range got { // in offset order (checkEvents sorted them)
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			CommandID string `json:"command_id"`
		}
		if err := json.Unmarshal(m.Value, &c); err != nil {
			t.Fatal(err)
		}
		at, ok := offsets[command{attrs.Subject, c.CommandID}]
		if !ok || at != attrs.CommandOffset {
			t.Errorf("event of command %s/%s names command offset %d; the log holds the command at %d (found %v)", attrs.Subject, c.CommandID, attrs.CommandOffset, at, ok)
		}
		if prev, ok := last[m.Partition]; ok && attrs.CommandOffset <= prev {
			t.Errorf("partition %d: the event of command offset %d comes after that of %d", m.Partition, attrs.CommandOffset, prev)
		}
		last[m.Partition] = attrs.CommandOffset
	}
	fromGateway := testutil.ToFloat64(metrics.CommandsTaken.WithLabelValues("gateway"))
	fromLog := testutil.ToFloat64(metrics.CommandsTaken.WithLabelValues("log"))
	if fromGateway == 0 || fromLog == 0 || fromGateway+fromLog != float64(len(want)) {
		t.Errorf("commands taken: %v handed over, %v from the log; want some of each, %d in all", fromGateway, fromLog, len(want))
	}
	t.Logf("commands taken: %v handed over, %v from the log", fromGateway, fromLog)
}
