// Package logtest is the conformance suite of Parley's log: what Parley's
// Kafka code (the writers, readers and groups of package kafkalog) counts
// on from a cluster, checked against any cluster a factory returns — the
// embedded broker in `make test`, a real Kafka in `make test-compose`.
//
// Run checks that records of one key are read in the order they were
// appended; that a group member restarted resumes after what it
// committed, with nothing lost and nothing committed read again; that a
// second member joining a group takes over partitions with no record
// lost; and that keys land on the partitions of Kafka's Java default
// partitioner (murmur2).
//
// Every case calls the factory for a cluster of its own and runs in
// parallel with the others.
package logtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

// Factory returns a cluster for one test, stopped or cleaned up when the
// test ends; kafkatest.Start is one.
type Factory func(t *testing.T) kafkatest.Cluster

// partitions of the suite's topics: enough for keys to spread and for two
// group members to share.
const partitions = 4

// timeout bounds each case; a group join on a real cluster takes seconds.
const timeout = 90 * time.Second

// Run runs the suite; see the package doc.
func Run(t *testing.T, factory Factory) {
	t.Run("records of one key are read in the order they were appended", func(t *testing.T) {
		t.Parallel()
		testOrderPerKey(t, factory(t))
	})
	t.Run("a restarted member resumes after its commits, losing nothing", func(t *testing.T) {
		t.Parallel()
		testCommitResume(t, factory(t))
	})
	t.Run("a member joining the group takes partitions over, losing nothing", func(t *testing.T) {
		t.Parallel()
		testRebalance(t, factory(t))
	})
	t.Run("keys land where Kafka's Java default partitioner puts them", func(t *testing.T) {
		t.Parallel()
		testMurmur2(t, factory(t))
	})
}

// setup provisions Parley's topics with n partitions and returns a
// context bounded by timeout and the suite's topic: chat.events under the
// cluster's prefix.
func setup(t *testing.T, c kafkatest.Cluster, n int) (context.Context, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c.Provision(t, kafkalog.Topology{Partitions: n})
	return ctx, c.Names.Topic(schemas.TopicEvents)
}

// record is the seq-th record of key; its value names both.
func record(key string, seq int) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(key + "#" + strconv.Itoa(seq))}
}

// parse returns the key and seq a record's value names.
func parse(t *testing.T, m kafka.Message) (string, int) {
	key, s, ok := strings.Cut(string(m.Value), "#")
	seq, err := strconv.Atoi(s)
	if !ok || err != nil || key != string(m.Key) {
		t.Errorf("unexpected record %q=%q", m.Key, m.Value)
	}
	return key, seq
}

// appendRecords appends seqs from..to-1 of each key, interleaved across
// keys, in batches of one WriteMessages each.
func appendRecords(ctx context.Context, t *testing.T, w *kafka.Writer, keys []string, from, to int) {
	t.Helper()
	var msgs []kafka.Message
	for seq := from; seq < to; seq++ {
		for _, k := range keys {
			msgs = append(msgs, record(k, seq))
		}
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 25)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			t.Fatalf("appending: %v", err)
		}
		msgs = msgs[n:]
	}
}

func keysOf(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("conversation-%d", i)
	}
	return keys
}

// member is a group member that commits each record it reads; got holds
// the records whose commit succeeded.
type member struct {
	r      *kafka.Reader
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	got []kafka.Message
}

// join starts a member of group over topic.
func join(ctx context.Context, c kafkatest.Cluster, group, topic string) *member {
	ctx, cancel := context.WithCancel(ctx)
	m := &member{
		r:      kafkalog.NewGroupReader(c.Cluster, kafkalog.Membership{Group: group, Topics: []string{topic}, SessionTimeout: 10 * time.Second}),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		for {
			msg, err := m.r.FetchMessage(ctx)
			if err != nil {
				return
			}
			// A commit refused by a rebalance (or cut short by leave)
			// only means the record is read again by the next owner.
			if m.r.CommitMessages(ctx, msg) != nil {
				continue
			}
			m.mu.Lock()
			m.got = append(m.got, msg)
			m.mu.Unlock()
		}
	}()
	return m
}

// leave stops the member and closes its reader, leaving the group.
func (m *member) leave(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	if err := m.r.Close(); err != nil {
		t.Errorf("closing reader: %v", err)
	}
}

func (m *member) records() []kafka.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]kafka.Message(nil), m.got...)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// seen counts the distinct records (by value) of ms.
func seen(ms ...[]kafka.Message) map[string]int {
	out := map[string]int{}
	for _, l := range ms {
		for _, m := range l {
			out[string(m.Value)]++
		}
	}
	return out
}

func testOrderPerKey(t *testing.T, c kafkatest.Cluster) {
	ctx, topic := setup(t, c, partitions)
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	keys := keysOf(8)
	const perKey = 50
	appendRecords(ctx, t, w, keys, 0, perKey)

	m := join(ctx, c, c.Names.Group("parley-logtest-order"), topic)
	defer m.leave(t)
	waitFor(ctx, t, "every record", func() bool { return len(m.records()) >= len(keys)*perKey })

	next := map[string]int{}
	partitionOf := map[string]int{}
	for _, r := range m.records() {
		key, seq := parse(t, r)
		if p, ok := partitionOf[key]; ok && p != r.Partition {
			t.Errorf("%s in partitions %d and %d", key, p, r.Partition)
		}
		partitionOf[key] = r.Partition
		if seq != next[key] {
			t.Fatalf("%s: read seq %d, want %d", key, seq, next[key])
		}
		next[key]++
	}
}

func testCommitResume(t *testing.T, c kafkatest.Cluster) {
	ctx, topic := setup(t, c, partitions)
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	keys := keysOf(6)
	const perKey = 20
	appendRecords(ctx, t, w, keys, 0, perKey/2)
	group := c.Names.Group("parley-logtest-resume")

	first := join(ctx, c, group, topic)
	waitFor(ctx, t, "the first member to read what was appended", func() bool { return len(first.records()) >= len(keys)*perKey/2 })
	first.leave(t)
	before := first.records()

	appendRecords(ctx, t, w, keys, perKey/2, perKey) // while no member runs
	second := join(ctx, c, group, topic)
	defer second.leave(t)
	waitFor(ctx, t, "the restarted member to read the rest", func() bool {
		return len(seen(before, second.records())) >= len(keys)*perKey
	})
	committed := seen(before)
	for _, r := range second.records() {
		if committed[string(r.Value)] > 0 {
			t.Errorf("%s was committed, then read again after the restart", r.Value)
		}
	}
	for v, n := range seen(before, second.records()) {
		if n > 1 {
			t.Errorf("%s read %d times", v, n)
		}
	}
}

func testRebalance(t *testing.T, c kafkatest.Cluster) {
	ctx, topic := setup(t, c, partitions)
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	keys := keysOf(16)
	group := c.Names.Group("parley-logtest-rebalance")

	a := join(ctx, c, group, topic)
	defer a.leave(t)
	appendRecords(ctx, t, w, keys, 0, 10)
	waitFor(ctx, t, "the first member to read", func() bool { return len(a.records()) >= len(keys)*10 })

	b := join(ctx, c, group, topic)
	defer b.leave(t)
	// Records keep coming while the group rebalances, until the second
	// member reads some: it has been given partitions.
	seq := 10
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(b.records()) == 0 {
		appendRecords(ctx, t, w, keys, seq, seq+1)
		seq++
		select {
		case <-ctx.Done():
			t.Fatalf("the second member was never given partitions: %v", ctx.Err())
		case <-tick.C:
		}
	}
	appendRecords(ctx, t, w, keys, seq, seq+10)
	seq += 10
	waitFor(ctx, t, "every record to be read by a member", func() bool {
		return len(seen(a.records(), b.records())) >= len(keys)*seq
	})
	got := seen(a.records(), b.records())
	for _, k := range keys {
		for i := range seq {
			if got[string(record(k, i).Value)] == 0 {
				t.Errorf("%s#%d lost", k, i)
			}
		}
	}
	bParts := map[int]bool{}
	for _, r := range b.records() {
		bParts[r.Partition] = true
	}
	if len(bParts) == partitions {
		t.Errorf("the second member read from all %d partitions; want them shared", partitions)
	}
}

// javaPartitions are where Kafka's Java client (Utils.murmur2, then
// toPositive(hash) % 12) puts these keys in a 12-partition topic, worked
// out from the hashes of Kafka's own UtilsTest.testMurmur2, not from Go.
var javaPartitions = map[string]int{
	"21":                         0,  // murmur2 -973932308
	"foobar":                     6,  // -790332482
	"a-little-bit-long-string":   8,  // -985981536
	"a-little-bit-longer-string": 11, // -1486304829
	"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 5, // -58897971
	"abc": 3, // 479470107
}

func testMurmur2(t *testing.T, c kafkatest.Cluster) {
	const n = 12
	ctx, topic := setup(t, c, n)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	var msgs []kafka.Message
	for key, want := range javaPartitions {
		if got := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, all...); got != want {
			t.Errorf("kafka.Murmur2Balancer puts %q in %d, Java in %d", key, got, want)
		}
		msgs = append(msgs, record(key, 0))
	}
	w := kafkalog.NewWriter(c.Cluster, topic)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("appending: %v", err)
	}
	m := join(ctx, c, c.Names.Group("parley-logtest-murmur2"), topic)
	defer m.leave(t)
	waitFor(ctx, t, "every record", func() bool { return len(m.records()) >= len(javaPartitions) })
	for _, r := range m.records() {
		if want := javaPartitions[string(r.Key)]; r.Partition != want {
			t.Errorf("key %q written to partition %d; Kafka's Java client would use %d", r.Key, r.Partition, want)
		}
	}
}
