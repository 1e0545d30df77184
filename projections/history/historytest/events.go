package historytest

import (
	"encoding/json"
	"fmt"
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
	return history.Event{
		ConversationID: conversationID,
		Seq:            seq,
		ID:             EventID(conversationID, seq),
		Type:           schemas.TypeMessageSent,
		Time:           at,
		Data: mustJSON(schemas.MessageSentV1{
			ConversationID: conversationID,
			Seq:            seq,
			SenderID:       sender,
			Body:           body,
			CommandID:      fmt.Sprintf("cmd-%d", seq),
			SentAt:         at,
		}),
	}
}

// Left returns the chat.member.left.v1 event seq of a conversation: user
// left at time at.
func Left(conversationID string, seq uint64, user string, at time.Time) history.Event {
	return history.Event{
		ConversationID: conversationID,
		Seq:            seq,
		ID:             EventID(conversationID, seq),
		Type:           schemas.TypeMemberLeft,
		Time:           at,
		Data: mustJSON(schemas.MemberLeftV1{
			ConversationID: conversationID,
			Seq:            seq,
			UserID:         user,
			CommandID:      fmt.Sprintf("cmd-%d", seq),
			LeftAt:         at,
		}),
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
