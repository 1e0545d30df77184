package history

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/schemas"
)

// ApplyToSummary folds one event into c, the summary of the event's
// conversation, and reports whether c changed. Both adapters call it for
// every event they store for the first time, so they agree on what a
// summary is.
//
// Every event, of any type, advances LastSeq and LastActivity to its seq
// and time when they are newer; neither ever moves backwards, so the
// result does not depend on the order in which events are folded. A
// chat.conversation.created.v1 event sets the kind, title, creator,
// creation time and members (sorted by user id, one entry per user); a
// chat.member.left.v1 removes its user from the members. Folding is in
// seq order per conversation (a departure folded before the creation
// would be lost), which both adapters guarantee.
// Events of types this version does not know change nothing else: they
// are kept in the history for later versions to interpret.
//
// A known event whose value cannot be decoded, or a creation whose seq is
// not 0, yields an error wrapping schemas.ErrInvalid; LastSeq and
// LastActivity are still advanced and the rest of c is left as it was.
// Adapters store such an event anyway and report the error in their logs:
// the log is the source of truth and a projection must not wedge on it.
func ApplyToSummary(c *Conversation, ev Event) (changed bool, err error) {
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
	if ev.Type == schemas.TypeMemberLeft {
		v, err := schemas.Decode(ev.Type, ev.Data)
		if err != nil {
			return changed, fmt.Errorf("decoding event %d of %s: %w", ev.Seq, ev.ConversationID, err)
		}
		left := v.(*schemas.MemberLeftV1).UserID
		if i := slices.IndexFunc(c.Members, func(m schemas.Member) bool { return m.UserID == left }); i >= 0 {
			c.Members = slices.Delete(slices.Clone(c.Members), i, i+1)
			changed = true
		}
		return changed, nil
	}
	if ev.Type != schemas.TypeConversationCreated {
		return changed, nil
	}
	if ev.Seq != 0 {
		return changed, fmt.Errorf("%w: %s at seq %d: a creation has seq 0",
			schemas.ErrInvalid, ev.Type, ev.Seq)
	}
	v, err := schemas.Decode(ev.Type, ev.Data)
	if err != nil {
		return changed, fmt.Errorf("decoding event %d of %s: %w", ev.Seq, ev.ConversationID, err)
	}
	created := v.(*schemas.ConversationCreatedV1)
	c.Kind = created.Kind
	c.Title = created.Title
	c.CreatedBy = created.CreatedBy
	c.CreatedAt = created.CreatedAt.UTC()
	c.Members = SortMembers(created.Members)
	return true, nil
}

// SortMembers returns a copy of members sorted by user id with one entry
// per user, the first one given for it.
func SortMembers(members []schemas.Member) []schemas.Member {
	out := slices.Clone(members)
	slices.SortStableFunc(out, func(a, b schemas.Member) int {
		return cmp.Compare(a.UserID, b.UserID)
	})
	return slices.CompactFunc(out, func(a, b schemas.Member) bool {
		return a.UserID == b.UserID
	})
}
