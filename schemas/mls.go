// End-to-end encrypted conversations: Parley as the delivery service of
// Messaging Layer Security (MLS, RFC 9420). The MLS messages are opaque
// bytes to Parley (JSON base64); what it orders and records beside them —
// epochs, devices and members — is what these types carry in the clear.

package schemas

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// MaxMLSBytes is the largest MLS message (commit, welcome, proposal or
// application message) a command carries: two of them, base64, fit the
// gateway's request body limit.
const MaxMLSBytes = 16 << 10

// DeviceRef names one device of one user: an MLS client, a leaf of an
// encrypted conversation's group. Its credential identity is
// "user_id/device_id".
type DeviceRef struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

// CreateConversationV2 asks to create a conversation
// (chat.conversation.create.v2): v1 with Encrypted, and the creating
// device that makes the MLS group (epoch 0) when it is.
type CreateConversationV2 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	Kind           Kind      `json:"kind"`
	Title          string    `json:"title,omitempty"`
	Members        []string  `json:"members"`
	Encrypted      bool      `json:"encrypted,omitempty"`
	DeviceID       string    `json:"device_id,omitempty"`
	IssuedAt       time.Time `json:"issued_at"`
}

// ConversationCreatedV2 is the first event of a conversation
// (chat.conversation.created.v2): v1 with Encrypted — set for ever on an
// end-to-end encrypted conversation, whose messages are MLS ciphertext
// that no projection can read — and, when it is, Devices, the MLS group
// at epoch 0 (the creator's device).
type ConversationCreatedV2 struct {
	ConversationID string      `json:"conversation_id"`
	Seq            uint64      `json:"seq"`
	Kind           Kind        `json:"kind"`
	Title          string      `json:"title,omitempty"`
	CreatedBy      string      `json:"created_by"`
	Members        []Member    `json:"members"`
	Encrypted      bool        `json:"encrypted,omitempty"`
	Devices        []DeviceRef `json:"devices,omitempty"`
	CommandID      string      `json:"command_id"`
	CreatedAt      time.Time   `json:"created_at"`
}

// MLSCommitV1 asks to append an MLS Commit to an encrypted conversation
// (chat.mls.commit.v1). Epoch is the epoch the commit was made in: the
// conversation's current epoch, or the command is refused as stale.
// AddDevices and RemoveDevices are the devices the commit adds and
// removes, as the committer declares them (Parley cannot read the
// commit); Welcome, for the added devices, is required exactly when
// devices are added.
type MLSCommitV1 struct {
	CommandID      string      `json:"command_id"`
	UserID         string      `json:"user_id"`
	ConversationID string      `json:"conversation_id"`
	DeviceID       string      `json:"device_id"`
	Epoch          uint64      `json:"epoch"`
	Commit         []byte      `json:"commit"`
	Welcome        []byte      `json:"welcome,omitempty"`
	AddDevices     []DeviceRef `json:"add_devices,omitempty"`
	RemoveDevices  []DeviceRef `json:"remove_devices,omitempty"`
	IssuedAt       time.Time   `json:"issued_at"`
}

// MLSCommittedV1 is an MLS Commit accepted in its epoch
// (chat.mls.committed.v1): the group moves to Epoch (one more than the
// commit's). Users of AddedDevices who were not members are added as
// members (MembersAdded), and users whose every device was removed leave
// the conversation (MembersRemoved). Welcome reaches only the devices it
// welcomes (AddedDevices).
type MLSCommittedV1 struct {
	ConversationID string      `json:"conversation_id"`
	Seq            uint64      `json:"seq"`
	UserID         string      `json:"user_id"`
	DeviceID       string      `json:"device_id"`
	Epoch          uint64      `json:"epoch"`
	Commit         []byte      `json:"commit"`
	Welcome        []byte      `json:"welcome,omitempty"`
	AddedDevices   []DeviceRef `json:"added_devices,omitempty"`
	RemovedDevices []DeviceRef `json:"removed_devices,omitempty"`
	MembersAdded   []Member    `json:"members_added,omitempty"`
	MembersRemoved []string    `json:"members_removed,omitempty"`
	CommandID      string      `json:"command_id"`
	CommittedAt    time.Time   `json:"committed_at"`
}

// MLSProposeV1 asks to append an MLS Proposal (chat.mls.propose.v1) of
// the current epoch. Leave marks the proposal as the sender's removal of
// all of their own devices, which any member may then commit.
type MLSProposeV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	DeviceID       string    `json:"device_id"`
	Epoch          uint64    `json:"epoch"`
	Proposal       []byte    `json:"proposal"`
	Leave          bool      `json:"leave,omitempty"`
	IssuedAt       time.Time `json:"issued_at"`
}

// MLSProposedV1 is an MLS Proposal accepted in its epoch
// (chat.mls.proposed.v1).
type MLSProposedV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	UserID         string    `json:"user_id"`
	DeviceID       string    `json:"device_id"`
	Epoch          uint64    `json:"epoch"`
	Proposal       []byte    `json:"proposal"`
	Leave          bool      `json:"leave,omitempty"`
	CommandID      string    `json:"command_id"`
	ProposedAt     time.Time `json:"proposed_at"`
}

// MLSSendV1 asks to append an MLS application message, the ciphertext
// of a chat message, in the current epoch (chat.mls.send.v1).
type MLSSendV1 struct {
	CommandID      string    `json:"command_id"`
	UserID         string    `json:"user_id"`
	ConversationID string    `json:"conversation_id"`
	DeviceID       string    `json:"device_id"`
	Epoch          uint64    `json:"epoch"`
	Ciphertext     []byte    `json:"ciphertext"`
	IssuedAt       time.Time `json:"issued_at"`
}

// MLSMessageSentV1 is an MLS application message accepted in its epoch
// (chat.mls.message.sent.v1): ciphertext only the group's devices can
// read. Projections store and page it as it is; none indexes, previews or
// pushes its content.
type MLSMessageSentV1 struct {
	ConversationID string    `json:"conversation_id"`
	Seq            uint64    `json:"seq"`
	SenderID       string    `json:"sender_id"`
	DeviceID       string    `json:"device_id"`
	Epoch          uint64    `json:"epoch"`
	Ciphertext     []byte    `json:"ciphertext"`
	CommandID      string    `json:"command_id"`
	SentAt         time.Time `json:"sent_at"`
}

// DeviceChangedV1 is a device added to (chat.device.added.v1) or
// removed from (chat.device.removed.v1) a user's MLS device list. Version
// is the list's version after the change; a reader that sees a version
// twice (a change written again after a failure) applies it once.
type DeviceChangedV1 struct {
	UserID   string    `json:"user_id"`
	DeviceID string    `json:"device_id"`
	Version  uint64    `json:"version"`
	At       time.Time `json:"at"`
}

func (e *DeviceChangedV1) validate() error {
	err := errors.Join(needDevice(e.DeviceID), needSeq("version", e.Version))
	if !ValidUserID(e.UserID) {
		err = errors.Join(err, fmt.Errorf("bad user id %q", e.UserID))
	}
	return err
}

// IsInboxMessage reports whether events of type typ count as messages
// in an inbox (unread counts, the newest message): every version of
// chat.message.sent, and chat.mls.message.sent.v1, whose content no
// projection can read.
func IsInboxMessage(typ string) bool { return IsMessage(typ) || typ == TypeMLSMessageSent }

// IsCreation reports whether typ is a version of chat.conversation.created.
func IsCreation(typ string) bool {
	return typ == TypeConversationCreated || typ == TypeConversationCreatedV2
}

// Creation is a conversation's creation, whatever version it came as.
type Creation = ConversationCreatedV2

// AsCreation returns the creation of a decoded chat.conversation.created
// .v1 or .v2 value, and whether v is one.
func AsCreation(v any) (*Creation, bool) {
	switch c := v.(type) {
	case *ConversationCreatedV2:
		return c, true
	case *ConversationCreatedV1:
		return &Creation{ConversationID: c.ConversationID, Seq: c.Seq, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy,
			Members: c.Members, CommandID: c.CommandID, CreatedAt: c.CreatedAt}, true
	}
	return nil, false
}

// AsCreate returns a decoded chat.conversation.create.v1 or .v2 command
// as a v2, and whether v is one.
func AsCreate(v any) (*CreateConversationV2, bool) {
	switch c := v.(type) {
	case *CreateConversationV2:
		return c, true
	case *CreateConversationV1:
		return &CreateConversationV2{CommandID: c.CommandID, UserID: c.UserID, ConversationID: c.ConversationID, Kind: c.Kind,
			Title: c.Title, Members: c.Members, IssuedAt: c.IssuedAt}, true
	}
	return nil, false
}

// IsEncrypted reports whether the decoded creation v makes an end-to-end
// encrypted conversation: the one flag a consumer needs to treat every
// later message of the conversation as opaque (no body to index, preview
// or push).
func IsEncrypted(v any) bool {
	c, ok := v.(*ConversationCreatedV2)
	return ok && c.Encrypted
}

func validDevices(name string, ds []DeviceRef) error {
	var errs []error
	for _, d := range ds {
		if !ValidUserID(d.UserID) || !ValidDeviceID(d.DeviceID) {
			errs = append(errs, fmt.Errorf("bad %s entry %q/%q", name, d.UserID, d.DeviceID))
		}
	}
	sorted := slices.Clone(ds)
	slices.SortFunc(sorted, CompareDevices)
	if len(slices.Compact(sorted)) != len(ds) {
		errs = append(errs, fmt.Errorf("%s names a device twice", name))
	}
	return errors.Join(errs...)
}

// CompareDevices orders devices by user id, then device id.
func CompareDevices(a, b DeviceRef) int {
	switch {
	case a.UserID < b.UserID:
		return -1
	case a.UserID > b.UserID:
		return 1
	case a.DeviceID < b.DeviceID:
		return -1
	case a.DeviceID > b.DeviceID:
		return 1
	}
	return 0
}

func mlsBytes(name string, b []byte, required bool) error {
	switch {
	case required && len(b) == 0:
		return fmt.Errorf("no %s", name)
	case len(b) > MaxMLSBytes:
		return fmt.Errorf("%s of %d bytes, at most %d", name, len(b), MaxMLSBytes)
	}
	return nil
}

func needDevice(id string) error {
	if !ValidDeviceID(id) {
		return fmt.Errorf("bad device id %q", id)
	}
	return nil
}

func (c *CreateConversationV2) validate() error {
	v1 := CreateConversationV1{CommandID: c.CommandID, UserID: c.UserID, ConversationID: c.ConversationID, Kind: c.Kind, Members: c.Members}
	err := v1.validate()
	if c.Encrypted {
		err = errors.Join(err, needDevice(c.DeviceID))
	} else if c.DeviceID != "" {
		err = errors.Join(err, errors.New("device_id is for encrypted conversations"))
	}
	return err
}

func (e *ConversationCreatedV2) validate() error {
	v1 := ConversationCreatedV1{ConversationID: e.ConversationID, Seq: e.Seq, CreatedBy: e.CreatedBy, Members: e.Members, CommandID: e.CommandID}
	err := errors.Join(v1.validate(), validDevices("devices", e.Devices))
	if e.Encrypted != (len(e.Devices) > 0) {
		err = errors.Join(err, errors.New("an encrypted conversation, and only one, starts with devices"))
	}
	return err
}

func (c *MLSCommitV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needDevice(c.DeviceID),
		mlsBytes("commit", c.Commit, true), mlsBytes("welcome", c.Welcome, len(c.AddDevices) > 0),
		validDevices("add_devices", c.AddDevices), validDevices("remove_devices", c.RemoveDevices))
}

func (e *MLSCommittedV1) validate() error {
	err := errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needSeq("epoch", e.Epoch),
		needDevice(e.DeviceID), mlsBytes("commit", e.Commit, true), mlsBytes("welcome", e.Welcome, false),
		validDevices("added_devices", e.AddedDevices), validDevices("removed_devices", e.RemovedDevices))
	for _, m := range e.MembersAdded {
		if !ValidUserID(m.UserID) || !validRole(m.Role) {
			err = errors.Join(err, fmt.Errorf("bad member %q %q", m.UserID, m.Role))
		}
	}
	for _, u := range e.MembersRemoved {
		if !ValidUserID(u) {
			err = errors.Join(err, fmt.Errorf("bad member id %q", u))
		}
	}
	return err
}

func (c *MLSProposeV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needDevice(c.DeviceID), mlsBytes("proposal", c.Proposal, true))
}

func (e *MLSProposedV1) validate() error {
	return errors.Join(checkIDs(e.UserID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needDevice(e.DeviceID), mlsBytes("proposal", e.Proposal, true))
}

func (c *MLSSendV1) validate() error {
	return errors.Join(checkIDs(c.UserID, c.ConversationID, c.CommandID), needDevice(c.DeviceID), mlsBytes("ciphertext", c.Ciphertext, true))
}

func (e *MLSMessageSentV1) validate() error {
	return errors.Join(checkIDs(e.SenderID, e.ConversationID, e.CommandID), needSeq("seq", e.Seq), needDevice(e.DeviceID), mlsBytes("ciphertext", e.Ciphertext, true))
}

// IDs implements Command.
func (c *CreateConversationV2) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *MLSCommitV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *MLSProposeV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}

// IDs implements Command.
func (c *MLSSendV1) IDs() (commandID, userID, conversationID string) {
	return c.CommandID, c.UserID, c.ConversationID
}
