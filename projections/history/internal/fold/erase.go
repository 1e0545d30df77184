// Erasing a user's content from a conversation as a store holds it.

package fold

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Erased is what erasing one user's content does to a conversation: the
// events whose Data changed, the message states whose Body changed and
// the summary.
type Erased struct {
	Events       []history.Event
	States       map[uint64]*history.MessageState
	Conversation history.Conversation
	// Changed reports whether the summary changed (its title or its
	// preview).
	Changed bool
}

// Erase blanks the content of the user whose erasure reference
// (schemas.ErasureRef) is ref in sum's conversation, whose events are
// events (every one the store holds, in seq order, each with its
// Message state when it has one): the personal fields of each event of
// theirs at or before before are blanked as contentkeys.Blank does,
// which is what the sealed log reads as once their key is erased; the
// message states and the summary (title, preview) are then derived
// again from the blanked events as Apply derives them, so that the
// store ends where a rebuild from the log ends. Blanking what is blank
// already changes nothing.
func Erase(sum history.Conversation, events []history.Event, ref string, before time.Time) (Erased, error) {
	out := Erased{States: map[uint64]*history.MessageState{}, Conversation: sum}
	bySeq := make(map[uint64]*history.Event, len(events))
	changed := map[uint64]bool{}
	lastTitle := -1
	for i := range events {
		ev := &events[i]
		bySeq[ev.Seq] = ev
		switch ev.Type {
		case schemas.TypeConversationCreated, schemas.TypeConversationCreatedV2, schemas.TypeRenamed:
			lastTitle = i
		}
		owner, ok := contentkeys.Owner(ev.Type, ev.Data)
		if !ok || schemas.ErasureRef(owner) != ref || ev.Time.After(before) {
			continue
		}
		data, err := contentkeys.Blank(ev.Type, ev.Data)
		if err != nil {
			return Erased{}, fmt.Errorf("erasing event %d of %s: %w", ev.Seq, ev.ConversationID, err)
		}
		if string(data) == string(ev.Data) {
			continue
		}
		ev.Data = data
		changed[ev.Seq] = true
		e := *ev
		e.Message = nil
		out.Events = append(out.Events, e)
	}
	if len(changed) == 0 {
		return out, nil
	}

	// Message states: the body is the last edit's, or the message's.
	bodyOf := func(seq uint64) (string, bool) {
		ev, ok := bySeq[seq]
		if !ok {
			return "", false
		}
		var b struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(ev.Data, &b) != nil {
			return "", false
		}
		return b.Body, true
	}
	current := func(ev *history.Event) string {
		st := ev.Message
		if st == nil {
			b, _ := bodyOf(ev.Seq)
			return b
		}
		if st.Deleted {
			return ""
		}
		if n := len(st.Edits); n > 0 {
			b, _ := bodyOf(st.Edits[n-1])
			return b
		}
		b, _ := bodyOf(ev.Seq)
		return b
	}
	for i := range events {
		ev := &events[i]
		st := ev.Message
		if st == nil || st.Deleted || !touched(changed, ev.Seq, st) {
			continue
		}
		if b := current(ev); b != st.Body {
			c := *st
			c.Body = b
			out.States[ev.Seq] = &c
		}
	}

	// The summary: the title is the last title event's, the preview the
	// newest message's.
	c := sum
	if lastTitle >= 0 && changed[events[lastTitle].Seq] {
		var t struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(events[lastTitle].Data, &t); err == nil && t.Title != c.Title {
			c.Title = t.Title
			out.Changed = true
		}
	}
	if p := c.LastMessage; p != nil && !p.Deleted {
		if ev, ok := bySeq[p.Seq]; ok && (changed[p.Seq] || ev.Message != nil && touched(changed, p.Seq, ev.Message)) && schemas.IsMessage(ev.Type) {
			v, err := schemas.Decode(ev.Type, ev.Data)
			if m, isMsg := schemas.AsMessage(v); err == nil && isMsg {
				np := *p
				np.Files = nil
				for _, a := range m.Attachments {
					np.Files = append(np.Files, a.Name)
				}
				np.Body = history.PreviewBody(np.Files, current(ev))
				if np.Body != p.Body || !slices.Equal(np.Files, p.Files) {
					c.LastMessage = &np
					out.Changed = true
				}
			}
		}
	}
	out.Conversation = c
	return out, nil
}

// touched reports whether the message at seq, or one of its edits, is
// among changed.
func touched(changed map[uint64]bool, seq uint64, st *history.MessageState) bool {
	if changed[seq] {
		return true
	}
	for _, e := range st.Edits {
		if changed[e] {
			return true
		}
	}
	return false
}
