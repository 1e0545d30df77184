// The JSON Schemas of every record type and the two API documents, embedded.

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

// apiFS holds the OpenAPI document of the HTTP API and the AsyncAPI
// document of the topics and the WebSocket protocol. It is read-only.
//
//go:embed openapi.yaml asyncapi.yaml
var apiFS embed.FS

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
		TypeSendMessageV3,
		TypeMessageSentV3,
		TypeAddThumbnail,
		TypeThumbnailAdded,
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
		TypeUserErased,
		TypeEditMessage,
		TypeMessageEdited,
		TypeDeleteMessage,
		TypeMessageDeleted,
		TypeAddReaction,
		TypeRemoveReaction,
		TypeReactionAdded,
		TypeReactionRemoved,
		TypeReceipt,
		TypePushDeviceRegistered,
		TypePushDeviceRemoved,
		TypeConversationNotifications,
		TypeUserNotifications,
		TypeCreateConversationV2,
		TypeConversationCreatedV2,
		TypeMLSCommit,
		TypeMLSCommitted,
		TypeMLSPropose,
		TypeMLSProposed,
		TypeMLSSend,
		TypeMLSMessageSent,
		TypeDeviceAdded,
		TypeDeviceRemoved,
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

// The base URLs of the two API documents: relative references inside them
// (./json/<ce_type>.json) resolve against these.
const (
	OpenAPIURL  = SchemaBaseURL + "openapi.yaml"
	AsyncAPIURL = SchemaBaseURL + "asyncapi.yaml"
)

// OpenAPIDocument returns openapi.yaml, the OpenAPI 3.1 document of the
// HTTP API. The caller owns the returned bytes.
func OpenAPIDocument() []byte { return mustRead(apiFS, "openapi.yaml") }

// AsyncAPIDocument returns asyncapi.yaml, the AsyncAPI 3.0 document of the
// topics and the WebSocket protocol. The caller owns the returned bytes.
func AsyncAPIDocument() []byte { return mustRead(apiFS, "asyncapi.yaml") }

// mustRead reads a file embedded at build time, so it cannot fail.
func mustRead(fs embed.FS, name string) []byte {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}
