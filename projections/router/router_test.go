// Tests of targeted routing end to end: a router and hubs over a broker.

package router

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/delivery/deliverytest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// routeEnv is targeted routing over a real broker: a router, and per node
// a hub reading its delivery topic and a presence tracker.
type routeEnv struct {
	cluster  *kafkalog.Cluster
	names    kafkalog.Names // topics and groups under the test's prefix
	store    *pebblestore.Store
	w        *kafka.Writer
	router   *Router
	hubs     map[string]*delivery.Hub
	trackers map[string]*presence.Tracker
	metrics  map[string]*telemetry.Metrics
	sessions map[string]*delivery.Session // by user@node
}

func startRouting(t *testing.T, nodes ...string) *routeEnv {
	t.Helper()
	return startRoutingWith(t, 0, 5*time.Second, nodes...)
}

// startRoutingWith starts routing whose router and hubs keep at most
// maxConvs conversations (0: the default) and resync within resync.
func startRoutingWith(t *testing.T, maxConvs int, resync time.Duration, nodes ...string) *routeEnv {
	t.Helper()
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 3}))
	cluster, topo := k.Cluster, k.Topology(kafkalog.Topology{})
	env := &routeEnv{cluster: cluster, names: k.Names, store: openStore(t), hubs: map[string]*delivery.Hub{}, trackers: map[string]*presence.Tracker{}, metrics: map[string]*telemetry.Metrics{}, sessions: map[string]*delivery.Session{}}
	env.w = kafkalog.NewWriter(cluster, "") // each message names its topic
	t.Cleanup(func() { _ = env.w.Close() })
	env.router = New(Config{Kafka: cluster, Topology: topo, History: env.store, Resync: resync, MaxConversations: maxConvs})
	runUntilCleanup(t, "router", env.router.Run, env.router.Ready())
	for _, n := range nodes {
		env.metrics[n] = telemetry.New()
		h := delivery.NewHub(delivery.Config{Kafka: cluster, Topology: topo, History: env.store, Node: n, GapWait: 2 * time.Second, RegistrationSettle: time.Millisecond, MaxConversations: maxConvs, Metrics: env.metrics[n]})
		runUntilCleanup(t, "hub "+n, h.Run, h.Ready())
		tr := presence.New(presence.Config{Kafka: cluster, Names: k.Names, NodeID: n, Heartbeat: 200 * time.Millisecond, Timeout: 2 * time.Second})
		runUntilCleanup(t, "presence "+n, tr.Run, tr.Ready())
		env.hubs[n], env.trackers[n] = h, tr
	}
	return env
}

// runUntilCleanup runs fn until the test ends, after waiting for ready.
func runUntilCleanup(t *testing.T, name string, fn func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: %v", name, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s not ready", name)
	}
}

// connect opens a session of user on node and registers it in presence;
// register=false leaves it unregistered (see register).
func (e *routeEnv) connect(t *testing.T, node, user, device string, register bool) *deliverytest.Sink {
	t.Helper()
	sink := &deliverytest.Sink{}
	e.sessions[user+"@"+node] = run(t, e.hubs[node], user, sink).s
	if register {
		e.register(t, node, user, device)
	}
	return sink
}

func (e *routeEnv) register(t *testing.T, node, user, device string) {
	t.Helper()
	t.Cleanup(e.trackers[node].Connect(context.Background(), user, device))
}

// publish stores events in history, then appends them to chat.events
// with origin as their parley_origin_node.
func (e *routeEnv) publish(t *testing.T, origin string, evs ...history.Event) {
	t.Helper()
	store(t, e.store, evs...)
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		a := attrsOf(ev)
		a.OriginNode = origin
		msgs[i] = kafkalog.Encode(a, ev.Data)
		msgs[i].Topic = e.names.Topic(schemas.TopicEvents)
	}
	if err := e.w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func (e *routeEnv) write(t *testing.T, topic, typ, conv, origin string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	a := kafkalog.NewAttributes(typ, conv, time.Now())
	a.OriginNode = origin
	m := kafkalog.Encode(a, b)
	m.Topic = e.names.Topic(topic)
	if err := e.w.WriteMessages(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// read is what node's hub read of topic.
func (e *routeEnv) read(node, topic string) float64 {
	var m dto.Metric
	if err := e.metrics[node].DeliveryRecordsRead.WithLabelValues(e.names.Topic(topic)).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// now-timed events: a session owes a conversation it did not resume what
// was appended since it began.
func nowGroup(conv string, users ...string) history.Event {
	ms := make([]schemas.Member, len(users))
	for i, u := range users {
		ms[i] = member(u)
	}
	return historytest.Group(conv, time.Now(), ms...)
}

func nowMsgs(conv string, from, to uint64) []history.Event {
	var out []history.Event
	for seq := from; seq <= to; seq++ {
		out = append(out, historytest.Message(conv, seq, "alice", fmt.Sprint("m", seq), time.Now()))
	}
	return out
}

func eventsOf(conv string, from, to uint64) []string {
	var out []string
	for seq := from; seq <= to; seq++ {
		out = append(out, fmt.Sprintf("event %s %d", conv, seq))
	}
	return out
}

// TestRouterDeliversToTheNodesOfMembers: every socket of a member, on any
// node, gets every event once and in order; a node that holds no member
// reads nothing of the conversation; a node that appended a command gets
// its answer — event or reply — without holding any socket.
func TestRouterDeliversToTheNodesOfMembers(t *testing.T) {
	t.Parallel()
	env := startRouting(t, "n1", "n2", "n3", "n4")
	sinks := map[string]*deliverytest.Sink{
		"alice@n1": env.connect(t, "n1", "alice", "phone", true),
		"alice@n2": env.connect(t, "n2", "alice", "laptop", true),
		"bob@n1":   env.connect(t, "n1", "bob", "phone", true),
		"bob@n2":   env.connect(t, "n2", "bob", "laptop", true),
	}
	dave := env.connect(t, "n3", "dave", "phone", true)
	// n4 holds no socket at all; a request there waits for its answer.
	answer, cancel := env.hubs["n4"].Await("alice", "c1", "cmd-8")
	defer cancel()
	rejected, cancel2 := env.hubs["n4"].Await("alice", "c1", "nope")
	defer cancel2()

	env.publish(t, "n1", nowGroup("c1", "alice", "bob"))
	for seq := uint64(1); seq <= 30; seq++ {
		origin := []string{"n1", "n2", "n4"}[seq%3]
		env.publish(t, origin, nowMsgs("c1", seq, seq)...)
	}
	env.write(t, schemas.TopicReplies, schemas.TypeCommandRejected, "c1", "n4", schemas.CommandRejectedV1{
		CommandID: "nope", CommandType: schemas.TypeSendMessage, UserID: "alice", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "r"})
	env.write(t, schemas.TopicReplies, schemas.TypeCommandRejected, "c1", "", schemas.CommandRejectedV1{
		CommandID: "x", CommandType: schemas.TypeSendMessage, UserID: "alice", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "r"})
	// Last, dave's own conversation: once he has it, all before is routed.
	env.publish(t, "n3", nowGroup("c9", "dave"))
	deliverytest.WaitFrames(t, dave, "event c9 0")

	for name, s := range sinks {
		deliverytest.WaitFrames(t, s, eventsOf("c1", 0, 30)...)
		if got := len(s.Frames()); got != 31 {
			t.Errorf("%s got %d frames, want 31", name, got)
		}
	}
	if o := await(t, answer); o.Seq != 8 || o.Event == nil || o.ConversationID != "c1" {
		t.Errorf("n4's waiter got %+v, want the event of seq 8", o)
	}
	if o := await(t, rejected); o.Code != schemas.CodeNotMember {
		t.Errorf("n4's waiter got %+v, want the rejection", o)
	}
	// Barrier: n3 and n4 each get one more answer of c1 by both paths, an
	// event on chat.events and a rejection on chat.replies, keyed by c1
	// like everything before. The router routes each partition in order
	// into a node's one-partition delivery topic, which its hub reads in
	// order: once a node has both markers, anything of c1 misrouted to it
	// has been read before them.
	for i, n := range []string{"n3", "n4"} {
		seq := uint64(31 + i)
		event, cancel := env.hubs[n].Await("alice", "c1", fmt.Sprintf("cmd-%d", seq))
		defer cancel()
		reply, cancel2 := env.hubs[n].Await("alice", "c1", "marker-"+n)
		defer cancel2()
		env.publish(t, n, nowMsgs("c1", seq, seq)...)
		env.write(t, schemas.TopicReplies, schemas.TypeCommandRejected, "c1", n, schemas.CommandRejectedV1{
			CommandID: "marker-" + n, CommandType: schemas.TypeSendMessage, UserID: "alice", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "r"})
		await(t, event)
		await(t, reply)
	}
	if got := env.read("n3", schemas.DeliveryTopic("n3")); got != 1+2 {
		t.Errorf("n3, which holds no member of c1, read %v records of its delivery topic, want 3 (c9's creation and the two markers)", got)
	}
	// n4 reads only the answers to its own commands: events 2, 5, 8 … and
	// the rejection (not the reply without an origin).
	if got := env.read("n4", schemas.DeliveryTopic("n4")); got != 10+1+2 {
		t.Errorf("n4 read %v records, want 13 (its 10 commands' events, 1 rejection and the two markers)", got)
	}
	if got := env.read("n1", schemas.TopicEvents) + env.read("n1", schemas.TopicReplies); got != 0 {
		t.Errorf("a targeted node read %v records of chat.events and chat.replies", got)
	}
}

// TestRouterRegistrationRace: a socket opened a moment before its
// registry entry reaches the router misses the events routed in that
// moment; when the registration arrives, the router sends the newest
// event again and the session fills the rest from history — with no
// further event, no gap, no duplicate, and nothing from before it began.
func TestRouterRegistrationRace(t *testing.T) {
	t.Parallel()
	env := startRouting(t, "n1", "n2")
	alice := env.connect(t, "n1", "alice", "phone", true)
	// c2 has history from before bob's socket: he resumes from seq 3.
	env.publish(t, "", nowGroup("c2", "alice", "bob"))
	env.publish(t, "", nowMsgs("c2", 1, 3)...)
	// Conversations may sit on different partitions, routed side by
	// side: each is waited for before the next, for one order of frames.
	deliverytest.WaitFrames(t, alice, eventsOf("c2", 0, 3)...)
	// c3's events all come before bob's socket: none are his to get.
	env.publish(t, "", nowGroup("c3", "alice", "bob"))
	c3 := nowMsgs("c3", 1, 2)
	env.publish(t, "", c3...)
	deliverytest.WaitFrames(t, alice, append(eventsOf("c2", 0, 3), eventsOf("c3", 0, 2)...)...)

	// Bob's session must begin strictly after c3's last event.
	deliverytest.WaitFor(t, "the clock to pass c3's last event", func() bool { return time.Now().After(c3[len(c3)-1].Time) })
	bob := env.connect(t, "n2", "bob", "laptop", false)
	bobSession := env.sessions["bob@n2"]
	bobSession.Resume("r", map[string]uint64{"c2": 3})
	deliverytest.WaitFrames(t, bob, "resumed r map[c2:3]")

	// Routed while the registry does not know bob's socket: not to n2.
	env.publish(t, "n1", nowGroup("c1", "alice", "bob"))
	env.publish(t, "n1", nowMsgs("c1", 1, 2)...)
	deliverytest.WaitFrames(t, alice, slices.Concat(eventsOf("c2", 0, 3), eventsOf("c3", 0, 2), eventsOf("c1", 0, 2))...)
	env.publish(t, "n1", nowMsgs("c2", 4, 5)...)
	deliverytest.WaitFrames(t, alice, slices.Concat(eventsOf("c2", 0, 3), eventsOf("c3", 0, 2), eventsOf("c1", 0, 2), eventsOf("c2", 4, 5))...)
	// Kept as wall time: bob's socket is on no node the router knows
	// yet, so no marker can reach it; this gives anything wrongly routed
	// to n2 a moment to show.
	time.Sleep(100 * time.Millisecond)
	if got := bob.Summaries(t); len(got) != 1 {
		t.Fatalf("before registering, bob's socket got %q", got)
	}

	// The registration arrives; nothing else happens.
	env.register(t, "n2", "bob", "laptop")
	deliverytest.WaitFor(t, "bob's events", func() bool { return len(bob.Frames()) >= 1+3+2 })
	// Barrier: the next event of c1, routed to n2 once the router knows
	// bob's socket. Whatever the registration made the router send again
	// went into n2's one-partition delivery topic before it, and the
	// session handles what its hub read in order: once bob has c1 3, any
	// duplicate or extra frame is among those before it.
	env.publish(t, "n1", nowMsgs("c1", 3, 3)...)
	deliverytest.WaitFor(t, "c1 3", func() bool { return slices.Contains(bob.Summaries(t), "event c1 3") })
	got := bob.Summaries(t)
	if last := got[len(got)-1]; last != "event c1 3" {
		t.Fatalf("bob's last frame %q, want event c1 3: %q", last, got)
	}
	got = got[:len(got)-1]
	if got[0] != "resumed r map[c2:3]" {
		t.Fatalf("bob's first frame %q", got[0])
	}
	if c1 := deliverytest.Only(got, "c1"); !slices.Equal(c1, eventsOf("c1", 0, 2)) {
		t.Errorf("bob got %q of c1, created after his socket opened; want all of it once", c1)
	}
	if c2 := deliverytest.Only(got, "c2"); !slices.Equal(c2, eventsOf("c2", 4, 5)) {
		t.Errorf("bob got %q of c2, resumed from 3; want 4 and 5 once", c2)
	}
	if c3 := deliverytest.Only(got, "c3"); len(c3) != 0 {
		t.Errorf("bob got %q of c3, all from before his socket", c3)
	}
	if len(got) != 1+3+2 {
		t.Errorf("bob's frames: %q", got)
	}

	// c3's resent newest event, older than the socket, left c3 alone: a
	// resume of it still starts where the client says.
	bobSession.Resume("r2", map[string]uint64{"c3": 1})
	deliverytest.WaitFor(t, "resumed r2", func() bool { return slices.Contains(bob.Summaries(t), "resumed r2 map[c3:2]") })
	if c3 := deliverytest.Only(bob.Summaries(t), "c3"); !slices.Equal(c3, eventsOf("c3", 2, 2)) {
		t.Errorf("bob resumed c3 from 1 and got %q, want event 2", c3)
	}
}

// TestRouterMembershipChanges: a member who leaves gets the departure
// and nothing after it; a node that cached the conversation without
// holding any member sees the change through chat.changes.
func TestRouterMembershipChanges(t *testing.T) {
	t.Parallel()
	env := startRouting(t, "n1", "n2", "n3")
	alice := env.connect(t, "n1", "alice", "phone", true)
	bob := env.connect(t, "n2", "bob", "phone", true)
	env.publish(t, "n1", nowGroup("c4", "alice", "bob", "carol"))
	env.publish(t, "n1", nowMsgs("c4", 1, 1)...)
	deliverytest.WaitFrames(t, bob, eventsOf("c4", 0, 1)...)
	// n3 holds nobody of c4 but has it cached (a request looked it up).
	if c, err := env.hubs["n3"].Conversation(context.Background(), "c4"); err != nil || !c.IsMember("bob") {
		t.Fatalf("n3's c4: %+v, %v", c, err)
	}

	env.publish(t, "n2", historytest.Left("c4", 2, "bob", time.Now()))
	env.publish(t, "n1", nowMsgs("c4", 3, 4)...)
	deliverytest.WaitFrames(t, alice, eventsOf("c4", 0, 4)...)
	// Barrier: a conversation of bob's created now on c4's partition of
	// chat.events. The router routes that partition in order into n2's
	// one-partition delivery topic, which n2's hub and bob's session
	// handle in order: once bob has its creation, anything of c4 wrongly
	// routed to him after his departure has come before it.
	marker := onPartitionOf(t, "c4")
	env.publish(t, "n1", nowGroup(marker, "alice", "bob"))
	deliverytest.WaitFor(t, "bob's next conversation", func() bool { return slices.Contains(bob.Summaries(t), "event "+marker+" 0") })
	if got := deliverytest.Only(bob.Summaries(t), "c4"); !slices.Equal(got, eventsOf("c4", 0, 2)) {
		t.Errorf("bob, who left at 2, got %q", got)
	}
	deliverytest.WaitFor(t, "n3 to see bob's departure", func() bool {
		c, err := env.hubs["n3"].Conversation(context.Background(), "c4")
		return err == nil && !c.IsMember("bob") && c.IsMember("carol")
	})
	// Its messages, never routed to n3, come from history.
	stored, err := env.store.Conversation(context.Background(), "c4")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := env.hubs["n3"].Conversation(context.Background(), "c4"); err != nil || c.LastSeq != 4 || c.Messages != stored.Messages || !reflect.DeepEqual(c.LastMessage, stored.LastMessage) {
		t.Errorf("n3's c4: last seq %d, %d messages, last message %+v, %v; want 4 and history's %d, %+v", c.LastSeq, c.Messages, c.LastMessage, err, stored.Messages, stored.LastMessage)
	}
	if got := env.read("n3", schemas.DeliveryTopic("n3")); got != 0 {
		t.Errorf("n3 read %v records of its delivery topic, want 0", got)
	}
	deliverytest.WaitFor(t, "n3 to read the marker conversation's creation", func() bool { return env.read("n3", schemas.TopicChanges) >= 3 })
	if got := env.read("n3", schemas.TopicChanges); got != 3 {
		t.Errorf("n3 read %v records of %s, want 3 (c4's creation and departure, the marker's creation)", got, schemas.TopicChanges)
	}
}

// TestConversationMessageFields: a node routed every event of a
// conversation (it holds a member's socket) answers its message-level
// fields from what was routed to it, even ahead of history; one that is
// not, from history.
func TestConversationMessageFields(t *testing.T) {
	t.Parallel()
	env := startRouting(t, "n1", "n3")
	alice := env.connect(t, "n1", "alice", "phone", true)
	env.publish(t, "", nowGroup("c5", "alice", "bob"))
	env.publish(t, "", nowMsgs("c5", 1, 3)...)
	deliverytest.WaitFrames(t, alice, eventsOf("c5", 0, 3)...)
	ctx := context.Background()
	// Kept as wall time: alice's socket counts as settled (routed every
	// event of c5) only once RegistrationSettle (1ms) has passed, which
	// nothing outside the hub shows.
	time.Sleep(5 * time.Millisecond)
	for _, n := range []string{"n1", "n3"} {
		if c, err := env.hubs[n].Conversation(ctx, "c5"); err != nil || c.LastSeq != 3 {
			t.Fatalf("%s: %+v, %v", n, c, err)
		}
	}
	// Message 4 reaches chat.events but not (yet) history.
	m := kafkalog.Encode(attrsOf(nowMsgs("c5", 4, 4)[0]), nowMsgs("c5", 4, 4)[0].Data)
	m.Topic = env.names.Topic(schemas.TopicEvents)
	if err := env.w.WriteMessages(ctx, m); err != nil {
		t.Fatal(err)
	}
	deliverytest.WaitFrames(t, alice, eventsOf("c5", 0, 4)...)
	stored, err := env.store.Conversation(ctx, "c5")
	if err != nil || stored.LastSeq != 3 {
		t.Fatalf("history: %+v, %v", stored, err)
	}
	c, err := env.hubs["n1"].Conversation(ctx, "c5")
	if err != nil || c.LastSeq != 4 || c.Messages != stored.Messages+1 || c.LastMessage == nil || c.LastMessage.Seq != 4 {
		t.Errorf("n1, routed every event: last seq %d, %d messages, last %+v, %v; want 4, %d, seq 4", c.LastSeq, c.Messages, c.LastMessage, err, stored.Messages+1)
	}
	if c, err := env.hubs["n3"].Conversation(ctx, "c5"); err != nil || c.LastSeq != 3 || c.Messages != stored.Messages {
		t.Errorf("n3, routed nothing: last seq %d, %d messages, %v; want history's 3, %d", c.LastSeq, c.Messages, err, stored.Messages)
	}
}

// TestRouterSignals: a typing indicator reaches the other members' nodes
// but not the typist's own devices; a receipt in a direct conversation
// reaches both members' devices, in a group only the user's.
func TestRouterSignals(t *testing.T) {
	t.Parallel()
	env := startRouting(t, "n1", "n2")
	alice1 := env.connect(t, "n1", "alice", "phone", true)
	alice2 := env.connect(t, "n2", "alice", "laptop", true)
	bob := env.connect(t, "n2", "bob", "phone", true)
	carol := env.connect(t, "n1", "carol", "phone", true)
	env.publish(t, "", nowGroup("c6", "alice", "bob", "carol"))
	env.publish(t, "", historytest.Created(schemas.ConversationCreatedV1{ConversationID: "c7", Kind: schemas.KindDirect,
		CreatedBy: "alice", Members: []schemas.Member{member("alice"), member("bob")}, CreatedAt: time.Now()}))
	for _, s := range []*deliverytest.Sink{alice1, alice2, bob} {
		deliverytest.WaitFrames(t, s, "event c6 0", "event c7 0")
	}
	now := time.Now().UTC()
	env.write(t, schemas.TopicEphemeral, schemas.TypeTyping, "c6", "", schemas.TypingV1{ConversationID: "c6", UserID: "alice", At: now, ExpiresAt: now.Add(time.Minute)})
	env.write(t, schemas.TopicReceipts, schemas.TypeReceipt, "c7", "", schemas.ReceiptV1{ConversationID: "c7", UserID: "alice", Kind: schemas.ReceiptRead, Seq: 0, At: now})
	env.write(t, schemas.TopicReceipts, schemas.TypeReceipt, "c6", "", schemas.ReceiptV1{ConversationID: "c6", UserID: "bob", Kind: schemas.ReceiptRead, Seq: 0, At: now})
	// Last, a message to all: once carol has it, the signals are routed.
	env.publish(t, "", nowMsgs("c6", 1, 1)...)
	deliverytest.WaitFor(t, "carol's frames", func() bool { return len(carol.Frames()) >= 3 })
	signals := func(s *deliverytest.Sink) []string {
		var out []string
		for _, f := range s.Frames() {
			var v struct {
				Type           string `json:"type"`
				ConversationID string `json:"conversation_id"`
				UserID         string `json:"user_id"`
			}
			_ = json.Unmarshal(f, &v)
			if v.Type != "event" {
				out = append(out, fmt.Sprintf("%s %s %s", v.Type, v.ConversationID, v.UserID))
			}
		}
		return out
	}
	deliverytest.WaitFor(t, "bob's signals", func() bool { return len(signals(bob)) == 3 })

	// Barrier: markers, signals of the same keys (so on the same
	// partitions of chat.ephemeral and chat.receipts) that do reach each
	// socket. The router routes each partition in order into a node's
	// one-partition delivery topic, read in order, and each session
	// writes in order: once a socket has the markers of every partition
	// a wrong signal could have come by, that signal would be there.
	// Carol is not in c7, so a conversation of hers on c7's
	// partition carries her receipts marker there.
	c7p := onPartitionOf(t, "c7")
	env.publish(t, "", nowGroup(c7p, "carol"))
	deliverytest.WaitFor(t, "carol's conversation on c7's partition", func() bool { return slices.Contains(carol.Summaries(t), "event "+c7p+" 0") })
	now = time.Now().UTC()
	typing := func(user string) {
		env.write(t, schemas.TopicEphemeral, schemas.TypeTyping, "c6", "", schemas.TypingV1{ConversationID: "c6", UserID: user, At: now, ExpiresAt: now.Add(time.Minute)})
	}
	receipt := func(conv, user string) {
		env.write(t, schemas.TopicReceipts, schemas.TypeReceipt, conv, "", schemas.ReceiptV1{ConversationID: conv, UserID: user, Kind: schemas.ReceiptRead, Seq: 0, At: now})
	}
	typing("carol")        // to alice's devices and bob
	typing("bob")          // to alice's devices and carol
	receipt("c7", "bob")   // to alice's devices and bob
	receipt("c6", "alice") // to alice's devices
	receipt("c6", "carol") // to carol
	receipt(c7p, "carol")  // to carol
	markers := map[*deliverytest.Sink][]string{
		alice1: {"user_typing c6 carol", "user_typing c6 bob", "receipt c7 bob", "receipt c6 alice"},
		alice2: {"user_typing c6 carol", "user_typing c6 bob", "receipt c7 bob", "receipt c6 alice"},
		bob:    {"user_typing c6 carol", "receipt c7 bob"},
		carol:  {"user_typing c6 bob", "receipt c6 carol", "receipt " + c7p + " carol"},
	}
	for s, ms := range markers {
		deliverytest.WaitFor(t, fmt.Sprintf("markers %q", ms), func() bool {
			got := signals(s)
			for _, m := range ms {
				if !slices.Contains(got, m) {
					return false
				}
			}
			return true
		})
	}
	for name, c := range map[string]struct {
		s    *deliverytest.Sink
		want []string
	}{
		"alice on n1": {alice1, []string{"receipt c7 alice"}},
		"alice on n2": {alice2, []string{"receipt c7 alice"}},
		"bob":         {bob, []string{"user_typing c6 alice", "receipt c7 alice", "receipt c6 bob"}},
		"carol":       {carol, []string{"user_typing c6 alice"}},
	} {
		// Signals of different topics may interleave: compare as sets.
		want := slices.Sorted(slices.Values(append(slices.Clone(c.want), markers[c.s]...)))
		if got := slices.Sorted(slices.Values(signals(c.s))); !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
}

// TestRecipientsHeader: the header names the users it is for, as the
// hubs read it (delivery's test of its reading checks the other side).
func TestRecipientsHeader(t *testing.T) {
	t.Parallel()
	if h := recipientsHeader([]string{"a", "b.c@d", "e"}); h.Key != schemas.HeaderRecipients || string(h.Value) != "a,b.c@d,e" {
		t.Errorf("recipientsHeader = %s: %q", h.Key, h.Value)
	}
	if h := recipientsHeader(nil); len(h.Value) != 0 {
		t.Errorf("no recipients = %q", h.Value)
	}
}

// onPartitionOf returns a conversation ID that murmur2 places on the
// same partition of a conversation-keyed topic (3 partitions in these
// tests) as conv.
func onPartitionOf(t *testing.T, conv string) string {
	t.Helper()
	partitions := []int{0, 1, 2}
	var b kafka.Murmur2Balancer
	want := b.Balance(kafka.Message{Key: []byte(conv)}, partitions...)
	for i := range 1000 {
		id := fmt.Sprintf("%s-marker-%d", conv, i)
		if b.Balance(kafka.Message{Key: []byte(id)}, partitions...) == want {
			return id
		}
	}
	t.Fatalf("no conversation ID on %s's partition", conv)
	return ""
}
