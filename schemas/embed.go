// The JSON Schemas of every record type, embedded.

package schemas

import (
	"embed"
	"fmt"
	"slices"
)

// jsonFS holds the JSON Schema (draft 2020-12) of every type, one file per
// ce_type, named json/<ce_type>.json. It is read-only.
//
//go:embed json/*.json
var jsonFS embed.FS

// SchemaBaseURL is the prefix of every JSON Schema's $id:
// SchemaBaseURL + ce_type + ".json".
const SchemaBaseURL = "https://parley.chat/schemas/"

// Types returns every command, event and reply type (ce_type) this version
// knows, sorted. The caller owns the returned slice.
func Types() []string {
	t := []string{
		TypeCreateConversation,
		TypeSendMessage,
		TypeLeaveConversation,
		TypeMemberLeft,
		TypeConversationCreated,
		TypeMessageSent,
		TypeCommandRejected,
		TypeCommandDuplicate,
		TypeTyping,
		TypePresence,
		TypeSendMessageV2,
		TypeMessageSentV2,
		TypeAddMembers,
		TypeMembersAdded,
		TypeRemoveMember,
		TypeMemberRemoved,
		TypeSetRole,
		TypeRolesChanged,
		TypeRename,
		TypeRenamed,
		TypeArchive,
		TypeArchived,
		TypeBlock,
		TypeBlocked,
		TypeEditMessage,
		TypeMessageEdited,
		TypeDeleteMessage,
		TypeMessageDeleted,
		TypeAddReaction,
		TypeRemoveReaction,
		TypeReactionAdded,
		TypeReactionRemoved,
		TypeReceipt,
	}
	slices.Sort(t)
	return t
}

// JSONSchema returns the JSON Schema (draft 2020-12) of the record value
// of the given ce_type, as stored in schemas/json/<ce_type>.json. The
// caller owns the returned bytes. An unknown type gives ErrUnknownType.
func JSONSchema(ceType string) ([]byte, error) {
	if !slices.Contains(Types(), ceType) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, ceType)
	}
	b, err := jsonFS.ReadFile("json/" + ceType + ".json")
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", ceType, err)
	}
	return b, nil
}
