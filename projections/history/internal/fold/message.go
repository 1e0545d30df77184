// Folding the message states of a batch: edits, deletions (with the
// bodies they erase) and reactions.

package fold

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Loader returns event seq of the conversation being applied, from the
// batch or from the store, with the message state stored for it (nil if
// none), and found false when there is no such event. An error is a
// failure of the store, which fails the Apply.
type Loader func(ctx context.Context, seq uint64) (ev history.Event, st *history.MessageState, found bool, err error)

// Redaction is a stored event whose body a deletion erases.
type Redaction struct {
	// Event is the event with its Data redacted (history.Redact).
	Event history.Event
	// By is the seq of the event that erased it: the deletion, or an
	// edit of a message deleted before it.
	By uint64
}

// Messages is what a batch did to the messages its edits, deletions and
// reactions target.
type Messages struct {
	// States are the changed states, by the seq of their message.
	States map[uint64]*history.MessageState
	// Redacted are the events whose stored Data must be replaced, by seq.
	Redacted map[uint64]Redaction
}

type target struct {
	ev history.Event
	st *history.MessageState
	// missing says why the event cannot be a target, if it cannot.
	missing error
}

// FoldMessages folds every edit, deletion and reaction of events (the
// events of one conversation a store applies, ascending by seq) into the
// state of the message it targets, loaded with load (once per message)
// or started with history.NewMessageState. history.ApplyToMessage makes
// a replayed event change nothing. A deletion redacts the message and
// every edit in its state; an edit of a message already deleted is
// redacted itself. A target that does not exist, is not a message or
// does not precede its event is reported to warn and skipped: the event
// is stored all the same.
func FoldMessages(ctx context.Context, events []history.Event, load Loader, warn func(history.Event, error)) (Messages, error) {
	out := Messages{States: map[uint64]*history.MessageState{}, Redacted: map[uint64]Redaction{}}
	cache := map[uint64]*target{}
	get := func(seq uint64) (*target, error) {
		if t, ok := cache[seq]; ok {
			return t, nil
		}
		ev, st, found, err := load(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("loading message %d: %w", seq, err)
		}
		t := &target{ev: ev, st: st}
		switch {
		case !found:
			t.missing = fmt.Errorf("target %d is not stored", seq)
		case !schemas.IsMessage(ev.Type):
			t.missing = fmt.Errorf("target %d is a %s, not a message", seq, ev.Type)
		case st == nil:
			t.st, t.missing = history.NewMessageState(ev)
		}
		cache[seq] = t
		return t, nil
	}
	redact := func(ev history.Event, by uint64) {
		data, err := history.Redact(ev.Type, ev.Data)
		if err != nil {
			warn(ev, fmt.Errorf("erasing the body of a deleted message: %w", err))
			return
		}
		ev.Data = data
		ev.Message = nil
		out.Redacted[ev.Seq] = Redaction{Event: ev, By: by}
	}
	for _, ev := range events {
		seq, ok := history.Target(ev)
		if !ok {
			continue
		}
		if seq >= ev.Seq {
			warn(ev, fmt.Errorf("%w: target %d does not precede the event", schemas.ErrInvalid, seq))
			continue
		}
		t, err := get(seq)
		if err != nil {
			return Messages{}, err
		}
		if t.missing != nil {
			warn(ev, t.missing)
			continue
		}
		wasDeleted := t.st.Deleted
		changed, err := history.ApplyToMessage(t.st, ev)
		if err != nil {
			warn(ev, err)
		}
		if changed {
			out.States[seq] = t.st
		}
		switch {
		case ev.Type == schemas.TypeMessageEdited && t.st.Deleted:
			redact(ev, ev.Seq)
		case ev.Type == schemas.TypeMessageDeleted && !wasDeleted && t.st.Deleted:
			redact(t.ev, ev.Seq)
			for _, e := range t.st.Edits {
				edit, _, found, err := load(ctx, e)
				if err != nil {
					return Messages{}, fmt.Errorf("loading edit %d: %w", e, err)
				}
				if !found {
					warn(ev, fmt.Errorf("edit %d of deleted message %d is not stored", e, seq))
					continue
				}
				redact(edit, ev.Seq)
			}
		}
	}
	return out, nil
}

// storedState is the stored form of a history.MessageState, the same in
// both adapters. Its JSON names are part of the stored format.
type storedState struct {
	Body      string           `json:"body,omitempty"`
	EditedAt  time.Time        `json:"edited_at,omitzero"`
	Edits     []uint64         `json:"edits,omitempty"`
	Deleted   bool             `json:"deleted,omitempty"`
	DeletedBy string           `json:"deleted_by,omitempty"`
	DeletedAt time.Time        `json:"deleted_at,omitzero"`
	Reactions []storedReaction `json:"reactions,omitempty"`
	Version   uint64           `json:"version"`
}

type storedReaction struct {
	Emoji string   `json:"emoji"`
	Users []string `json:"users"`
}

// EncodeState encodes st for storage.
func EncodeState(st *history.MessageState) ([]byte, error) {
	s := storedState{
		Body: st.Body, EditedAt: st.EditedAt.UTC(), Edits: st.Edits,
		Deleted: st.Deleted, DeletedBy: st.DeletedBy, DeletedAt: st.DeletedAt.UTC(),
		Version: st.Version,
	}
	for _, r := range st.Reactions {
		s.Reactions = append(s.Reactions, storedReaction{Emoji: r.Emoji, Users: r.Users})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding message state: %w", err)
	}
	return b, nil
}

// DecodeState decodes a state written by EncodeState. Times come back in
// UTC and empty lists as nil, so equal states decode equal.
func DecodeState(b []byte) (*history.MessageState, error) {
	var s storedState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding message state: %w", err)
	}
	st := &history.MessageState{
		Body: s.Body, EditedAt: utc(s.EditedAt), Deleted: s.Deleted,
		DeletedBy: s.DeletedBy, DeletedAt: utc(s.DeletedAt), Version: s.Version,
	}
	if len(s.Edits) > 0 {
		st.Edits = s.Edits
	}
	for _, r := range s.Reactions {
		if len(r.Users) > 0 {
			st.Reactions = append(st.Reactions, history.Reaction{Emoji: r.Emoji, Users: r.Users})
		}
	}
	return st, nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
