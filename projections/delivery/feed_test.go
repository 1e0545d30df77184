// The shared suite: the same delivery cases against both feeds.

package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/delivery/deliverytest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// feedEnv is a running hub whose feed reads from a broker, and the means
// to put records where that feed reads them.
type feedEnv struct {
	store history.Store
	hub   *Hub
	// publish appends events as they reach the node; recipients are the
	// users of the node a router would name (the targeted feed reads
	// them; the broadcast feed finds the members itself).
	publish func(t *testing.T, recipients []string, evs ...history.Event)
	// reply appends a reply to a command this node appended.
	reply func(t *testing.T, typ, conv string, r any)
	// signal appends a signal (typing, receipt) to topic as it reaches
	// the node, naming recipients as publish does.
	signal func(t *testing.T, topic string, recipients []string, typ, conv string, v any)
}

// testFeed runs the delivery cases every feed must pass against the hubs
// newEnv starts. Events are timed now: a session is owed what was
// appended since it began.
func testFeed(t *testing.T, newEnv func(t *testing.T) *feedEnv) {
	t.Run("events reach the sockets of members only", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		// c0 existed before the hub started: its members come from history.
		store(t, env.store, group("c0", "bob", "carol"))
		sinks := map[string]*deliverytest.Sink{}
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			sinks[u] = &deliverytest.Sink{}
			run(t, env.hub, u, sinks[u])
		}
		c1 := nowMsg("c1", 1, "alice")
		env.publish(t, []string{"alice", "bob"}, nowGroup("c1", "alice", "bob"), c1)
		env.publish(t, []string{"bob", "carol"}, nowMsg("c0", 1, "bob"))
		env.publish(t, []string{"alice", "carol"}, nowGroup("c2", "alice", "carol"), nowMsg("c2", 1, "alice"), nowMsg("c2", 2, "carol"))
		env.publish(t, []string{"dave"}, nowGroup("c3", "dave")) // last: once dave has it, everything before was delivered

		deliverytest.WaitFrames(t, sinks["dave"], "event c3 0")
		deliverytest.WaitConversationFrames(t, sinks["alice"], "event c1 0", "event c1 1", "event c2 0", "event c2 1", "event c2 2")
		deliverytest.WaitConversationFrames(t, sinks["bob"], "event c1 0", "event c1 1", "event c0 1")
		deliverytest.WaitConversationFrames(t, sinks["carol"], "event c0 1", "event c2 0", "event c2 1", "event c2 2")
		// Order holds within a conversation only: c2's events may reach
		// alice before c1's message.
		if want := EncodeEvent("c1", 1, c1.Type, c1.ID, c1.Time, c1.Data); !slices.ContainsFunc(sinks["alice"].Frames(), func(f []byte) bool { return bytes.Equal(f, want) }) {
			t.Errorf("no frame of alice's is c1's message as written (%s); got %q", want, sinks["alice"].Frames())
		}
		if env.hub.Latest("c2") != 2 || env.hub.Latest("c0") != 1 || env.hub.Latest("nope") != 0 {
			t.Errorf("Latest = %d, %d, %d; want 2, 1, 0", env.hub.Latest("c2"), env.hub.Latest("c0"), env.hub.Latest("nope"))
		}
		c, err := env.hub.Conversation(context.Background(), "c1")
		if err != nil || !c.IsMember("alice") || !c.IsMember("bob") || c.IsMember("carol") {
			t.Errorf("Conversation(c1) = %+v, %v; want members alice and bob", c, err)
		}
		if _, err := env.hub.Conversation(context.Background(), "unknown"); !errors.Is(err, history.ErrNotFound) {
			t.Errorf("Conversation(unknown) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("signals reach the members they are for", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		sinks := map[string]*deliverytest.Sink{}
		for _, u := range []string{"alice", "bob", "carol"} {
			sinks[u] = &deliverytest.Sink{}
			run(t, env.hub, u, sinks[u])
		}
		env.publish(t, []string{"alice", "bob", "carol"}, nowGroup("c6", "alice", "bob", "carol"))
		env.publish(t, []string{"alice", "bob"}, historytest.Created(schemas.ConversationCreatedV1{ConversationID: "c7", Kind: schemas.KindDirect,
			CreatedBy: "alice", Members: []schemas.Member{member("alice"), member("bob")}, CreatedAt: time.Now()}))
		deliverytest.WaitFrames(t, sinks["alice"], "event c6 0", "event c7 0")
		deliverytest.WaitFrames(t, sinks["bob"], "event c6 0", "event c7 0")
		deliverytest.WaitFrames(t, sinks["carol"], "event c6 0")

		now := time.Now().UTC()
		// Typing goes to the other members; a receipt to its user's
		// devices and, in a direct conversation, the other member's.
		env.signal(t, schemas.TopicEphemeral, []string{"bob", "carol"}, schemas.TypeTyping, "c6",
			schemas.TypingV1{ConversationID: "c6", UserID: "alice", At: now, ExpiresAt: now.Add(time.Minute)})
		env.signal(t, schemas.TopicReceipts, []string{"alice", "bob"}, schemas.TypeReceipt, "c7",
			schemas.ReceiptV1{ConversationID: "c7", UserID: "alice", Kind: schemas.ReceiptRead, Seq: 0, At: now})
		env.signal(t, schemas.TopicReceipts, []string{"bob"}, schemas.TypeReceipt, "c6",
			schemas.ReceiptV1{ConversationID: "c6", UserID: "bob", Kind: schemas.ReceiptRead, Seq: 0, At: now})
		want := map[string][]string{
			"alice": {"receipt c7 alice"},
			"bob":   {"receipt c6 bob", "receipt c7 alice", "user_typing c6 alice"},
			"carol": {"user_typing c6 alice"},
		}
		for u, w := range want {
			deliverytest.WaitFor(t, u+"'s signals", func() bool { return len(signals(sinks[u])) >= len(w) })
		}
		for u, w := range want {
			if got := signals(sinks[u]); !slices.Equal(got, w) {
				t.Errorf("%s got signals %q, want %q", u, got, w)
			}
		}
	})

	t.Run("an event answers the command that produced it", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		created := mustAwait(t, env.hub, "alice", "c1", "create")
		sent := mustAwait(t, env.hub, "bob", "c1", "cmd-1")
		other := mustAwait(t, env.hub, "alice", "c1", "cmd-1")   // same command id, another user
		elsewhere := mustAwait(t, env.hub, "bob", "c2", "cmd-1") // same user and command id, another conversation
		m := nowMsg("c1", 1, "bob")
		env.publish(t, []string{"alice", "bob"}, nowGroup("c1", "alice", "bob"), m)
		if o := await(t, created); o.ConversationID != "c1" || o.Seq != 0 || o.Event == nil || o.Event.Type != schemas.TypeConversationCreated {
			t.Errorf("creation outcome %+v", o)
		}
		o := await(t, sent)
		if o.ConversationID != "c1" || o.Seq != 1 || o.Duplicate || o.Code != "" || o.Event == nil ||
			!bytes.Equal(o.Event.Data, m.Data) || o.Event.ID != m.ID || !o.Event.Time.Equal(m.Time) {
			t.Errorf("send outcome %+v, want seq 1 with the event", o)
		}
		select {
		case o := <-other:
			t.Errorf("alice's command cmd-1 was answered by bob's event: %+v", o)
		case o := <-elsewhere:
			t.Errorf("bob's command cmd-1 in c2 was answered by his event in c1: %+v", o)
		default:
		}
	})

	t.Run("replies answer commands: a rejection, a duplicate", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		rejected := mustAwait(t, env.hub, "carol", "c1", "x1")
		env.reply(t, schemas.TypeCommandRejected, "c1", schemas.CommandRejectedV1{CommandID: "x1", CommandType: schemas.TypeSendMessage,
			UserID: "carol", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "not a member"})
		if o := await(t, rejected); o.Code != schemas.CodeNotMember || o.Reason != "not a member" || o.ConversationID != "c1" || o.Event != nil {
			t.Errorf("outcome %+v, want a not_member rejection", o)
		}
		dup := mustAwait(t, env.hub, "alice", "c1", "m7")
		env.reply(t, schemas.TypeCommandDuplicate, "c1", schemas.CommandDuplicateV1{CommandID: "m7", CommandType: schemas.TypeSendMessage,
			UserID: "alice", ConversationID: "c1", Seq: 7})
		if o := await(t, dup); !o.Duplicate || o.Seq != 7 || o.Code != "" || o.ConversationID != "c1" {
			t.Errorf("outcome %+v, want a duplicate of seq 7", o)
		}
	})

	t.Run("the same command awaited twice is answered twice, in order", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		first := mustAwait(t, env.hub, "dave", "c1", "d1")
		second := mustAwait(t, env.hub, "dave", "c1", "d1")
		third, cancel := env.hub.Await("dave", "c1", "d1")
		cancel() // stopped waiting: answers skip it
		env.reply(t, schemas.TypeCommandRejected, "c1", schemas.CommandRejectedV1{CommandID: "d1", CommandType: schemas.TypeSendMessage,
			UserID: "dave", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "no"})
		env.reply(t, schemas.TypeCommandDuplicate, "c1", schemas.CommandDuplicateV1{CommandID: "d1", CommandType: schemas.TypeSendMessage,
			UserID: "dave", ConversationID: "c1", Seq: 3})
		if o := await(t, first); o.Code != schemas.CodeNotMember {
			t.Errorf("first outcome %+v, want the rejection", o)
		}
		if o := await(t, second); !o.Duplicate || o.Seq != 3 {
			t.Errorf("second outcome %+v, want the duplicate", o)
		}
		select {
		case o := <-third:
			t.Errorf("a cancelled waiter got %+v", o)
		default:
		}
	})
}

func TestBroadcastFeed(t *testing.T) {
	t.Parallel()
	testFeed(t, func(t *testing.T) *feedEnv {
		k := startBroker(t)
		env := &feedEnv{store: openStore(t)}
		env.hub = NewHub(Config{Kafka: k.Cluster, History: env.store, Topology: k.Topology(kafkalog.Topology{})})
		events := newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicEvents))
		replies := newWriter(t, k.Cluster, k.Names.Topic(schemas.TopicReplies))
		env.publish = func(t *testing.T, _ []string, evs ...history.Event) {
			t.Helper()
			write(t, events, records(evs)...)
		}
		env.reply = func(t *testing.T, typ, conv string, r any) {
			t.Helper()
			write(t, replies, replyRecord(t, typ, conv, r))
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

func TestTargetedFeed(t *testing.T) {
	t.Parallel()
	testFeed(t, func(t *testing.T) *feedEnv {
		k := startBroker(t)
		env := &feedEnv{store: openStore(t)}
		env.hub = NewHub(Config{Kafka: k.Cluster, History: env.store, Node: "n1", Topology: k.Topology(kafkalog.Topology{Partitions: 1}),
			GapWait: 2 * time.Second, RegistrationSettle: time.Millisecond})
		runHub(t, env.hub) // creates the node's delivery topic
		// The router's part: copies naming the node's users they are for.
		own := newWriter(t, k.Cluster, k.Names.Delivery("n1"))
		env.publish = func(t *testing.T, recipients []string, evs ...history.Event) {
			t.Helper()
			msgs := records(evs)
			for i := range msgs {
				msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: schemas.HeaderRecipients, Value: []byte(strings.Join(recipients, ","))})
			}
			write(t, own, msgs...)
		}
		env.reply = func(t *testing.T, typ, conv string, r any) {
			t.Helper()
			m := replyRecord(t, typ, conv, r)
			m.Headers = append(m.Headers, kafka.Header{Key: schemas.HeaderRecipients})
			write(t, own, m)
		}
		env.signal = func(t *testing.T, _ string, recipients []string, typ, conv string, v any) {
			t.Helper()
			m := replyRecord(t, typ, conv, v)
			m.Headers = append(m.Headers, kafka.Header{Key: schemas.HeaderRecipients, Value: []byte(strings.Join(recipients, ","))})
			write(t, own, m)
		}
		return env
	})
}

// startBroker returns the test's cluster (see kafkatest) with every
// topic, of one partition: the suite relies on the order across
// conversations.
func startBroker(t *testing.T) kafkatest.Cluster {
	t.Helper()
	return kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
}

// runHub runs h until the test ends, after waiting for it to be ready.
func runHub(t *testing.T, h *Hub) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("hub Run did not return")
		}
	})
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatalf("hub Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("hub not ready")
	}
}

func newWriter(t *testing.T, cluster *kafkalog.Cluster, topic string) *kafka.Writer {
	w := kafkalog.NewWriter(cluster, topic)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func write(t *testing.T, w *kafka.Writer, msgs ...kafka.Message) {
	t.Helper()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func records(evs []history.Event) []kafka.Message {
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = kafkalog.Encode(attrsOf(ev), ev.Data)
	}
	return msgs
}

// signals describes the signal frames a sink holds, sorted: "receipt c7
// alice", "user_typing c6 alice".
func signals(s *deliverytest.Sink) []string {
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
	slices.Sort(out)
	return out
}

// replyRecord is a record of a reply or a signal, v as its value.
func replyRecord(t *testing.T, typ, conv string, r any) kafka.Message {
	t.Helper()
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return kafkalog.Encode(kafkalog.NewAttributes(typ, conv, time.Now()), v)
}

func mustAwait(t *testing.T, h *Hub, user, conv, cmd string) <-chan Outcome {
	t.Helper()
	ch, cancel := h.Await(user, conv, cmd)
	t.Cleanup(cancel)
	return ch
}

func await(t *testing.T, ch <-chan Outcome) Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome")
		return Outcome{}
	}
}

func nowGroup(conv string, users ...string) history.Event {
	ms := make([]schemas.Member, len(users))
	for i, u := range users {
		ms[i] = member(u)
	}
	return historytest.Group(conv, time.Now(), ms...)
}

func nowMsg(conv string, seq uint64, sender string) history.Event {
	return historytest.Message(conv, seq, sender, "hi", time.Now())
}

// TestReadAll: a partition reader that fails ends the hub's Run at once,
// stopping the other readers, rather than leaving the node deaf to that
// partition until it shuts down; a done context ends it without error.
func TestReadAll(t *testing.T) {
	t.Parallel()
	offsets := map[string][]kafka.PartitionOffsets{
		schemas.TopicEvents:  {{Partition: 0}, {Partition: 1}, {Partition: 2}},
		schemas.TopicReplies: {{Partition: 0}},
	}
	broken := errors.New("partition gone")
	t.Run("a failed reader stops the others and is returned", func(t *testing.T) {
		t.Parallel()
		h := newTestHub(t, openStore(t), nil)
		var stopped atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- h.readAll(context.Background(), offsets, func(ctx context.Context, topic string, po kafka.PartitionOffsets) error {
				if topic == schemas.TopicEvents && po.Partition == 1 {
					<-h.Ready()
					return broken
				}
				<-ctx.Done()
				stopped.Add(1)
				return nil
			})
		}()
		select {
		case err := <-done:
			if !errors.Is(err, broken) {
				t.Errorf("readAll = %v, want the reader's error", err)
			}
			if n := stopped.Load(); n != 3 {
				t.Errorf("%d other readers stopped before readAll returned, want 3", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("readAll did not return when a reader failed")
		}
	})
	t.Run("a done context ends every reader without error", func(t *testing.T) {
		t.Parallel()
		h := newTestHub(t, openStore(t), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- h.readAll(ctx, offsets, func(ctx context.Context, _ string, _ kafka.PartitionOffsets) error {
				<-ctx.Done()
				return nil
			})
		}()
		<-h.Ready()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("readAll = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("readAll did not return when ctx was done")
		}
	})
}
