package decider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

var discard = slog.New(slog.DiscardHandler)

// startBroker returns the test's cluster with Parley's topics of the
// given partition count, under a prefix even on the embedded broker: the
// decider must resolve every name.
func startBroker(t *testing.T, partitions int) kafkatest.Cluster {
	t.Helper()
	return kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: partitions}))
}

// waitFor polls cond until it holds or the deadline passes.
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

// tail follows every partition of a topic from the start.
type tail struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func startTail(t *testing.T, k kafkatest.Cluster, topic string, partitions int) *tail {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tail{}
	var wg sync.WaitGroup
	for p := range partitions {
		r := kafkalog.NewPartitionReader(k.Cluster, k.Names.Topic(topic), p)
		if err := r.SetOffset(kafka.FirstOffset); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				tl.mu.Lock()
				tl.msgs = append(tl.msgs, m)
				tl.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return tl
}

func (tl *tail) snapshot() []kafka.Message {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.msgs)
}

func (tl *tail) len() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.msgs)
}

// running is a decider started by start.
type running struct {
	*decider.Decider
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg decider.Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Decider: decider.New(cfg), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- r.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the decider and waits for Run to return. It is idempotent.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("decider Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("decider did not stop within 20s")
	}
}

// world is a set of direct conversations between pairs of users.
type world struct {
	pairs [][2]string
	convs []string
}

func newWorld(n int) world {
	var w world
	for i := range n {
		a, b := fmt.Sprintf("u%d", 2*i), fmt.Sprintf("u%d", 2*i+1)
		w.pairs = append(w.pairs, [2]string{a, b})
		w.convs = append(w.convs, schemas.DirectConversationID(a, b))
	}
	return w
}

// sent is what a command the test appended must produce: one event.
type sent struct{ conv, user, command string }

func (w world) create(ctx context.Context, t *testing.T, cw *producers.CommandWriter) []sent {
	t.Helper()
	var out []sent
	for i, p := range w.pairs {
		cmd := schemas.CreateConversationV1{CommandID: "create", UserID: p[0], ConversationID: w.convs[i],
			Kind: schemas.KindDirect, Members: []string{p[1]}, IssuedAt: time.Now()}
		if err := cw.Append(ctx, schemas.TypeCreateConversation, w.convs[i], cmd, ""); err != nil {
			t.Fatal(err)
		}
		out = append(out, sent{w.convs[i], p[0], "create"})
	}
	return out
}

// sendAll appends n sends spread over the conversations, in order, and
// returns what it appended.
func (w world) sendAll(ctx context.Context, cw *producers.CommandWriter, prefix string, n int) ([]sent, error) {
	var out []sent
	for i := range n {
		s, err := w.sendOne(ctx, cw, prefix, i)
		out = append(out, s...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// sendOne appends send number i of a stream.
func (w world) sendOne(ctx context.Context, cw *producers.CommandWriter, prefix string, i int) ([]sent, error) {
	c := i % len(w.convs)
	user := w.pairs[c][i/len(w.convs)%2]
	id := prefix + strconv.Itoa(i)
	cmd := schemas.SendMessageV1{CommandID: id, UserID: user, ConversationID: w.convs[c], Body: "message " + id, IssuedAt: time.Now()}
	if err := cw.Append(ctx, schemas.TypeSendMessage, w.convs[c], cmd, ""); err != nil {
		return nil, err
	}
	return []sent{{w.convs[c], user, id}}, nil
}

// checkEvents asserts that events hold exactly one event per command in
// want, that every conversation's seqs are 0 (its creation), 1, 2, 3 …
// in log order, that each event is in its key's murmur2 partition and
// valid against its schema.
func checkEvents(t *testing.T, events []kafka.Message, partitions int, want []sent) {
	t.Helper()
	v, err := schemacheck.New()
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	wanted := make(map[sent]int, len(want))
	for _, s := range want {
		wanted[s] = 0
	}
	slices.SortStableFunc(events, func(a, b kafka.Message) int { return int(a.Offset - b.Offset) })
	next := map[string]uint64{}
	for _, m := range events {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatalf("event at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if err := v.Validate(attrs.Type, m.Value); err != nil {
			t.Errorf("event at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if p := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: m.Key}, parts...); p != m.Partition || string(m.Key) != attrs.Subject {
			t.Errorf("event of %s (key %q) in partition %d, want %d", attrs.Subject, m.Key, m.Partition, p)
		}
		var who struct {
			SenderID  string `json:"sender_id"`
			CreatedBy string `json:"created_by"`
			CommandID string `json:"command_id"`
		}
		if err := json.Unmarshal(m.Value, &who); err != nil {
			t.Fatal(err)
		}
		s := sent{attrs.Subject, who.SenderID + who.CreatedBy, who.CommandID}
		n, ok := wanted[s]
		if !ok {
			t.Errorf("event for a command the test did not send: %+v", s)
		}
		wanted[s] = n + 1
		if !attrs.HasSeq || attrs.Seq != next[attrs.Subject] {
			t.Errorf("conversation %s: event seq %d (has seq %v), want %d", attrs.Subject, attrs.Seq, attrs.HasSeq, next[attrs.Subject])
		}
		next[attrs.Subject] = attrs.Seq + 1
	}
	for s, n := range wanted {
		if n != 1 {
			t.Errorf("command %+v produced %d events, want exactly 1", s, n)
		}
	}
}

func committed(t *testing.T, k kafkatest.Cluster, partitions int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := k.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: k.Names.Group(schemas.GroupDecider), Topics: map[string][]int{k.Names.Topic(schemas.TopicCommands): ps},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, partitions)
	for _, p := range resp.Topics[k.Names.Topic(schemas.TopicCommands)] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func highWatermarks(t *testing.T, k kafkatest.Cluster, topic string, partitions int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := k.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{k.Names.Topic(topic): reqs}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, partitions)
	for _, po := range resp.Topics[k.Names.Topic(topic)] {
		out[po.Partition] = po.LastOffset
	}
	return out
}

func commandWriter(t *testing.T, k kafkatest.Cluster) *producers.CommandWriter {
	cw := producers.NewCommandWriter(k.Cluster, k.Names, discard)
	t.Cleanup(func() { _ = cw.Close() })
	return cw
}

// decisionLogs starts what most tests of the decider watch and write:
// tails of the events and replies topics, and a command writer.
func decisionLogs(t *testing.T, k kafkatest.Cluster, partitions int) (events, replies *tail, cw *producers.CommandWriter) {
	t.Helper()
	return startTail(t, k, schemas.TopicEvents, partitions), startTail(t, k, schemas.TopicReplies, partitions), commandWriter(t, k)
}

func TestDeciderDecidesCommandsIntoEvents(t *testing.T) {
	t.Parallel()
	const partitions = 3
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	dlq := startTail(t, k, schemas.TopicDLQ, partitions)

	w := newWorld(6)
	want := w.create(ctx, t, cw)
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names})
	sends, err := w.sendAll(ctx, cw, "m", 60)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, sends...)
	// A retried send, a send by a non-member, and a record that is no
	// command: a duplicate reply, a rejection, a dead letter.
	retry := schemas.SendMessageV1{CommandID: "m0", UserID: w.pairs[0][0], ConversationID: w.convs[0], Body: "again", IssuedAt: time.Now()}
	stranger := schemas.SendMessageV1{CommandID: "x1", UserID: "stranger", ConversationID: w.convs[1], Body: "hi", IssuedAt: time.Now()}
	for _, c := range []schemas.SendMessageV1{retry, stranger} {
		if err := cw.Append(ctx, schemas.TypeSendMessage, c.ConversationID, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	raw := kafkalog.NewWriter(k.Cluster, k.Names.Topic(schemas.TopicCommands))
	defer raw.Close()
	if err := raw.WriteMessages(ctx, kafka.Message{Key: []byte(w.convs[2]), Value: []byte("not a command")}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 20*time.Second, "every event, reply and dead letter", func() bool {
		return events.len() >= len(want) && replies.len() >= 2 && dlq.len() >= 1
	})
	checkEvents(t, events.snapshot(), partitions, want)

	got := map[string]string{}
	for _, m := range replies.snapshot() {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		v, err := schemas.Decode(attrs.Type, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if want := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: m.Key}, 0, 1, 2); m.Partition != want {
			t.Errorf("reply of %s in partition %d, want %d", m.Key, m.Partition, want)
		}
		switch r := v.(type) {
		case *schemas.CommandDuplicateV1:
			got[r.CommandID] = fmt.Sprintf("duplicate of %d", r.Seq)
		case *schemas.CommandRejectedV1:
			got[r.CommandID] = "rejected " + r.Code
		}
	}
	if want := map[string]string{"m0": "duplicate of 1", "x1": "rejected " + schemas.CodeNotMember}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replies %v, want %v", got, want)
	}
	d := dlq.snapshot()[0]
	if string(d.Value) != "not a command" || string(d.Key) != w.convs[2] || header(d, schemas.HeaderDLQGroup) != k.Names.Group(schemas.GroupDecider) ||
		header(d, schemas.HeaderDLQTopic) != k.Names.Topic(schemas.TopicCommands) || header(d, schemas.HeaderDLQError) == "" {
		t.Errorf("dead letter %q key %q headers %v", d.Value, d.Key, d.Headers)
	}

	// Everything decided is committed, up to each partition's end.
	hw := highWatermarks(t, k, schemas.TopicCommands, partitions)
	waitFor(t, 10*time.Second, "commits up to the high watermarks", func() bool {
		c := committed(t, k, partitions)
		for p := range c {
			if c[p] == -1 && hw[p] == 0 {
				c[p] = 0 // an empty partition has nothing to commit
			}
		}
		return slices.Equal(c, hw)
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

// streamSends appends sends in the background, a couple of milliseconds
// apart, until stop is called; stop returns what was appended.
func streamSends(t *testing.T, w world, cw *producers.CommandWriter, prefix string) (stop func() []sent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	quit := make(chan struct{})
	var out []sent
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var s []sent
			s, err = w.sendOne(ctx, cw, prefix, i)
			out = append(out, s...)
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return func() []sent {
		t.Helper()
		once.Do(func() { close(quit) })
		<-done
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestDeciderRestartMidStream stops a decider while commands flow and
// starts another on the same group: it resumes where the first stopped.
func TestDeciderRestartMidStream(t *testing.T) {
	t.Parallel()
	const partitions = 3
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	w := newWorld(6)
	want := w.create(ctx, t, cw)

	a := start(t, decider.Config{Kafka: k.Cluster, Names: k.Names})
	stopSends := streamSends(t, w, cw, "m")
	waitFor(t, 20*time.Second, "decider A to decide some commands", func() bool { return events.len() >= 40 })
	a.stop(t)
	stoppedAt := events.len()
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names})
	waitFor(t, 20*time.Second, "decider B to decide some commands", func() bool { return events.len() >= stoppedAt+40 })
	want = append(want, stopSends()...)

	waitFor(t, 20*time.Second, "every event", func() bool { return events.len() >= len(want) })
	if stoppedAt >= len(want) {
		t.Fatalf("decider A decided everything (%d events) before it was stopped: the test proves nothing", stoppedAt)
	}
	checkEvents(t, events.snapshot(), partitions, want)
	if n := replies.len(); n != 0 {
		t.Errorf("%d replies: B decided again commands that A had decided", n)
	}
}

// TestDeciderCrashTakeover kills a decider that could neither commit nor
// leave the group: its successor waits out the session, rebuilds from
// chat.events and resumes after the last command that has an event.
func TestDeciderCrashTakeover(t *testing.T) {
	t.Parallel()
	const partitions = 3
	// kfake itself, not embeddedkafka or kafkatest: the test needs its
	// request hooks and a session timeout below the default minimum of
	// 6s, so it never runs against a real cluster.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := kafkatest.Of(t, c.ListenAddrs())
	k.Provision(t, kafkalog.Topology{Partitions: partitions})

	var crashed atomic.Bool
	crashed.Store(true)
	var refusedCommits atomic.Int32
	// While "crashed", offset commits fail and a leave is acknowledged
	// but not done, as if the process had died before either.
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !crashed.Load() {
			return nil, nil, false
		}
		refusedCommits.Add(1)
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.LeaveGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !crashed.Load() {
			return nil, nil, false
		}
		return req.ResponseKind(), nil, true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	w := newWorld(6)
	want := w.create(ctx, t, cw)

	cfg := decider.Config{Kafka: k.Cluster, Names: k.Names, SessionTimeout: time.Second}
	a := start(t, cfg)
	stopSends := streamSends(t, w, cw, "m")
	waitFor(t, 20*time.Second, "decider A to decide some commands", func() bool { return events.len() >= 40 })
	a.stop(t)
	if refusedCommits.Load() == 0 {
		t.Fatal("decider A never tried to commit")
	}
	for p, off := range committed(t, k, partitions) {
		if off >= 0 {
			t.Fatalf("partition %d has committed offset %d after the crash; want none", p, off)
		}
	}
	stoppedAt := events.len()
	crashed.Store(false)
	start(t, cfg)
	waitFor(t, 20*time.Second, "decider B to take over", func() bool { return events.len() >= stoppedAt+40 })
	want = append(want, stopSends()...)

	waitFor(t, 20*time.Second, "every event", func() bool { return events.len() >= len(want) })
	if stoppedAt >= len(want) {
		t.Fatalf("decider A decided everything (%d events) before it crashed: the test proves nothing", stoppedAt)
	}
	checkEvents(t, events.snapshot(), partitions, want)
	if n := replies.len(); n != 0 {
		t.Errorf("%d replies: B decided again commands that A had decided", n)
	}
}

// recorder is a slog.Handler that keeps the attributes of one message.
type recorder struct {
	msg string
	mu  *sync.Mutex
	got *[]map[string]any
	kv  []slog.Attr
}

func newRecorder(msg string) recorder {
	return recorder{msg: msg, mu: &sync.Mutex{}, got: &[]map[string]any{}}
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.kv = append(slices.Clone(r.kv), as...)
	return r
}
func (r recorder) WithGroup(string) slog.Handler { return r }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != r.msg {
		return nil
	}
	m := map[string]any{}
	for _, a := range r.kv {
		m[a.Key] = a.Value.Any()
	}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	r.mu.Lock()
	*r.got = append(*r.got, m)
	r.mu.Unlock()
	return nil
}

// partitionsOwned returns the partition count of the latest generation
// the recorder saw assigned.
func (r recorder) partitionsOwned() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(*r.got) == 0 {
		return -1
	}
	n, _ := (*r.got)[len(*r.got)-1]["partitions"].(int64)
	return n
}

// TestDeciderJoinRebalance starts a second decider while the first
// decides a stream of commands over 6 partitions: the partitions move
// and every command still yields exactly one event.
func TestDeciderJoinRebalance(t *testing.T) {
	t.Parallel()
	const partitions = 6
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	w := newWorld(12)
	want := w.create(ctx, t, cw)

	recA, recB := newRecorder("generation assigned"), newRecorder("generation assigned")
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Logger: slog.New(recA)})
	stopSends := streamSends(t, w, cw, "m")
	waitFor(t, 20*time.Second, "decider A to decide some commands", func() bool { return events.len() >= 40 })
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Logger: slog.New(recB)})
	waitFor(t, 20*time.Second, "the partitions to be shared", func() bool {
		a, b := recA.partitionsOwned(), recB.partitionsOwned()
		return a > 0 && b > 0 && a+b == partitions
	})
	sharedAt := events.len()
	waitFor(t, 20*time.Second, "both deciders to decide more commands", func() bool { return events.len() >= sharedAt+60 })
	want = append(want, stopSends()...)

	waitFor(t, 20*time.Second, "every event", func() bool { return events.len() >= len(want) })
	if sharedAt >= len(want) {
		t.Errorf("every command was decided (%d events) before the rebalance: the test proves nothing", sharedAt)
	}
	checkEvents(t, events.snapshot(), partitions, want)
	if n := replies.len(); n != 0 {
		t.Errorf("%d replies: a command was decided twice across the rebalance", n)
	}
}

// TestDeciderRebuildsAFailedPartition refuses the decider's appends to
// chat.events for a while: each partition whose batch did not land drops
// its state, rebuilds it from what chat.events holds and decides the
// commands again, so every command still gets exactly one event.
func TestDeciderRebuildsAFailedPartition(t *testing.T) {
	t.Parallel()
	const partitions = 3
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := kafkatest.Of(t, c.ListenAddrs())
	k.Provision(t, kafkalog.Topology{Partitions: partitions})
	eventsTopic := k.Names.Topic(schemas.TopicEvents)

	var failing atomic.Bool
	var refused atomic.Int32
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		if !failing.Load() || len(r.Topics) != 1 || r.Topics[0].Topic != eventsTopic {
			return nil, nil, false
		}
		refused.Add(1)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	w := newWorld(6)
	want := w.create(ctx, t, cw)
	metrics := telemetry.New()
	start(t, decider.Config{Kafka: k.Cluster, Names: k.Names, Metrics: metrics, WriteTimeout: 2 * time.Second})
	waitFor(t, 20*time.Second, "the conversations", func() bool { return events.len() >= len(want) })

	stopSends := streamSends(t, w, cw, "m")
	failing.Store(true)
	rebuilds := metrics.PartitionRebuilds.WithLabelValues(k.Names.Group(schemas.GroupDecider))
	waitFor(t, 20*time.Second, "a partition to be rebuilt", func() bool {
		var m dto.Metric
		if err := rebuilds.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue() >= 1
	})
	failing.Store(false)
	stoppedAt := events.len()
	waitFor(t, 20*time.Second, "the decider to go on", func() bool { return events.len() >= stoppedAt+40 })
	want = append(want, stopSends()...)

	waitFor(t, 20*time.Second, "every event", func() bool { return events.len() >= len(want) })
	if refused.Load() == 0 {
		t.Fatal("no append was refused: the test proves nothing")
	}
	checkEvents(t, events.snapshot(), partitions, want)
	if n := replies.len(); n != 0 {
		t.Errorf("%d replies: a command was decided twice", n)
	}
}

// TestDeciderMemoryStaysBounded runs a decider that keeps two
// conversations in memory per partition over ten times as many: it
// decides every command once, never holds more than its bound, and a
// successor that rebuilds under the same bound recognizes retried
// commands of every conversation.
func TestDeciderMemoryStaysBounded(t *testing.T) {
	t.Parallel()
	const partitions, perPartition = 3, 2
	k := startBroker(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	events, replies, cw := decisionLogs(t, k, partitions)
	w := newWorld(60)
	want := w.create(ctx, t, cw)

	run := func() (*decider.Decider, context.CancelFunc, <-chan error) {
		d := decider.New(decider.Config{Kafka: k.Cluster, Names: k.Names, Logger: discard, MaxConversations: perPartition})
		rctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(rctx) }()
		return d, stop, done
	}
	d, stop, done := run()
	most := 0
	for round := range 3 {
		s, err := w.sendAll(ctx, cw, fmt.Sprintf("r%d-", round), 120)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s...)
		waitFor(t, 30*time.Second, "the round's events", func() bool {
			most = max(most, d.CachedConversations())
			return events.len() >= len(want)
		})
	}
	most = max(most, d.CachedConversations())
	if most > partitions*perPartition || most == 0 {
		t.Errorf("the decider held up to %d conversations in memory, want 1..%d", most, partitions*perPartition)
	}
	checkEvents(t, events.snapshot(), partitions, want)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := d.CachedConversations(); n != 0 {
		t.Errorf("%d conversations still counted after the decider stopped", n)
	}

	// A successor rebuilds under the same bound; every retried send, of
	// whichever conversation, is a duplicate.
	d, stop, done = run()
	defer func() { stop(); <-done }()
	if _, err := w.sendAll(ctx, cw, "r0-", 120); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the retries' replies", func() bool { return replies.len() >= 120 })
	if n := events.len(); n != len(want) {
		t.Errorf("%d events after the retries, want %d: a retry was decided again", n, len(want))
	}
	for _, m := range replies.snapshot() {
		if typ := header(m, "ce_type"); typ != schemas.TypeCommandDuplicate {
			t.Fatalf("a retry was answered %s, want %s", typ, schemas.TypeCommandDuplicate)
		}
	}
}
