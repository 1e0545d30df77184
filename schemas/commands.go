// Commands: requests to change a conversation, appended to chat.commands
// by the gateway and judged by the decider. Each names the user who
// issued it and carries the client's command id, the idempotency key.

package schemas

import (
	"errors"
	"fmt"
	"time"
)

// CreateConversationV1 asks to create a conversation (chat.conversation.create.v1).
type CreateConversationV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Kind           Kind      `json:"kind"`
	Title          string    `json:"title,omitempty"`
	Members        []string  `json:"members"`
	IssuedAt       time.Time `json:"issued_at"`
}

// SendMessageV1 asks to append a text message (chat.message.send.v1).
type SendMessageV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Body           string    `json:"body"`
	IssuedAt       time.Time `json:"issued_at"`
}

// LeaveConversationV1 asks to leave a group conversation
// (chat.conversation.leave.v1).
type LeaveConversationV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	IssuedAt       time.Time `json:"issued_at"`
}

func (c *CreateConversationV1) validate() error {
	errs := []error{checkIDs(c.UserID, c.ConversationID, c.CommandID)}
	if c.Kind != KindDirect && c.Kind != KindGroup {
		errs = append(errs, fmt.Errorf("bad kind %q", c.Kind))
	}
	for _, m := range c.Members {
		if !ValidUserID(m) {
			errs = append(errs, fmt.Errorf("bad member id %q", m))
		}
	}
	return errors.Join(errs...)
}

func (c *SendMessageV1) validate() error {
	return checkIDs(c.UserID, c.ConversationID, c.CommandID)
}

func (c *LeaveConversationV1) validate() error {
	return checkIDs(c.UserID, c.ConversationID, c.CommandID)
}

// AddMembersV1 asks to add users to a group (chat.members.add.v1).
type AddMembersV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MemberIDs      []string  `json:"member_ids"`
	IssuedAt       time.Time `json:"issued_at"`
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

// RenameV1 asks to change a group's title (chat.conversation.rename.v1).
type RenameV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Title          string    `json:"title"`
	IssuedAt       time.Time `json:"issued_at"`
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

// BlockV1 asks to block or unblock the other user of a direct
// conversation (chat.conversation.block.v1).
type BlockV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Blocked        bool      `json:"blocked"`
	IssuedAt       time.Time `json:"issued_at"`
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

// SendMessageV3 asks to append a message with files
// (chat.message.send.v3): v2 with Attachments, the uploads it carries.
// Body may be empty when Attachments is not.
type SendMessageV3 struct {
	CommandID      string       `json:"command_id"`
	UserID         string       `json:"user_id"`
	ConversationID string       `json:"conversation_id"`
	Body           string       `json:"body"`
	ReplyTo        uint64       `json:"reply_to,omitempty"`
	Attachments    []Attachment `json:"attachments,omitempty"`
	IssuedAt       time.Time    `json:"issued_at"`
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

// DeleteMessageV1 asks to delete a message (chat.message.delete.v1).
type DeleteMessageV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	MessageSeq     uint64    `json:"message_seq"`
	IssuedAt       time.Time `json:"issued_at"`
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

func (c *RemoveMemberV1) validate() error {
	err := checkIDs(c.UserID, c.ConversationID, c.CommandID)
	if !ValidUserID(c.MemberID) {
		err = errors.Join(err, fmt.Errorf("bad member id %q", c.MemberID))
	}
	return err
}

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

func (c *RenameV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (c *ArchiveV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (c *BlockV1) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (c *SendMessageV2) validate() error { return checkIDs(c.UserID, c.ConversationID, c.CommandID) }

func (c *SendMessageV3) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), validAttachments(c.Attachments))
}

func (c *EditMessageV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
}

func (c *DeleteMessageV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
}

func (c *ReactV1) validate() error {
	err := errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needSeq("message_seq", c.MessageSeq))
	if !ValidEmoji(c.Emoji) {
		err = errors.Join(err, fmt.Errorf("bad emoji %q", c.Emoji))
	}
	return err
}

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
func (c *SendMessageV3) IDs() (commandID, userID, conversationID string) {
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
