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
// and time when they are newer; neither ever moves backwards. A
// chat.conversation.created.v1 event sets the kind, title, creator,
// creation time and members (sorted by user id, one entry per user);
// membership events (members added, member left or removed, roles
// changed) update the members; renamed, archived and blocked events set
// the title, Archived and BlockedBy; every chat message counts in
// Messages and becomes the LastMessage preview, which its edit and
// deletion update. Reactions change no summary. Folding is in seq order
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
	switch ev.Type {
	case schemas.TypeConversationCreated:
		if ev.Seq != 0 {
			return changed, fmt.Errorf("%w: %s at seq %d: a creation has seq 0",
				schemas.ErrInvalid, ev.Type, ev.Seq)
		}
	case schemas.TypeMessageSent, schemas.TypeMessageSentV2, schemas.TypeMemberLeft, schemas.TypeMembersAdded,
		schemas.TypeMemberRemoved, schemas.TypeRolesChanged, schemas.TypeRenamed, schemas.TypeArchived,
		schemas.TypeBlocked, schemas.TypeMessageEdited, schemas.TypeMessageDeleted:
	default:
		return changed, nil // reactions, and types of later versions
	}
	v, err := schemas.Decode(ev.Type, ev.Data)
	if err != nil {
		return changed, fmt.Errorf("decoding event %d of %s: %w", ev.Seq, ev.ConversationID, err)
	}
	switch e := v.(type) {
	case *schemas.ConversationCreatedV1:
		c.Kind = e.Kind
		c.Title = e.Title
		c.CreatedBy = e.CreatedBy
		c.CreatedAt = e.CreatedAt.UTC()
		c.Members = SortMembers(e.Members)
	case *schemas.MessageSentV1, *schemas.MessageSentV2:
		m, _ := schemas.AsMessage(v)
		c.Messages++
		if c.LastMessage == nil || m.Seq > c.LastMessage.Seq {
			c.LastMessage = &Preview{Seq: m.Seq, SenderID: m.SenderID, Body: CutPreview(m.Body), SentAt: m.SentAt.UTC()}
		}
	case *schemas.MessageEditedV1:
		if p := c.LastMessage; p != nil && p.Seq == e.MessageSeq && !p.Deleted {
			c.LastMessage = &Preview{Seq: p.Seq, SenderID: p.SenderID, Body: CutPreview(e.Body), Edited: true, SentAt: p.SentAt}
		}
	case *schemas.MessageDeletedV1:
		if p := c.LastMessage; p != nil && p.Seq == e.MessageSeq {
			c.LastMessage = &Preview{Seq: p.Seq, SenderID: p.SenderID, Deleted: true, SentAt: p.SentAt}
		}
	case *schemas.MemberLeftV1:
		c.Members = withoutMember(c.Members, e.UserID)
	case *schemas.MemberRemovedV1:
		c.Members = withoutMember(c.Members, e.MemberID)
	case *schemas.MembersAddedV1:
		c.Members = SortMembers(append(slices.Clone(c.Members), e.Members...))
	case *schemas.RolesChangedV1:
		members := slices.Clone(c.Members)
		for _, ch := range e.Changes {
			if i := slices.IndexFunc(members, func(m schemas.Member) bool { return m.UserID == ch.UserID }); i >= 0 {
				members[i].Role = ch.Role
			}
		}
		c.Members = members
	case *schemas.RenamedV1:
		c.Title = e.Title
	case *schemas.ArchivedV1:
		c.Archived = e.Archived
	case *schemas.BlockedV1:
		blocked := slices.DeleteFunc(slices.Clone(c.BlockedBy), func(u string) bool { return u == e.UserID })
		if e.Blocked {
			blocked = append(blocked, e.UserID)
			slices.Sort(blocked)
		}
		if len(blocked) == 0 {
			blocked = nil
		}
		c.BlockedBy = blocked
	}
	return true, nil
}

func withoutMember(members []schemas.Member, user string) []schemas.Member {
	return slices.DeleteFunc(slices.Clone(members), func(m schemas.Member) bool { return m.UserID == user })
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
