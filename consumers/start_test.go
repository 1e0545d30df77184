package consumers_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	msgs := spread(12)
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

// TestMoveBackToEnd: a group whose committed offsets are past the end of
// two partitions — a log that lost records the group had read, made here
// by committing past the end — is found by FindLostRecords and by the
// monitor's gauge, is not moved while it has a member, and once moved
// back to the end reads everything appended from then on, where it would
// have skipped what landed below its old offsets.
func TestMoveBackToEnd(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	msgs := spread(12)
	write(t, k, msgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	group, events := k.Names.Group(groupID), k.Names.Topic(topic)
	src := consumers.LagSource{Group: group, Topic: events}

	first := &projection{}
	g := runGroup(t, k, first)
	end := ends(t, k, topic)
	if slices.Contains(end, -1) {
		t.Fatalf("ends %v: the records do not fill every partition", end)
	}
	waitFor(t, 20*time.Second, "every record applied and committed", func() bool {
		return len(first.appliedItems()) == len(msgs) && slices.Equal(committed(t, k), end)
	})
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	if lost, err := consumers.FindLostRecords(ctx, k.Client(), []consumers.LagSource{src}); err != nil || len(lost) != 0 {
		t.Fatalf("a group that read the whole log: lost %v, %v", lost, err)
	}

	// The log loses 5 records under partition 0 and 3 under partition 1.
	resp, err := k.Client().OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{
		events: {{Partition: 0, Offset: end[0] + 5}, {Partition: 1, Offset: end[1] + 3}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatal(p.Error)
			}
		}
	}
	want := []consumers.LostRecords{
		{LagSource: src, Partition: 0, Position: consumers.Position{Committed: end[0] + 5, End: end[0]}},
		{LagSource: src, Partition: 1, Position: consumers.Position{Committed: end[1] + 3, End: end[1]}},
	}
	lost, err := consumers.FindLostRecords(ctx, k.Client(), []consumers.LagSource{src})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lost, want) {
		t.Fatalf("lost %v, want %v", lost, want)
	}
	if s := lost[0].String(); !strings.Contains(s, "(5 records lost)") || !strings.Contains(s, group) {
		t.Errorf("%q does not say which group lost how many records", s)
	}

	lagGauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lag"}, []string{"group", "topic", "partition"})
	lostGauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lost"}, []string{"group", "topic", "partition"})
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumers.MonitorLag(mctx, k.Client(), []consumers.LagSource{src}, lagGauge, lostGauge, 50*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	gauges := func(v *prometheus.GaugeVec) []float64 {
		var out []float64
		for p := range partitions {
			out = append(out, value(v.WithLabelValues(group, events, fmt.Sprint(p))))
		}
		return out
	}
	waitFor(t, 10*time.Second, "the lost gauge to show 5, 3 and 0", func() bool {
		return slices.Equal(gauges(lostGauge), []float64{5, 3, 0})
	})
	stop()
	<-done
	if l := gauges(lagGauge); !slices.Equal(l, []float64{0, 0, 0}) {
		t.Errorf("lag %v past the end, want none", l)
	}

	// With a member in the group, nothing is moved.
	g = runGroup(t, k, &projection{})
	waitFor(t, 20*time.Second, "a member in the group", func() bool {
		d, err := k.Client().DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		return err == nil && len(d.Groups) == 1 && len(d.Groups[0].Members) > 0
	})
	if moved, err := consumers.MoveBackToEnd(ctx, k.Client(), group, events); err == nil {
		t.Errorf("MoveBackToEnd with a member in the group: moved %v, no error", moved)
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	if again, err := consumers.FindLostRecords(ctx, k.Client(), []consumers.LagSource{src}); err != nil || !slices.Equal(again, want) {
		t.Fatalf("after a refused move: lost %v (%v), want %v", again, err, want)
	}

	moved, err := consumers.MoveBackToEnd(ctx, k.Client(), group, events)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moved, want) {
		t.Errorf("moved %v, want %v", moved, want)
	}
	if got := committed(t, k); !slices.Equal(got, end) {
		t.Fatalf("committed %v after MoveBackToEnd, want the ends %v", got, end)
	}
	write(t, k, msgs...)
	after := &projection{}
	runGroup(t, k, after)
	waitFor(t, 20*time.Second, "every record appended after the move applied", func() bool { return len(after.appliedItems()) == len(msgs) })
}
