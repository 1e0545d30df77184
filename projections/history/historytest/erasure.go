// The erasure cases of the suite: a user's content blanked live ends
// where a store given the blanked events ends.

package historytest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// erasureEvents are conversations where alice writes (messages with
// files, an edit, a rename, the newest message) and bob too, and one
// where alice writes after her erasure (at seq 7 of "g").
func erasureEvents() (events []history.Event, at time.Time) {
	const g, h, b = "g", "h", "b"
	at = MessageTime(7)
	events = []history.Event{
		Group(g, Base, Owner("alice"), Member("bob")),
		MessageV3(g, 1, "alice", "alices secret", MessageTime(1), "plans.pdf", "map.png"),
		Message(g, 2, "bob", "bobs reply", MessageTime(2)),
		Edited(g, 3, "alice", 1, "alices secret, edited", MessageTime(3)),
		Renamed(g, 4, "alice", "Alices room", MessageTime(4)),
		Reacted(g, 5, "bob", 1, "👍", MessageTime(5)),
		MessageV3(g, 6, "alice", "alices last word", MessageTime(6), "note.txt"),
		Group(h, Base, Owner("bob"), Member("alice")),
		Message(h, 1, "alice", "alices early word", MessageTime(1)),
		Message(h, 2, "bob", "bobs word", MessageTime(2)),
		Message(h, 8, "alice", "alices word after her erasure", MessageTime(8)),
		Group(b, Base, Owner("bob"), Member("carol")),
		Message(b, 1, "bob", "between bob and carol", MessageTime(1)),
	}
	return events, at
}

// blanked returns events with alice's content up to at blanked, as the
// log reads once her key is erased.
func blanked(t *testing.T, events []history.Event, at time.Time) []history.Event {
	t.Helper()
	out := make([]history.Event, len(events))
	for i, ev := range events {
		out[i] = ev
		if owner, ok := contentkeys.Owner(ev.Type, ev.Data); !ok || owner != "alice" || ev.Time.After(at) {
			continue
		}
		data, err := contentkeys.Blank(ev.Type, ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[i].Data = data
	}
	return out
}

func erasureState(t *testing.T, st history.Store) storeState {
	t.Helper()
	return state(t, st, []string{"g", "h", "b"}, []string{"alice", "bob", "carol"})
}

func testErasure(t *testing.T, s *suite) {
	events, at := erasureEvents()
	live := s.open(t)
	apply(t, live, events...)
	before := erasureState(t, live)
	erasure := history.Erasure{SubjectRef: schemas.ErasureRef("alice"), At: at}
	if err := live.Erase(t.Context(), erasure); err != nil {
		t.Fatalf("Erase: %v", err)
	}

	rebuilt := s.open(t)
	apply(t, rebuilt, blanked(t, events, at)...)
	want := erasureState(t, rebuilt)
	got := erasureState(t, live)
	checkSameState(t, got, want)

	// What the comparison rests on: she is gone, bob and her later word
	// stay, her metadata stays.
	has := func(s storeState, word string) bool {
		for _, evs := range s.Events {
			for _, ev := range evs {
				if bytes.Contains(ev.Data, []byte(word)) || ev.Message != nil && bytes.Contains([]byte(ev.Message.Body), []byte(word)) {
					return true
				}
			}
		}
		for _, c := range s.Summaries {
			if bytes.Contains([]byte(c.Title), []byte(word)) || c.LastMessage != nil && bytes.Contains([]byte(c.LastMessage.Body+" "+strings.Join(c.LastMessage.Files, " ")), []byte(word)) {
				return true
			}
		}
		return false
	}
	for _, w := range []string{"alices secret", "Alices room", "alices last word", "note.txt", "plans.pdf", "alices early word"} {
		if !has(before, w) {
			t.Errorf("before the erasure the store does not hold %q: the check proves nothing", w)
		}
		if has(got, w) {
			t.Errorf("after the erasure the store still holds %q", w)
		}
	}
	for _, w := range []string{"bobs reply", "bobs word", "between bob and carol", "alices word after her erasure"} {
		if !has(got, w) {
			t.Errorf("after the erasure the store lost %q", w)
		}
	}
	if c := got.Summaries["g"]; c.Title != contentkeys.Redacted || c.LastMessage == nil || c.LastMessage.SenderID != "alice" ||
		c.LastMessage.Body != "📎 "+contentkeys.Redacted || len(c.LastMessage.Files) != 1 {
		t.Errorf("summary of g after the erasure: title %q, preview %+v; want the rename's title redacted, her preview blank with its file redacted", c.Title, c.LastMessage)
	}
	if evs := got.Events["g"]; len(evs) != 7 || evs[1].Message == nil || evs[1].Message.Body != "" || len(evs[1].Message.Reactions) != 1 {
		t.Errorf("her edited message after the erasure: %+v; want its state blank, its reaction kept", evs)
	}

	// Erasing again, or a user without content, changes nothing.
	if err := live.Erase(t.Context(), erasure); err != nil {
		t.Fatalf("Erase again: %v", err)
	}
	if err := live.Erase(t.Context(), history.Erasure{SubjectRef: schemas.ErasureRef("nobody"), At: at}); err != nil {
		t.Fatalf("Erase of a user without content: %v", err)
	}
	checkSameState(t, erasureState(t, live), want)
	// Her events replayed after the erasure, blank as the log then reads
	// them, change nothing either.
	apply(t, live, blanked(t, events, at)...)
	checkSameState(t, erasureState(t, live), want)
}
