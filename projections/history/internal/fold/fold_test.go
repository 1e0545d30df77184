package fold_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/internal/fold"
	"github.com/parley-chat/parley/schemas"
)

var at = historytest.MessageTime

func noWarn(t *testing.T) func(history.Event, error) {
	return func(ev history.Event, err error) { t.Errorf("warning about event %d: %v", ev.Seq, err) }
}

func TestConversationRecordsWhatChangedAndWhen(t *testing.T) {
	t.Parallel()
	events := []history.Event{
		historytest.Group("g", historytest.Base, historytest.Owner("alice"), historytest.Member("bob")),
		historytest.Message("g", 1, "alice", "one", at(1)),
		historytest.Added("g", 2, "alice", at(2), historytest.Member("carol")),
		historytest.RolesChanged("g", 3, "alice", at(3), historytest.Admin("bob")),
		historytest.Renamed("g", 4, "alice", "T", at(4)),
		historytest.Removed("g", 5, "alice", "carol", at(5)),
		historytest.Archived("g", 6, "alice", true, at(6)),
		historytest.MessageV2("g", 7, "bob", "seven", 1, at(7)),
		historytest.Edited("g", 8, "bob", 7, "seven!", at(8)),
		historytest.Reacted("g", 9, "alice", 7, "👍", at(9)),
		historytest.Blocked("g", 10, "bob", true, at(10)),
	}
	s := fold.Conversation(history.Conversation{}, events, noWarn(t))
	if !s.Changed || !s.Created || s.TitleSeq != 4 || s.ArchivedSeq != 6 || s.PreviewSeq != 8 {
		t.Errorf("changed %v, created %v, title %d, archived %d, preview %d; want true, true, 4, 6, 8",
			s.Changed, s.Created, s.TitleSeq, s.ArchivedSeq, s.PreviewSeq)
	}
	wantCounts := []fold.Count{{0, 0}, {1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 2}, {8, 2}, {9, 2}, {10, 2}}
	if !slices.Equal(s.Counts, wantCounts) {
		t.Errorf("counts %v, want %v", s.Counts, wantCounts)
	}
	if want := map[string]uint64{"alice": 1, "bob": 7}; !maps.Equal(s.Read, want) {
		t.Errorf("read %v, want %v", s.Read, want)
	}
	wantMembers := map[string]fold.MemberChange{
		"bob":   {Seq: 3, Role: schemas.RoleAdmin},
		"carol": {Seq: 5, Removed: true},
	}
	if !maps.Equal(s.Members, wantMembers) {
		t.Errorf("member changes %v, want %v", s.Members, wantMembers)
	}
	if want := map[string]fold.BlockChange{"bob": {Seq: 10, Blocked: true}}; !maps.Equal(s.Blocks, want) {
		t.Errorf("block changes %v, want %v", s.Blocks, want)
	}
	if c := s.Conversation; c.LastSeq != 10 || c.Messages != 2 || c.LastMessage == nil || c.LastMessage.Body != "seven!" {
		t.Errorf("summary %+v", c)
	}

	// Folding again from the result, or a gap filled late, changes
	// nothing but the sender's read seq.
	again := fold.Conversation(s.Conversation, append(events, historytest.Message("g", 3, "dave", "late", at(3))), noWarn(t))
	if again.Changed || len(again.Counts) != 0 || !maps.Equal(again.Read, map[string]uint64{"alice": 1, "bob": 7, "dave": 3}) {
		t.Errorf("a replay: changed %v, counts %v, read %v", again.Changed, again.Counts, again.Read)
	}
}

func TestConversationWarnsAndCountsAMalformedEvent(t *testing.T) {
	t.Parallel()
	bad := historytest.Message("g", 1, "alice", "x", at(1))
	bad.Data = []byte(`{"sender_id":"alice"}`)
	var warned []uint64
	s := fold.Conversation(history.Conversation{}, []history.Event{historytest.Group("g", historytest.Base, historytest.Owner("alice")), bad},
		func(ev history.Event, _ error) { warned = append(warned, ev.Seq) })
	if !slices.Equal(warned, []uint64{1}) || !slices.Equal(s.Counts, []fold.Count{{0, 0}, {1, 0}}) || s.Read["alice"] != 1 {
		t.Errorf("warned %v, counts %v, read %v", warned, s.Counts, s.Read)
	}
}

func TestStateRoundTrips(t *testing.T) {
	t.Parallel()
	for _, st := range []*history.MessageState{
		{Body: "b", Version: 3},
		{Body: "b", EditedAt: at(4).In(time.FixedZone("X", 3600)), Edits: []uint64{4, 6}, Version: 9,
			Reactions: []history.Reaction{{Emoji: "❤️", Users: []string{"a", "b"}}}},
		{Deleted: true, DeletedBy: "a", DeletedAt: at(7), Edits: []uint64{4}, Reactions: []history.Reaction{}, Version: 7},
	} {
		b, err := fold.EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fold.DecodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		want := *st
		want.EditedAt, want.DeletedAt = utc(st.EditedAt), utc(st.DeletedAt)
		if len(want.Reactions) == 0 {
			want.Reactions = nil
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("round trip of %+v: %+v (%s)", want, *got, b)
		}
	}
	if _, err := fold.DecodeState([]byte("{")); err == nil {
		t.Error("a truncated state decoded")
	}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// store is a Loader over a map of stored events and states.
type store struct {
	events map[uint64]history.Event
	states map[uint64]*history.MessageState
	loads  []uint64
}

func (s *store) load(_ context.Context, seq uint64) (history.Event, *history.MessageState, bool, error) {
	s.loads = append(s.loads, seq)
	ev, ok := s.events[seq]
	return ev, s.states[seq], ok, nil
}

func TestFoldMessagesRedactsADeletedMessageAndItsEdits(t *testing.T) {
	t.Parallel()
	msg := historytest.Message("g", 1, "alice", "secret", at(1))
	edit := historytest.Edited("g", 2, "alice", 1, "secret 2", at(2))
	st := &store{events: map[uint64]history.Event{1: msg, 2: edit}, states: map[uint64]*history.MessageState{
		1: {Body: "secret 2", EditedAt: at(2), Edits: []uint64{2}, Version: 2},
	}}
	late := historytest.Edited("g", 5, "alice", 1, "secret 3", at(5))
	batch := []history.Event{
		historytest.Reacted("g", 3, "bob", 1, "👍", at(3)),
		historytest.Deleted("g", 4, "alice", 1, at(4)),
		late,
	}
	m, err := fold.FoldMessages(t.Context(), batch, st.load, noWarn(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.States[1]; got == nil || !got.Deleted || got.Version != 5 || got.Body != "" || got.Reactions != nil {
		t.Errorf("state %+v", got)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(m.Redacted)), []uint64{1, 2, 5}) {
		t.Fatalf("redacted %v, want 1, 2 and 5", slices.Sorted(maps.Keys(m.Redacted)))
	}
	for seq, by := range map[uint64]uint64{1: 4, 2: 4, 5: 5} {
		r := m.Redacted[seq]
		want, _ := history.Redact(r.Event.Type, st.events[seq].Data)
		if seq == 5 {
			want, _ = history.Redact(late.Type, late.Data)
		}
		if r.By != by || string(r.Event.Data) != string(want) {
			t.Errorf("redaction of %d: by %d, data %s; want by %d, %s", seq, r.By, r.Event.Data, by, want)
		}
	}
	if !slices.Equal(st.loads, []uint64{1, 2}) {
		t.Errorf("loads %v, want the message once and its edit", st.loads)
	}
}

func TestFoldMessagesSkipsStrayTargetsAndFailsOnLoadErrors(t *testing.T) {
	t.Parallel()
	st := &store{events: map[uint64]history.Event{1: historytest.Renamed("g", 1, "alice", "T", at(1))}}
	var warned []uint64
	m, err := fold.FoldMessages(t.Context(), []history.Event{
		historytest.Reacted("g", 2, "bob", 1, "👍", at(2)), // not a message
		historytest.Reacted("g", 3, "bob", 9, "👍", at(3)), // after it
		historytest.Reacted("g", 4, "bob", 2, "👍", at(4)), // not stored
	}, st.load, func(ev history.Event, _ error) { warned = append(warned, ev.Seq) })
	if err != nil || len(m.States) != 0 || len(m.Redacted) != 0 || !slices.Equal(warned, []uint64{2, 3, 4}) {
		t.Errorf("err %v, states %v, redacted %v, warned %v", err, m.States, m.Redacted, warned)
	}
	broken := errors.New("store down")
	_, err = fold.FoldMessages(t.Context(), []history.Event{historytest.Reacted("g", 2, "bob", 1, "👍", at(2))},
		func(context.Context, uint64) (history.Event, *history.MessageState, bool, error) {
			return history.Event{}, nil, false, broken
		}, noWarn(t))
	if !errors.Is(err, broken) {
		t.Errorf("a failing load: %v, want it wrapped", err)
	}
}

// TestConversationRecordsTheLastChangeOfTheEncryptionState: the
// encryption state changed with the creation, the commits and the leave
// proposal, not with a message; the seq is the last event that changed
// it, 0 for the creation alone.
func TestConversationRecordsTheLastChangeOfTheEncryptionState(t *testing.T) {
	t.Parallel()
	events := historytest.EncryptedGroup()
	for _, c := range []struct {
		batch   []history.Event
		changed bool
		seq     uint64
	}{
		{events[:1], true, 0},
		{events[:3], true, 1},
		{events[:4], true, 3},
		{events, true, 4},
	} {
		s := fold.Conversation(history.Conversation{}, c.batch, noWarn(t))
		if s.Encryption != c.changed || s.EncryptionSeq != c.seq {
			t.Errorf("through seq %d: encryption changed %v at %d, want %v at %d", len(c.batch)-1, s.Encryption, s.EncryptionSeq, c.changed, c.seq)
		}
	}
	// A message alone, folded after the commit, changes none of it.
	base := fold.Conversation(history.Conversation{}, events[:2], noWarn(t)).Conversation
	if s := fold.Conversation(base, events[2:3], noWarn(t)); s.Encryption {
		t.Errorf("a message changed the encryption state (seq %d)", s.EncryptionSeq)
	}
	// A plaintext conversation's never changes.
	if s := fold.Conversation(history.Conversation{}, []history.Event{historytest.Group("g", historytest.Base, historytest.Owner("alice"))}, noWarn(t)); s.Encryption {
		t.Error("a plaintext creation changed the encryption state")
	}
}
