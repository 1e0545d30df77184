package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/dlqtest"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

const (
	partitions = 3
	topic      = schemas.TopicEvents
	groupID    = "parley-test-group"
)

// startBroker returns the test's cluster with Parley's topics, under a
// prefix even on the embedded broker: the runtime must resolve every name.
func startBroker(t *testing.T) kafkatest.Cluster {
	t.Helper()
	return kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: partitions}))
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// item is what the test projection decodes a record into.
type item struct {
	Key       string `json:"key"`
	I         int    `json:"i"`
	Partition int    `json:"-"`
	Offset    int64  `json:"-"`
}

// projection records what it is given. apply, if set, is called first
// on every Apply with the call's number (from 1); its error fails the
// call.
type projection struct {
	apply func(call int, batch []item) error

	mu      sync.Mutex
	calls   [][]item // the batch of every Apply call
	applied []item   // the records of successful calls, in order
}

func (p *projection) Decode(r consumers.Record) (item, error) {
	var it item
	if err := json.Unmarshal(r.Message.Value, &it); err != nil {
		return item{}, fmt.Errorf("decoding test record: %w", err)
	}
	if it.Key == "" {
		return item{}, errors.New("test record without a key")
	}
	it.Partition, it.Offset = r.Message.Partition, r.Message.Offset
	return it, nil
}

func (p *projection) Apply(ctx context.Context, batch []item) error {
	p.mu.Lock()
	p.calls = append(p.calls, slices.Clone(batch))
	call := len(p.calls)
	p.mu.Unlock()
	if p.apply != nil {
		if err := p.apply(call, batch); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.applied = append(p.applied, batch...)
	p.mu.Unlock()
	return nil
}

func (p *projection) appliedItems() []item {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.applied)
}

func (p *projection) batches() [][]item {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

type group struct {
	cancel context.CancelFunc
	done   chan error
}

func runGroup(t *testing.T, k kafkatest.Cluster, p consumers.Projection[item], tweak ...func(*consumers.GroupConfig)) *group {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{cancel: cancel, done: make(chan error, 1)}
	cfg := consumers.GroupConfig{Kafka: k.Cluster, Names: k.Names, GroupID: k.Names.Group(groupID), Topic: k.Names.Topic(topic)}
	for _, f := range tweak {
		f(&cfg)
	}
	go func() {
		g.done <- consumers.RunGroup[item](ctx, cfg, p)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(20 * time.Second):
			t.Error("RunGroup did not return within 20s")
		}
	})
	return g
}

// stop cancels the group and returns RunGroup's result.
func (g *group) stop(t *testing.T) error {
	t.Helper()
	g.cancel()
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("RunGroup did not return within 20s")
		return nil
	}
}

// record is a valid CloudEvents record whose value the test projection
// decodes.
func record(key string, i int) kafka.Message {
	v, _ := json.Marshal(item{Key: key, I: i})
	return kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeMessageSent, key, time.Now()), v)
}

// records are n records of key "k", numbered from 0.
func records(n int) []kafka.Message {
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, record("k", i))
	}
	return msgs
}

// spread are n records of keys k0…kN-1, numbered from 0: over every
// partition.
func spread(n int) []kafka.Message {
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, record(fmt.Sprint("k", i), i))
	}
	return msgs
}

func write(t *testing.T, k kafkatest.Cluster, msgs ...kafka.Message) {
	t.Helper()
	dlqtest.Write(t, k, topic, msgs...)
}

// committed returns the group's committed offset per partition (-1 for
// none).
func committed(t *testing.T, k kafkatest.Cluster) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := k.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: k.Names.Group(groupID), Topics: map[string][]int{k.Names.Topic(topic): {0, 1, 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := []int64{-1, -1, -1}
	for _, p := range resp.Topics[k.Names.Topic(topic)] {
		if p.Error != nil {
			t.Fatalf("offset of partition %d: %v", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// ends returns the high watermark of every partition of topic (a
// persistent name), with -1 for an empty partition, the way committed
// reports it.
func ends(t *testing.T, k kafkatest.Cluster, topic string) []int64 {
	t.Helper()
	topic = k.Names.Topic(topic)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := k.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, partitions)
	for _, po := range resp.Topics[topic] {
		out[po.Partition] = po.LastOffset
		if po.LastOffset == 0 {
			out[po.Partition] = -1
		}
	}
	return out
}

// readAll reads every record of topic (a persistent name) up to its
// current end.
func readAll(t *testing.T, k kafkatest.Cluster, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []kafka.Message
	for p, end := range ends(t, k, topic) {
		if end <= 0 {
			continue
		}
		r := kafkalog.NewPartitionReader(k.Cluster, k.Names.Topic(topic), p)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		go r.Close() // Close waits for the in-flight fetch
	}
	return out
}

func TestRunGroupAppliesRecordsInPartitionOrder(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	const keys, perKey = 8, 40
	var msgs []kafka.Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, record("k"+strconv.Itoa(k), i))
		}
	}
	write(t, k, msgs[:len(msgs)/2]...)
	p := &projection{}
	runGroup(t, k, p)
	write(t, k, msgs[len(msgs)/2:]...) // some while the group runs
	waitFor(t, 20*time.Second, "every record applied", func() bool { return len(p.appliedItems()) >= keys*perKey })

	applied := p.appliedItems()
	if len(applied) != keys*perKey {
		t.Errorf("applied %d records, want %d", len(applied), keys*perKey)
	}
	next := map[string]int{}
	lastOffset := map[int]int64{0: -1, 1: -1, 2: -1}
	for _, it := range applied {
		if it.I != next[it.Key] {
			t.Fatalf("key %s: applied record %d, want %d", it.Key, it.I, next[it.Key])
		}
		next[it.Key]++
		if it.Offset <= lastOffset[it.Partition] {
			t.Fatalf("partition %d: offset %d applied after %d", it.Partition, it.Offset, lastOffset[it.Partition])
		}
		lastOffset[it.Partition] = it.Offset
	}
	if len(p.batches()) >= len(applied) {
		t.Errorf("%d Apply calls for %d records: the group does not batch", len(p.batches()), len(applied))
	}
	want := ends(t, k, topic)
	waitFor(t, 10*time.Second, "the commits to reach the end of every partition", func() bool {
		return slices.Equal(committed(t, k), want)
	})
}

func TestRunGroupDeadLettersUndecodableRecordsAndGoesOn(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	poison := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeMessageSent, "k", time.Now()), []byte(`{"i":"not a number"}`))
	headerless := kafka.Message{Key: []byte("k"), Value: []byte(`{"key":"k","i":99}`)}
	write(t, k, record("k", 0), headerless, record("k", 1), poison, record("k", 2))
	p := &projection{}
	runGroup(t, k, p)
	waitFor(t, 20*time.Second, "the good records applied", func() bool { return len(p.appliedItems()) >= 3 })
	if got := p.appliedItems(); len(got) != 3 || got[0].I != 0 || got[1].I != 1 || got[2].I != 2 {
		t.Errorf("applied %+v, want records 0, 1, 2", got)
	}

	var dead []kafka.Message
	waitFor(t, 10*time.Second, "two dead letters", func() bool {
		dead = readAll(t, k, schemas.TopicDLQ)
		return len(dead) >= 2
	})
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	slices.SortFunc(dead, func(a, b kafka.Message) int {
		return strings.Compare(header(a, schemas.HeaderDLQOffset), header(b, schemas.HeaderDLQOffset))
	})
	for i, tc := range []struct {
		orig   kafka.Message
		offset string
		err    string
	}{
		{headerless, "1", schemas.HeaderSpecVersion},
		{poison, "3", "decoding test record"},
	} {
		d := dead[i]
		if string(d.Key) != string(tc.orig.Key) || string(d.Value) != string(tc.orig.Value) {
			t.Errorf("dead letter %d: key %q value %q, want the original %q %q", i, d.Key, d.Value, tc.orig.Key, tc.orig.Value)
		}
		for _, h := range tc.orig.Headers {
			if header(d, h.Key) != string(h.Value) {
				t.Errorf("dead letter %d: header %s = %q, want the original %q", i, h.Key, header(d, h.Key), h.Value)
			}
		}
		got := map[string]string{
			schemas.HeaderDLQTopic: header(d, schemas.HeaderDLQTopic), schemas.HeaderDLQOffset: header(d, schemas.HeaderDLQOffset),
			schemas.HeaderDLQGroup: header(d, schemas.HeaderDLQGroup), schemas.HeaderDLQPartition: header(d, schemas.HeaderDLQPartition),
		}
		want := map[string]string{
			schemas.HeaderDLQTopic: k.Names.Topic(topic), schemas.HeaderDLQOffset: tc.offset, schemas.HeaderDLQGroup: k.Names.Group(groupID),
			schemas.HeaderDLQPartition: strconv.Itoa(p.appliedItems()[0].Partition),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("dead letter %d: headers %v, want %v", i, got, want)
		}
		if e := header(d, schemas.HeaderDLQError); !strings.Contains(e, tc.err) {
			t.Errorf("dead letter %d: error header %q does not mention %q", i, e, tc.err)
		}
	}
	want := ends(t, k, topic)
	waitFor(t, 10*time.Second, "the commits to pass the dead letters", func() bool {
		return slices.Equal(committed(t, k), want)
	})
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// restartAndCheckNothingReapplied runs the group again with a fresh
// projection and writes a new record: no record that earlier applied may
// be applied again, and between them every one of the total records
// written before must have been applied.
func restartAndCheckNothingReapplied(t *testing.T, k kafkatest.Cluster, earlier *projection, total int) {
	t.Helper()
	p := &projection{}
	g := runGroup(t, k, p)
	write(t, k, record("k", 1000))
	waitFor(t, 20*time.Second, "the new record applied after the restart", func() bool {
		got := p.appliedItems()
		return len(got) > 0 && got[len(got)-1].I == 1000
	})
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
	seen := map[int]bool{}
	for _, it := range earlier.appliedItems() {
		seen[it.I] = true
	}
	for _, it := range p.appliedItems() {
		if seen[it.I] {
			t.Errorf("record %d applied again after the restart", it.I)
		}
		seen[it.I] = true
	}
	for i := range total {
		if !seen[i] {
			t.Errorf("record %d never applied", i)
		}
	}
}

func TestRunGroupRetriesAFailingApplyAndCommitsOnlyAfterSuccess(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	const n, failures = 10, 3
	write(t, k, records(n)...)

	entered, release := make(chan struct{}), make(chan struct{})
	p := &projection{apply: func(call int, _ []item) error {
		switch {
		case call <= failures:
			return fmt.Errorf("store down (call %d)", call)
		case call == failures+1:
			close(entered)
			<-release
		}
		return nil
	}}
	g := runGroup(t, k, p)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("Apply was not retried")
	}
	if got := committed(t, k); !slices.Equal(got, []int64{-1, -1, -1}) {
		t.Errorf("committed %v while Apply had not succeeded, want nothing", got)
	}
	close(release)
	want := ends(t, k, topic)
	waitFor(t, 10*time.Second, "the commit after Apply succeeded", func() bool {
		return slices.Equal(committed(t, k), want)
	})
	calls := p.batches()
	for i := 1; i <= failures; i++ {
		if !slices.Equal(calls[i], calls[0]) {
			t.Errorf("retry %d got batch %v, want the failed batch %v", i, calls[i], calls[0])
		}
	}
	seen := map[int]bool{}
	for _, it := range p.appliedItems() {
		seen[it.I] = true
	}
	if len(seen) != n {
		t.Errorf("applied records %v, want all %d", seen, n)
	}
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
	restartAndCheckNothingReapplied(t, k, p, n)
}

// TestRunGroupOutlastsAStoreOutageLongerThanTheShutdownTimeout: a store
// that fails for longer than ShutdownTimeout (which bounds finishing a
// batch once the process stops, not a batch's life) is retried until it
// is back; the group does not give up and end the process.
func TestRunGroupOutlastsAStoreOutageLongerThanTheShutdownTimeout(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	const n = 5
	write(t, k, records(n)...)

	var (
		mu   sync.Mutex
		down time.Time // when the store first failed
	)
	const outage, shutdownTimeout = 1500 * time.Millisecond, 300 * time.Millisecond
	p := &projection{apply: func(int, []item) error {
		mu.Lock()
		defer mu.Unlock()
		if down.IsZero() {
			down = time.Now()
		}
		if time.Since(down) < outage {
			return errors.New("store unreachable")
		}
		return nil
	}}
	g := runGroup(t, k, p, func(c *consumers.GroupConfig) {
		c.ShutdownTimeout, c.MaxBackoff = shutdownTimeout, 50*time.Millisecond
	})
	want := ends(t, k, topic)
	waitFor(t, 20*time.Second, "the commit after the store came back", func() bool {
		select {
		case err := <-g.done:
			g.done <- err // for the cleanup
			t.Fatalf("RunGroup returned %v during the outage", err)
		default:
		}
		return slices.Equal(committed(t, k), want)
	})
	if got := len(p.appliedItems()); got != n {
		t.Errorf("applied %d records, want %d", got, n)
	}
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
}

func TestRunGroupShutdownFinishesAndCommitsTheInFlightBatch(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	write(t, k, records(10)...)

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := &projection{apply: func(int, []item) error {
		once.Do(func() { close(entered); <-release })
		return nil
	}}
	g := runGroup(t, k, p)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("Apply was not called")
	}
	g.cancel()
	select {
	case err := <-g.done:
		t.Fatalf("RunGroup returned (%v) before the in-flight Apply finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
	applied := p.appliedItems()
	if len(applied) == 0 {
		t.Fatal("the in-flight batch was not applied")
	}
	last := applied[len(applied)-1]
	want := []int64{-1, -1, -1}
	want[last.Partition] = last.Offset + 1
	if got := committed(t, k); !slices.Equal(got, want) {
		t.Errorf("committed %v after shutdown, want %v: the in-flight batch, committed", got, want)
	}
	restartAndCheckNothingReapplied(t, k, p, 10)
}
