// The history store conformance suite: Run and the cases of events, pages,
// summaries and inboxes that every adapter must pass.

package historytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Option changes how Run runs the suite.
type Option func(*suite)

// Sequential makes Run run its tests one after the other, for a factory
// that cannot make stores concurrently. Default: tests run in parallel.
func Sequential() Option {
	return func(s *suite) { s.sequential = true }
}

// hangTimeout is how long a call may take before the suite reports that
// it hangs.
const hangTimeout = time.Minute

type suite struct {
	newStore   func(t *testing.T) history.Store
	sequential bool
}

// Run runs the conformance suite against the stores newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) history.Store, opts ...Option) {
	t.Helper()
	s := &suite{newStore: newStore}
	for _, o := range opts {
		o(s)
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"applied events read back byte for byte", testReadBack},
		{"an event of an unknown type is stored and only advances the summary", testUnknownType},
		{"a malformed creation is stored and only advances the summary", testMalformedCreation},
		{"applying the same batch twice changes nothing", testSameBatchTwice},
		{"overlapping batches store every event once", testOverlappingBatches},
		{"an old event applied after newer ones changes nothing", testOldEventAgain},
		{"a newer event with an older time does not move last activity back", testOlderTime},
		{"an event repeated within a batch is applied once", testRepeatWithinBatch},
		{"events filling a gap do not move the summary back", testGapFilledLater},
		{"pages of a long conversation", testPages},
		{"pages of a conversation hold only its own events", testPagesOwnEventsOnly},
		{"a conversation with only its creation", testOnlyCreation},
		{"a limit below one is an invalid query", testInvalidLimit},
		{"an unknown conversation is not found", testNotFound},
		{"the summary describes the conversation", testSummary},
		{"a user's conversations come most recent activity first", testConversations},
		{"many conversations interleaved in one batch", testInterleaved},
		{"concurrent applies to different conversations", testConcurrentConversations},
		{"concurrent applies of the same events apply each once", testConcurrentSameEvents},
		{"concurrent applies of different events of one conversation lose nothing", testConcurrentOneConversation},
		{"a member who left is gone from the members and from their own conversations", testMemberLeft},
		{"sending marks the conversation read up to the message; unread counts the rest", testReadSeq},
		{"members added, removed and given roles, a rename and an archive show in the summary and the lists", testMembershipChanges},
		{"blocks of a direct conversation show in the summary and the lists", testBlocks},
		{"the message count and the preview follow edits and deletions of the newest message", testPreview},
		{"the preview of a message with files keeps them through its edits and drops them at its deletion", testPreviewOfFiles},
		{"pages carry the state edits, reactions and a deletion made of a message", testMessageState},
		{"a deletion erases the body of the message and of its edits, and nothing else", testRedaction},
		{"unread counts the messages after the read marker, which only moves forward", testUnread},
		{"receipts list the markers of the members", testReceipts},
		{"replaying everything, or applying it to a fresh store, shows the same state", testReplayEverything},
		{"an encrypted conversation's summary keeps its flag, epoch, devices and members leaving", testEncryption},
		{"an erasure blanks the user's content up to its time as a store given the blanked events holds it", testErasure},
		{"a done context makes every call return its error", testContextDone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.parallel(t)
			tc.run(t, s)
		})
	}
}

func (s *suite) parallel(t *testing.T) {
	if !s.sequential {
		t.Parallel()
	}
}

// open returns a new store that is closed when t ends.
func (s *suite) open(t *testing.T) history.Store {
	t.Helper()
	st := s.newStore(t)
	if st == nil {
		t.Fatal("factory returned a nil store")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return st
}

// noHang runs f and fails t if it has not returned within hangTimeout.
func noHang(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatalf("%s did not return within %v", what, hangTimeout)
	}
}

func apply(t *testing.T, st history.Store, events ...history.Event) {
	t.Helper()
	if err := st.Apply(t.Context(), events); err != nil {
		t.Fatalf("Apply(%d events): %v", len(events), err)
	}
}

func page(t *testing.T, st history.Store, conv string, q history.PageQuery) history.Page {
	t.Helper()
	p, err := st.Page(t.Context(), conv, q)
	if err != nil {
		t.Fatalf("Page(%s, %+v): %v", conv, q, err)
	}
	return p
}

func summary(t *testing.T, st history.Store, conv string) history.Conversation {
	t.Helper()
	c, err := st.Conversation(t.Context(), conv)
	if err != nil {
		t.Fatalf("Conversation(%s): %v", conv, err)
	}
	return c
}

func inbox(t *testing.T, st history.Store, user string, limit int) []history.Conversation {
	t.Helper()
	cs, err := st.Conversations(t.Context(), user, limit)
	if err != nil {
		t.Fatalf("Conversations(%s, %d): %v", user, limit, err)
	}
	return cs
}

// inboxIDs returns the ids of user's conversations, in order.
func inboxIDs(t *testing.T, st history.Store, user string, limit int) []string {
	t.Helper()
	var ids []string
	for _, c := range inbox(t, st, user, limit) {
		ids = append(ids, c.ID)
	}
	return ids
}

// all returns every event of conv in ascending seq order, read with one
// backward page.
func all(t *testing.T, st history.Store, conv string) []history.Event {
	t.Helper()
	p := page(t, st, conv, history.PageQuery{Limit: 1 << 20})
	if p.HasMore {
		t.Errorf("backward page of everything in %s has more", conv)
	}
	slices.Reverse(p.Events)
	return p.Events
}

// diffEvent describes how got differs from want, or returns "".
func diffEvent(got, want history.Event) string {
	var d []string
	if got.ConversationID != want.ConversationID {
		d = append(d, fmt.Sprintf("conversation %q, want %q", got.ConversationID, want.ConversationID))
	}
	if got.Seq != want.Seq {
		d = append(d, fmt.Sprintf("seq %d, want %d", got.Seq, want.Seq))
	}
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %q, want %q", got.ID, want.ID))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("type %q, want %q", got.Type, want.Type))
	}
	if s := diffTime(got.Time, want.Time); s != "" {
		d = append(d, "time "+s)
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("data %q, want %q", got.Data, want.Data))
	}
	return strings.Join(d, "; ")
}

// diffTime reports whether got is want's instant, in UTC, to the
// nanosecond.
func diffTime(got, want time.Time) string {
	if !got.Equal(want) {
		return fmt.Sprintf("%s, want %s", got.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
	}
	if got.Location() != time.UTC {
		return fmt.Sprintf("%s in %s, want UTC", got.Format(time.RFC3339Nano), got.Location())
	}
	return ""
}

func checkEvents(t *testing.T, what string, got, want []history.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d events %v, want %d %v", what, len(got), seqs(got), len(want), seqs(want))
		return
	}
	for i := range got {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Errorf("%s: event %d: %s", what, i, d)
		}
	}
}

func seqs(events []history.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Seq
	}
	return out
}

// diffSummary describes how got differs from want, or returns "".
func diffSummary(got, want history.Conversation) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %q, want %q", got.ID, want.ID))
	}
	if got.Kind != want.Kind {
		d = append(d, fmt.Sprintf("kind %q, want %q", got.Kind, want.Kind))
	}
	if got.Title != want.Title {
		d = append(d, fmt.Sprintf("title %q, want %q", got.Title, want.Title))
	}
	if got.CreatedBy != want.CreatedBy {
		d = append(d, fmt.Sprintf("created by %q, want %q", got.CreatedBy, want.CreatedBy))
	}
	if s := diffTime(got.CreatedAt, want.CreatedAt); s != "" {
		d = append(d, "created at "+s)
	}
	if !slices.Equal(got.Members, want.Members) {
		d = append(d, fmt.Sprintf("members %v, want %v", got.Members, want.Members))
	}
	if got.LastSeq != want.LastSeq {
		d = append(d, fmt.Sprintf("last seq %d, want %d", got.LastSeq, want.LastSeq))
	}
	if s := diffTime(got.LastActivity, want.LastActivity); s != "" {
		d = append(d, "last activity "+s)
	}
	return strings.Join(d, "; ")
}

func checkSummary(t *testing.T, got, want history.Conversation) {
	t.Helper()
	if d := diffSummary(got, want); d != "" {
		t.Errorf("summary of %s: %s", want.ID, d)
	}
}

// expectSummary is the summary the suite expects after applying created
// and then events up to lastSeq with the newest time lastActivity.
func expectSummary(created history.Event, lastSeq uint64, lastActivity time.Time) history.Conversation {
	var c schemas.ConversationCreatedV1
	if err := json.Unmarshal(created.Data, &c); err != nil {
		panic(err)
	}
	return history.Conversation{
		State: conversation.State{
			ID:        c.ConversationID,
			Kind:      c.Kind,
			Title:     c.Title,
			CreatedBy: c.CreatedBy,
			CreatedAt: c.CreatedAt,
			Members:   conversation.SortMembers(c.Members),
			LastSeq:   lastSeq,
		},
		LastActivity: lastActivity,
	}
}

// concat returns its arguments as one slice.
func concat(parts ...[]history.Event) []history.Event {
	return slices.Concat(parts...)
}

func one(ev history.Event) []history.Event { return []history.Event{ev} }

func testReadBack(t *testing.T, s *suite) {
	st := s.open(t)
	kolkata := time.FixedZone("IST", 5*3600+1800)
	created := Group("c1", Base, Owner("alice"), Member("bob"))

	indented := Message("c1", 2, "bob", "héllo 👋 \"quoted\" <b>", MessageTime(2))
	var buf bytes.Buffer
	if err := json.Indent(&buf, indented.Data, "", "\t"); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("  \n")
	indented.Data = buf.Bytes()

	zoned := Message("c1", 3, "alice", "sent from Kolkata", time.Date(2025, 3, 14, 20, 40, 0, 1, kolkata))
	future := history.Event{
		ConversationID: "c1",
		Seq:            4,
		ID:             "018f3a4e-7b1c-7cc0-9a7e-3b1f4f0c2d11",
		Type:           "chat.conversation.future-thing.v7",
		Time:           time.Date(2025, 3, 14, 15, 10, 0, 999999999, time.UTC),
		Data:           json.RawMessage(`{"z": 1,   "a": [ ], "nested": {"k": null}}`),
	}
	whole := Message("c1", 5, "bob", strings.Repeat("long ", 2000), time.Date(2025, 3, 14, 15, 11, 0, 0, time.UTC))
	want := []history.Event{created, Message("c1", 1, "alice", "hi", MessageTime(1)), indented, zoned, future, whole}
	apply(t, st, want...)

	checkEvents(t, "backward page", all(t, st, "c1"), want)
	p := page(t, st, "c1", history.PageQuery{Forward: true, Limit: 100})
	checkEvents(t, "forward page", p.Events, want[1:])
	if p.HasMore {
		t.Error("forward page of everything has more")
	}
}

func testUnknownType(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("c1", Base, Owner("alice"), Member("bob"))
	later := Base.Add(time.Hour + time.Nanosecond)
	unknown := history.Event{
		ConversationID: "c1",
		Seq:            1,
		ID:             "evt-future",
		Type:           "chat.member.added.v9",
		Time:           later,
		Data:           json.RawMessage(`{"conversation_id":"c1","user_id":"mallory","role":"owner"}`),
	}
	apply(t, st, created, unknown)

	checkEvents(t, "events", all(t, st, "c1"), []history.Event{created, unknown})
	checkSummary(t, summary(t, st, "c1"), expectSummary(created, 1, later))
	if got := inbox(t, st, "mallory", 10); len(got) != 0 {
		t.Errorf("a user named only by an unknown event has conversations %v", got)
	}
	if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("alice's conversations are %v, want [c1]", got)
	}
}

func testMalformedCreation(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("c1", Base, Owner("alice"), Member("bob"))
	later := Base.Add(time.Minute)
	// A second creation: its seq is not 0 and its value breaks the schema.
	bad := history.Event{
		ConversationID: "c1",
		Seq:            1,
		ID:             "evt-bad",
		Type:           schemas.TypeConversationCreated,
		Time:           later,
		Data:           json.RawMessage(`{"conversation_id":"c1","seq":1,"kind":"group","title":"Hijacked","members":[{"user_id":"mallory","role":"owner"}]}`),
	}
	if err := st.Apply(t.Context(), []history.Event{created, bad}); err != nil {
		t.Fatalf("Apply of a malformed event: %v", err)
	}
	checkEvents(t, "events", all(t, st, "c1"), []history.Event{created, bad})
	checkSummary(t, summary(t, st, "c1"), expectSummary(created, 1, later))
	if got := inbox(t, st, "mallory", 10); len(got) != 0 {
		t.Errorf("a user named only by a malformed event has conversations %v", got)
	}
}

// storeState is everything the port shows of some conversations and
// users.
type storeState struct {
	Events        map[string][]history.Event
	Summaries     map[string]history.Conversation
	Conversations map[string][]history.Conversation
	Receipts      map[string][]history.Receipt
}

func state(t *testing.T, st history.Store, convs, users []string) storeState {
	t.Helper()
	s := storeState{
		Events:        map[string][]history.Event{},
		Summaries:     map[string]history.Conversation{},
		Conversations: map[string][]history.Conversation{},
		Receipts:      map[string][]history.Receipt{},
	}
	for _, c := range convs {
		s.Events[c] = all(t, st, c)
		s.Summaries[c] = summary(t, st, c)
		s.Receipts[c] = receipts(t, st, c)
	}
	for _, u := range users {
		s.Conversations[u] = inbox(t, st, u, 100)
	}
	return s
}

func checkSameState(t *testing.T, got, want storeState) {
	t.Helper()
	for c, evs := range want.Events {
		checkEvents(t, "events of "+c, got.Events[c], evs)
	}
	for c, sum := range want.Summaries {
		checkFull(t, "summary of "+c, got.Summaries[c], sum)
	}
	for c, evs := range want.Events {
		for i, ev := range evs {
			if i < len(got.Events[c]) && !reflect.DeepEqual(got.Events[c][i].Message, ev.Message) {
				t.Errorf("message state of %d in %s: %s, want %s", ev.Seq, c, describeState(got.Events[c][i].Message), describeState(ev.Message))
			}
		}
	}
	for c, rs := range want.Receipts {
		if !reflect.DeepEqual(got.Receipts[c], rs) {
			t.Errorf("receipts of %s: %+v, want %+v", c, got.Receipts[c], rs)
		}
	}
	for u, cs := range want.Conversations {
		g := got.Conversations[u]
		if len(g) != len(cs) {
			t.Errorf("conversations of %s: %d, want %d", u, len(g), len(cs))
			continue
		}
		for i := range cs {
			checkFull(t, fmt.Sprintf("conversation %d of %s", i, u), g[i], cs[i])
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state changed:\n got %+v\nwant %+v", got, want)
	}
}

func testSameBatchTwice(t *testing.T, s *suite) {
	st := s.open(t)
	batch := concat(
		one(Group("a", Base, Owner("alice"), Member("bob"))),
		one(Group("b", Base.Add(time.Second), Owner("bob"), Member("carol"))),
		Messages("a", 1, 20, "alice"),
		Messages("b", 1, 5, "carol"),
	)
	convs, users := []string{"a", "b"}, []string{"alice", "bob", "carol"}
	apply(t, st, batch...)
	first := state(t, st, convs, users)
	if got := first.Summaries["a"].LastSeq; got != 20 {
		t.Fatalf("last seq of a is %d, want 20", got)
	}
	apply(t, st, batch...)
	checkSameState(t, state(t, st, convs, users), first)
}

func testOverlappingBatches(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("a", Base, Owner("alice"))
	want := concat(one(created), Messages("a", 1, 30, "alice"))
	apply(t, st, want[0:11]...)  // 0..10
	apply(t, st, want[5:21]...)  // 5..20
	apply(t, st, want[15:31]...) // 15..30
	apply(t, st, want[0:31]...)  // everything again
	checkEvents(t, "events", all(t, st, "a"), want)
	checkSummary(t, summary(t, st, "a"), expectSummary(created, 30, MessageTime(30)))
}

func testOldEventAgain(t *testing.T, s *suite) {
	st := s.open(t)
	a := concat(one(Group("a", Base, Owner("alice"), Member("bob"))), Messages("a", 1, 10, "bob"))
	b := Group("b", MessageTime(5), Owner("alice"))
	apply(t, st, a...)
	apply(t, st, b)
	wantA := expectSummary(a[0], 10, MessageTime(10))
	wantOrder := []string{"a", "b"} // a's newest (t10) is newer than b (t5)

	for _, batch := range [][]history.Event{
		{a[2]},            // one old message, older than b
		{a[0]},            // the creation
		a[0:4],            // a run of old events
		{a[1], a[3]},      // old events with a hole between them
		{a[2], a[10]},     // an old one and the newest
		{b, a[0], a[2]},   // old events of both conversations
		concat(a, one(b)), // everything
	} {
		apply(t, st, batch...)
		checkEvents(t, fmt.Sprintf("events after re-applying %v", seqs(batch)), all(t, st, "a"), a)
		checkSummary(t, summary(t, st, "a"), wantA)
		if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, wantOrder) {
			t.Errorf("after re-applying %v alice's conversations are %v, want %v", seqs(batch), got, wantOrder)
		}
	}
}

func testOlderTime(t *testing.T, s *suite) {
	st := s.open(t)
	a := concat(one(Group("a", Base, Owner("alice"))), Messages("a", 1, 10, "alice"))
	b := Group("b", MessageTime(5), Owner("alice"))
	apply(t, st, a...)
	apply(t, st, b)
	// Clocks of producers disagree: seq 11 carries a time before seq 10's.
	skewed := Message("a", 11, "alice", "from a slow clock", MessageTime(3))
	apply(t, st, skewed)
	checkSummary(t, summary(t, st, "a"), expectSummary(a[0], 11, MessageTime(10)))
	if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("alice's conversations are %v, want [a b]", got)
	}
	checkEvents(t, "events", all(t, st, "a"), concat(a, one(skewed)))
}

func testGapFilledLater(t *testing.T, s *suite) {
	st := s.open(t)
	a := concat(one(Group("a", Base, Owner("alice"))), Messages("a", 1, 10, "alice"))
	b := Group("b", MessageTime(8), Owner("alice"))
	apply(t, st, b)
	apply(t, st, a[0:6]...)  // 0..5
	apply(t, st, a[9:11]...) // 9..10
	if got := seqs(all(t, st, "a")); !slices.Equal(got, []uint64{0, 1, 2, 3, 4, 5, 9, 10}) {
		t.Errorf("seqs before the gap is filled are %v", got)
	}
	apply(t, st, a[6:9]...) // 6..8, older than 9 and 10
	checkEvents(t, "events", all(t, st, "a"), a)
	checkSummary(t, summary(t, st, "a"), expectSummary(a[0], 10, MessageTime(10)))
	if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("alice's conversations are %v, want [a b]", got)
	}
}

func testRepeatWithinBatch(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("a", Base, Owner("alice"))
	m := Messages("a", 1, 3, "alice")
	apply(t, st, created, created, m[0], m[1], m[1], m[2], m[2], m[2])
	checkEvents(t, "events", all(t, st, "a"), concat(one(created), m))
	checkSummary(t, summary(t, st, "a"), expectSummary(created, 3, MessageTime(3)))
	if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, []string{"a"}) {
		t.Errorf("alice's conversations are %v, want [a]", got)
	}
}

// up returns the seqs from..to ascending; down the seqs from..to
// descending.
func up(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func down(from, to uint64) []uint64 {
	out := up(to, from)
	slices.Reverse(out)
	return out
}

// longLast is the last seq of the long conversation of testPages: three
// buckets, the last one half full.
const longLast = 2500

func testPages(t *testing.T, s *suite) {
	st := s.open(t)
	const conv = "long"
	events := concat(one(Group(conv, Base, Owner("alice"))), Messages(conv, 1, longLast, "alice"))
	for i := 0; i < len(events); i += 500 {
		apply(t, st, events[i:min(i+500, len(events))]...)
	}

	check := func(t *testing.T, what string, p history.Page, want []uint64, hasMore bool) {
		t.Helper()
		if !slices.Equal(seqs(p.Events), want) {
			t.Fatalf("%s: seqs %v, want %v", what, compactSeqs(seqs(p.Events)), compactSeqs(want))
		}
		for _, ev := range p.Events {
			if d := diffEvent(ev, events[ev.Seq]); d != "" {
				t.Errorf("%s: event %d: %s", what, ev.Seq, d)
			}
		}
		if p.HasMore != hasMore {
			t.Errorf("%s: has more is %v, want %v", what, p.HasMore, hasMore)
		}
	}

	cases := []struct {
		name    string
		q       history.PageQuery
		want    []uint64
		hasMore bool
	}{
		{"forward from the start", history.PageQuery{Forward: true, After: 0, Limit: 10}, up(1, 10), true},
		{"forward across the first bucket boundary", history.PageQuery{Forward: true, After: 995, Limit: 10}, up(996, 1005), true},
		{"forward ending at a bucket's last seq", history.PageQuery{Forward: true, After: 989, Limit: 10}, up(990, 999), true},
		{"forward starting at a bucket's first seq", history.PageQuery{Forward: true, After: 999, Limit: 10}, up(1000, 1009), true},
		{"forward with a limit of one at a bucket boundary", history.PageQuery{Forward: true, After: 999, Limit: 1}, []uint64{1000}, true},
		{"forward across the second bucket boundary", history.PageQuery{Forward: true, After: 1994, Limit: 10}, up(1995, 2004), true},
		{"forward over more than a whole bucket", history.PageQuery{Forward: true, After: 500, Limit: 1600}, up(501, 2100), true},
		{"forward ending exactly at the newest", history.PageQuery{Forward: true, After: 2490, Limit: 10}, up(2491, 2500), false},
		{"forward ending one before the newest", history.PageQuery{Forward: true, After: 2489, Limit: 10}, up(2490, 2499), true},
		{"forward with room to spare", history.PageQuery{Forward: true, After: 2495, Limit: 10}, up(2496, 2500), false},
		{"forward after the newest", history.PageQuery{Forward: true, After: 2500, Limit: 10}, nil, false},
		{"forward after a seq beyond the newest", history.PageQuery{Forward: true, After: 9999, Limit: 10}, nil, false},
		{"forward everything in one page", history.PageQuery{Forward: true, Limit: longLast}, up(1, 2500), false},
		{"forward everything but the newest", history.PageQuery{Forward: true, Limit: longLast - 1}, up(1, 2499), true},
		{"forward with a limit far above the count", history.PageQuery{Forward: true, Limit: 100000}, up(1, 2500), false},
		{"backward from the newest", history.PageQuery{Limit: 10}, down(2500, 2491), true},
		{"backward across the second bucket boundary", history.PageQuery{Before: 2005, Limit: 10}, down(2004, 1995), true},
		{"backward across the first bucket boundary", history.PageQuery{Before: 1005, Limit: 10}, down(1004, 995), true},
		{"backward over a whole bucket from its last seq", history.PageQuery{Before: 2000, Limit: 1000}, down(1999, 1000), true},
		{"backward with a limit of one at a bucket's first seq", history.PageQuery{Before: 1001, Limit: 1}, []uint64{1000}, true},
		{"backward from a bucket's first seq", history.PageQuery{Before: 1000, Limit: 2}, []uint64{999, 998}, true},
		{"backward ending exactly at the creation", history.PageQuery{Before: 11, Limit: 11}, down(10, 0), false},
		{"backward ending one after the creation", history.PageQuery{Before: 11, Limit: 10}, down(10, 1), true},
		{"backward with room to spare", history.PageQuery{Before: 5, Limit: 10}, down(4, 0), false},
		{"backward before seq 1 is the creation alone", history.PageQuery{Before: 1, Limit: 10}, []uint64{0}, false},
		{"backward from a seq beyond the newest", history.PageQuery{Before: 9999, Limit: 5}, down(2500, 2496), true},
		{"backward from just after the newest", history.PageQuery{Before: 2501, Limit: 5}, down(2500, 2496), true},
		{"backward everything in one page", history.PageQuery{Limit: longLast + 1}, down(2500, 0), false},
		{"backward everything but the creation", history.PageQuery{Limit: longLast}, down(2500, 1), true},
		{"backward over two buckets to the creation", history.PageQuery{Before: 2000, Limit: 5000}, down(1999, 0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.parallel(t)
			check(t, fmt.Sprintf("%+v", tc.q), page(t, st, conv, tc.q), tc.want, tc.hasMore)
		})
	}

	for _, limit := range []int{97, 1000} {
		t.Run(fmt.Sprintf("walking forward %d at a time", limit), func(t *testing.T) {
			s.parallel(t)
			var after uint64
			for {
				p := page(t, st, conv, history.PageQuery{Forward: true, After: after, Limit: limit})
				next := min(after+uint64(limit), longLast)
				check(t, fmt.Sprintf("page after %d", after), p, up(after+1, next), next < longLast)
				if !p.HasMore {
					return
				}
				after = next
			}
		})
		t.Run(fmt.Sprintf("walking backward %d at a time", limit), func(t *testing.T) {
			s.parallel(t)
			var before uint64 // 0: from the newest
			for {
				top := uint64(longLast)
				if before > 0 {
					top = before - 1
				}
				bottom := uint64(0)
				if top+1 > uint64(limit) {
					bottom = top + 1 - uint64(limit)
				}
				p := page(t, st, conv, history.PageQuery{Before: before, Limit: limit})
				check(t, fmt.Sprintf("page before %d", before), p, down(top, bottom), bottom > 0)
				if !p.HasMore {
					return
				}
				before = bottom
			}
		})
	}
}

// compactSeqs shortens a long run of seqs for a failure message.
func compactSeqs(s []uint64) string {
	if len(s) <= 6 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v … %v (%d)", s[:3], s[len(s)-3:], len(s))
}

func testPagesOwnEventsOnly(t *testing.T, s *suite) {
	st := s.open(t)
	// Ids that are prefixes of one another.
	lasts := map[string]uint64{"c": 3, "c1": 5, "c10": 7, "c1-0": 2, "c1_": 4}
	var batch []history.Event
	for conv, last := range lasts {
		batch = append(batch, Group(conv, Base, Owner("alice")))
		batch = append(batch, Messages(conv, 1, last, "alice")...)
	}
	apply(t, st, batch...)
	for conv, last := range lasts {
		want := concat(one(Group(conv, Base, Owner("alice"))), Messages(conv, 1, last, "alice"))
		checkEvents(t, "events of "+conv, all(t, st, conv), want)
		p := page(t, st, conv, history.PageQuery{Forward: true, Limit: 100})
		checkEvents(t, "forward page of "+conv, p.Events, want[1:])
		p = page(t, st, conv, history.PageQuery{Before: 2, Limit: 100})
		checkEvents(t, "backward page before 2 of "+conv, p.Events, []history.Event{want[1], want[0]})
	}
	if got := len(inbox(t, st, "alice", 100)); got != len(lasts) {
		t.Errorf("alice has %d conversations, want %d", got, len(lasts))
	}
}

func testOnlyCreation(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("a", Base, Owner("alice"))
	apply(t, st, created)
	for _, tc := range []struct {
		q       history.PageQuery
		want    []history.Event
		hasMore bool
	}{
		{history.PageQuery{Limit: 10}, one(created), false},
		{history.PageQuery{Limit: 1}, one(created), false},
		{history.PageQuery{Before: 1, Limit: 1}, one(created), false},
		{history.PageQuery{Before: 5, Limit: 1}, one(created), false},
		{history.PageQuery{Forward: true, Limit: 10}, nil, false},
		{history.PageQuery{Forward: true, After: 1, Limit: 10}, nil, false},
	} {
		p := page(t, st, "a", tc.q)
		checkEvents(t, fmt.Sprintf("%+v", tc.q), p.Events, tc.want)
		if p.HasMore != tc.hasMore {
			t.Errorf("%+v: has more is %v, want %v", tc.q, p.HasMore, tc.hasMore)
		}
	}
	checkSummary(t, summary(t, st, "a"), expectSummary(created, 0, Base))
}

func testInvalidLimit(t *testing.T, s *suite) {
	st := s.open(t)
	apply(t, st, Group("a", Base, Owner("alice")))
	for _, q := range []history.PageQuery{
		{Limit: 0},
		{Limit: -1},
		{Forward: true, Limit: 0},
		{Forward: true, After: 3, Limit: -5},
	} {
		_, err := st.Page(t.Context(), "a", q)
		if !errors.Is(err, history.ErrInvalidQuery) {
			t.Errorf("Page(%+v) error is %v, want ErrInvalidQuery", q, err)
		}
	}
	for _, limit := range []int{0, -1} {
		_, err := st.Conversations(t.Context(), "alice", limit)
		if !errors.Is(err, history.ErrInvalidQuery) {
			t.Errorf("Conversations(alice, %d) error is %v, want ErrInvalidQuery", limit, err)
		}
	}
}

func testNotFound(t *testing.T, s *suite) {
	st := s.open(t)
	check := func(conv string) {
		t.Helper()
		for _, q := range []history.PageQuery{{Limit: 10}, {Before: 5, Limit: 10}, {Forward: true, Limit: 10}} {
			if _, err := st.Page(t.Context(), conv, q); !errors.Is(err, history.ErrNotFound) {
				t.Errorf("Page(%s, %+v) error is %v, want ErrNotFound", conv, q, err)
			}
		}
		if _, err := st.Conversation(t.Context(), conv); !errors.Is(err, history.ErrNotFound) {
			t.Errorf("Conversation(%s) error is %v, want ErrNotFound", conv, err)
		}
	}
	check("nope")
	if got := inbox(t, st, "alice", 10); len(got) != 0 {
		t.Errorf("an empty store has conversations %v for alice", got)
	}
	apply(t, st, concat(one(Group("known", Base, Owner("alice"))), Messages("known", 1, 3, "alice"))...)
	check("nope")
	check("know")
	check("known1")
}

func testSummary(t *testing.T, s *suite) {
	st := s.open(t)
	createdAt := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	group := Created(schemas.ConversationCreatedV1{
		ConversationID: "g",
		Kind:           schemas.KindGroup,
		Title:          "Weekend plans ☀",
		CreatedBy:      "carol",
		Members:        []schemas.Member{Owner("carol"), Member("alice"), Admin("bob"), Member("dave")},
		CommandID:      "cmd-create-g",
		CreatedAt:      createdAt,
	})
	direct := schemas.DirectConversationID("alice", "bob")
	directCreated := Created(schemas.ConversationCreatedV1{
		ConversationID: direct,
		Kind:           schemas.KindDirect,
		CreatedBy:      "bob",
		Members:        []schemas.Member{Member("bob"), Member("alice")},
		CreatedAt:      Base,
	})
	apply(t, st, group, directCreated)

	want := history.Conversation{
		State: conversation.State{
			ID:        "g",
			Kind:      schemas.KindGroup,
			Title:     "Weekend plans ☀",
			CreatedBy: "carol",
			CreatedAt: createdAt,
			Members:   []schemas.Member{Member("alice"), Admin("bob"), Owner("carol"), Member("dave")},
			// Only the creation: seq 0 at its time.
			LastSeq: 0,
		},
		LastActivity: createdAt,
	}
	checkSummary(t, summary(t, st, "g"), want)

	msgs := []history.Event{
		Message("g", 1, "alice", "one", createdAt.Add(time.Second)),
		Message("g", 2, "bob", "two", createdAt.Add(2*time.Second+7)),
	}
	apply(t, st, msgs...)
	want.LastSeq, want.LastActivity = 2, createdAt.Add(2*time.Second+7)
	checkSummary(t, summary(t, st, "g"), want)

	checkSummary(t, summary(t, st, direct), history.Conversation{
		State: conversation.State{
			ID:        direct,
			Kind:      schemas.KindDirect,
			CreatedBy: "bob",
			CreatedAt: Base,
			Members:   []schemas.Member{Member("alice"), Member("bob")},
		},
		LastActivity: Base,
	})

	c := summary(t, st, "g")
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if !c.IsMember(u) {
			t.Errorf("%s is not a member of g", u)
		}
	}
	if c.IsMember("mallory") {
		t.Error("mallory is a member of g")
	}
}

func testConversations(t *testing.T, s *suite) {
	st := s.open(t)
	at := func(minute int) time.Time { return Base.Add(time.Duration(minute)*time.Minute + time.Duration(minute)) }
	g1 := Group("g1", at(1), Owner("alice"), Member("bob"))
	g2 := Group("g2", at(2), Owner("alice"), Member("carol"))
	g3 := Group("g3", at(3), Owner("bob"), Member("carol"))
	d := Created(schemas.ConversationCreatedV1{
		ConversationID: "d", Kind: schemas.KindDirect, CreatedBy: "bob",
		Members: []schemas.Member{Member("alice"), Member("bob")}, CreatedAt: at(4),
	})
	apply(t, st, g1, g2, g3, d)
	apply(t, st, Message("g1", 1, "bob", "bump", at(5)))
	// Activity now: g1 5, d 4, g3 3, g2 2.

	check := func(when string, want map[string][]string) {
		t.Helper()
		for user, ids := range want {
			if got := inboxIDs(t, st, user, 100); !slices.Equal(got, ids) {
				t.Errorf("%s: conversations of %s are %v, want %v", when, user, got, ids)
			}
			for limit := 1; limit <= len(ids); limit++ {
				if got := inboxIDs(t, st, user, limit); !slices.Equal(got, ids[:limit]) {
					t.Errorf("%s: %d conversations of %s are %v, want %v", when, limit, user, got, ids[:limit])
				}
			}
		}
	}
	check("at first", map[string][]string{
		"alice":   {"g1", "d", "g2"},
		"bob":     {"g1", "d", "g3"},
		"carol":   {"g3", "g2"},
		"mallory": nil,
	})

	// Activity moves a conversation to the top.
	apply(t, st, Message("g2", 1, "carol", "me too", at(6)))
	apply(t, st, Message("g3", 1, "carol", "hello", at(7)), Message("g3", 2, "bob", "hi", at(8)))
	check("after new messages", map[string][]string{
		"alice":   {"g2", "g1", "d"},
		"bob":     {"g3", "g1", "d"},
		"carol":   {"g3", "g2"},
		"mallory": nil,
	})

	// The listed summaries are the conversations' summaries.
	for _, c := range inbox(t, st, "bob", 100) {
		if d := diffSummary(c, summary(t, st, c.ID)); d != "" {
			t.Errorf("listed summary of %s differs from Conversation: %s", c.ID, d)
		}
	}
	checkSummary(t, inbox(t, st, "carol", 1)[0], expectSummary(g3, 2, at(8)))
}

func testInterleaved(t *testing.T, s *suite) {
	st := s.open(t)
	const convs, last = 25, 40
	at := func(i int, seq uint64) time.Time {
		return Base.Add(time.Duration(seq)*time.Millisecond + time.Duration(i)*time.Microsecond + time.Duration(i))
	}
	want := make([][]history.Event, convs)
	for i := range convs {
		conv := fmt.Sprintf("conv-%02d", i)
		want[i] = append(want[i], Group(conv, at(i, 0), Owner(fmt.Sprintf("user-%d", i%5)), Member("everyone")))
		for seq := uint64(1); seq <= last; seq++ {
			want[i] = append(want[i], Message(conv, seq, "everyone", fmt.Sprintf("%d/%d", i, seq), at(i, seq)))
		}
	}
	// Round robin: the events of each conversation stay in order.
	var batch []history.Event
	for seq := range last + 1 {
		for i := range convs {
			batch = append(batch, want[i][seq])
		}
	}
	apply(t, st, batch...)

	var wantInbox []string
	for i := convs - 1; i >= 0; i-- { // conv i's last activity grows with i
		conv := fmt.Sprintf("conv-%02d", i)
		checkEvents(t, "events of "+conv, all(t, st, conv), want[i])
		checkSummary(t, summary(t, st, conv), expectSummary(want[i][0], last, at(i, last)))
		wantInbox = append(wantInbox, conv)
	}
	if got := inboxIDs(t, st, "everyone", 100); !slices.Equal(got, wantInbox) {
		t.Errorf("conversations of everyone are %v, want %v", got, wantInbox)
	}
	if got := inboxIDs(t, st, "user-3", 100); !slices.Equal(got, []string{"conv-23", "conv-18", "conv-13", "conv-08", "conv-03"}) {
		t.Errorf("conversations of user-3 are %v", got)
	}
}

func testConcurrentConversations(t *testing.T, s *suite) {
	st := s.open(t)
	const writers, last, batchSize = 8, 300, 30
	want := make([][]history.Event, writers)
	for w := range writers {
		conv := fmt.Sprintf("w%d", w)
		want[w] = concat(one(Group(conv, Base, Owner(fmt.Sprintf("user-%d", w)), Member("all"))), Messages(conv, 1, last, "all"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := range writers {
		wg.Go(func() {
			events := want[w]
			for i := 0; i < len(events); i += batchSize {
				if err := st.Apply(t.Context(), events[i:min(i+batchSize, len(events))]); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
		// A reader of the same conversation, racing the writer.
		wg.Go(func() {
			conv := fmt.Sprintf("w%d", w)
			for range 20 {
				p, err := st.Page(t.Context(), conv, history.PageQuery{Limit: 50})
				if err != nil && !errors.Is(err, history.ErrNotFound) {
					errs <- fmt.Errorf("reader %d: %w", w, err)
					return
				}
				for i := 1; i < len(p.Events); i++ {
					if p.Events[i].Seq != p.Events[i-1].Seq-1 {
						errs <- fmt.Errorf("reader %d: page not in descending seq order: %v", w, seqs(p.Events))
						return
					}
				}
				if _, err := st.Conversations(t.Context(), "all", 100); err != nil {
					errs <- fmt.Errorf("reader %d: %w", w, err)
					return
				}
			}
		})
	}
	noHang(t, "concurrent applies", wg.Wait)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		conv := fmt.Sprintf("w%d", w)
		checkEvents(t, "events of "+conv, all(t, st, conv), want[w])
		checkSummary(t, summary(t, st, conv), expectSummary(want[w][0], last, MessageTime(last)))
	}
	if got := len(inbox(t, st, "all", 100)); got != writers {
		t.Errorf("user all has %d conversations, want %d", got, writers)
	}
}

func testConcurrentSameEvents(t *testing.T, s *suite) {
	st := s.open(t)
	const last = 200
	want := concat(one(Group("a", Base, Owner("alice"), Member("bob"))), Messages("a", 1, last, "bob"))
	other := Group("b", MessageTime(last/2), Owner("alice"))
	apply(t, st, other)

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for _, size := range []int{1, 7, 50, last + 1, 3} {
		wg.Go(func() {
			for i := 0; i < len(want); i += size {
				if err := st.Apply(t.Context(), want[i:min(i+size, len(want))]); err != nil {
					errs <- fmt.Errorf("batches of %d: %w", size, err)
					return
				}
			}
		})
	}
	noHang(t, "concurrent applies", wg.Wait)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkEvents(t, "events", all(t, st, "a"), want)
	checkSummary(t, summary(t, st, "a"), expectSummary(want[0], last, MessageTime(last)))
	if got := inboxIDs(t, st, "alice", 100); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("alice's conversations are %v, want [a b]", got)
	}
	if got := inboxIDs(t, st, "bob", 100); !slices.Equal(got, []string{"a"}) {
		t.Errorf("bob's conversations are %v, want [a]", got)
	}
}

func testConcurrentOneConversation(t *testing.T, s *suite) {
	st := s.open(t)
	const convs, last, parts = 10, 200, 4
	at := func(i int, seq uint64) time.Time { return MessageTime(seq).Add(time.Duration(i) * time.Microsecond) }
	want := make([][]history.Event, convs)
	for i := range convs {
		conv := fmt.Sprintf("c%d", i)
		want[i] = append(want[i], Group(conv, at(i, 0), Owner("alice"), Member(fmt.Sprintf("user-%d", i))))
		for seq := uint64(1); seq <= last; seq++ {
			want[i] = append(want[i], Message(conv, seq, "alice", "hi", at(i, seq)))
		}
		apply(t, st, want[i][0])
	}
	// Each conversation's messages in parts applied at the same time: a
	// store that reads the summary, then writes it, without excluding
	// the other writers of the conversation, loses updates here.
	var wg sync.WaitGroup
	errs := make(chan error, convs*parts)
	for i := range convs {
		for p := range parts {
			wg.Go(func() {
				lo, hi := 1+p*last/parts, 1+(p+1)*last/parts
				if err := st.Apply(t.Context(), want[i][lo:hi]); err != nil {
					errs <- fmt.Errorf("conversation %d, part %d: %w", i, p, err)
				}
			})
		}
	}
	noHang(t, "concurrent applies", wg.Wait)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var wantInbox []string
	for i := convs - 1; i >= 0; i-- {
		conv := fmt.Sprintf("c%d", i)
		checkEvents(t, "events of "+conv, all(t, st, conv), want[i])
		checkSummary(t, summary(t, st, conv), expectSummary(want[i][0], last, at(i, last)))
		if got := inboxIDs(t, st, fmt.Sprintf("user-%d", i), 100); !slices.Equal(got, []string{conv}) {
			t.Errorf("conversations of user-%d are %v, want [%s]", i, got, conv)
		}
		wantInbox = append(wantInbox, conv)
	}
	got := inbox(t, st, "alice", 100)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, wantInbox) {
		t.Errorf("conversations of alice are %v, want %v", ids, wantInbox)
	}
	for _, c := range got {
		if c.LastSeq != last {
			t.Errorf("listed conversation %s has last seq %d, want %d", c.ID, c.LastSeq, last)
		}
	}
}

func testContextDone(t *testing.T, s *suite) {
	st := s.open(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel2()

	events := concat(one(Group("a", Base, Owner("alice"))), Messages("a", 1, 10, "alice"))
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		var err error
		noHang(t, "Apply", func() { err = st.Apply(c.ctx, events) })
		if !errors.Is(err, c.want) {
			t.Errorf("Apply with a done context: error %v, want %v", err, c.want)
		}
	}
	// Nothing was applied.
	if _, err := st.Conversation(t.Context(), "a"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("after applies with done contexts Conversation(a) error is %v, want ErrNotFound", err)
	}

	apply(t, st, events...)
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		var err error
		noHang(t, "Page", func() { _, err = st.Page(c.ctx, "a", history.PageQuery{Limit: 5}) })
		if !errors.Is(err, c.want) {
			t.Errorf("Page with a done context: error %v, want %v", err, c.want)
		}
		noHang(t, "Page", func() { _, err = st.Page(c.ctx, "a", history.PageQuery{Forward: true, Limit: 5}) })
		if !errors.Is(err, c.want) {
			t.Errorf("forward Page with a done context: error %v, want %v", err, c.want)
		}
		noHang(t, "Conversation", func() { _, err = st.Conversation(c.ctx, "a") })
		if !errors.Is(err, c.want) {
			t.Errorf("Conversation with a done context: error %v, want %v", err, c.want)
		}
		noHang(t, "Conversations", func() { _, err = st.Conversations(c.ctx, "alice", 10) })
		if !errors.Is(err, c.want) {
			t.Errorf("Conversations with a done context: error %v, want %v", err, c.want)
		}
		noHang(t, "Receipts", func() { _, err = st.Receipts(c.ctx, "a") })
		if !errors.Is(err, c.want) {
			t.Errorf("Receipts with a done context: error %v, want %v", err, c.want)
		}
		noHang(t, "ApplyReceipts", func() { err = st.ApplyReceipts(c.ctx, []history.Receipt{delivered("a", "alice", 5)}) })
		if !errors.Is(err, c.want) {
			t.Errorf("ApplyReceipts with a done context: error %v, want %v", err, c.want)
		}
	}
	// The store still works after them.
	checkEvents(t, "events", all(t, st, "a"), events)
	// Alice has read what she sent, and nothing was delivered.
	checkReceipts(t, st, "after receipts with done contexts", "a",
		history.Receipt{ConversationID: "a", UserID: "alice", ReadSeq: 10})
}

func testMemberLeft(t *testing.T, s *suite) {
	st := s.open(t)
	apply(t, st, Group("g", Base, Owner("carol"), Member("alice"), Member("bob")), Message("g", 1, "alice", "hi", MessageTime(1)))
	if got := inboxIDs(t, st, "bob", 10); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("bob's conversations before he left: %v", got)
	}
	left := Left("g", 2, "bob", MessageTime(2))
	apply(t, st, left, Message("g", 3, "alice", "after", MessageTime(3)))
	c := summary(t, st, "g")
	if c.IsMember("bob") || !c.IsMember("alice") || !c.IsMember("carol") || c.LastSeq != 3 {
		t.Errorf("after bob left: members %v, last seq %d", c.Members, c.LastSeq)
	}
	if got := inboxIDs(t, st, "bob", 10); len(got) != 0 {
		t.Errorf("bob still lists %v after he left", got)
	}
	if got := inboxIDs(t, st, "alice", 10); !slices.Equal(got, []string{"g"}) {
		t.Errorf("alice lists %v, want g", got)
	}
	// Replaying everything, older events included, does not bring him back.
	apply(t, st, Group("g", Base, Owner("carol"), Member("alice"), Member("bob")), Message("g", 1, "alice", "hi", MessageTime(1)), left)
	if c := summary(t, st, "g"); c.IsMember("bob") {
		t.Errorf("a replay brought bob back: %v", c.Members)
	}
	if got := inboxIDs(t, st, "bob", 10); len(got) != 0 {
		t.Errorf("a replay put %v back in bob's conversations", got)
	}
}

func testReadSeq(t *testing.T, s *suite) {
	st := s.open(t)
	apply(t, st, Group("g", Base, Owner("alice"), Member("bob"), Member("carol")),
		Message("g", 1, "alice", "one", MessageTime(1)),
		Message("g", 2, "bob", "two", MessageTime(2)),
		Message("g", 3, "bob", "three", MessageTime(3)))
	want := map[string][2]uint64{"alice": {1, 2}, "bob": {3, 0}, "carol": {0, 3}} // read seq, unread
	check := func(when string) {
		t.Helper()
		for user, w := range want {
			convs, err := st.Conversations(context.Background(), user, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(convs) != 1 || convs[0].ReadSeq != w[0] || convs[0].Unread() != w[1] {
				t.Errorf("%s: %s's conversations %+v, want read seq %d and %d unread", when, user, convs, w[0], w[1])
			}
		}
	}
	check("after three messages")
	// A replay of older messages never moves a read seq back.
	apply(t, st, Message("g", 1, "alice", "one", MessageTime(1)), Message("g", 2, "bob", "two", MessageTime(2)))
	check("after a replay")
	apply(t, st, Message("g", 4, "alice", "four", MessageTime(4)))
	want = map[string][2]uint64{"alice": {4, 0}, "bob": {3, 1}, "carol": {0, 4}}
	check("after alice answers")
	if c := summary(t, st, "g"); c.ReadSeq != 0 {
		t.Errorf("Conversation (not per user) has read seq %d, want 0", c.ReadSeq)
	}
}
