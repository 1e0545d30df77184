package decider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

var (
	testNow   = time.Date(2025, time.June, 1, 12, 0, 0, 123456789, time.UTC)
	validator = sync.OnceValues(schemacheck.New)
)

// cmd is a command record: its attributes and JSON value.
type cmd struct {
	attrs schemas.Attributes
	value []byte
}

func command(typ, conversation string, v any) cmd {
	value, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	a := kafkalog.NewAttributes(typ, conversation, testNow)
	a.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	return cmd{attrs: a, value: value}
}

func createDirect(user, other, commandID string) cmd {
	id := schemas.DirectConversationID(user, other)
	return command(schemas.TypeCreateConversation, id, schemas.CreateConversationV1{
		CommandID: commandID, UserID: user, ConversationID: id, Kind: schemas.KindDirect,
		Members: []string{other}, IssuedAt: testNow,
	})
}

func createGroup(user, commandID, title string, members ...string) cmd {
	id := schemas.GroupConversationID(user, commandID)
	return command(schemas.TypeCreateConversation, id, schemas.CreateConversationV1{
		CommandID: commandID, UserID: user, ConversationID: id, Kind: schemas.KindGroup,
		Title: title, Members: members, IssuedAt: testNow,
	})
}

func send(user, conversation, commandID, body string) cmd {
	return command(schemas.TypeSendMessage, conversation, schemas.SendMessageV1{
		CommandID: commandID, UserID: user, ConversationID: conversation, Body: body, IssuedAt: testNow,
	})
}

// with returns c with its decoded value changed by f and re-encoded; for
// commands that the helpers above would build correctly.
func with[T any](c cmd, f func(*T)) cmd {
	var v T
	if err := json.Unmarshal(c.value, &v); err != nil {
		panic(err)
	}
	f(&v)
	value, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.value = value
	return c
}

// decider decides commands on a State with consecutive offsets and checks
// every output against its JSON Schema and the CloudEvents mapping.
type decider struct {
	t      testing.TB
	st     *State
	offset int64
}

func newDecider(t testing.TB, l Limits) *decider {
	return &decider{t: t, st: newTestState(t, l, 10_000)}
}

// newTestState returns an empty State over a store in memory, keeping at
// most capacity conversations in memory.
func newTestState(t testing.TB, l Limits, capacity int) *State {
	t.Helper()
	store, err := openMemStore()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	ps, err := store.partition(0)
	if err != nil {
		t.Fatal(err)
	}
	return newState(l, ps, capacity, nil)
}

func (d *decider) decide(c cmd) (Decision, error) {
	d.t.Helper()
	off := d.offset
	d.offset++
	dec, err := d.st.Decide(c.attrs, c.value, off, testNow)
	if err != nil {
		if dec.Event != nil || dec.Reply != nil {
			d.t.Errorf("Decide returned an output and the error %v", err)
		}
		return dec, err
	}
	if (dec.Event == nil) == (dec.Reply == nil) {
		d.t.Fatalf("Decide must set exactly one of Event and Reply: %+v", dec)
	}
	out := dec.Event
	if out == nil {
		out = dec.Reply
	}
	checkOutput(d.t, c, out)
	if dec.Event != nil {
		if !out.Attrs.HasSeq {
			d.t.Errorf("event %s has no seq", out.Attrs.Type)
		}
		if out.Attrs.CommandOffset != off {
			d.t.Errorf("event command offset = %d, want %d", out.Attrs.CommandOffset, off)
		}
	} else if out.Attrs.HasSeq || out.Attrs.CommandOffset != -1 {
		d.t.Errorf("reply carries seq %v/%d or command offset %d", out.Attrs.HasSeq, out.Attrs.Seq, out.Attrs.CommandOffset)
	}
	return dec, nil
}

// outcome decides c and says what came out.
func (d *decider) outcome(c cmd) outcome {
	d.t.Helper()
	dec, err := d.decide(c)
	return outcomeOf(d.t, dec, err)
}

// mustEvent decides c and fails unless it produced an event.
func (d *decider) mustEvent(c cmd) *Output {
	d.t.Helper()
	dec, err := d.decide(c)
	if err != nil {
		d.t.Fatalf("deciding %s: %v", c.attrs.Type, err)
	}
	if dec.Event == nil {
		d.t.Fatalf("deciding %s: got reply %s %s, want an event", c.attrs.Type, dec.Reply.Attrs.Type, dec.Reply.Value)
	}
	return dec.Event
}

func checkOutput(t testing.TB, c cmd, out *Output) {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(out.Attrs.Type, out.Value); err != nil {
		t.Errorf("output does not match its schema: %v\n%s", err, out.Value)
	}
	if out.Attrs.Subject != c.attrs.Subject {
		t.Errorf("output subject = %q, want the command's %q", out.Attrs.Subject, c.attrs.Subject)
	}
	if out.Attrs.TraceParent != c.attrs.TraceParent {
		t.Errorf("output traceparent = %q, want the command's %q", out.Attrs.TraceParent, c.attrs.TraceParent)
	}
	if out.Attrs.ID == "" || out.Attrs.ID == c.attrs.ID || out.Attrs.Source != schemas.Source || !out.Attrs.Time.Equal(testNow) {
		t.Errorf("output attributes id=%q source=%q time=%v, want a fresh id, source %q and the decision time",
			out.Attrs.ID, out.Attrs.Source, out.Attrs.Time, schemas.Source)
	}
	back, err := schemas.ParseAttributes(out.Attrs.Headers())
	if err != nil {
		t.Errorf("output headers do not parse back: %v", err)
	} else if back.Seq != out.Attrs.Seq || back.HasSeq != out.Attrs.HasSeq || back.CommandOffset != out.Attrs.CommandOffset {
		t.Errorf("headers round trip: got %+v, want %+v", back, out.Attrs)
	}
}

// outcome is what a decision says, for table assertions.
type outcome struct {
	event  string // ce_type of the event, or ""
	seq    uint64 // seq of the event, or of the duplicate reply
	reply  string // ce_type of the reply, or ""
	code   string // rejection code
	deadLt bool   // the command was not a valid command
}

func outcomeOf(t testing.TB, dec Decision, err error) outcome {
	t.Helper()
	switch {
	case err != nil:
		return outcome{deadLt: true}
	case dec.Event != nil:
		return outcome{event: dec.Event.Attrs.Type, seq: dec.Event.Attrs.Seq}
	}
	v, derr := schemas.Decode(dec.Reply.Attrs.Type, dec.Reply.Value)
	if derr != nil {
		t.Fatalf("reply does not decode: %v", derr)
	}
	switch r := v.(type) {
	case *schemas.CommandRejectedV1:
		return outcome{reply: dec.Reply.Attrs.Type, code: r.Code}
	case *schemas.CommandDuplicateV1:
		return outcome{reply: dec.Reply.Attrs.Type, seq: r.Seq}
	}
	t.Fatalf("unexpected reply %T", v)
	return outcome{}
}

var (
	created  = func(seq uint64) outcome { return outcome{event: schemas.TypeConversationCreated, seq: seq} }
	sent     = func(seq uint64) outcome { return outcome{event: schemas.TypeMessageSentV2, seq: seq} }
	rejected = func(code string) outcome { return outcome{reply: schemas.TypeCommandRejected, code: code} }
	dup      = func(seq uint64) outcome { return outcome{reply: schemas.TypeCommandDuplicate, seq: seq} }
	deadLtr  = outcome{deadLt: true}
)

func TestDecide(t *testing.T) {
	t.Parallel()
	ab := schemas.DirectConversationID("alice", "bob")
	grp := schemas.GroupConversationID("alice", "g1")
	limits := Limits{Limits: conversation.Limits{MaxMembers: 4, MaxBodyBytes: 32}}
	tests := []struct {
		name   string
		limits Limits
		given  []cmd
		when   cmd
		want   outcome
	}{
		// Direct conversations.
		{name: "a direct conversation is created at seq 0",
			when: createDirect("alice", "bob", "c1"), want: created(0)},
		{name: "a direct conversation whose id does not match the pair is rejected",
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) { c.Members = []string{"carol"} }),
			want: rejected(schemas.CodeInvalidCommand)},
		{name: "a direct conversation with no other member is rejected",
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) { c.Members = []string{"alice"} }),
			want: rejected(schemas.CodeInvalidCommand)},
		{name: "a direct conversation with two other members is rejected",
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) { c.Members = []string{"bob", "carol"} }),
			want: rejected(schemas.CodeInvalidCommand)},
		{name: "a direct conversation listing the other member twice and the creator is accepted",
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) { c.Members = []string{"bob", "alice", "bob"} }),
			want: created(0)},
		{name: "a direct conversation with a title is rejected",
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) { c.Title = "hi" }),
			want: rejected(schemas.CodeInvalidCommand)},
		{name: "creating a direct conversation again by its creator is a duplicate of seq 0",
			given: []cmd{createDirect("alice", "bob", "c1"), send("alice", ab, "m1", "hi")},
			when:  createDirect("alice", "bob", "c2"), want: dup(0)},
		{name: "creating a direct conversation again by the other member is a duplicate of seq 0",
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  createDirect("bob", "alice", "c1"), want: dup(0)},
		{name: "a third user creating an existing direct conversation is rejected as conversation_exists",
			given: []cmd{createDirect("alice", "bob", "c1")},
			when: with(createDirect("alice", "bob", "c1"), func(c *schemas.CreateConversationV1) {
				c.UserID, c.Members = "carol", []string{"alice"}
			}),
			want: rejected(schemas.CodeConversationExists)},

		// Groups.
		{name: "a group whose id derives from the creator and command id is created",
			when: createGroup("alice", "g1", "Team", "bob", "carol"), want: created(0)},
		{name: "a group whose id does not derive from the creator and command id is rejected",
			when: with(createGroup("alice", "g1", "Team", "bob"), func(c *schemas.CreateConversationV1) { c.CommandID = "g2" }),
			want: rejected(schemas.CodeInvalidCommand)},
		{name: "a group with only its creator is created",
			when: createGroup("alice", "g1", "Me"), want: created(0)},
		{name: "a group title of 200 two-byte runes is accepted",
			when: createGroup("alice", "g1", strings.Repeat("é", 200), "bob"), want: created(0)},
		{name: "a group title of 201 runes is rejected",
			when: createGroup("alice", "g1", strings.Repeat("a", 201), "bob"), want: rejected(schemas.CodeInvalidCommand)},
		{name: "a group without a title is rejected",
			when: createGroup("alice", "g1", "", "bob"), want: rejected(schemas.CodeInvalidCommand)},
		{name: "a group at the member limit is created", limits: limits,
			when: createGroup("alice", "g1", "T", "bob", "carol", "dave"), want: created(0)},
		{name: "a group over the member limit is rejected", limits: limits,
			when: createGroup("alice", "g1", "T", "bob", "carol", "dave", "erin"), want: rejected(schemas.CodeLimitExceeded)},
		{name: "duplicated members count once towards the member limit", limits: limits,
			when: createGroup("alice", "g1", "T", "bob", "carol", "dave", "bob", "alice"), want: created(0)},
		{name: "a retried group creation is a duplicate of seq 0",
			given: []cmd{createGroup("alice", "g1", "Team", "bob")},
			when:  createGroup("alice", "g1", "Team", "bob"), want: dup(0)},
		{name: "another user creating an existing group is rejected as conversation_exists",
			given: []cmd{createGroup("alice", "g1", "Team", "bob")},
			when: with(createGroup("alice", "g1", "Team", "bob"), func(c *schemas.CreateConversationV1) {
				c.UserID, c.Members = "bob", []string{"alice"}
			}),
			want: rejected(schemas.CodeConversationExists)},
		{name: "a member creating an existing group with another command id is rejected as conversation_exists",
			given: []cmd{createGroup("alice", "g1", "Team", "bob")},
			when: with(createGroup("alice", "g1", "Team", "bob"), func(c *schemas.CreateConversationV1) {
				c.CommandID = "g9"
			}),
			want: rejected(schemas.CodeConversationExists)},

		// Sends.
		{name: "a send to an unknown conversation is rejected as conversation_not_found",
			when: send("alice", ab, "m1", "hi"), want: rejected(schemas.CodeConversationNotFound)},
		{name: "a send by a non-member is rejected as not_member",
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  send("carol", ab, "m1", "hi"), want: rejected(schemas.CodeNotMember)},
		{name: "a send with an empty body is rejected as invalid_command",
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  send("alice", ab, "m1", ""), want: rejected(schemas.CodeInvalidCommand)},
		{name: "a send with a body of the byte limit is accepted", limits: limits,
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  send("alice", ab, "m1", strings.Repeat("€", 10)+"xx"), want: sent(1)},
		{name: "a send with a body over the byte limit is rejected as invalid_command", limits: limits,
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  send("alice", ab, "m1", strings.Repeat("x", 33)), want: rejected(schemas.CodeInvalidCommand)},
		{name: "a retried send is a duplicate of the original seq",
			given: []cmd{createGroup("alice", "g1", "T", "bob"), send("alice", grp, "m1", "one"), send("bob", grp, "m2", "two")},
			when:  send("alice", grp, "m1", "one"), want: dup(1)},
		{name: "a retried send with another body is still a duplicate",
			given: []cmd{createGroup("alice", "g1", "T", "bob"), send("alice", grp, "m1", "one")},
			when:  send("alice", grp, "m1", ""), want: dup(1)},
		{name: "the same command id from another user is not a duplicate",
			given: []cmd{createGroup("alice", "g1", "T", "bob"), send("alice", grp, "m1", "one")},
			when:  send("bob", grp, "m1", "one"), want: sent(2)},
		{name: "a rejected send takes no seq",
			given: []cmd{createDirect("alice", "bob", "c1"), send("alice", ab, "m1", ""), send("carol", ab, "m2", "x")},
			when:  send("alice", ab, "m3", "hi"), want: sent(1)},
		{name: "a rejected send's command id can be used again",
			given: []cmd{createDirect("alice", "bob", "c1"), send("alice", ab, "m1", "")},
			when:  send("alice", ab, "m1", "now with a body"), want: sent(1)},

		// Records that are not valid commands are dead-lettered.
		{name: "a command keyed by another conversation is not decided",
			given: []cmd{createDirect("alice", "bob", "c1")},
			when:  func() cmd { c := send("alice", ab, "m1", "hi"); c.attrs.Subject = grp; return c }(),
			want:  deadLtr},
		{name: "a create keyed by another conversation is not decided",
			when: func() cmd { c := createDirect("alice", "bob", "c1"); c.attrs.Subject = grp; return c }(),
			want: deadLtr},
		{name: "an event type on chat.commands is not decided",
			when: command(schemas.TypeMessageSent, ab, schemas.MessageSentV1{ConversationID: ab, Seq: 1, SenderID: "alice", Body: "x", CommandID: "m1", SentAt: testNow}),
			want: deadLtr},
		{name: "an unknown type is not decided",
			when: command("chat.message.react.v1", ab, map[string]string{"conversation_id": ab}),
			want: deadLtr},
		{name: "a command that is not JSON is not decided",
			when: cmd{attrs: send("alice", ab, "m1", "x").attrs, value: []byte("{not json")},
			want: deadLtr},
		{name: "a command with a malformed user id is not decided",
			when: with(send("alice", ab, "m1", "x"), func(c *schemas.SendMessageV1) { c.UserID = "al ice" }),
			want: deadLtr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDecider(t, tt.limits)
			for _, c := range tt.given {
				if _, err := d.decide(c); err != nil {
					t.Fatalf("given: %v", err)
				}
			}
			dec, err := d.decide(tt.when)
			if got := outcomeOf(t, dec, err); got != tt.want {
				t.Errorf("got %+v, want %+v (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestDecideCreateEventContent(t *testing.T) {
	t.Parallel()
	t.Run("a group has the creator as owner and the others as members, deduplicated and sorted", func(t *testing.T) {
		t.Parallel()
		d := newDecider(t, Limits{})
		ev := d.mustEvent(createGroup("mallory", "g1", "Team", "zed", "bob", "zed", "mallory", "amy"))
		var got schemas.ConversationCreatedV1
		if err := json.Unmarshal(ev.Value, &got); err != nil {
			t.Fatal(err)
		}
		want := schemas.ConversationCreatedV1{
			ConversationID: schemas.GroupConversationID("mallory", "g1"),
			Kind:           schemas.KindGroup, Title: "Team", CreatedBy: "mallory", CommandID: "g1", CreatedAt: testNow,
			Members: []schemas.Member{
				{UserID: "amy", Role: schemas.RoleMember}, {UserID: "bob", Role: schemas.RoleMember},
				{UserID: "mallory", Role: schemas.RoleOwner}, {UserID: "zed", Role: schemas.RoleMember},
			},
		}
		if !equalJSON(t, got, want) {
			t.Errorf("creation = %+v, want %+v", got, want)
		}
		if ev.Attrs.Seq != 0 || ev.Attrs.Type != schemas.TypeConversationCreated {
			t.Errorf("attributes %+v, want a creation at seq 0", ev.Attrs)
		}
	})
	t.Run("a direct conversation has both users as plain members and no title", func(t *testing.T) {
		t.Parallel()
		d := newDecider(t, Limits{})
		ev := d.mustEvent(createDirect("zoe", "adam", "c1"))
		var got schemas.ConversationCreatedV1
		if err := json.Unmarshal(ev.Value, &got); err != nil {
			t.Fatal(err)
		}
		want := []schemas.Member{{UserID: "adam", Role: schemas.RoleMember}, {UserID: "zoe", Role: schemas.RoleMember}}
		if !slices.Equal(got.Members, want) || got.Title != "" || got.Kind != schemas.KindDirect || got.CreatedBy != "zoe" {
			t.Errorf("creation = %+v, want members %v, no title, created by zoe", got, want)
		}
		if bytes.Contains(ev.Value, []byte(`"title"`)) {
			t.Errorf("a direct creation must omit the title: %s", ev.Value)
		}
	})
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

func TestDecideSeqs(t *testing.T) {
	t.Parallel()
	t.Run("seqs are contiguous per conversation and independent across conversations", func(t *testing.T) {
		t.Parallel()
		d := newDecider(t, Limits{})
		ab := schemas.DirectConversationID("alice", "bob")
		cd := schemas.DirectConversationID("carol", "dave")
		d.mustEvent(createDirect("alice", "bob", "c1"))
		d.mustEvent(createDirect("carol", "dave", "c1"))
		next := map[string]uint64{ab: 1, cd: 1}
		for i := range 30 {
			conv, user := ab, []string{"alice", "bob"}[i%2]
			if i%3 == 0 {
				conv, user = cd, "dave"
			}
			ev := d.mustEvent(send(user, conv, "m"+strconv.Itoa(i), "body"))
			var m schemas.MessageSentV1
			if err := json.Unmarshal(ev.Value, &m); err != nil {
				t.Fatal(err)
			}
			if ev.Attrs.Seq != next[conv] || m.Seq != next[conv] {
				t.Fatalf("send %d to %s: seq header %d, value %d, want %d", i, conv, ev.Attrs.Seq, m.Seq, next[conv])
			}
			next[conv]++
			if got, ok, err := d.st.Seq(conv); !ok || err != nil || got != m.Seq {
				t.Fatalf("Seq(%s) = %d, %v, %v, want %d", conv, got, ok, err, m.Seq)
			}
		}
		if _, ok, _ := d.st.Seq("d_unknown"); ok {
			t.Error("Seq of an unknown conversation reports it exists")
		}
	})
	t.Run("every command id is remembered, however many follow, in memory or not", func(t *testing.T) {
		t.Parallel()
		// One conversation in memory at a time: every switch evicts one.
		d := &decider{t: t, st: newTestState(t, Limits{}, 1)}
		ab := schemas.DirectConversationID("alice", "bob")
		ac := schemas.DirectConversationID("alice", "carol")
		d.mustEvent(createDirect("alice", "bob", "c1"))
		d.mustEvent(createDirect("alice", "carol", "c2"))
		for i := 1; i <= 3000; i++ {
			conv := ab
			if i%2 == 0 {
				conv = ac
			}
			d.mustEvent(send("alice", conv, "m"+strconv.Itoa(i), "x"))
		}
		if n := d.st.convs.Len(); n != 1 {
			t.Fatalf("%d conversations in memory, want 1", n)
		}
		steps := []struct {
			cmd  cmd
			want outcome
		}{
			{send("alice", ab, "m1", "x"), dup(1)},
			{send("alice", ac, "m2", "x"), dup(1)},
			{send("alice", ab, "m2999", "x"), dup(1500)},
			{send("alice", ac, "m3000", "x"), dup(1500)},
			{send("alice", ab, "m2", "x"), sent(1501)}, // a command id of the other conversation
			{send("bob", ab, "m1", "x"), sent(1502)},   // another user's
			{send("bob", ab, "m1", "x"), dup(1502)},
		}
		for i, s := range steps {
			dec, err := d.decide(s.cmd)
			if got := outcomeOf(t, dec, err); got != s.want {
				t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
			}
		}
	})
	t.Run("what a conversation evicted from memory knows of its messages is kept", func(t *testing.T) {
		t.Parallel()
		d := &decider{t: t, st: newTestState(t, Limits{}, 1)}
		grp := schemas.GroupConversationID("alice", "g1")
		ab := schemas.DirectConversationID("alice", "bob")
		d.mustEvent(createGroup("alice", "g1", "Team", "bob", "carol"))
		d.mustEvent(send("bob", grp, "m1", "hello"))    // seq 1
		d.mustEvent(createDirect("alice", "bob", "c2")) // evicts the group
		steps := []struct {
			cmd  cmd
			want outcome
		}{
			{command(schemas.TypeAddReaction, grp, &schemas.ReactV1{CommandID: "r1", UserID: "carol", ConversationID: grp, MessageSeq: 1, Emoji: "👍"}), outcome{event: schemas.TypeReactionAdded, seq: 2}},
			{send("alice", ab, "m2", "x"), sent(1)}, // evicts the group again
			{command(schemas.TypeAddReaction, grp, &schemas.ReactV1{CommandID: "r2", UserID: "carol", ConversationID: grp, MessageSeq: 1, Emoji: "👍"}), rejected(schemas.CodeNoChange)},
			{command(schemas.TypeEditMessage, grp, &schemas.EditMessageV1{CommandID: "e1", UserID: "carol", ConversationID: grp, MessageSeq: 1, Body: "mine"}), rejected(schemas.CodeForbidden)},
			{command(schemas.TypeDeleteMessage, grp, &schemas.DeleteMessageV1{CommandID: "d1", UserID: "bob", ConversationID: grp, MessageSeq: 1}), outcome{event: schemas.TypeMessageDeleted, seq: 3}},
			{send("alice", ab, "m3", "x"), sent(2)},
			{command(schemas.TypeEditMessage, grp, &schemas.EditMessageV1{CommandID: "e2", UserID: "bob", ConversationID: grp, MessageSeq: 1, Body: "again"}), rejected(schemas.CodeMessageNotFound)},
		}
		for i, s := range steps {
			dec, err := d.decide(s.cmd)
			if got := outcomeOf(t, dec, err); got != s.want {
				t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
			}
		}
	})
}

// applyAll applies events to st in order and fails on any error.
func applyAll(t *testing.T, st *State, events []*Output) {
	t.Helper()
	for _, ev := range events {
		if err := st.Apply(ev.Attrs, ev.Value); err != nil {
			t.Fatalf("applying %s seq %d of %s: %v", ev.Attrs.Type, ev.Attrs.Seq, ev.Attrs.Subject, err)
		}
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	ab := schemas.DirectConversationID("alice", "bob")
	// history returns the events of a direct conversation and n messages.
	history := func(t *testing.T, n int) []*Output {
		d := newDecider(t, Limits{})
		out := []*Output{d.mustEvent(createDirect("alice", "bob", "c1"))}
		for i := 1; i <= n; i++ {
			out = append(out, d.mustEvent(send("alice", ab, "m"+strconv.Itoa(i), "x")))
		}
		return out
	}
	t.Run("a rebuilt state continues the seq and knows the command ids", func(t *testing.T) {
		t.Parallel()
		st := newTestState(t, Limits{}, 10_000)
		applyAll(t, st, history(t, 3))
		d := &decider{t: t, st: st, offset: 100}
		if got := d.outcome(send("alice", ab, "m2", "x")); got != dup(2) {
			t.Errorf("retried send after rebuild: got %+v, want duplicate of 2", got)
		}
		if got := d.outcome(send("bob", ab, "m9", "x")); got != sent(4) {
			t.Errorf("new send after rebuild: got %+v, want seq 4", got)
		}
		if got := d.outcome(send("carol", ab, "m9", "x")); got != rejected(schemas.CodeNotMember) {
			t.Errorf("non-member after rebuild: got %+v, want not_member", got)
		}
	})
	t.Run("events applied twice and old seqs are ignored", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 3)
		st := newTestState(t, Limits{}, 10_000)
		applyAll(t, st, evs)
		applyAll(t, st, evs)      // the whole partition again
		applyAll(t, st, evs[1:2]) // an old message
		applyAll(t, st, evs[0:1]) // the creation again
		if seq, _, _ := st.Seq(ab); seq != 3 {
			t.Errorf("seq after re-applying = %d, want 3", seq)
		}
		d := &decider{t: t, st: st, offset: 100}
		if got := d.outcome(send("alice", ab, "new", "x")); got != sent(4) {
			t.Errorf("got %+v, want seq 4", got)
		}
	})
	t.Run("a seq gap is an error and does not advance the seq", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 3)
		st := newTestState(t, Limits{}, 10_000)
		applyAll(t, st, evs[:2])
		if err := st.Apply(evs[3].Attrs, evs[3].Value); err == nil {
			t.Fatal("applying seq 3 after seq 1 succeeded, want an error")
		}
		if seq, _, _ := st.Seq(ab); seq != 1 {
			t.Errorf("seq after a gap = %d, want 1", seq)
		}
		applyAll(t, st, evs[2:]) // the gap filled, in order
		if seq, _, _ := st.Seq(ab); seq != 3 {
			t.Errorf("seq = %d, want 3", seq)
		}
	})
	t.Run("an event of an unknown conversation is an error", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 1)
		if err := newTestState(t, Limits{}, 10_000).Apply(evs[1].Attrs, evs[1].Value); err == nil {
			t.Error("applying a message of an unknown conversation succeeded, want an error")
		}
	})
	t.Run("an event of a newer type advances the seq", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 1)
		st := newTestState(t, Limits{}, 10_000)
		applyAll(t, st, evs)
		a := kafkalog.NewAttributes("chat.message.edited.v2", ab, testNow)
		a.Seq, a.HasSeq = 2, true
		if err := st.Apply(a, []byte(`{"anything":true}`)); err != nil {
			t.Fatal(err)
		}
		d := &decider{t: t, st: st}
		if got := d.outcome(send("bob", ab, "m2", "x")); got != sent(3) {
			t.Errorf("got %+v, want seq 3", got)
		}
	})
	t.Run("a message that breaks its schema is an error", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 1)
		st := newTestState(t, Limits{}, 10_000)
		applyAll(t, st, evs[:1])
		if err := st.Apply(evs[1].Attrs, []byte(`{"seq":"one"}`)); err == nil {
			t.Error("applying a malformed message succeeded, want an error")
		}
	})
	t.Run("LastCommandOffset is the newest event's command offset", func(t *testing.T) {
		t.Parallel()
		evs := history(t, 3) // command offsets 0..3
		st := newTestState(t, Limits{}, 10_000)
		if st.LastCommandOffset != -1 {
			t.Fatalf("empty state LastCommandOffset = %d, want -1", st.LastCommandOffset)
		}
		// The log lost commands 8..40: the newer event answers the
		// command appended since at offset 7.
		evs[2].Attrs.CommandOffset = 40
		evs[3].Attrs.CommandOffset = 7
		applyAll(t, st, evs)
		if st.LastCommandOffset != 7 {
			t.Errorf("LastCommandOffset = %d, want 7", st.LastCommandOffset)
		}
		a := kafkalog.NewAttributes("chat.message.edited.v2", ab, testNow)
		a.Seq, a.HasSeq = 4, true // no command offset (-1)
		if err := st.Apply(a, []byte(`{}`)); err != nil || st.LastCommandOffset != 7 {
			t.Errorf("after an event without a command offset: %d, %v; want 7", st.LastCommandOffset, err)
		}
	})
}

// TestRebuildDecidesIdentically is a property test: for random command
// sequences, a state rebuilt by applying the events another state decided
// decides every further command exactly as that state does, byte for byte
// except ce_id.
func TestRebuildDecidesIdentically(t *testing.T) {
	t.Parallel()
	limits := Limits{Limits: conversation.Limits{MaxBodyBytes: 8, MaxMembers: 4, MaxTitleRunes: 6}}
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			g := &gen{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
			live := newDecider(t, limits)
			var events []*Output
			stats := map[string]int{}
			for range 1500 {
				dec, err := live.decide(g.command())
				o := outcomeOf(t, dec, err)
				stats[o.event+o.reply+o.code]++
				if dec.Event != nil {
					events = append(events, dec.Event)
					g.observe(dec.Event)
				}
			}
			eventTypes := 0
			for k := range stats {
				if !strings.HasPrefix(k, "chat.command.") {
					eventTypes++
				}
			}
			if stats[schemas.TypeMessageSentV2] < 10 || stats[schemas.TypeCommandDuplicate] == 0 || stats[schemas.TypeCommandRejected+schemas.CodeNotMember] == 0 ||
				stats[schemas.TypeCommandRejected+schemas.CodeForbidden] == 0 || eventTypes < 8 {
				t.Fatalf("the generator exercised too little: %v", stats)
			}

			// The rebuilt states keep one and two conversations in
			// memory: the rest come and go through the store.
			rebuilt := newTestState(t, limits, 1)
			applyAll(t, rebuilt, events)
			// Redeliveries and replays of older events change nothing.
			twice := newTestState(t, limits, 2)
			for i, ev := range events {
				applyAll(t, twice, []*Output{ev, ev, events[i/2]})
			}
			for _, st := range []*State{rebuilt, twice} {
				if st.LastCommandOffset != live.st.LastCommandOffset {
					t.Fatalf("rebuilt LastCommandOffset = %d, want %d", st.LastCommandOffset, live.st.LastCommandOffset)
				}
			}
			others := []*decider{{t: t, st: rebuilt, offset: live.offset}, {t: t, st: twice, offset: live.offset}}
			for i := range 300 {
				c := g.command()
				want, wantErr := live.decide(c)
				if want.Event != nil {
					g.observe(want.Event)
				}
				for _, o := range others {
					got, err := o.decide(c)
					if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
						t.Fatalf("command %d: error %v, want %v", i, err, wantErr)
					}
					if err == nil {
						sameOutput(t, i, got.Event, want.Event)
						sameOutput(t, i, got.Reply, want.Reply)
					}
				}
			}
		})
	}
}

func sameOutput(t *testing.T, i int, got, want *Output) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("command %d: got output %+v, want %+v", i, got, want)
	}
	if got == nil {
		return
	}
	ga, wa := got.Attrs, want.Attrs
	ga.ID, wa.ID = "", ""
	if ga != wa || !bytes.Equal(got.Value, want.Value) {
		t.Fatalf("command %d:\n got %+v %s\nwant %+v %s", i, ga, got.Value, wa, want.Value)
	}
}

// gen generates random commands over a small world so that duplicates,
// non-members, retries and evictions all happen.
type gen struct {
	r     *rand.Rand
	known []string // conversations created so far
	msgs  []genMessage
}

type genMessage struct {
	conv, author string
	seq          uint64
}

// observe learns from an event the decider appended.
func (g *gen) observe(ev *Output) {
	g.known = append(g.known, ev.Attrs.Subject)
	if ev.Attrs.Type == schemas.TypeMessageSentV2 {
		var m schemas.MessageSentV2
		if json.Unmarshal(ev.Value, &m) == nil {
			g.msgs = append(g.msgs, genMessage{m.ConversationID, m.SenderID, m.Seq})
		}
	}
}

var genUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank"}

func (g *gen) user() string { return genUsers[g.r.IntN(len(genUsers))] }

func (g *gen) commandID() string { return "c" + strconv.Itoa(g.r.IntN(12)) }

func (g *gen) command() cmd {
	switch n := g.r.IntN(20); {
	case n < 2:
		return createDirect(g.user(), g.user(), g.commandID())
	case n < 4:
		members := make([]string, g.r.IntN(6))
		for i := range members {
			members[i] = g.user()
		}
		title := []string{"", "T", "Team", "abcdefg", "ünï"}[g.r.IntN(5)]
		return createGroup(g.user(), g.commandID(), title, members...)
	default:
		conv := "g_unknown"
		if len(g.known) > 0 && g.r.IntN(10) > 0 {
			conv = g.known[g.r.IntN(len(g.known))]
		}
		user, id, seq := g.user(), g.commandID(), uint64(1+g.r.IntN(8))
		if len(g.msgs) > 0 && g.r.IntN(4) > 0 {
			// Mostly a message that exists, by its author.
			m := g.msgs[g.r.IntN(len(g.msgs))]
			conv, user, seq = m.conv, m.author, m.seq
		}
		body := []string{"", "hi", "hello", "€€€", "too long body"}[g.r.IntN(5)]
		switch g.r.IntN(24) { // half of them sends
		case 0:
			return command(schemas.TypeSendMessageV2, conv, &schemas.SendMessageV2{CommandID: id, UserID: user, ConversationID: conv, Body: body, ReplyTo: seq})
		case 1:
			return command(schemas.TypeAddMembers, conv, &schemas.AddMembersV1{CommandID: id, UserID: user, ConversationID: conv, MemberIDs: []string{g.user(), g.user()}})
		case 2:
			return command(schemas.TypeRemoveMember, conv, &schemas.RemoveMemberV1{CommandID: id, UserID: user, ConversationID: conv, MemberID: g.user()})
		case 3:
			role := []schemas.Role{schemas.RoleOwner, schemas.RoleAdmin, schemas.RoleMember}[g.r.IntN(3)]
			return command(schemas.TypeSetRole, conv, &schemas.SetRoleV1{CommandID: id, UserID: user, ConversationID: conv, MemberID: g.user(), Role: role})
		case 4:
			return command(schemas.TypeRename, conv, &schemas.RenameV1{CommandID: id, UserID: user, ConversationID: conv, Title: []string{"T", "Team", "x"}[g.r.IntN(3)]})
		case 5:
			return command(schemas.TypeArchive, conv, &schemas.ArchiveV1{CommandID: id, UserID: user, ConversationID: conv, Archived: g.r.IntN(2) == 0})
		case 6:
			return command(schemas.TypeBlock, conv, &schemas.BlockV1{CommandID: id, UserID: user, ConversationID: conv, Blocked: g.r.IntN(2) == 0})
		case 7:
			return command(schemas.TypeEditMessage, conv, &schemas.EditMessageV1{CommandID: id, UserID: user, ConversationID: conv, MessageSeq: seq, Body: body})
		case 8:
			return command(schemas.TypeDeleteMessage, conv, &schemas.DeleteMessageV1{CommandID: id, UserID: user, ConversationID: conv, MessageSeq: seq})
		case 9, 10:
			typ := []string{schemas.TypeAddReaction, schemas.TypeRemoveReaction}[g.r.IntN(2)]
			return command(typ, conv, &schemas.ReactV1{CommandID: id, UserID: user, ConversationID: conv, MessageSeq: seq, Emoji: []string{"👍", "🎉", "❤️"}[g.r.IntN(3)]})
		case 11:
			return command(schemas.TypeLeaveConversation, conv, &schemas.LeaveConversationV1{CommandID: id, UserID: user, ConversationID: conv})
		}
		return send(user, conv, id, body)
	}
}

func BenchmarkDecide_SendMessage(b *testing.B) {
	l := Limits{}
	st := newTestState(b, l, 10_000)
	conv := schemas.DirectConversationID("alice", "bob")
	c := createDirect("alice", "bob", "c1")
	if _, err := st.Decide(c.attrs, c.value, 0, testNow); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("x", 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		c := send("alice", conv, "cmd-"+strconv.Itoa(i), body)
		b.StartTimer()
		dec, err := st.Decide(c.attrs, c.value, int64(i+1), testNow)
		if err != nil || dec.Event == nil {
			b.Fatalf("send %d: %+v %v", i, dec, err)
		}
	}
}

func BenchmarkApply_MessageSent(b *testing.B) {
	l := Limits{}
	d := newDecider(b, l)
	conv := schemas.DirectConversationID("alice", "bob")
	st := newTestState(b, l, 10_000)
	ev := d.mustEvent(createDirect("alice", "bob", "c1"))
	if err := st.Apply(ev.Attrs, ev.Value); err != nil {
		b.Fatal(err)
	}
	events := make([]*Output, 1025)
	for i := range events {
		events[i] = d.mustEvent(send("alice", conv, "cmd-"+strconv.Itoa(i), strings.Repeat("x", 200)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := events[i%len(events)]
		a := ev.Attrs
		a.Seq = uint64(i + 1) // the values repeat; the seq must go on
		if err := st.Apply(a, ev.Value); err != nil {
			b.Fatal(err)
		}
	}
}
