// Folding events into a conversation's summary: its state and what the
// inbox shows.

package history

import (
	"fmt"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

// ApplyToSummary folds one event into c, the summary of the event's
// conversation, and reports whether c changed. Both adapters call it for
// every event they store for the first time, so they agree on what a
// summary is.
//
// Every event, of any type, advances LastSeq and LastActivity to its seq
// and time when they are newer; neither ever moves backwards. A
// chat.conversation.created.v1 event sets the kind, title, creator,
// creation time and members (sorted by user id, one entry per user);
// membership events (members added, member left or removed, roles
// changed) update the members; renamed, archived and blocked events set
// the title, Archived and BlockedBy; every chat message counts in
// Messages and becomes the LastMessage preview, which its edit and
// deletion update (an edit keeps the message's files in the preview, a
// deletion drops them). Reactions change no summary. Folding is in seq order
// per conversation and once per event (a departure folded before the
// creation would be lost, a message folded twice counted twice), which
// both adapters guarantee. An event at or below LastSeq changes nothing
// (but a creation into a summary that has none), so folding the same
// event again is harmless.
// Events of types this version does not know change nothing else: they
// are kept in the history for later versions to interpret.
//
// A known event whose value cannot be decoded, or a creation whose seq is
// not 0, yields an error wrapping schemas.ErrInvalid; LastSeq and
// LastActivity are still advanced and the rest of c is left as it was.
// Adapters store such an event anyway and report the error in their logs:
// the log is the source of truth and a projection must not wedge on it.
func ApplyToSummary(c *Conversation, ev Event) (changed bool, err error) {
	if c.ID != "" && ev.Seq <= c.LastSeq && !(ev.Seq == 0 && c.Kind == "") {
		return false, nil // folded already (or older than what was)
	}
	if c.ID == "" {
		c.ID = ev.ConversationID
		changed = true
	}
	if ev.Seq > c.LastSeq {
		c.LastSeq = ev.Seq
		changed = true
	}
	if at := ev.Time.UTC(); at.After(c.LastActivity) {
		c.LastActivity = at
		changed = true
	}
	if schemas.IsCreation(ev.Type) && ev.Seq != 0 {
		return changed, fmt.Errorf("%w: %s at seq %d: a creation has seq 0",
			schemas.ErrInvalid, ev.Type, ev.Seq)
	}
	if !conversation.ChangesConversation(ev.Type) && !schemas.IsInboxMessage(ev.Type) &&
		ev.Type != schemas.TypeMessageEdited && ev.Type != schemas.TypeMessageDeleted {
		return changed, nil // reactions, and types of later versions
	}
	v, err := ev.decode()
	if err != nil {
		return changed, fmt.Errorf("decoding event %d of %s: %w", ev.Seq, ev.ConversationID, err)
	}
	c.State.Fold(ev.Seq, v)
	switch e := v.(type) {
	case *schemas.MessageSentV1, *schemas.MessageSentV2, *schemas.MessageSentV3:
		m, _ := schemas.AsMessage(v)
		c.Messages++
		if c.LastMessage == nil || m.Seq > c.LastMessage.Seq {
			c.LastMessage = &Preview{Seq: m.Seq, SenderID: m.SenderID, Body: CutPreview(PreviewText(m)), SentAt: m.SentAt.UTC(), Files: fileNames(m.Attachments)}
		}
	case *schemas.MLSMessageSentV1:
		// Ciphertext: the inbox counts it and names its sender, and
		// previews no body.
		c.Messages++
		if c.LastMessage == nil || e.Seq > c.LastMessage.Seq {
			c.LastMessage = &Preview{Seq: e.Seq, SenderID: e.SenderID, SentAt: e.SentAt.UTC()}
		}
	case *schemas.MessageEditedV1:
		if p := c.LastMessage; p != nil && p.Seq == e.MessageSeq && !p.Deleted {
			c.LastMessage = &Preview{Seq: p.Seq, SenderID: p.SenderID, Body: CutPreview(previewOf(p.Files, e.Body)), Edited: true, SentAt: p.SentAt, Files: p.Files}
		}
	case *schemas.MessageDeletedV1:
		if p := c.LastMessage; p != nil && p.Seq == e.MessageSeq {
			c.LastMessage = &Preview{Seq: p.Seq, SenderID: p.SenderID, Deleted: true, SentAt: p.SentAt}
		}
	}
	return true, nil
}
