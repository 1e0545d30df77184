package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// TestStartAtEnd checks that a new group started at the end skips what
// was there before, gets what is appended after the call even before any
// member joined, keeps offsets it already has, and consumes several
// topics at once.
func TestStartAtEnd(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	write(t, k, record("old-a", 0), record("old-b", 0), record("old-c", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := consumers.StartAtEnd(ctx, k.Client(), k.Names.Group(groupID), k.Names.Topic(topic), k.Names.Topic(schemas.TopicReplies)); err != nil {
		t.Fatal(err)
	}
	if got, want := committed(t, k), ends(t, k, topic); !slices.Equal(got, want) {
		t.Fatalf("committed %v after StartAtEnd, want the ends %v", got, want)
	}
	// Appended after the call, before anyone joined: not skipped.
	write(t, k, record("new-a", 0))
	w := kafkalog.NewWriter(k.Cluster, k.Names.Topic(schemas.TopicReplies))
	defer w.Close()
	if err := w.WriteMessages(ctx, record("reply-a", 0)); err != nil {
		t.Fatal(err)
	}
	// A second call changes nothing now that offsets exist.
	if err := consumers.StartAtEnd(ctx, k.Client(), k.Names.Group(groupID), k.Names.Topic(topic), k.Names.Topic(schemas.TopicReplies)); err != nil {
		t.Fatal(err)
	}

	p := &projection{}
	gctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consumers.RunGroup[item](gctx, consumers.GroupConfig{
			Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(groupID), Topics: []string{k.Names.Topic(topic), k.Names.Topic(schemas.TopicReplies)}, StartOffset: kafka.LastOffset,
		}, p)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("RunGroup: %v", err)
		}
	}()
	waitFor(t, 20*time.Second, "the records appended after StartAtEnd", func() bool { return len(p.appliedItems()) >= 2 })
	// Barrier: a marker appended now to every partition of both topics.
	// The group reads each partition in order, so once every marker is
	// applied, any record from before StartAtEnd that the group wrongly
	// consumed has been applied too, ahead of its partition's marker.
	markers := writeMarkers(t, k, topic) + writeMarkers(t, k, schemas.TopicReplies)
	waitFor(t, 20*time.Second, "the markers on every partition", func() bool {
		n := 0
		for _, it := range p.appliedItems() {
			if strings.HasPrefix(it.Key, "marker-") {
				n++
			}
		}
		return n == markers
	})
	var keys []string
	for _, it := range p.appliedItems() {
		if !strings.HasPrefix(it.Key, "marker-") {
			keys = append(keys, it.Key)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"new-a", "reply-a"}) {
		t.Errorf("applied %v, want only the records appended after StartAtEnd, of both topics", keys)
	}
}

// writeMarkers appends one record with a key "marker-…" to every
// partition of topic (a persistent name) and returns how many it wrote.
func writeMarkers(t *testing.T, k kafkatest.Cluster, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := kafkalog.Partitions(ctx, k.Client(), k.Names.Topic(topic))
	if err != nil {
		t.Fatal(err)
	}
	// The balancer places the i-th marker on partition i, whatever its
	// key hashes to.
	w := kafkalog.NewWriter(k.Cluster, k.Names.Topic(topic), kafkalog.Balancer(kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
		var p int
		fmt.Sscanf(string(m.Key), "marker-%d", &p)
		return partitions[p%len(partitions)]
	})))
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for p := range n {
		msgs[p] = record(fmt.Sprintf("marker-%d", p), 0)
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStartAtBeginning: a group that applied and committed every record
// takes them all again once StartAtBeginning resets it, as a projection
// whose store is new must; while a member is in the group it is refused
// and nothing is reset.
func TestStartAtBeginning(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	var msgs []kafka.Message
	for i := range 12 {
		msgs = append(msgs, record(fmt.Sprint("k", i), i))
	}
	write(t, k, msgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	group, topics := k.Names.Group(groupID), []string{k.Names.Topic(topic), k.Names.Topic(schemas.TopicReplies)}

	first := &projection{}
	g := runGroup(t, k, first)
	want := ends(t, k, topic)
	waitFor(t, 20*time.Second, "every record applied and committed", func() bool {
		return len(first.appliedItems()) == len(msgs) && slices.Equal(committed(t, k), want)
	})
	if err := consumers.StartAtBeginning(ctx, k.Client(), group, topics...); err == nil {
		t.Error("StartAtBeginning with a member in the group: no error")
	}
	if got := committed(t, k); !slices.Equal(got, want) {
		t.Fatalf("committed %v after a refused StartAtBeginning, want %v unchanged", got, want)
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}

	if err := consumers.StartAtBeginning(ctx, k.Client(), group, topics...); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, k); !slices.Equal(got, []int64{0, 0, 0}) {
		t.Fatalf("committed %v after StartAtBeginning, want every partition at 0", got)
	}
	again := &projection{}
	runGroup(t, k, again)
	waitFor(t, 20*time.Second, "every record applied again", func() bool { return len(again.appliedItems()) == len(msgs) })
	var keys, wantKeys []string
	for _, it := range again.appliedItems() {
		keys = append(keys, it.Key)
	}
	for _, m := range msgs {
		wantKeys = append(wantKeys, string(m.Key))
	}
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("applied %v after the reset, want every record once: %v", keys, wantKeys)
	}
}
