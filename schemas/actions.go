package schemas

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// The commands and events of #5: membership and roles, group settings,
// blocking, message edits, deletions, reactions and replies. Every event
// here names the user who issued its command in UserID, so a gateway can
// answer the command's sender from the event alone.

// AddMembersV1 asks to add users to a group (chat.members.add.v1).
type AddMembersV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MemberIDs      []string  `json:"member_ids"`
	IssuedAt       time.Time `json:"issued_at"`
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

// RemoveMemberV1 asks to remove a member from a group
// (chat.member.remove.v1).
type RemoveMemberV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MemberID       string    `json:"member_id"`
	IssuedAt       time.Time `json:"issued_at"`
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

// SetRoleV1 asks to change a member's role (chat.member.role.set.v1).
// Role owner transfers the ownership: only the owner may ask it, and the
// previous owner becomes an admin.
type SetRoleV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MemberID       string    `json:"member_id"`
	Role           Role      `json:"role"`
	IssuedAt       time.Time `json:"issued_at"`
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

// RenameV1 asks to change a group's title (chat.conversation.rename.v1).
type RenameV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Title          string    `json:"title"`
	IssuedAt       time.Time `json:"issued_at"`
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

// ArchiveV1 asks to archive or unarchive a group
// (chat.conversation.archive.v1).
type ArchiveV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Archived       bool      `json:"archived"`
	IssuedAt       time.Time `json:"issued_at"`
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

// BlockV1 asks to block or unblock the other user of a direct
// conversation (chat.conversation.block.v1).
type BlockV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Blocked        bool      `json:"blocked"`
	IssuedAt       time.Time `json:"issued_at"`
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

// SendMessageV2 asks to append a text message, optionally as a reply to
// an earlier message (chat.message.send.v2).
type SendMessageV2 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Body           string    `json:"body"`
	ReplyTo        uint64    `json:"reply_to,omitempty"`
	IssuedAt       time.Time `json:"issued_at"`
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

// EditMessageV1 asks to replace a message's body (chat.message.edit.v1).
type EditMessageV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MessageSeq     uint64    `json:"message_seq"`
	Body           string    `json:"body"`
	IssuedAt       time.Time `json:"issued_at"`
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

// DeleteMessageV1 asks to delete a message (chat.message.delete.v1).
type DeleteMessageV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MessageSeq     uint64    `json:"message_seq"`
	IssuedAt       time.Time `json:"issued_at"`
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

// ReactV1 asks to add (chat.reaction.add.v1) or remove
// (chat.reaction.remove.v1) the user's reaction with Emoji to a message.
type ReactV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MessageSeq     uint64    `json:"message_seq"`
	Emoji          string    `json:"emoji"`
	IssuedAt       time.Time `json:"issued_at"`
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

// Receipt kinds.
const (
	// ReceiptDelivered: an event up to Seq reached a device of the user.
	ReceiptDelivered = "delivered"
	// ReceiptRead: the user has read the conversation up to Seq.
	ReceiptRead = "read"
)

// ReceiptV1 is a user's delivered or read marker in a conversation
// (chat.receipt.v1, on the compacted chat.receipts keyed by
// conversation/user/kind). Markers only move forward: a lower Seq than
// the one already recorded changes nothing.
type ReceiptV1 struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	Kind           string    `json:"kind"`
	Seq            uint64    `json:"seq"`
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

// ReceiptKey is the record key of a receipt on chat.receipts: the latest
// record of each (conversation, user, kind) survives compaction.
func ReceiptKey(conversation, user, kind string) string {
	return conversation + "/" + user + "/" + kind
}

func needSeq(name string, seq uint64) error {
	if seq == 0 {
		return fmt.Errorf("%s must be at least 1", name)
	}
	return nil
}

func (c *AddMembersV1) validate() error {
	errs := []error{checkIDs(c.UserID, c.ConversationID, c.CommandID)}
	if len(c.MemberIDs) == 0 {
		errs = append(errs, errors.New("no member_ids"))
	}
	for _, m := range c.MemberIDs {
		if !ValidUserID(m) {
			errs = append(errs, fmt.Errorf("bad member id %q", m))
		}
	}
	return errors.Join(errs...)
}

func (e *MembersAddedV1) validate() error {
	errs := []error{checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq)}
	if len(e.Members) == 0 {
		errs = append(errs, errors.New("no members"))
	}
	return errors.Join(errs...)
}

func (c *RemoveMemberV1) validate() error {
	err := checkIDs(c.UserID, c.ConversationID, c.CommandID)
	if !ValidUserID(c.MemberID) {
		err = errors.Join(err, fmt.Errorf("bad member id %q", c.MemberID))
	}
	return err
}

func (e *MemberRemovedV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
	if !ValidUserID(e.MemberID) {
		err = errors.Join(err, fmt.Errorf("bad member id %q", e.MemberID))
	}
	return err
}

func validRole(r Role) bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

func (c *SetRoleV1) validate() error {
	err := checkIDs(c.UserID, c.ConversationID, c.CommandID)
	if !ValidUserID(c.MemberID) {
		err = errors.Join(err, fmt.Errorf("bad member id %q", c.MemberID))
	}
	if !validRole(c.Role) {
		err = errors.Join(err, fmt.Errorf("bad role %q", c.Role))
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

func (c *RenameV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (e *RenamedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (c *ArchiveV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (e *ArchivedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (c *BlockV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (e *BlockedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
}

func (c *SendMessageV2) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (e *MessageSentV2) validate() error {
	err := errors.Join(checkIDs(e.SenderID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq))
	if e.ReplyTo >= e.Seq && e.Seq > 0 {
		err = errors.Join(err, fmt.Errorf("reply_to %d does not precede seq %d", e.ReplyTo, e.Seq))
	}
	return err
}

func (c *EditMessageV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
}

func (e *MessageEditedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
}

func (c *DeleteMessageV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
}

func (e *MessageDeletedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
}

func (c *ReactV1) validate() error {
	err := errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
	if !ValidEmoji(c.Emoji) {
		err = errors.Join(err, fmt.Errorf("bad emoji %q", c.Emoji))
	}
	return err
}

func (e *ReactionV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("message_seq", e.MessageSeq))
	if !ValidEmoji(e.Emoji) {
		err = errors.Join(err, fmt.Errorf("bad emoji %q", e.Emoji))
	}
	return err
}

func (r *ReceiptV1) validate() error {
	var errs []error
	if !ValidUserID(r.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", r.UserID))
	}
	if !ValidConversationID(r.ConversationID) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", r.ConversationID))
	}
	if r.Kind != ReceiptDelivered && r.Kind != ReceiptRead {
		errs = append(errs, fmt.Errorf("bad kind %q", r.Kind))
	}
	return errors.Join(errs...)
}

// Message is a sent message, whatever version of chat.message.sent it
// came as.
type Message = MessageSentV2

// AsMessage returns the message of a decoded chat.message.sent.v1 or .v2
// value, and whether v is one.
func AsMessage(v any) (*Message, bool) {
	switch m := v.(type) {
	case *MessageSentV2:
		return m, true
	case *MessageSentV1:
		return &Message{ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, Body: m.Body, CommandID: m.CommandID, SentAt: m.SentAt}, true
	}
	return nil, false
}

// IsMessage reports whether typ is a version of chat.message.sent.
func IsMessage(typ string) bool { return typ == TypeMessageSent || typ == TypeMessageSentV2 }

// Command is what every command type has: the client command id (the
// idempotency key), the user who issued it and its conversation.
type Command interface {
	IDs() (commandID, userID, conversationID string)
}

// IDs implements Command.
func (c *CreateConversationV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *SendMessageV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *LeaveConversationV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *SendMessageV2) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *AddMembersV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *RemoveMemberV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *SetRoleV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *RenameV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *ArchiveV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *BlockV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *EditMessageV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *DeleteMessageV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *ReactV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}
