// Events: the accepted facts of chat.events. Every event after the
// creation names the user who issued its command in UserID (a message its
// SenderID), so that a gateway can answer the command's sender from the
// event alone.

package schemas

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// MemberLeftV1 is a member's departure from a group (chat.member.left.v1).
// From its seq on, the user receives nothing of the conversation and can
// no longer read or search it.
type MemberLeftV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	CommandID      string    `json:"command_id"`
	LeftAt         time.Time `json:"left_at"`
}

// ConversationCreatedV1 is the first event of every conversation; its seq
// is always 0, so the conversation's other events are numbered from 1
// (chat.conversation.created.v1).
type ConversationCreatedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	Kind           Kind      `json:"kind"`
	Title          string    `json:"title,omitempty"`
	CreatedBy      string    `json:"created_by"`
	Members        []Member  `json:"members"`
	CommandID      string    `json:"command_id"`
	CreatedAt      time.Time `json:"created_at"`
}

// MessageSentV1 is an accepted text message (chat.message.sent.v1).
type MessageSentV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	SenderID       string    `json:"sender_id"`
	Body           string    `json:"body"`
	CommandID      string    `json:"command_id"`
	SentAt         time.Time `json:"sent_at"`
}

func (e *ConversationCreatedV1) validate() error {
	errs := []error{checkIDs(e.CreatedBy, e.ConversationID, e.CommandID)}
	if e.Seq != 0 {
		errs = append(errs, fmt.Errorf("seq of a creation must be 0, got %d", e.Seq))
	}
	if len(e.Members) == 0 {
		errs = append(errs, errors.New("no members"))
	}
	return errors.Join(errs...)
}

func (e *MessageSentV1) validate() error {
	err := checkIDs(e.SenderID, e.ConversationID, e.CommandID)
	if e.Seq == 0 {
		err = errors.Join(err, errors.New("seq must be at least 1"))
	}
	return err
}

func (e *MemberLeftV1) validate() error {
	err := checkIDs(e.UserID, e.ConversationID, e.CommandID)
	if e.Seq == 0 {
		err = errors.Join(err, errors.New("seq must be at least 1"))
	}
	return err
}

// MembersAddedV1 is users joining a group as members (chat.members.added.v1).
type MembersAddedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	Members        []Member  `json:"members"`
	CommandID      string    `json:"command_id"`
	AddedAt        time.Time `json:"added_at"`
}

// MemberRemovedV1 is a member's removal by an owner or admin
// (chat.member.removed.v1). From its seq on, MemberID receives nothing of
// the conversation and can no longer read or search it.
type MemberRemovedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	MemberID       string    `json:"member_id"`
	CommandID      string    `json:"command_id"`
	RemovedAt      time.Time `json:"removed_at"`
}

// RolesChangedV1 is one or more members' new roles
// (chat.member.roles.changed.v1): one change for a promotion or
// demotion, two for a transfer of ownership.
type RolesChangedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	Changes        []Member  `json:"changes"`
	CommandID      string    `json:"command_id"`
	ChangedAt      time.Time `json:"changed_at"`
}

// RenamedV1 is a group's new title (chat.conversation.renamed.v1).
type RenamedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	Title          string    `json:"title"`
	CommandID      string    `json:"command_id"`
	RenamedAt      time.Time `json:"renamed_at"`
}

// ArchivedV1 is a group archived or unarchived
// (chat.conversation.archived.v1). An archived group is read-only: it
// can be read, searched and left, and unarchived by its owner.
type ArchivedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	Archived       bool      `json:"archived"`
	CommandID      string    `json:"command_id"`
	ArchivedAt     time.Time `json:"archived_at"`
}

// BlockedV1 is UserID blocking or unblocking the other user of a direct
// conversation (chat.conversation.blocked.v1). While a block stands,
// neither user can add messages, edits or reactions to it.
type BlockedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	Blocked        bool      `json:"blocked"`
	CommandID      string    `json:"command_id"`
	BlockedAt      time.Time `json:"blocked_at"`
}

// MessageSentV2 is an accepted text message (chat.message.sent.v2): v1
// with ReplyTo, the seq of the message it answers (0: none). A thread is
// the chain of ReplyTo links.
type MessageSentV2 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	SenderID       string    `json:"sender_id"`
	Body           string    `json:"body"`
	ReplyTo        uint64    `json:"reply_to,omitempty"`
	CommandID      string    `json:"command_id"`
	SentAt         time.Time `json:"sent_at"`
}

// MessageSentV3 is an accepted message (chat.message.sent.v3): v2 with
// Attachments, the files it carries (metadata only; the bytes are in the
// file store). Body may be empty when Attachments is not.
type MessageSentV3 struct {
	ConversationID string       `json:"conversation_id"`
	Seq            uint64       `json:"seq"`
	SenderID       string       `json:"sender_id"`
	Body           string       `json:"body"`
	ReplyTo        uint64       `json:"reply_to,omitempty"`
	Attachments    []Attachment `json:"attachments,omitempty"`
	CommandID      string       `json:"command_id"`
	SentAt         time.Time    `json:"sent_at"`
}

// MessageEditedV1 is a message's new body (chat.message.edited.v1).
type MessageEditedV1 struct {
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	UserID         string `json:"user_id"`
	MessageSeq     uint64 `json:"message_seq"`
	Body           string `json:"body"`
	// MessageSentAt is when the edited message was sent, so a consumer
	// can rebuild the message's document from this event alone.
	MessageSentAt time.Time `json:"message_sent_at"`
	CommandID     string    `json:"command_id"`
	EditedAt      time.Time `json:"edited_at"`
}

// MessageDeletedV1 is a message deleted by its author or a group's admin
// or owner (chat.message.deleted.v1). Projections keep a tombstone: the
// body of the message and of its edits is erased from history and the
// message leaves the search index.
type MessageDeletedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	MessageSeq     uint64    `json:"message_seq"`
	CommandID      string    `json:"command_id"`
	DeletedAt      time.Time `json:"deleted_at"`
}

// ReactionV1 is a reaction added (chat.reaction.added.v1) or removed
// (chat.reaction.removed.v1). A user has at most one reaction with each
// emoji on a message.
type ReactionV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	MessageSeq     uint64    `json:"message_seq"`
	Emoji          string    `json:"emoji"`
	CommandID      string    `json:"command_id"`
	At             time.Time `json:"at"`
}

// MaxEmojiBytes is the longest reaction emoji, in bytes: enough for the
// longest standard emoji ZWJ sequences.
const MaxEmojiBytes = 64

// ValidEmoji reports whether s can be a reaction: 1 to MaxEmojiBytes of
// valid UTF-8 with at least one non-ASCII character and no ASCII letters,
// spaces or control characters — an emoji or symbol (keycaps such as
// "#️⃣" included), not a word.
func ValidEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	nonASCII := false
	for _, r := range s {
		switch {
		case r >= 0x80:
			nonASCII = true
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				return false
			}
		case r <= ' ' || r == 0x7f, r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			return false
		}
	}
	return nonASCII
}

func needSeq(name string, seq uint64) error {
	if seq == 0 {
		return fmt.Errorf("%s must be at least 1", name)
	}
	return nil
}

func (e *MembersAddedV1) validate() error {
	errs := []error{checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq)}
	if len(e.Members) == 0 {
		errs = append(errs, errors.New("no members"))
	}
	return errors.Join(errs...)
}

func (e *MemberRemovedV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
	if !ValidUserID(e.MemberID) {
		err = errors.Join(err, fmt.Errorf("bad member id %q", e.MemberID))
	}
	return err
}

func (e *RolesChangedV1) validate() error {
	errs := []error{checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq)}
	if len(e.Changes) == 0 {
		errs = append(errs, errors.New("no changes"))
	}
	for _, m := range e.Changes {
		if !ValidUserID(m.UserID) || !validRole(m.Role) {
			errs = append(errs, fmt.Errorf("bad change %q to %q", m.UserID, m.Role))
		}
	}
	return errors.Join(errs...)
}

func (e *RenamedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (e *ArchivedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (e *BlockedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (e *MessageSentV2) validate() error {
	err := errors.Join(checkIDs(e.SenderID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
	if e.ReplyTo >= e.Seq && e.Seq > 0 {
		err = errors.Join(err, fmt.Errorf("reply_to %d does not precede seq %d", e.ReplyTo, e.Seq))
	}
	return err
}

func (e *MessageSentV3) validate() error {
	v2 := MessageSentV2{ConversationID: e.ConversationID, Seq: e.Seq, SenderID: e.SenderID, ReplyTo: e.ReplyTo, CommandID: e.CommandID}
	return errors.Join(v2.validate(), validAttachments(e.Attachments))
}

func (e *MessageEditedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
}

func (e *MessageDeletedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
}

func (e *ReactionV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
	if !ValidEmoji(e.Emoji) {
		err = errors.Join(err, fmt.Errorf("bad emoji %q", e.Emoji))
	}
	return err
}

// Message is a sent message, whatever version of chat.message.sent it
// came as.
type Message = MessageSentV3

// AsMessage returns the message of a decoded chat.message.sent.v1, .v2
// or .v3 value, and whether v is one.
func AsMessage(v any) (*Message, bool) {
	switch m := v.(type) {
	case *MessageSentV3:
		return m, true
	case *MessageSentV2:
		return &Message{ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, Body: m.Body, ReplyTo: m.ReplyTo, CommandID: m.CommandID, SentAt: m.SentAt}, true
	case *MessageSentV1:
		return &Message{ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, Body: m.Body, CommandID: m.CommandID, SentAt: m.SentAt}, true
	}
	return nil, false
}

// IsMessage reports whether typ is a version of chat.message.sent.
func IsMessage(typ string) bool {
	return typ == TypeMessageSent || typ == TypeMessageSentV2 || typ == TypeMessageSentV3
}
