package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// eventFrame is the "event" frame as a struct, for json.Marshal to give
// the reference encoding.
type eventFrame struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	Seq            uint64          `json:"seq"`
	EventType      string          `json:"event_type"`
	EventID        string          `json:"event_id"`
	Time           time.Time       `json:"time"`
	Data           json.RawMessage `json:"data"`
}

// checkEncodeEvent checks EncodeEvent against json.Marshal of the
// equivalent struct: both decode to the same value, and where the
// reference's HTML escaping (of <, > and &) cannot differ, to the same
// bytes.
func checkEncodeEvent(t *testing.T, conv string, seq uint64, typ, id string, at time.Time, data []byte) {
	t.Helper()
	got := EncodeEvent(conv, seq, typ, id, at, data)
	if !json.Valid(got) {
		t.Fatalf("EncodeEvent(%q, %d, %q, %q, %v, %s) is not valid JSON: %s", conv, seq, typ, id, at, data, got)
	}
	ref := eventFrame{"event", conv, seq, typ, id, at.UTC(), data}
	want, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	var g, w eventFrame
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decoding %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	var gd, wd any
	if err := json.Unmarshal(g.Data, &gd); err != nil {
		t.Fatalf("data %s: %v", g.Data, err)
	}
	_ = json.Unmarshal(w.Data, &wd)
	if !reflect.DeepEqual(gd, wd) {
		t.Errorf("data decodes to %v, want %v", gd, wd)
	}
	g.Data, w.Data = nil, nil // json.Marshal escapes <, > and & inside raw values too
	if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", g.Time, w.Time)
	}
	g.Time, w.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("EncodeEvent decodes to %+v, json.Marshal to %+v", g, w)
	}
	var gm, wm map[string]any
	_ = json.Unmarshal(got, &gm)
	_ = json.Unmarshal(want, &wm)
	if !reflect.DeepEqual(gm, wm) {
		t.Errorf("EncodeEvent has fields %v, json.Marshal %v", gm, wm)
	}
	if !strings.ContainsAny(conv+typ+id+string(data), "<>&") && bytes.Equal(data, compact(t, data)) && !bytes.Equal(got, want) {
		t.Errorf("EncodeEvent:\n got %s\nwant %s", got, want)
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compacting %q: %v", b, err)
	}
	return buf.Bytes()
}

func TestEncodeEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))
	data := []byte(`{"conversation_id":"c1","seq":7,"body":"say \"hi\" \u2028 é"}`)
	for _, tc := range []struct{ name, s string }{
		{"plain ascii", "d_0123abc"},
		{"empty", ""},
		{"quotes", `say "hi"`},
		{"backslashes", `C:\path\to\"x"`},
		{"unicode", "héllo 世界 🎉"},
		{"control characters", "a\x00b\x01c\nd\te\x1ff\x7f"},
		{"line and paragraph separators", "a\u2028b\u2029c"},
		{"html", "</script><b>&amp;"},
		{"html and unicode", "<é>"},
		{"invalid utf-8", "a\xffb\xc3(c\xed\xa0\x80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkEncodeEvent(t, tc.s, 7, tc.s, tc.s, at, data)
		})
	}
	t.Run("extreme seqs and a zero time", func(t *testing.T) {
		t.Parallel()
		checkEncodeEvent(t, "c", 0, "t", "i", time.Time{}, []byte(`null`))
		checkEncodeEvent(t, "c", 1<<64-1, "t", "i", time.Unix(0, 1).UTC(), []byte(`[1,2,3]`))
	})
	t.Run("data is embedded as it is", func(t *testing.T) {
		t.Parallel()
		d := []byte(`{ "a" : [ 1, 2 ] }`)
		if got := EncodeEvent("c", 1, "t", "i", at, d); !bytes.HasSuffix(got, append([]byte(`"data":`), append(d, '}')...)) {
			t.Errorf("frame %s does not end with the data as given", got)
		}
	})
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add("d_1", uint64(1), schemas.TypeMessageSent, "id", int64(1741964966535897932), []byte(`{"body":"x"}`))
	f.Add(`q"\`, uint64(0), "\x00\n\u2028", "\xff", int64(0), []byte(`"s"`))
	f.Add("世界<&>", uint64(1<<63), "", "🎉", int64(-1), []byte(`not json`))
	f.Fuzz(func(t *testing.T, conv string, seq uint64, typ, id string, nanos int64, data []byte) {
		if !json.Valid(data) {
			data = []byte(`{}`) // EncodeEvent embeds values that chat.events holds: JSON
		}
		checkEncodeEvent(t, conv, seq, typ, id, time.Unix(0, nanos), data)
		if utf8.ValidString(conv) {
			var fr eventFrame
			_ = json.Unmarshal(EncodeEvent(conv, seq, typ, id, time.Unix(0, nanos), data), &fr)
			if fr.ConversationID != conv {
				t.Errorf("conversation id %q came back as %q", conv, fr.ConversationID)
			}
		}
	})
}

// The hub against a real broker.

type hubEnv struct {
	brokers []string
	store   history.Store
	hub     *Hub
	events  *kafka.Writer
	replies *kafka.Writer
}

func startHub(t *testing.T) *hubEnv {
	t.Helper()
	// One partition: the test relies on the order across conversations.
	k := kafkatest.Start(t, kafkatest.Prefixed(), kafkatest.Topics(kafkalog.Topology{Partitions: 1}))
	brokers := k.Brokers
	env := &hubEnv{brokers: brokers, store: openStore(t)}
	env.hub = NewHub(Config{Brokers: brokers, History: env.store, Topology: k.Topology(kafkalog.Topology{})})
	env.events = &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: k.Names.Topic(schemas.TopicEvents), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	env.replies = &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: k.Names.Topic(schemas.TopicReplies), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.hub.Run(rctx) }()
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
		_ = env.events.Close()
		_ = env.replies.Close()
	})
	select {
	case <-env.hub.Ready():
	case err := <-done:
		t.Fatalf("hub Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("hub not ready")
	}
	return env
}

func (e *hubEnv) publish(t *testing.T, evs ...history.Event) {
	t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = kafkalog.Encode(attrsOf(ev), ev.Data)
	}
	if err := e.events.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func (e *hubEnv) reply(t *testing.T, typ, conv string, r any) {
	t.Helper()
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.replies.WriteMessages(context.Background(), kafkalog.Encode(kafkalog.NewAttributes(typ, conv, time.Now()), v)); err != nil {
		t.Fatal(err)
	}
}

func TestHubDeliversToMembersOnly(t *testing.T) {
	t.Parallel()
	env := startHub(t)
	// c0 existed before the hub started: its members come from history.
	store(t, env.store, group("c0", "bob", "carol"))
	sinks := map[string]*fakeSink{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		sinks[u] = &fakeSink{}
		run(t, env.hub, u, sinks[u])
	}
	env.publish(t, group("c1", "alice", "bob"), msg("c1", 1))
	env.publish(t, msg("c0", 1))
	env.publish(t, group("c2", "alice", "carol"), msg("c2", 1), msg("c2", 2))
	env.publish(t, group("c3", "dave")) // last: once dave has it, everything before was routed

	waitFrames(t, sinks["dave"], "event c3 0")
	waitFrames(t, sinks["alice"], "event c1 0", "event c1 1", "event c2 0", "event c2 1", "event c2 2")
	waitFrames(t, sinks["bob"], "event c1 0", "event c1 1", "event c0 1")
	waitFrames(t, sinks["carol"], "event c0 1", "event c2 0", "event c2 1", "event c2 2")
	if got, want := sinks["alice"].got()[1], msg("c1", 1); !bytes.Equal(got, EncodeEvent("c1", 1, want.Type, want.ID, want.Time, want.Data)) {
		t.Errorf("frame %s is not the event as written", got)
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

func TestHubAwait(t *testing.T) {
	t.Parallel()
	env := startHub(t)
	h := env.hub
	mustAwait := func(user, cmd string) (<-chan Outcome, func()) {
		t.Helper()
		ch, cancel, err := h.Await(user, cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		return ch, cancel
	}

	t.Run("an event answers the command that produced it", func(t *testing.T) {
		created, _ := mustAwait("alice", "create")
		sent, _ := mustAwait("bob", "cmd-1")
		other, _ := mustAwait("alice", "cmd-1") // same command id, another user
		m := historytest.Message("c1", 1, "bob", "hi", historytest.MessageTime(1))
		env.publish(t, group("c1", "alice", "bob"), m)
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
		default:
		}
	})
	t.Run("a rejection answers the command", func(t *testing.T) {
		ch, _ := mustAwait("carol", "x1")
		env.reply(t, schemas.TypeCommandRejected, "c1", schemas.CommandRejectedV1{CommandID: "x1", CommandType: schemas.TypeSendMessage,
			UserID: "carol", ConversationID: "c1", Code: schemas.CodeNotMember, Reason: "not a member"})
		if o := await(t, ch); o.Code != schemas.CodeNotMember || o.Reason != "not a member" || o.ConversationID != "c1" || o.Event != nil {
			t.Errorf("outcome %+v, want a not_member rejection", o)
		}
	})
	t.Run("a duplicate reply answers the command with the original seq", func(t *testing.T) {
		ch, _ := mustAwait("alice", "m7")
		env.reply(t, schemas.TypeCommandDuplicate, "c1", schemas.CommandDuplicateV1{CommandID: "m7", CommandType: schemas.TypeSendMessage,
			UserID: "alice", ConversationID: "c1", Seq: 7})
		if o := await(t, ch); !o.Duplicate || o.Seq != 7 || o.Code != "" || o.ConversationID != "c1" {
			t.Errorf("outcome %+v, want a duplicate of seq 7", o)
		}
	})
	t.Run("the same command awaited twice is busy until cancelled", func(t *testing.T) {
		_, cancel := mustAwait("dave", "d1")
		if _, _, err := h.Await("dave", "d1"); !errors.Is(err, ErrBusy) {
			t.Errorf("second Await = %v, want ErrBusy", err)
		}
		cancel()
		ch, _ := mustAwait("dave", "d1")
		env.reply(t, schemas.TypeCommandDuplicate, "c1", schemas.CommandDuplicateV1{CommandID: "d1", CommandType: schemas.TypeSendMessage,
			UserID: "dave", ConversationID: "c1", Seq: 3})
		if o := await(t, ch); o.Seq != 3 {
			t.Errorf("outcome after re-awaiting %+v", o)
		}
	})
}

// Fan-out benchmarks: the time for the hub to push one event to the
// queues of n sessions of members and for every session to write it to a
// no-op sink.

type countingSink struct{ wg *sync.WaitGroup }

func (s countingSink) Write(context.Context, []byte) error {
	s.wg.Done()
	return nil
}

func benchmarkFanout(b *testing.B, n int) {
	h := newTestHub(b, openStore(b), nil)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() { cancel(); running.Wait() }()
	members := make([]schemas.Member, n)
	for i := range members {
		members[i] = schemas.Member{UserID: "u" + strconv.Itoa(i), Role: schemas.RoleMember}
		s := h.NewSession(members[i].UserID)
		running.Go(func() { _ = s.Run(ctx, countingSink{&wg}) })
	}
	wg.Add(n)
	live(h, historytest.Group("c", historytest.Base, members...))
	wg.Wait()

	value, _ := json.Marshal(schemas.MessageSentV1{ConversationID: "c", Seq: 1, SenderID: "u0",
		Body: strings.Repeat("x", 200), CommandID: "cmd", SentAt: historytest.Base})
	attrs := schemas.Attributes{ID: "evt", Type: schemas.TypeMessageSent, Source: schemas.Source, Subject: "c",
		Time: historytest.Base, HasSeq: true, CommandOffset: -1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		attrs.Seq = uint64(i + 1)
		wg.Add(n)
		h.event(ctx, attrs, value)
		wg.Wait()
	}
	b.StopTimer()
	if got := h.Latest("c"); got != uint64(b.N) {
		b.Fatalf("latest %d, want %d", got, b.N)
	}
}

func BenchmarkFanout_1Sub(b *testing.B)      { benchmarkFanout(b, 1) }
func BenchmarkFanout_100Subs(b *testing.B)   { benchmarkFanout(b, 100) }
func BenchmarkFanout_10000Subs(b *testing.B) { benchmarkFanout(b, 10000) }
