// Tests of the decider's in-process hand-off beside the log.

package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/delivery/deliverytest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// TestBroadcastFeedWithHandoff runs the feed suite with every record
// also handed off, as a decider in the same process does once the broker
// has acknowledged it: the suite's exact frames and answers show that no
// socket gets an event twice and no request is answered by both copies.
func TestBroadcastFeedWithHandoff(t *testing.T) {
	t.Parallel()
	testFeed(t, func(t *testing.T) *feedEnv {
		k := startBroker(t)
		env := &feedEnv{store: openStore(t)}
		env.hub = NewHub(Config{Kafka: k.Cluster, History: env.store, Topology: k.Topology(kafkalog.Topology{})})
		events := newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicEvents))
		replies := newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicReplies))
		env.publish = func(t *testing.T, _ []string, evs ...history.Event) {
			t.Helper()
			msgs := records(evs)
			write(t, events, msgs...)
			env.hub.AppendedEvents(context.Background(), msgs)
		}
		env.reply = func(t *testing.T, typ, conv string, r any) {
			t.Helper()
			m := replyRecord(t, typ, conv, r)
			write(t, replies, m)
			env.hub.AppendedReplies(context.Background(), []kafka.Message{m})
		}
		signals := map[string]*kafka.Writer{
			schemas.TopicEphemeral: newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicEphemeral)),
			schemas.TopicReceipts:  newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicReceipts)),
		}
		env.signal = func(t *testing.T, topic string, _ []string, typ, conv string, v any) {
			t.Helper()
			write(t, signals[topic], replyRecord(t, typ, conv, v))
		}
		runHub(t, env.hub)
		return env
	})
}

// handoffEnv is a broadcast hub on a broker of several partitions, and
// the writers a decider would append with.
type handoffEnv struct {
	store   history.Store
	metrics *telemetry.Metrics
	hub     *Hub
	events  *kafka.Writer
	replies *kafka.Writer
}

func newHandoffEnv(t *testing.T, cluster *kafkalog.Cluster, names kafkalog.Names, topo kafkalog.Topology, st history.Store) *handoffEnv {
	env := &handoffEnv{store: st, metrics: telemetry.New()}
	env.hub = NewHub(Config{Kafka: cluster, History: st, Topology: topo, Metrics: env.metrics})
	env.events = newWriter(t, cluster, names.Topic(schemas.TopicEvents))
	env.replies = newWriter(t, cluster, names.Topic(schemas.TopicReplies))
	return env
}

func (e *handoffEnv) taken(from string) float64 {
	return testutil.ToFloat64(e.metrics.DeliveryEventsTaken.WithLabelValues(from))
}

// TestHandoffOrderNoLossNoDuplicate: conversations appended concurrently
// in batches, each batch handed off after its append is acknowledged —
// or, for some, never (a decider in another process) — reach every
// member's socket in seq order, each event exactly once, and both
// sources delivered some of them. A second hub started midway (a restart
// of the node) knows none of the conversations: what is handed off to it
// before the log has brought it a conversation's event does not reach
// its sockets out of order.
func TestHandoffOrderNoLossNoDuplicate(t *testing.T) {
	t.Parallel()
	const convs, perConv, batch = 12, 60, 4
	k := startBroker4(t)
	st := openStore(t)
	env := newHandoffEnv(t, k.Cluster, k.Names, k.Topology(kafkalog.Topology{}), st)
	runHub(t, env.hub)
	creations := make([]history.Event, convs)
	for i := range convs {
		creations[i] = nowGroup("c"+strconv.Itoa(i), "a"+strconv.Itoa(i), "b"+strconv.Itoa(i))
	}
	// The history projection's part: a hub that starts later finds the
	// members there.
	store(t, st, creations...)

	sinks := map[string]*deliverytest.Sink{}
	for i := range convs {
		for _, u := range []string{"a" + strconv.Itoa(i), "b" + strconv.Itoa(i)} {
			sinks[u] = &deliverytest.Sink{}
			run(t, env.hub, u, sinks[u])
		}
	}
	var restarted *handoffEnv
	var restartOnce sync.Once
	// wasRestarted is closed once the restarted hub's sessions run: every
	// conversation waits for it half way, so each has events left to
	// reach them live however the goroutines are scheduled.
	wasRestarted := make(chan struct{})
	restartedSinks := map[string]*deliverytest.Sink{}
	restart := func() {
		restarted = newHandoffEnv(t, k.Cluster, k.Names, k.Topology(kafkalog.Topology{}), st)
		runHub(t, restarted.hub)
		for i := range convs {
			u := "a" + strconv.Itoa(i)
			restartedSinks[u] = &deliverytest.Sink{}
			run(t, restarted.hub, u, restartedSinks[u])
		}
		close(wasRestarted)
	}
	var hubsMu sync.Mutex
	restartNow := func() {
		hubsMu.Lock()
		restartOnce.Do(restart)
		hubsMu.Unlock()
	}
	handTo := func(msgs []kafka.Message) {
		hubsMu.Lock()
		r := restarted
		hubsMu.Unlock()
		env.hub.AppendedEvents(context.Background(), msgs)
		if r != nil {
			r.hub.AppendedEvents(context.Background(), msgs)
		}
	}

	var wg sync.WaitGroup
	for i := range convs {
		wg.Go(func() {
			conv := "c" + strconv.Itoa(i)
			if i == 0 {
				defer restartNow() // if it failed before half way
			}
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			evs := []history.Event{creations[i]}
			for seq := uint64(1); seq <= perConv; seq++ {
				evs = append(evs, nowMsg(conv, seq, "a"+strconv.Itoa(i)))
			}
			for len(evs) > 0 {
				n := min(batch, len(evs))
				msgs := records(evs[:n])
				evs = evs[n:]
				if err := env.events.WriteMessages(context.Background(), msgs...); err != nil {
					t.Error(err)
					return
				}
				if len(evs) < perConv/2 {
					if i == 0 {
						restartNow()
					}
					<-wasRestarted
				}
				if rng.IntN(4) != 0 { // one batch in four is not handed off
					handTo(msgs)
				}
			}
		})
	}
	wg.Wait()

	want := func(conv string, from uint64) []string {
		var w []string
		for seq := from; seq <= perConv; seq++ {
			w = append(w, fmt.Sprintf("event %s %d", conv, seq))
		}
		return w
	}
	for i := range convs {
		conv := "c" + strconv.Itoa(i)
		deliverytest.WaitFrames(t, sinks["a"+strconv.Itoa(i)], want(conv, 0)...)
		deliverytest.WaitFrames(t, sinks["b"+strconv.Itoa(i)], want(conv, 0)...)
	}
	if env.taken("decider") == 0 || env.taken("log") == 0 {
		t.Errorf("events taken from the decider %v, from the log %v: want both sources used", env.taken("decider"), env.taken("log"))
	}
	if got := env.taken("decider") + env.taken("log"); got != convs*(perConv+1) {
		t.Errorf("%v events taken, want %d: each exactly once", got, convs*(perConv+1))
	}
	// The restarted hub's sessions began after some events: they get each
	// conversation's events from the first one live, in order, once.
	for i := range convs {
		s := restartedSinks["a"+strconv.Itoa(i)]
		deliverytest.WaitFor(t, "the restarted hub's last event of c"+strconv.Itoa(i), func() bool {
			f := s.Summaries(t)
			return len(f) > 0 && f[len(f)-1] == fmt.Sprintf("event c%d %d", i, perConv)
		})
		got := s.Summaries(t)
		var first uint64
		if _, err := fmt.Sscanf(got[0], "event c"+strconv.Itoa(i)+" %d", &first); err != nil {
			t.Fatalf("first frame %q: %v", got[0], err)
		}
		if w := want("c"+strconv.Itoa(i), first); !slices.Equal(got, w) {
			t.Errorf("restarted hub, c%d: frames\n got %q\nwant %q", i, got, w)
		}
	}
}

// TestHandoffNotNextWaitsForTheLog: an event handed off that is not the
// next of its conversation — here the hub has not seen the conversation
// — answers its request at once, but reaches the sockets only from the
// log, after the events before it; its copy from the log does not answer
// the request again.
func TestHandoffNotNextWaitsForTheLog(t *testing.T) {
	t.Parallel()
	k := startBroker4(t)
	st := openStore(t)
	store(t, st, group("c1", "alice", "bob"))
	env := newHandoffEnv(t, k.Cluster, k.Names, k.Topology(kafkalog.Topology{}), st)
	runHub(t, env.hub)
	sink := &deliverytest.Sink{}
	run(t, env.hub, "bob", sink)

	second := nowMsg("c1", 2, "alice")
	ans := mustAwait(t, env.hub, "alice", "c1", "cmd-2")
	// Handed off before the log has brought seq 1: not the next.
	env.hub.AppendedEvents(context.Background(), records([]history.Event{second}))
	if o := await(t, ans); o.Seq != 2 || o.Event == nil {
		t.Errorf("outcome %+v, want seq 2 with its event", o)
	}
	again := mustAwait(t, env.hub, "alice", "c1", "cmd-2") // the same command sent again
	if n := len(sink.Frames()); n != 0 {
		t.Fatalf("bob got %d frames before the log brought seq 1", n)
	}
	write(t, env.events, records([]history.Event{nowMsg("c1", 1, "alice"), second})...)
	deliverytest.WaitFrames(t, sink, "event c1 1", "event c1 2")
	if env.taken("decider") != 0 || env.taken("log") != 2 {
		t.Errorf("taken from the decider %v, from the log %v; want 0 and 2", env.taken("decider"), env.taken("log"))
	}
	// A third record after the copy shows the copy was handled.
	write(t, env.events, records([]history.Event{nowMsg("c1", 3, "alice")})...)
	deliverytest.WaitFrames(t, sink, "event c1 1", "event c1 2", "event c1 3")
	select {
	case o := <-again:
		t.Errorf("the log's copy of seq 2 answered a second request: %+v", o)
	default:
	}
}

// TestHandoffReplyAnswersOnce: a reply comes both handed off and from the
// log, in either order; it answers one request, not two.
func TestHandoffReplyAnswersOnce(t *testing.T) {
	t.Parallel()
	k := startBroker4(t)
	env := newHandoffEnv(t, k.Cluster, k.Names, k.Topology(kafkalog.Topology{}), openStore(t))
	runHub(t, env.hub)
	for _, logFirst := range []bool{false, true} {
		cmd := fmt.Sprintf("x-%v", logFirst)
		first := mustAwait(t, env.hub, "carol", "c1", cmd)
		second := mustAwait(t, env.hub, "carol", "c1", cmd)
		m := replyRecord(t, schemas.TypeCommandDuplicate, "c1", schemas.CommandDuplicateV1{CommandID: cmd, CommandType: schemas.TypeSendMessage,
			UserID: "carol", ConversationID: "c1", Seq: 4})
		if logFirst {
			write(t, env.replies, m)
			if o := await(t, first); !o.Duplicate || o.Seq != 4 {
				t.Errorf("outcome %+v, want a duplicate of seq 4", o)
			}
			env.hub.AppendedReplies(context.Background(), []kafka.Message{m})
		} else {
			env.hub.AppendedReplies(context.Background(), []kafka.Message{m})
			if o := await(t, first); !o.Duplicate || o.Seq != 4 {
				t.Errorf("outcome %+v, want a duplicate of seq 4", o)
			}
			write(t, env.replies, m)
		}
		// A later reply on the log shows the copy was handled.
		marker := mustAwait(t, env.hub, "carol", "c1", cmd+"-marker")
		write(t, env.replies, replyRecord(t, schemas.TypeCommandRejected, "c1", schemas.CommandRejectedV1{CommandID: cmd + "-marker",
			CommandType: schemas.TypeSendMessage, UserID: "carol", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "no"}))
		await(t, marker)
		select {
		case o := <-second:
			t.Errorf("logFirst %v: the second copy answered another request: %+v", logFirst, o)
		default:
		}
	}
}

// startBroker4 returns the test's cluster with every topic, of four
// partitions.
func startBroker4(t *testing.T) kafkatest.Cluster {
	t.Helper()
	return kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 4}))
}

// countingOpener opens a sealed record by returning it as it is, and
// counts the calls.
type countingOpener struct{ n atomic.Int64 }

func (o *countingOpener) OpenEvent(_ context.Context, _ schemas.Attributes, value []byte) ([]byte, error) {
	o.n.Add(1)
	return value, nil
}

// TestHandoffOpensEachEventOnce: sealed events handed off and read from
// the log are opened once each — the later copy is dropped before it is
// opened — and reach the socket once each, in order.
func TestHandoffOpensEachEventOnce(t *testing.T) {
	t.Parallel()
	k := startBroker4(t)
	st := openStore(t)
	store(t, st, group("c1", "alice", "bob"))
	opener := &countingOpener{}
	hub := NewHub(Config{Kafka: k.Cluster, History: st, Topology: k.Topology(kafkalog.Topology{}), Opener: opener})
	runHub(t, hub)
	sink := &deliverytest.Sink{}
	run(t, hub, "bob", sink)
	events := newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicEvents))

	const n = 20
	var want []string
	for seq := uint64(1); seq <= n; seq++ {
		ev := nowMsg("c1", seq, "alice")
		a := attrsOf(ev)
		a.Sealed = true
		m := kafkalog.Encode(a, ev.Data)
		if seq == 1 {
			// The hub has not seen c1: the log brings the first event.
			write(t, events, m)
			deliverytest.WaitFrames(t, sink, "event c1 1")
		} else {
			// Handed off before it is written here (the decider hands
			// off only after the append), so that the log's copy is
			// certainly the later one.
			hub.AppendedEvents(context.Background(), []kafka.Message{m})
			write(t, events, m)
		}
		want = append(want, fmt.Sprintf("event c1 %d", seq))
	}
	deliverytest.WaitFrames(t, sink, want...)
	// A last event from the log alone shows every copy before it was read.
	last := nowMsg("c1", n+1, "alice")
	write(t, events, records([]history.Event{last})...)
	deliverytest.WaitFrames(t, sink, append(want, fmt.Sprintf("event c1 %d", n+1))...)
	if got := opener.n.Load(); got != n {
		t.Errorf("the sealed events were opened %d times, want %d: once each", got, n)
	}
}

// TestHandoffOfALaterCopyWaitsForTheTake: an event handed off after the
// log brought it returns only once the log's copy has been taken — the
// request it answers answered — so that a duplicate's reply, which the
// decider appends after it, cannot answer that request first.
func TestHandoffOfALaterCopyWaitsForTheTake(t *testing.T) {
	t.Parallel()
	k := startBroker4(t)
	env := newHandoffEnv(t, k.Cluster, k.Names, k.Topology(kafkalog.Topology{}), openStore(t))
	b := env.hub.feed.(*broadcast)
	// The log's copy of seq 1 is being taken: its seq is noted, and the
	// take still holds the conversation's lock.
	unlock := b.taken.lock("c1")
	env.hub.latest.note("c1", 1)
	handed := make(chan struct{})
	go func() {
		defer close(handed)
		env.hub.AppendedEvents(context.Background(), records([]history.Event{nowMsg("c1", 1, "alice")}))
	}()
	select {
	case <-handed:
		t.Fatal("the hand-off of a later copy returned while the log's copy was being taken")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	<-handed
}
