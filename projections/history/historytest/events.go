// Builders of the events the suite applies: creations, messages,
// membership changes, edits, deletions, reactions.

package historytest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Base is the time of the events the suite builds unless told otherwise:
// a time with nanoseconds, to catch stores that round.
var Base = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// Created returns the chat.conversation.created.v1 event that opens the
// conversation c.ConversationID: seq 0, at c.CreatedAt, with an event id
// derived from the conversation. A zero c.CommandID becomes "create".
func Created(c schemas.ConversationCreatedV1) history.Event {
	c.Seq = 0
	if c.CommandID == "" {
		c.CommandID = "create"
	}
	return history.Event{
		ConversationID: c.ConversationID,
		Seq:            0,
		ID:             EventID(c.ConversationID, 0),
		Type:           schemas.TypeConversationCreated,
		Time:           c.CreatedAt,
		Data:           mustJSON(c),
	}
}

// Group returns the creation of a group conversation with a title derived
// from its id, created by the first member at time at.
func Group(conversationID string, at time.Time, members ...schemas.Member) history.Event {
	by := ""
	if len(members) > 0 {
		by = members[0].UserID
	}
	return Created(schemas.ConversationCreatedV1{
		ConversationID: conversationID,
		Kind:           schemas.KindGroup,
		Title:          "Group " + conversationID,
		CreatedBy:      by,
		Members:        members,
		CreatedAt:      at,
	})
}

// Owner returns user as an owner.
func Owner(user string) schemas.Member { return schemas.Member{UserID: user, Role: schemas.RoleOwner} }

// Admin returns user as an admin.
func Admin(user string) schemas.Member { return schemas.Member{UserID: user, Role: schemas.RoleAdmin} }

// Member returns user as a plain member.
func Member(user string) schemas.Member {
	return schemas.Member{UserID: user, Role: schemas.RoleMember}
}

// Message returns the chat.message.sent.v1 event seq (at least 1) of a
// conversation, sent by sender at time at.
func Message(conversationID string, seq uint64, sender, body string, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMessageSent, at, schemas.MessageSentV1{
		ConversationID: conversationID, Seq: seq, SenderID: sender, Body: body,
		CommandID: fmt.Sprintf("cmd-%d", seq), SentAt: at,
	})
}

// Left returns the chat.member.left.v1 event seq of a conversation: user
// left at time at.
func Left(conversationID string, seq uint64, user string, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMemberLeft, at, schemas.MemberLeftV1{
		ConversationID: conversationID, Seq: seq, UserID: user,
		CommandID: fmt.Sprintf("cmd-%d", seq), LeftAt: at,
	})
}

// MessageV2 returns the chat.message.sent.v2 event seq of a
// conversation: a message sent by sender at time at, answering the
// message replyTo (0: none).
func MessageV2(conversationID string, seq uint64, sender, body string, replyTo uint64, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMessageSentV2, at, schemas.MessageSentV2{
		ConversationID: conversationID, Seq: seq, SenderID: sender, Body: body, ReplyTo: replyTo,
		CommandID: fmt.Sprintf("cmd-%d", seq), SentAt: at,
	})
}

// MessageV3 returns the chat.message.sent.v3 event seq of a
// conversation: a message sent by sender at time at with a file of each
// of the names (metadata only, as the event carries it).
func MessageV3(conversationID string, seq uint64, sender, body string, at time.Time, files ...string) history.Event {
	m := schemas.MessageSentV3{
		ConversationID: conversationID, Seq: seq, SenderID: sender, Body: body,
		CommandID: fmt.Sprintf("cmd-%d", seq), SentAt: at,
	}
	for i, name := range files {
		m.Attachments = append(m.Attachments, schemas.Attachment{
			UploadID: fmt.Sprintf("u_%032d", seq*100+uint64(i)), Name: name, Size: uint64(i + 1),
			ContentType: "application/octet-stream", SHA256: strings.Repeat("a", 64),
		})
	}
	return event(conversationID, seq, schemas.TypeMessageSentV3, at, m)
}

// Direct returns the creation of the direct conversation of a and b,
// created by a at time at.
func Direct(a, b string, at time.Time) history.Event {
	return Created(schemas.ConversationCreatedV1{
		ConversationID: schemas.DirectConversationID(a, b),
		Kind:           schemas.KindDirect,
		CreatedBy:      a,
		Members:        []schemas.Member{Member(a), Member(b)},
		CreatedAt:      at,
	})
}

// Added returns the chat.members.added.v1 event seq of a conversation:
// by added members at time at.
func Added(conversationID string, seq uint64, by string, at time.Time, members ...schemas.Member) history.Event {
	return event(conversationID, seq, schemas.TypeMembersAdded, at, schemas.MembersAddedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, Members: members,
		CommandID: fmt.Sprintf("cmd-%d", seq), AddedAt: at,
	})
}

// Removed returns the chat.member.removed.v1 event seq of a
// conversation: by removed member at time at.
func Removed(conversationID string, seq uint64, by, member string, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMemberRemoved, at, schemas.MemberRemovedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, MemberID: member,
		CommandID: fmt.Sprintf("cmd-%d", seq), RemovedAt: at,
	})
}

// RolesChanged returns the chat.member.roles.changed.v1 event seq of a
// conversation: by gave members new roles at time at.
func RolesChanged(conversationID string, seq uint64, by string, at time.Time, changes ...schemas.Member) history.Event {
	return event(conversationID, seq, schemas.TypeRolesChanged, at, schemas.RolesChangedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, Changes: changes,
		CommandID: fmt.Sprintf("cmd-%d", seq), ChangedAt: at,
	})
}

// Renamed returns the chat.conversation.renamed.v1 event seq of a
// conversation: by renamed it title at time at.
func Renamed(conversationID string, seq uint64, by, title string, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeRenamed, at, schemas.RenamedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, Title: title,
		CommandID: fmt.Sprintf("cmd-%d", seq), RenamedAt: at,
	})
}

// Archived returns the chat.conversation.archived.v1 event seq of a
// conversation: by archived it (or unarchived it) at time at.
func Archived(conversationID string, seq uint64, by string, archived bool, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeArchived, at, schemas.ArchivedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, Archived: archived,
		CommandID: fmt.Sprintf("cmd-%d", seq), ArchivedAt: at,
	})
}

// Blocked returns the chat.conversation.blocked.v1 event seq of a
// direct conversation: by blocked (or unblocked) the other member at
// time at.
func Blocked(conversationID string, seq uint64, by string, blocked bool, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeBlocked, at, schemas.BlockedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, Blocked: blocked,
		CommandID: fmt.Sprintf("cmd-%d", seq), BlockedAt: at,
	})
}

// Edited returns the chat.message.edited.v1 event seq of a
// conversation: by gave message messageSeq the body at time at.
func Edited(conversationID string, seq uint64, by string, messageSeq uint64, body string, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMessageEdited, at, schemas.MessageEditedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, MessageSeq: messageSeq, Body: body,
		CommandID: fmt.Sprintf("cmd-%d", seq), EditedAt: at,
	})
}

// Deleted returns the chat.message.deleted.v1 event seq of a
// conversation: by deleted message messageSeq at time at.
func Deleted(conversationID string, seq uint64, by string, messageSeq uint64, at time.Time) history.Event {
	return event(conversationID, seq, schemas.TypeMessageDeleted, at, schemas.MessageDeletedV1{
		ConversationID: conversationID, Seq: seq, UserID: by, MessageSeq: messageSeq,
		CommandID: fmt.Sprintf("cmd-%d", seq), DeletedAt: at,
	})
}

// Reacted returns the chat.reaction.added.v1 event seq of a
// conversation: user reacted to message messageSeq with emoji at time
// at. Unreacted is its removal (chat.reaction.removed.v1).
func Reacted(conversationID string, seq uint64, user string, messageSeq uint64, emoji string, at time.Time) history.Event {
	return reaction(schemas.TypeReactionAdded, conversationID, seq, user, messageSeq, emoji, at)
}

// Unreacted returns the chat.reaction.removed.v1 event seq of a
// conversation: user took back their reaction emoji to message
// messageSeq at time at.
func Unreacted(conversationID string, seq uint64, user string, messageSeq uint64, emoji string, at time.Time) history.Event {
	return reaction(schemas.TypeReactionRemoved, conversationID, seq, user, messageSeq, emoji, at)
}

func reaction(typ, conversationID string, seq uint64, user string, messageSeq uint64, emoji string, at time.Time) history.Event {
	return event(conversationID, seq, typ, at, schemas.ReactionV1{
		ConversationID: conversationID, Seq: seq, UserID: user, MessageSeq: messageSeq, Emoji: emoji,
		CommandID: fmt.Sprintf("cmd-%d", seq), At: at,
	})
}

// event returns event seq of a conversation of type typ with value v,
// at time at, with the event id the helpers give it.
func event(conversationID string, seq uint64, typ string, at time.Time, v any) history.Event {
	return history.Event{
		ConversationID: conversationID,
		Seq:            seq,
		ID:             EventID(conversationID, seq),
		Type:           typ,
		Time:           at,
		Data:           mustJSON(v),
	}
}

// Messages returns the messages from..to (inclusive) of a conversation,
// sent by sender, message seq at MessageTime(seq).
func Messages(conversationID string, from, to uint64, sender string) []history.Event {
	out := make([]history.Event, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		out = append(out, Message(conversationID, seq, sender,
			fmt.Sprintf("message %d of %s", seq, conversationID), MessageTime(seq)))
	}
	return out
}

// MessageTime is the time the suite gives message seq by default: Base
// plus seq milliseconds and seq nanoseconds, so that times increase with
// seq and every one has nanoseconds of its own.
func MessageTime(seq uint64) time.Time {
	return Base.Add(time.Duration(seq) * (time.Millisecond + time.Nanosecond))
}

// EventID is the ce_id the helpers give event seq of a conversation.
func EventID(conversationID string, seq uint64) string {
	return fmt.Sprintf("evt-%s-%d", conversationID, seq)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("historytest: encoding %T: %v", v, err))
	}
	return b
}
