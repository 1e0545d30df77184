package schemas

// Topics. Every topic keyed by conversation id has the same partition count
// and uses Kafka's default (murmur2) partitioner, so the records of one
// conversation share a partition number across topics and analytics jobs
// co-partition with Parley.
const (
	// TopicCommands holds requests to change a conversation. Key:
	// conversation id. Retention: days.
	TopicCommands = "chat.commands"
	// TopicEvents holds the accepted facts, the only source of truth. Key:
	// conversation id. Retention: forever.
	TopicEvents = "chat.events"
	// TopicReplies holds the outcome of commands that produced no new
	// event: rejections and duplicates. Gateways follow it to answer the
	// sender. Key: conversation id. Retention: short.
	TopicReplies = "chat.replies"
	// TopicEphemeral holds signals nobody replays: typing indicators.
	// Gateways follow it; no projection stores it. Key: conversation id.
	// Retention: 1 hour.
	TopicEphemeral = "chat.ephemeral"
	// TopicPresence holds the latest presence of each user, with one entry
	// per gateway node that holds the user's sockets. Key: user id.
	// Compacted.
	TopicPresence = "chat.presence"
	// TopicDLQ holds records a consumer could not process, with the error
	// in headers. Key: the original key. Retention: long.
	TopicDLQ = "chat.dlq"
)

// Consumer group ids. Renaming one makes the group start over from its
// reset policy, so treat them as persistent names.
const (
	GroupDecider = "parley-decider"
	GroupHistory = "parley-projection-history"
	GroupSearch  = "parley-projection-search"
)

// Source is the CloudEvents source of every record Parley writes.
const Source = "parley"

// Command types (records of TopicCommands).
const (
	TypeCreateConversation = "chat.conversation.create.v1"
	TypeSendMessage        = "chat.message.send.v1"
	TypeLeaveConversation  = "chat.conversation.leave.v1"
)

// Event types (records of TopicEvents).
const (
	TypeConversationCreated = "chat.conversation.created.v1"
	TypeMessageSent         = "chat.message.sent.v1"
	TypeMemberLeft          = "chat.member.left.v1"
)

// Reply types (records of TopicReplies).
const (
	TypeCommandRejected  = "chat.command.rejected.v1"
	TypeCommandDuplicate = "chat.command.duplicate.v1"
)

// Ephemeral types (records of TopicEphemeral).
const (
	TypeTyping = "chat.typing.v1"
)

// Presence types (records of TopicPresence).
const (
	TypePresence = "chat.presence.v1"
)

// Rejection codes: stable machine-readable reasons, shared by the decider's
// replies, the WebSocket error frames and the HTTP problem types.
const (
	CodeNotMember            = "not_member"
	CodeConversationNotFound = "conversation_not_found"
	CodeConversationExists   = "conversation_exists"
	CodeInvalidCommand       = "invalid_command"
)
