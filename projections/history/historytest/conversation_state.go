// Suite cases of conversation state: summaries, message states, receipts
// and unread counts, and their replays.

package historytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// The cases of a conversation's life beyond its messages: membership, roles, title, archive and blocks in
// the summary; the message count and preview; message states (edits,
// deletions, reactions) and the tombstone of a deleted message; read and
// delivered receipts and unread counts; and replays of all of it.

// diffMore describes how got differs from want in what diffSummary does
// not compare (archive, blocks, messages, the preview, the per-user read
// fields of a list, and an encrypted conversation's state), or returns
// "".
func diffMore(got, want history.Conversation) string {
	var d []string
	if got.Archived != want.Archived {
		d = append(d, fmt.Sprintf("archived %v, want %v", got.Archived, want.Archived))
	}
	if !slices.Equal(got.BlockedBy, want.BlockedBy) {
		d = append(d, fmt.Sprintf("blocked by %q, want %q", got.BlockedBy, want.BlockedBy))
	}
	if got.Messages != want.Messages {
		d = append(d, fmt.Sprintf("messages %d, want %d", got.Messages, want.Messages))
	}
	if s := diffPreview(got.LastMessage, want.LastMessage); s != "" {
		d = append(d, "last message "+s)
	}
	if got.ReadSeq != want.ReadSeq {
		d = append(d, fmt.Sprintf("read seq %d, want %d", got.ReadSeq, want.ReadSeq))
	}
	if s := diffEncryption(got, want); s != "" {
		d = append(d, s)
	}
	if got.ReadMessages != want.ReadMessages {
		d = append(d, fmt.Sprintf("read messages %d, want %d", got.ReadMessages, want.ReadMessages))
	}
	return strings.Join(d, "; ")
}

func diffPreview(got, want *history.Preview) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil || want == nil:
		return fmt.Sprintf("%+v, want %+v", got, want)
	}
	g, w := *got, *want
	if s := diffTime(g.SentAt, w.SentAt); s != "" {
		return "sent at " + s
	}
	g.SentAt = w.SentAt
	if len(g.Files) == 0 && len(w.Files) == 0 {
		g.Files, w.Files = nil, nil // none, however stored
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("%+v, want %+v", g, w)
	}
	return ""
}

// checkFull compares every field of a summary.
func checkFull(t *testing.T, what string, got, want history.Conversation) {
	t.Helper()
	var d []string
	for _, s := range []string{diffSummary(got, want), diffMore(got, want)} {
		if s != "" {
			d = append(d, s)
		}
	}
	if len(d) > 0 {
		t.Errorf("%s: %s", what, strings.Join(d, "; "))
	}
}

// listed returns user's listed summary of conv, failing t if user does
// not list conv.
func listed(t *testing.T, st history.Store, user, conv string) history.Conversation {
	t.Helper()
	for _, c := range inbox(t, st, user, 100) {
		if c.ID == conv {
			return c
		}
	}
	t.Fatalf("%s does not list %s", user, conv)
	return history.Conversation{}
}

// checkListedAsSummary checks that every user lists conv with its
// summary.
func checkListedAsSummary(t *testing.T, st history.Store, conv string, users ...string) {
	t.Helper()
	want := summary(t, st, conv)
	for _, u := range users {
		got := listed(t, st, u, conv)
		got.ReadSeq, got.ReadMessages = 0, 0
		checkFull(t, fmt.Sprintf("%s's listed summary of %s", u, conv), got, want)
	}
}

func checkNotListed(t *testing.T, st history.Store, conv string, users ...string) {
	t.Helper()
	for _, u := range users {
		if slices.Contains(inboxIDs(t, st, u, 100), conv) {
			t.Errorf("%s still lists %s", u, conv)
		}
	}
}

func testMembershipChanges(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("g", Base, Owner("alice"), Member("bob"))
	hi := Message("g", 1, "alice", "hi", MessageTime(1))
	apply(t, st, created, hi)
	apply(t, st, Added("g", 2, "alice", MessageTime(2), Member("carol"), Admin("dave")))
	want := expectSummary(created, 2, MessageTime(2))
	want.Members = []schemas.Member{Owner("alice"), Member("bob"), Member("carol"), Admin("dave")}
	want.Messages = 1
	want.LastMessage = &history.Preview{Seq: 1, SenderID: "alice", Body: "hi", SentAt: MessageTime(1)}
	checkFull(t, "after members were added", summary(t, st, "g"), want)
	checkListedAsSummary(t, st, "g", "alice", "bob", "carol", "dave")

	apply(t, st,
		RolesChanged("g", 3, "alice", MessageTime(3), Admin("bob")),
		Renamed("g", 4, "alice", "Renamed ☀", MessageTime(4)),
		Removed("g", 5, "alice", "dave", MessageTime(5)),
		Archived("g", 6, "alice", true, MessageTime(6)))
	want.LastSeq, want.LastActivity = 6, MessageTime(6)
	want.Title = "Renamed ☀"
	want.Members = []schemas.Member{Owner("alice"), Admin("bob"), Member("carol")}
	want.Archived = true
	checkFull(t, "after a promotion, a rename, a removal and the archive", summary(t, st, "g"), want)
	checkListedAsSummary(t, st, "g", "alice", "bob", "carol")
	checkNotListed(t, st, "g", "dave")

	// A transfer of ownership (two changes in one event), the archive
	// lifted, and the removed member added back.
	apply(t, st,
		RolesChanged("g", 7, "alice", MessageTime(7), Owner("bob"), Admin("alice")),
		Archived("g", 8, "bob", false, MessageTime(8)))
	apply(t, st, Added("g", 9, "bob", MessageTime(9), Member("dave")))
	want.LastSeq, want.LastActivity = 9, MessageTime(9)
	want.Members = []schemas.Member{Admin("alice"), Owner("bob"), Member("carol"), Member("dave")}
	want.Archived = false
	checkFull(t, "after the transfer, the unarchive and dave's return", summary(t, st, "g"), want)
	checkListedAsSummary(t, st, "g", "alice", "bob", "carol", "dave")

	// A departure and a removal in one batch with a message after them.
	bye := Message("g", 12, "bob", "bye", MessageTime(12))
	apply(t, st, Left("g", 10, "carol", MessageTime(10)), Removed("g", 11, "bob", "dave", MessageTime(11)), bye)
	want.LastSeq, want.LastActivity = 12, MessageTime(12)
	want.Members = []schemas.Member{Admin("alice"), Owner("bob")}
	want.Messages = 2
	want.LastMessage = &history.Preview{Seq: 12, SenderID: "bob", Body: "bye", SentAt: MessageTime(12)}
	checkFull(t, "after carol left and dave was removed", summary(t, st, "g"), want)
	checkListedAsSummary(t, st, "g", "alice", "bob")
	checkNotListed(t, st, "g", "carol", "dave")

	// Replaying everything brings no one back and changes nothing.
	apply(t, st, all(t, st, "g")...)
	checkFull(t, "after a replay", summary(t, st, "g"), want)
	checkNotListed(t, st, "g", "carol", "dave")
	checkListedAsSummary(t, st, "g", "alice", "bob")
}

func testBlocks(t *testing.T, s *suite) {
	st := s.open(t)
	d := Direct("alice", "bob", Base)
	id := d.ConversationID
	check := func(when string, want ...string) {
		t.Helper()
		if len(want) == 0 {
			want = nil
		}
		if got := summary(t, st, id).BlockedBy; !slices.Equal(got, want) {
			t.Errorf("%s: blocked by %q, want %q", when, got, want)
		}
		for _, u := range []string{"alice", "bob"} {
			if got := listed(t, st, u, id).BlockedBy; !slices.Equal(got, want) {
				t.Errorf("%s: %s lists it blocked by %q, want %q", when, u, got, want)
			}
		}
	}
	apply(t, st, d, Message(id, 1, "alice", "hi", MessageTime(1)))
	check("before any block")
	apply(t, st, Blocked(id, 2, "alice", true, MessageTime(2)))
	check("after alice blocked", "alice")
	apply(t, st, Blocked(id, 3, "bob", true, MessageTime(3)))
	check("after both blocked", "alice", "bob")
	apply(t, st, Blocked(id, 4, "alice", false, MessageTime(4)))
	check("after alice unblocked", "bob")
	apply(t, st, Blocked(id, 5, "bob", false, MessageTime(5)), Blocked(id, 6, "alice", true, MessageTime(6)))
	check("after an unblock and a block in one batch", "alice")
	apply(t, st, Blocked(id, 7, "alice", false, MessageTime(7)))
	check("after every block was lifted")
	apply(t, st, all(t, st, id)...)
	check("after a replay")
}

// previewRun applies a conversation's events step by step and checks its
// summary, and how it is listed, after each.
type previewRun struct {
	t       *testing.T
	st      history.Store
	id      string
	want    history.Conversation
	applied []history.Event
}

// step applies events and checks that the summary is p.want, with the
// last event's seq and time.
func (p *previewRun) step(when string, events ...history.Event) {
	p.t.Helper()
	apply(p.t, p.st, events...)
	p.applied = append(p.applied, events...)
	last := events[len(events)-1]
	p.want.LastSeq, p.want.LastActivity = last.Seq, last.Time
	checkFull(p.t, when, summary(p.t, p.st, p.id), p.want)
	checkListedAsSummary(p.t, p.st, p.id, "alice", "bob")
}

// replay applies every event again: the summary does not change.
func (p *previewRun) replay() {
	p.t.Helper()
	apply(p.t, p.st, p.applied...)
	checkFull(p.t, "after a replay", summary(p.t, p.st, p.id), p.want)
}

func testPreview(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("g", Base, Owner("alice"), Member("bob"))
	p := &previewRun{t: t, st: st, id: "g", want: expectSummary(created, 0, Base)}
	want, step := &p.want, p.step
	step("after the creation", created)

	want.Messages = 2
	want.LastMessage = &history.Preview{Seq: 2, SenderID: "bob", Body: "second", SentAt: MessageTime(2)}
	step("after two messages, one a reply", Message("g", 1, "alice", "first", MessageTime(1)), MessageV2("g", 2, "bob", "second", 1, MessageTime(2)))

	want.LastMessage.Body, want.LastMessage.Edited = "second, edited", true
	step("after the newest message was edited", Edited("g", 3, "bob", 2, "second, edited", MessageTime(3)))

	step("after an older message was edited", Edited("g", 4, "alice", 1, "first, edited", MessageTime(4)))
	step("after a reaction", Reacted("g", 5, "alice", 2, "👍", MessageTime(5)))

	want.LastMessage = &history.Preview{Seq: 2, SenderID: "bob", Deleted: true, SentAt: MessageTime(2)}
	step("after the newest message was deleted", Deleted("g", 6, "bob", 2, MessageTime(6)))

	long := strings.Repeat("é", history.PreviewRunes+60)
	want.Messages = 3
	want.LastMessage = &history.Preview{Seq: 7, SenderID: "alice", Body: history.CutPreview(long), SentAt: MessageTime(7)}
	step("after a long message", Message("g", 7, "alice", long, MessageTime(7)))
	if got := summary(t, st, "g").LastMessage; got == nil || !strings.HasSuffix(got.Body, "…") || len([]rune(got.Body)) != history.PreviewRunes {
		t.Errorf("the preview of a long message is %+v, want %d runes ending in an ellipsis", got, history.PreviewRunes)
	}

	want.Messages = 4
	want.LastMessage = &history.Preview{Seq: 10, SenderID: "bob", Body: "after", SentAt: MessageTime(10)}
	step("after an edit, a deletion and a reply in one batch",
		Edited("g", 8, "alice", 7, "short", MessageTime(8)),
		Deleted("g", 9, "alice", 7, MessageTime(9)),
		MessageV2("g", 10, "bob", "after", 7, MessageTime(10)))

	p.replay()
}

func testPreviewOfFiles(t *testing.T, s *suite) {
	st := s.open(t)
	created := Group("f", Base, Owner("alice"), Member("bob"))
	p := &previewRun{t: t, st: st, id: "f", want: expectSummary(created, 0, Base)}
	want, step := &p.want, p.step
	step("after the creation", created)

	want.Messages = 1
	files := []string{"photo.jpg", "notes.pdf"}
	want.LastMessage = &history.Preview{Seq: 1, SenderID: "bob", Body: "📎 photo.jpg, notes.pdf look", SentAt: MessageTime(1), Files: files}
	step("after a message with two files", MessageV3("f", 1, "bob", "look", MessageTime(1), files...))

	want.LastMessage.Body, want.LastMessage.Edited = "📎 photo.jpg, notes.pdf look at these", true
	step("after the message with files was edited", Edited("f", 2, "bob", 1, "look at these", MessageTime(2)))
	want.LastMessage.Body = "📎 photo.jpg, notes.pdf again"
	step("after a second edit, with a reaction", Reacted("f", 3, "alice", 1, "👍", MessageTime(3)), Edited("f", 4, "bob", 1, "again", MessageTime(4)))

	// The page of the edited message still carries its files.
	page, err := st.Page(t.Context(), "f", history.PageQuery{Limit: 10})
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	var found bool
	for _, ev := range page.Events {
		if ev.Seq != 1 {
			continue
		}
		found = true
		var m schemas.MessageSentV3
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("decoding the edited message: %v", err)
		}
		var names []string
		for _, a := range m.Attachments {
			names = append(names, a.Name)
		}
		if ev.Type != schemas.TypeMessageSentV3 || !slices.Equal(names, files) {
			t.Errorf("the edited message in its page is a %s with files %v, want a %s with %v", ev.Type, names, schemas.TypeMessageSentV3, files)
		}
		if ev.Message == nil || ev.Message.Body != "again" || ev.Message.EditedAt.IsZero() {
			t.Errorf("the edited message's state is %+v, want body %q and an edit time", ev.Message, "again")
		}
	}
	if !found {
		t.Errorf("the page has no message 1: %+v", page.Events)
	}

	want.Messages = 3
	want.LastMessage = &history.Preview{Seq: 6, SenderID: "alice", Body: "📎 deck.pdf new", Edited: true, SentAt: MessageTime(6), Files: []string{"deck.pdf"}}
	step("after a message with a file, and its edit, in one batch",
		MessageV3("f", 5, "alice", "", MessageTime(5), "scan.png"),
		MessageV3("f", 6, "alice", "", MessageTime(6), "deck.pdf"),
		Edited("f", 7, "alice", 6, "new", MessageTime(7)),
		Edited("f", 8, "alice", 5, "older", MessageTime(8)))

	want.LastMessage = &history.Preview{Seq: 6, SenderID: "alice", Deleted: true, SentAt: MessageTime(6)}
	step("after the edited message with a file was deleted", Deleted("f", 9, "alice", 6, MessageTime(9)))

	p.replay()
}

// stateEvents is a conversation whose first message is edited, reacted
// to, edited again and deleted, and whose second message has a removal
// of a reaction nobody made.
func stateEvents() []history.Event {
	const g = "g"
	return []history.Event{
		Group(g, Base, Owner("alice"), Member("bob"), Member("carol")),
		Message(g, 1, "alice", "hello", MessageTime(1)),
		MessageV2(g, 2, "bob", "hi", 1, MessageTime(2)),
		Edited(g, 3, "alice", 1, "hello, edited", MessageTime(3)),
		Reacted(g, 4, "bob", 1, "👍", MessageTime(4)),
		Reacted(g, 5, "carol", 1, "👍", MessageTime(5)),
		Reacted(g, 6, "bob", 1, "❤️", MessageTime(6)),
		Unreacted(g, 7, "bob", 1, "👍", MessageTime(7)),
		Reacted(g, 8, "bob", 1, "😀", MessageTime(8)),
		Unreacted(g, 9, "bob", 1, "😀", MessageTime(9)),
		Unreacted(g, 10, "carol", 2, "👍", MessageTime(10)),
		Edited(g, 11, "alice", 1, "hello, edited twice", MessageTime(11)),
		Deleted(g, 12, "alice", 1, MessageTime(12)),
		Reacted(g, 13, "bob", 1, "👍", MessageTime(13)),
	}
}

// checkStates checks the Message of every event of conv, read with one
// backward page and with forward pages of three: want by seq, nil for
// the others.
func checkStates(t *testing.T, st history.Store, what, conv string, want map[uint64]*history.MessageState) {
	t.Helper()
	check := func(how string, events []history.Event) {
		t.Helper()
		for _, ev := range events {
			if got, w := ev.Message, want[ev.Seq]; !reflect.DeepEqual(got, w) {
				t.Errorf("%s, %s: message state of %d is %s, want %s", what, how, ev.Seq, describeState(got), describeState(w))
			}
		}
	}
	check("backward page", all(t, st, conv))
	for after := uint64(0); ; after += 3 {
		p := page(t, st, conv, history.PageQuery{Forward: true, After: after, Limit: 3})
		check(fmt.Sprintf("forward page after %d", after), p.Events)
		if !p.HasMore {
			break
		}
	}
}

func describeState(st *history.MessageState) string {
	if st == nil {
		return "nil"
	}
	return fmt.Sprintf("%+v", *st)
}

func testMessageState(t *testing.T, s *suite) {
	events := stateEvents()
	edited := &history.MessageState{Body: "hello, edited", EditedAt: MessageTime(3), Edits: []uint64{3}, Version: 3}
	reacted := &history.MessageState{
		Body: "hello, edited", EditedAt: MessageTime(3), Edits: []uint64{3}, Version: 9,
		Reactions: []history.Reaction{{Emoji: "❤️", Users: []string{"bob"}}, {Emoji: "👍", Users: []string{"carol"}}},
	}
	untouched := &history.MessageState{Body: "hi", Version: 10}
	deleted := &history.MessageState{
		EditedAt: MessageTime(11), Edits: []uint64{3, 11}, Version: 13,
		Deleted: true, DeletedBy: "alice", DeletedAt: MessageTime(12),
	}

	t.Run("one event at a time", func(t *testing.T) {
		s.parallel(t)
		st := s.open(t)
		for _, ev := range events[:3] {
			apply(t, st, ev)
		}
		checkStates(t, st, "before any change", "g", nil)
		apply(t, st, events[3])
		checkStates(t, st, "after an edit", "g", map[uint64]*history.MessageState{1: edited})
		for _, ev := range events[4:10] {
			apply(t, st, ev)
		}
		checkStates(t, st, "after reactions added and removed", "g", map[uint64]*history.MessageState{1: reacted})
		for _, ev := range events[10:] {
			apply(t, st, ev)
		}
		checkStates(t, st, "after the deletion", "g", map[uint64]*history.MessageState{1: deleted, 2: untouched})
	})
	for _, size := range []int{len(events), 3} {
		t.Run(fmt.Sprintf("in batches of %d", size), func(t *testing.T) {
			s.parallel(t)
			st := s.open(t)
			for i := 0; i < len(events); i += size {
				apply(t, st, events[i:min(i+size, len(events))]...)
			}
			checkStates(t, st, "after everything", "g", map[uint64]*history.MessageState{1: deleted, 2: untouched})
			apply(t, st, events...)
			checkStates(t, st, "after a replay", "g", map[uint64]*history.MessageState{1: deleted, 2: untouched})
		})
	}
	t.Run("a target that is missing or not a message", func(t *testing.T) {
		s.parallel(t)
		st := s.open(t)
		strays := []history.Event{
			Group("g", Base, Owner("alice")),
			Message("g", 1, "alice", "hello", MessageTime(1)),
			Reacted("g", 2, "alice", 0, "👍", MessageTime(2)),    // no target
			Edited("g", 3, "alice", 9, "later", MessageTime(3)), // a target after it
			Reacted("g", 4, "alice", 3, "👍", MessageTime(4)),    // an edit, not a message
			Deleted("g", 5, "alice", 4, MessageTime(5)),         // a reaction
		}
		apply(t, st, strays...)
		checkEvents(t, "events", all(t, st, "g"), strays)
		checkStates(t, st, "after events with stray targets", "g", nil)
		apply(t, st, Reacted("g", 6, "alice", 1, "👍", MessageTime(6)))
		checkStates(t, st, "after a reaction to the message", "g", map[uint64]*history.MessageState{
			1: {Body: "hello", Version: 6, Reactions: []history.Reaction{{Emoji: "👍", Users: []string{"alice"}}}},
		})
	})
}

// redactionEvents is a conversation where message 1, edited twice, is
// deleted and then edited once more (an edit the decider refuses, but a
// log may hold), and message 2 is edited and kept.
func redactionEvents() []history.Event {
	const g = "g"
	return []history.Event{
		Group(g, Base, Owner("alice"), Member("bob")),
		Message(g, 1, "alice", "secret one", MessageTime(1)),
		Message(g, 2, "bob", "other", MessageTime(2)),
		Edited(g, 3, "alice", 1, "secret two", MessageTime(3)),
		Edited(g, 4, "alice", 1, "secret three", MessageTime(4)),
		Edited(g, 5, "bob", 2, "other, edited", MessageTime(5)),
		Reacted(g, 6, "bob", 1, "👍", MessageTime(6)),
		Deleted(g, 7, "alice", 1, MessageTime(7)),
		Edited(g, 8, "alice", 1, "secret four", MessageTime(8)),
		Message(g, 9, "bob", "after", MessageTime(9)),
	}
}

func testRedaction(t *testing.T, s *suite) {
	events := redactionEvents()
	erased := map[uint64]bool{1: true, 3: true, 4: true, 8: true}
	want := make([]history.Event, len(events))
	for i, ev := range events {
		want[i] = ev
		if erased[ev.Seq] {
			data, err := history.Redact(ev.Type, ev.Data)
			if err != nil {
				t.Fatal(err)
			}
			want[i].Data = data
		}
	}
	check := func(t *testing.T, st history.Store, when string) {
		t.Helper()
		got := all(t, st, "g")
		checkEvents(t, when, got, want)
		for _, ev := range got {
			if strings.Contains(string(ev.Data), "secret") {
				t.Errorf("%s: event %d still holds a deleted body: %s", when, ev.Seq, ev.Data)
			}
			if erased[ev.Seq] {
				var v struct {
					Body *string `json:"body"`
				}
				if err := json.Unmarshal(ev.Data, &v); err != nil || v.Body == nil || *v.Body != "" {
					t.Errorf("%s: event %d has body %v (%v), want an empty one", when, ev.Seq, v.Body, err)
				}
			}
		}
		if m := got[1].Message; m == nil || !m.Deleted || m.Body != "" || !slices.Equal(m.Edits, []uint64{3, 4}) {
			t.Errorf("%s: state of the deleted message is %s", when, describeState(m))
		}
	}
	for _, tc := range []struct {
		name    string
		batches [][]history.Event
	}{
		{"all in one batch", [][]history.Event{events}},
		{"the deletion in a batch of its own", [][]history.Event{events[:7], events[7:8], events[8:]}},
		{"one event at a time", func() (out [][]history.Event) {
			for _, ev := range events {
				out = append(out, one(ev))
			}
			return out
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.parallel(t)
			st := s.open(t)
			for _, b := range tc.batches {
				apply(t, st, b...)
			}
			check(t, st, "after the deletion")
			// A replay of the original events, whole or in part, brings
			// no body back.
			apply(t, st, events...)
			check(t, st, "after a replay")
			apply(t, st, events[1], events[3])
			check(t, st, "after a replay of the message and an edit")
		})
	}
}

// checkUnread checks user's ReadSeq, ReadMessages and Unread in conv.
func checkUnread(t *testing.T, st history.Store, when, conv, user string, readSeq, readMessages, unread uint64) {
	t.Helper()
	c := listed(t, st, user, conv)
	if c.ReadSeq != readSeq || c.ReadMessages != readMessages || c.Unread() != unread {
		t.Errorf("%s: %s has read seq %d, read messages %d, unread %d of %d; want %d, %d, %d",
			when, user, c.ReadSeq, c.ReadMessages, c.Unread(), c.Messages, readSeq, readMessages, unread)
	}
}

func applyReceipts(t *testing.T, st history.Store, receipts ...history.Receipt) {
	t.Helper()
	if err := st.ApplyReceipts(t.Context(), receipts); err != nil {
		t.Fatalf("ApplyReceipts(%+v): %v", receipts, err)
	}
}

func read(conv, user string, seq uint64) history.Receipt {
	return history.Receipt{ConversationID: conv, UserID: user, ReadSeq: seq}
}

func delivered(conv, user string, seq uint64) history.Receipt {
	return history.Receipt{ConversationID: conv, UserID: user, DeliveredSeq: seq}
}

func testUnread(t *testing.T, s *suite) {
	st := s.open(t)
	apply(t, st,
		Group("g", Base, Owner("alice"), Member("bob"), Member("carol")),
		Message("g", 1, "alice", "one", MessageTime(1)),
		Reacted("g", 2, "bob", 1, "👍", MessageTime(2)),
		MessageV2("g", 3, "bob", "three", 1, MessageTime(3)),
		Message("g", 4, "alice", "four", MessageTime(4)),
		Renamed("g", 5, "alice", "five", MessageTime(5)),
		MessageV2("g", 6, "carol", "six", 0, MessageTime(6)))
	// Sending reads up to one's own message, of either version.
	checkUnread(t, st, "after sends", "g", "alice", 4, 3, 1)
	checkUnread(t, st, "after sends", "g", "bob", 3, 2, 2)
	checkUnread(t, st, "after sends", "g", "carol", 6, 4, 0)

	// A read marker on an event that is not a message; delivery does not
	// read.
	applyReceipts(t, st, read("g", "bob", 5), delivered("g", "bob", 6))
	checkUnread(t, st, "after bob read up to 5", "g", "bob", 5, 3, 1)
	// Lower markers change nothing, in separate calls or in one.
	applyReceipts(t, st, read("g", "bob", 2))
	applyReceipts(t, st, read("g", "alice", 2), read("g", "bob", 1), read("g", "bob", 5))
	checkUnread(t, st, "after lower markers", "g", "bob", 5, 3, 1)
	checkUnread(t, st, "after lower markers", "g", "alice", 4, 3, 1)

	// A marker ahead of the events applied: everything applied is read.
	applyReceipts(t, st, read("g", "carol", 9))
	checkUnread(t, st, "after a marker ahead of the events", "g", "carol", 9, 4, 0)
	apply(t, st,
		Message("g", 7, "alice", "seven", MessageTime(7)),
		Message("g", 8, "bob", "eight", MessageTime(8)))
	apply(t, st,
		Reacted("g", 9, "alice", 8, "👍", MessageTime(9)),
		Message("g", 10, "alice", "ten", MessageTime(10)))
	checkUnread(t, st, "after the events caught up", "g", "carol", 9, 6, 1)
	checkUnread(t, st, "after the events caught up", "g", "bob", 8, 6, 1)
	checkUnread(t, st, "after the events caught up", "g", "alice", 10, 7, 0)
	// Markers in one call in any order: the highest wins.
	applyReceipts(t, st, read("g", "bob", 9), read("g", "bob", 5))
	checkUnread(t, st, "after bob read up to the reaction", "g", "bob", 9, 6, 1)
	applyReceipts(t, st, read("g", "bob", 10))
	checkUnread(t, st, "after bob read everything", "g", "bob", 10, 7, 0)
	if c := summary(t, st, "g"); c.ReadSeq != 0 || c.ReadMessages != 0 || c.Messages != 7 {
		t.Errorf("Conversation has read seq %d, read messages %d, messages %d; want 0, 0, 7", c.ReadSeq, c.ReadMessages, c.Messages)
	}

	// Events that fill a gap late are stored but not folded into the
	// summary (history.ApplyToSummary): a read seq on one of them counts
	// the messages through the nearest event folded below it.
	gap := concat(one(Group("gap", Base, Owner("alice"), Member("bob"))), Messages("gap", 1, 7, "alice"))
	apply(t, st, gap[:4]...)  // 0..3
	apply(t, st, gap[6:]...)  // 6..7
	apply(t, st, gap[4:6]...) // 4..5, late
	applyReceipts(t, st, read("gap", "bob", 5))
	checkUnread(t, st, "with a read seq on an event that filled a gap", "gap", "bob", 5, 3, 2)
}

func receipts(t *testing.T, st history.Store, conv string) []history.Receipt {
	t.Helper()
	rs, err := st.Receipts(t.Context(), conv)
	if err != nil {
		t.Fatalf("Receipts(%s): %v", conv, err)
	}
	return rs
}

func checkReceipts(t *testing.T, st history.Store, when, conv string, want ...history.Receipt) {
	t.Helper()
	if got := receipts(t, st, conv); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: receipts of %s are %+v, want %+v", when, conv, got, want)
	}
}

func testReceipts(t *testing.T, s *suite) {
	st := s.open(t)
	// Markers may come before the conversation's events.
	applyReceipts(t, st, read("later", "alice", 3))
	for _, conv := range []string{"later", "nope"} {
		if _, err := st.Receipts(t.Context(), conv); !errors.Is(err, history.ErrNotFound) {
			t.Errorf("Receipts(%s) of an unknown conversation: error %v, want ErrNotFound", conv, err)
		}
	}

	apply(t, st,
		Group("g", Base, Owner("alice"), Member("bob"), Member("carol"), Member("dave")),
		Message("g", 1, "alice", "one", MessageTime(1)),
		Message("g", 2, "bob", "two", MessageTime(2)))
	applyReceipts(t, st,
		delivered("g", "carol", 2),
		history.Receipt{ConversationID: "g", UserID: "bob", ReadSeq: 1, DeliveredSeq: 2},
		read("g", "mallory", 2),                              // not a member
		history.Receipt{ConversationID: "g", UserID: "dave"}, // no marker
	)
	r := func(user string, read, delivered uint64) history.Receipt {
		return history.Receipt{ConversationID: "g", UserID: user, ReadSeq: read, DeliveredSeq: delivered}
	}
	checkReceipts(t, st, "after sends and markers", "g", r("alice", 1, 0), r("bob", 2, 2), r("carol", 0, 2))
	applyReceipts(t, st, delivered("g", "carol", 1), read("g", "bob", 1), read("g", "alice", 0))
	checkReceipts(t, st, "after lower markers", "g", r("alice", 1, 0), r("bob", 2, 2), r("carol", 0, 2))
	applyReceipts(t, st, read("g", "carol", 2), history.Receipt{ConversationID: "g", UserID: "carol", ReadSeq: 1, DeliveredSeq: 2})
	checkReceipts(t, st, "after carol read", "g", r("alice", 1, 0), r("bob", 2, 2), r("carol", 2, 2))
	applyReceipts(t, st, read("g", "carol", 2), delivered("g", "carol", 2))
	checkReceipts(t, st, "after repeated markers", "g", r("alice", 1, 0), r("bob", 2, 2), r("carol", 2, 2))

	apply(t, st, Removed("g", 3, "alice", "carol", MessageTime(3)))
	checkReceipts(t, st, "after carol was removed", "g", r("alice", 1, 0), r("bob", 2, 2))

	apply(t, st, Group("later", MessageTime(4), Owner("alice")))
	checkReceipts(t, st, "once the conversation exists", "later",
		history.Receipt{ConversationID: "later", UserID: "alice", ReadSeq: 3})
	checkUnread(t, st, "with a marker ahead of the creation", "later", "alice", 3, 0, 0)
}

// everything is a history of two conversations with every kind of event
// and the receipts of their members.
func everything() ([]history.Event, []history.Receipt) {
	d := Direct("alice", "bob", Base.Add(-1))
	dm := d.ConversationID
	events := concat(stateEvents(), []history.Event{
		Added("g", 14, "alice", MessageTime(14), Member("dave")),
		RolesChanged("g", 15, "alice", MessageTime(15), Admin("bob")),
		Renamed("g", 16, "bob", "Renamed", MessageTime(16)),
		MessageV2("g", 17, "dave", "hello all", 2, MessageTime(17)),
		Edited("g", 18, "dave", 17, "hello all!", MessageTime(18)),
		Archived("g", 19, "alice", true, MessageTime(19)),
		Removed("g", 20, "alice", "carol", MessageTime(20)),
		Left("g", 21, "dave", MessageTime(21)),
		d,
		Message(dm, 1, "bob", "psst", MessageTime(1).Add(1)),
		Blocked(dm, 2, "alice", true, MessageTime(2).Add(1)),
		Blocked(dm, 3, "alice", false, MessageTime(3).Add(1)),
		Reacted(dm, 4, "alice", 1, "👍", MessageTime(4).Add(1)),
		MessageV2(dm, 5, "alice", "sorry", 1, MessageTime(5).Add(1)),
		Deleted(dm, 6, "alice", 5, MessageTime(6).Add(1)),
		Blocked(dm, 7, "bob", true, MessageTime(7).Add(1)),
	})
	receipts := []history.Receipt{
		read("g", "bob", 12), delivered("g", "bob", 21), delivered("g", "carol", 3),
		read("g", "carol", 9), read(dm, "bob", 6), {ConversationID: dm, UserID: "alice", ReadSeq: 2, DeliveredSeq: 7},
		read("g", "bob", 4), read("g", "alice", 25),
	}
	return events, receipts
}

// fullState is everything the port shows of the conversations of
// everything and of their users.
func fullState(t *testing.T, st history.Store) storeState {
	t.Helper()
	return state(t, st, []string{"g", schemas.DirectConversationID("alice", "bob")},
		[]string{"alice", "bob", "carol", "dave"})
}

func testReplayEverything(t *testing.T, s *suite) {
	events, rs := everything()
	st := s.open(t)
	for i := 0; i < len(events); i += 4 {
		apply(t, st, events[i:min(i+4, len(events))]...)
		if i == 8 {
			applyReceipts(t, st, rs[:4]...)
		}
	}
	applyReceipts(t, st, rs[4:]...)
	want := fullState(t, st)
	for u, n := range map[string]int{"alice": 2, "bob": 2, "carol": 0, "dave": 0} {
		if got := len(want.Conversations[u]); got != n {
			t.Errorf("%s lists %d conversations, want %d", u, got, n)
		}
	}

	apply(t, st, events...)
	applyReceipts(t, st, rs...)
	checkSameState(t, fullState(t, st), want)
	for i := 0; i < len(events); i += 3 {
		apply(t, st, events[i:min(i+3, len(events))]...)
	}
	checkSameState(t, fullState(t, st), want)

	// A fresh store given the receipts first, then every event at once.
	fresh := s.open(t)
	applyReceipts(t, fresh, rs...)
	apply(t, fresh, events...)
	checkSameState(t, fullState(t, fresh), want)

	// Another given one event at a time, each receipt after its events.
	slow := s.open(t)
	for _, ev := range events {
		apply(t, slow, ev)
	}
	for i := len(rs) - 1; i >= 0; i-- {
		applyReceipts(t, slow, rs[i])
	}
	checkSameState(t, fullState(t, slow), want)
}
