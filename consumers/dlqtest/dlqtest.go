// Package dlqtest checks dead letters in the tests of every consumer
// group: that a poison record reached chat.dlq whole, with headers that
// say truly where it came from, and that the group counted it.
//
// Its functions are safe to call from parallel tests.
package dlqtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/schemas"
)

// Read returns every record of chat.dlq, up to its current end, in
// partition and offset order.
func Read(t testing.TB, k kafkatest.Cluster) []kafka.Message {
	t.Helper()
	topic := k.Names.Topic(schemas.TopicDLQ)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts, err := kafkalog.Partitions(ctx, k.Client(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for p := range parts {
		out = append(out, readRange(ctx, t, k, topic, p, -1)...)
	}
	return out
}

// readRange reads partition p of topic from the start up to its end, or
// only the record at offset if offset >= 0.
func readRange(ctx context.Context, t testing.TB, k kafkatest.Cluster, topic string, p int, offset int64) []kafka.Message {
	t.Helper()
	resp, err := k.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
	if err != nil {
		t.Fatal(err)
	}
	po := resp.Topics[topic]
	if len(po) != 1 || po[0].Error != nil {
		t.Fatalf("listing offsets of %s/%d: %v", topic, p, po)
	}
	end := po[0].LastOffset
	from := int64(kafka.FirstOffset)
	if offset >= 0 {
		if offset >= end {
			t.Fatalf("%s/%d has no offset %d (end %d)", topic, p, offset, end)
		}
		from, end = offset, offset+1
	}
	if end <= 0 {
		return nil
	}
	r := kafkalog.NewPartitionReader(k.Cluster, topic, p)
	defer func() { go r.Close() }() // Close waits for the in-flight fetch
	if err := r.SetOffset(from); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s/%d: %v", topic, p, err)
		}
		if offset < 0 || m.Offset == offset {
			out = append(out, m)
		}
		if m.Offset >= end-1 {
			return out
		}
	}
}

// Header returns the value of m's header key, or "".
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Check asserts that dead is the dead letter of the record written as
// orig (its key, value and headers), sent by group for an error that
// mentions errSubstr, and that its topic, partition and offset headers
// point at that very record of the original topic (a persistent name).
func Check(t testing.TB, k kafkatest.Cluster, dead, orig kafka.Message, topic, group, errSubstr string) {
	t.Helper()
	if string(dead.Key) != string(orig.Key) || string(dead.Value) != string(orig.Value) {
		t.Errorf("dead letter has key %q value %q, want the original %q %q", dead.Key, dead.Value, orig.Key, orig.Value)
	}
	if len(dead.Headers) < len(orig.Headers) {
		t.Fatalf("dead letter has headers %v, want the original %v first", dead.Headers, orig.Headers)
	}
	for i, h := range orig.Headers {
		if d := dead.Headers[i]; d.Key != h.Key || string(d.Value) != string(h.Value) {
			t.Errorf("dead letter header %d is %s=%q, want the original %s=%q", i, d.Key, d.Value, h.Key, h.Value)
		}
	}
	if got, want := Header(dead, schemas.HeaderDLQGroup), k.Names.Group(group); got != want {
		t.Errorf("dead letter group %q, want %q", got, want)
	}
	if got, want := Header(dead, schemas.HeaderDLQTopic), k.Names.Topic(topic); got != want {
		t.Errorf("dead letter topic %q, want %q", got, want)
	}
	if e := Header(dead, schemas.HeaderDLQError); !strings.Contains(e, errSubstr) {
		t.Errorf("dead letter error %q does not mention %q", e, errSubstr)
	}
	p, perr := strconv.Atoi(Header(dead, schemas.HeaderDLQPartition))
	off, oerr := strconv.ParseInt(Header(dead, schemas.HeaderDLQOffset), 10, 64)
	if perr != nil || oerr != nil {
		t.Fatalf("dead letter partition %q offset %q", Header(dead, schemas.HeaderDLQPartition), Header(dead, schemas.HeaderDLQOffset))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	at := readRange(ctx, t, k, k.Names.Topic(topic), p, off)
	if len(at) != 1 || string(at[0].Key) != string(orig.Key) || string(at[0].Value) != string(orig.Value) || len(at[0].Headers) != len(orig.Headers) {
		t.Errorf("the record at %s/%d offset %d is not the original %q %q: %v", topic, p, off, orig.Key, orig.Value, at)
	}
}

// Count returns how many dead letters group (a persistent name) has
// counted in m.
func Count(t testing.TB, k kafkatest.Cluster, m *telemetry.Metrics, group string) float64 {
	t.Helper()
	var pm dto.Metric
	if err := m.DeadLetters.WithLabelValues(k.Names.Group(group)).Write(&pm); err != nil {
		t.Fatal(err)
	}
	return pm.GetCounter().GetValue()
}

// Write appends msgs to topic (a persistent name), each to its key's
// partition.
func Write(t testing.TB, k kafkatest.Cluster, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := kafkalog.NewWriter(k.Cluster, k.Names.Topic(topic))
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond until it holds, failing t after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitCommitted waits until group (a persistent name) has committed the
// end of every partition of topic that holds records: it has gone past
// everything written so far.
func WaitCommitted(t testing.TB, k kafkatest.Cluster, group, topic string) {
	t.Helper()
	g, tp := k.Names.Group(group), k.Names.Topic(topic)
	var last string
	defer func() {
		if t.Failed() && last != "" {
			t.Logf("last seen: %s", last)
		}
	}()
	WaitFor(t, 30*time.Second, "group "+g+" to commit the end of "+tp, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := kafkalog.Partitions(ctx, k.Client(), tp)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []kafka.OffsetRequest
		parts := make([]int, n)
		for p := range n {
			parts[p] = p
			reqs = append(reqs, kafka.LastOffsetOf(p))
		}
		ends, err := k.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{tp: reqs}})
		if err != nil {
			t.Fatal(err)
		}
		committed, err := k.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g, Topics: map[string][]int{tp: parts}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]int64{}
		for _, p := range committed.Topics[tp] {
			got[p.Partition] = p.CommittedOffset
		}
		for _, po := range ends.Topics[tp] {
			if po.LastOffset > 0 && got[po.Partition] != po.LastOffset {
				last = fmt.Sprintf("partition %d: committed %d, end %d", po.Partition, got[po.Partition], po.LastOffset)
				return false
			}
		}
		return true
	})
}
