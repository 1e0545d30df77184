// Decoding a record value by its ce_type, with the checks its type
// requires.

package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of decoding and validation.
var (
	// ErrUnknownType is returned for a ce_type this version does not know.
	ErrUnknownType = errors.New("unknown record type")
	// ErrInvalid is returned for a record whose value breaks its schema.
	ErrInvalid = errors.New("invalid record")
)

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
	case TypeSendMessageV3:
		v = &SendMessageV3{}
	case TypeMessageSentV3:
		v = &MessageSentV3{}
	case TypeAddThumbnail:
		v = &AddThumbnailV1{}
	case TypeThumbnailAdded:
		v = &ThumbnailAddedV1{}
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
	case TypePushDeviceRegistered:
		v = &DeviceRegisteredV1{}
	case TypePushDeviceRemoved:
		v = &DeviceRemovedV1{}
	case TypeConversationNotifications:
		v = &ConversationNotificationsV1{}
	case TypeUserNotifications:
		v = &UserNotificationsV1{}
	case TypeCreateConversationV2:
		v = &CreateConversationV2{}
	case TypeConversationCreatedV2:
		v = &ConversationCreatedV2{}
	case TypeMLSCommit:
		v = &MLSCommitV1{}
	case TypeMLSCommitted:
		v = &MLSCommittedV1{}
	case TypeMLSPropose:
		v = &MLSProposeV1{}
	case TypeMLSProposed:
		v = &MLSProposedV1{}
	case TypeMLSSend:
		v = &MLSSendV1{}
	case TypeMLSMessageSent:
		v = &MLSMessageSentV1{}
	case TypeDeviceAdded, TypeDeviceRemoved:
		v = &DeviceChangedV1{}
	case TypeUserErased:
		v = &UserErasedV1{}
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

// Validate checks a command or event value of the given ce_type, as
// Decode would after decoding it: what a writer checks before it
// appends. v must be a pointer to the type's Go struct.
func Validate(typ string, v any) error {
	c, ok := v.(interface{ validate() error })
	if !ok {
		return fmt.Errorf("%w: %T is no record type", ErrUnknownType, v)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, typ, err)
	}
	return nil
}
