package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Kind is the kind of a conversation.
type Kind string

// Conversation kinds.
const (
	// KindDirect is a conversation between exactly two users; the pair
	// determines its id (see DirectConversationID).
	KindDirect Kind = "direct"
	// KindGroup is a conversation with a title and any number of members.
	KindGroup Kind = "group"
)

// Role is a member's role in a conversation.
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Member is a user's membership of a conversation.
type Member struct {
	UserID string `json:"user_id"`
	Role   Role   `json:"role"`
}

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

// CommandRejectedV1 tells a command's sender why it was refused; no event
// was appended (chat.command.rejected.v1).
type CommandRejectedV1 struct {
	CommandID      string `json:"command_id"`
	CommandType    string `json:"command_type"`
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	Code           string `json:"code"`
	Reason         string `json:"reason"`
}

// CommandDuplicateV1 tells a command's sender that the command had already
// been applied, with the seq of the event it produced then
// (chat.command.duplicate.v1). For a direct conversation that already
// exists, Seq is 0: the conversation's creation.
type CommandDuplicateV1 struct {
	CommandID      string `json:"command_id"`
	CommandType    string `json:"command_type"`
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
}

// TypingV1 says that a user is typing in a conversation
// (chat.typing.v1, on chat.ephemeral). It is a signal, not a fact: never
// in chat.events, never in history. It is valid until ExpiresAt; clients
// repeat it while the user keeps typing.
type TypingV1 struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	At             time.Time `json:"at"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// Presence statuses.
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// PresenceV1 is the latest presence of a user (chat.presence.v1, on the
// compacted chat.presence, keyed by user id). Each gateway node holding
// sockets of the user owns one entry of Nodes and re-publishes it every
// heartbeat; an entry whose ExpiresAt has passed (its node crashed) no
// longer counts. Status and LastSeen are what the publisher computed;
// readers recompute them from the live entries.
type PresenceV1 struct {
	UserID    string           `json:"user_id"`
	Status    string           `json:"status"`
	LastSeen  time.Time        `json:"last_seen"`
	Nodes     []PresenceNodeV1 `json:"nodes"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// PresenceNodeV1 is one node's view of a user's devices.
type PresenceNodeV1 struct {
	NodeID    string             `json:"node_id"`
	ExpiresAt time.Time          `json:"expires_at"`
	Devices   []PresenceDeviceV1 `json:"devices"`
}

// PresenceDeviceV1 is one connected device.
type PresenceDeviceV1 struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status"`
}

// Errors of decoding and validation.
var (
	// ErrUnknownType is returned for a ce_type this version does not know.
	ErrUnknownType = errors.New("unknown record type")
	// ErrInvalid is returned for a record whose value breaks its schema.
	ErrInvalid = errors.New("invalid record")
)

var (
	userIDPattern         = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)
	conversationIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	commandIDPattern      = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// ValidUserID reports whether s is a well-formed user id.
func ValidUserID(s string) bool { return userIDPattern.MatchString(s) }

// ValidConversationID reports whether s is a well-formed conversation id.
func ValidConversationID(s string) bool { return conversationIDPattern.MatchString(s) }

// ValidCommandID reports whether s is a well-formed client command id.
func ValidCommandID(s string) bool { return commandIDPattern.MatchString(s) }

// DirectConversationID is the id of the direct conversation between a and
// b; the same pair in either order always gives the same id.
func DirectConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	sum := sha256.Sum256([]byte("direct\x00" + a + "\x00" + b))
	return "d_" + hex.EncodeToString(sum[:16])
}

// GroupConversationID is the id of the group created by user with the
// client command id commandID, so a retried create yields the same group.
func GroupConversationID(user, commandID string) string {
	sum := sha256.Sum256([]byte("group\x00" + user + "\x00" + commandID))
	return "g_" + hex.EncodeToString(sum[:16])
}

// Decode decodes a record value of the given ce_type into its Go type
// (a pointer to one of the *V1 structs) and checks the fields the type
// requires.
func Decode(typ string, data []byte) (any, error) {
	var v interface{ validate() error }
	switch typ {
	case TypeCreateConversation:
		v = &CreateConversationV1{}
	case TypeSendMessage:
		v = &SendMessageV1{}
	case TypeLeaveConversation:
		v = &LeaveConversationV1{}
	case TypeMemberLeft:
		v = &MemberLeftV1{}
	case TypeConversationCreated:
		v = &ConversationCreatedV1{}
	case TypeMessageSent:
		v = &MessageSentV1{}
	case TypeCommandRejected:
		v = &CommandRejectedV1{}
	case TypeCommandDuplicate:
		v = &CommandDuplicateV1{}
	case TypeTyping:
		v = &TypingV1{}
	case TypePresence:
		v = &PresenceV1{}
	case TypeSendMessageV2:
		v = &SendMessageV2{}
	case TypeMessageSentV2:
		v = &MessageSentV2{}
	case TypeAddMembers:
		v = &AddMembersV1{}
	case TypeMembersAdded:
		v = &MembersAddedV1{}
	case TypeRemoveMember:
		v = &RemoveMemberV1{}
	case TypeMemberRemoved:
		v = &MemberRemovedV1{}
	case TypeSetRole:
		v = &SetRoleV1{}
	case TypeRolesChanged:
		v = &RolesChangedV1{}
	case TypeRename:
		v = &RenameV1{}
	case TypeRenamed:
		v = &RenamedV1{}
	case TypeArchive:
		v = &ArchiveV1{}
	case TypeArchived:
		v = &ArchivedV1{}
	case TypeBlock:
		v = &BlockV1{}
	case TypeBlocked:
		v = &BlockedV1{}
	case TypeEditMessage:
		v = &EditMessageV1{}
	case TypeMessageEdited:
		v = &MessageEditedV1{}
	case TypeDeleteMessage:
		v = &DeleteMessageV1{}
	case TypeMessageDeleted:
		v = &MessageDeletedV1{}
	case TypeAddReaction, TypeRemoveReaction:
		v = &ReactV1{}
	case TypeReactionAdded, TypeReactionRemoved:
		v = &ReactionV1{}
	case TypeReceipt:
		v = &ReceiptV1{}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, typ, err)
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, typ, err)
	}
	return v, nil
}

func checkIDs(user, conversation, command string) error {
	var errs []error
	if !ValidUserID(user) {
		errs = append(errs, fmt.Errorf("bad user id %q", user))
	}
	if !ValidConversationID(conversation) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", conversation))
	}
	if !ValidCommandID(command) {
		errs = append(errs, fmt.Errorf("bad command id %q", command))
	}
	return errors.Join(errs...)
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

func (r *CommandRejectedV1) validate() error {
	err := checkIDs(r.UserID, r.ConversationID, r.CommandID)
	if r.Code == "" {
		err = errors.Join(err, errors.New("no code"))
	}
	return err
}

func (r *CommandDuplicateV1) validate() error {
	return checkIDs(r.UserID, r.ConversationID, r.CommandID)
}

func (e *TypingV1) validate() error {
	var errs []error
	if !ValidUserID(e.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", e.UserID))
	}
	if !ValidConversationID(e.ConversationID) {
		errs = append(errs, fmt.Errorf("bad conversation id %q", e.ConversationID))
	}
	if !e.ExpiresAt.After(e.At) {
		errs = append(errs, errors.New("expires_at must be after at"))
	}
	return errors.Join(errs...)
}

var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidDeviceID reports whether s is a well-formed device id.
func ValidDeviceID(s string) bool { return deviceIDPattern.MatchString(s) }

func (p *PresenceV1) validate() error {
	var errs []error
	if !ValidUserID(p.UserID) {
		errs = append(errs, fmt.Errorf("bad user id %q", p.UserID))
	}
	if p.Status != StatusOnline && p.Status != StatusAway && p.Status != StatusOffline {
		errs = append(errs, fmt.Errorf("bad status %q", p.Status))
	}
	for _, n := range p.Nodes {
		if n.NodeID == "" {
			errs = append(errs, errors.New("node entry without node_id"))
		}
		for _, d := range n.Devices {
			if !ValidDeviceID(d.DeviceID) || (d.Status != StatusOnline && d.Status != StatusAway) {
				errs = append(errs, fmt.Errorf("bad device %q with status %q", d.DeviceID, d.Status))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *LeaveConversationV1) validate() error {
	return checkIDs(c.UserID, c.ConversationID, c.CommandID)
}

func (e *MemberLeftV1) validate() error {
	err := checkIDs(e.UserID, e.ConversationID, e.CommandID)
	if e.Seq == 0 {
		err = errors.Join(err, errors.New("seq must be at least 1"))
	}
	return err
}
