// Persistent names: topics, consumer groups, record types (ce_type) and
// rejection codes.

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
	// TopicReceipts holds each user's delivered and read markers per
	// conversation. Key: conversation/user/kind (see ReceiptKey), placed
	// on the partition of the conversation id like every other topic.
	// Compacted: the latest marker of each key is kept forever.
	TopicReceipts = "chat.receipts"
	// TopicDLQ holds records a consumer could not process, with the error
	// in headers. Key: the original key. Retention: long.
	TopicDLQ = "chat.dlq"
	// TopicChanges holds a copy of every event of chat.events that
	// changes its conversation beyond its messages (creation, membership,
	// roles, title, archive, blocks), written by the router, so that
	// every gateway node keeps the conversations it has cached current
	// while reading only what is routed to it. Key: conversation id.
	// Retention: 1 hour.
	TopicChanges = "chat.changes"
	// TopicPush holds device registrations for push notifications and
	// users' notification settings, written by gateways (and by the push
	// projection when a provider says a registration is gone). Key: what
	// the record sets (see PushKey). Compacted: the latest record of each
	// key is kept forever, so replaying the topic rebuilds every
	// registration and setting.
	TopicPush = "chat.push"
	// TopicDevices holds every change of each user's MLS device list
	// (end-to-end encryption): a device added or removed, with the
	// list's new version. Written by the gateway that made the change,
	// before the change is committed to its key directory. Key: user id.
	// Retention: forever.
	TopicDevices = "chat.devices"
	// TopicAudit holds the audit trail of administrative actions that
	// change no conversation: each erasure of a user
	// (chat.user.erased.v1), carrying no personal data. Key: the erased
	// user's reference (ErasureRef). Retention: forever.
	TopicAudit = "chat.audit"
	// DeliveryTopicPrefix starts the name of each gateway node's delivery
	// topic; see DeliveryTopic.
	DeliveryTopicPrefix = "chat.delivery."
)

// DeliveryTopic is the delivery topic of gateway node node under targeted
// routing: one partition, to which the router copies the events, replies
// and typing signals that node's sockets (or waiting requests) need. The
// node creates it on start; the router creates it too before its first
// write, with the same configuration.
func DeliveryTopic(node string) string { return DeliveryTopicPrefix + node }

// ValidNodeID reports whether s can name a gateway node under targeted
// routing: 1 to 200 characters a Kafka topic name allows ([A-Za-z0-9._-]),
// so that DeliveryTopic(s) is a legal topic name.
func ValidNodeID(s string) bool {
	if len(s) == 0 || len(s) > 200 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// Consumer group ids. Renaming one makes the group start over from its
// reset policy, so treat them as persistent names.
const (
	GroupDecider = "parley-decider"
	GroupHistory = "parley-projection-history"
	GroupSearch  = "parley-projection-search"
	// GroupReceipts folds chat.receipts into the history store's read and
	// delivered markers.
	GroupReceipts = "parley-projection-receipts"
	// GroupRouter routes chat.events, chat.replies and chat.ephemeral to
	// the delivery topics of the gateway nodes that need each record.
	GroupRouter = "parley-router"
	// GroupFiles keeps the file store in step with messages: it marks
	// attached uploads and deletes the files of deleted messages.
	GroupFiles = "parley-projection-files"
	// GroupThumbnails makes thumbnails of images that messages carry.
	GroupThumbnails = "parley-projection-thumbnails"
	// GroupPush reads chat.events and chat.receipts and notifies the
	// devices of members that have no live socket.
	GroupPush = "parley-projection-push"
)

// Source is the CloudEvents source of every record Parley writes.
const Source = "parley"

// Command types (records of TopicCommands).
const (
	TypeCreateConversation   = "chat.conversation.create.v1"
	TypeSendMessage          = "chat.message.send.v1"
	TypeLeaveConversation    = "chat.conversation.leave.v1"
	TypeSendMessageV2        = "chat.message.send.v2"
	TypeAddMembers           = "chat.members.add.v1"
	TypeRemoveMember         = "chat.member.remove.v1"
	TypeSetRole              = "chat.member.role.set.v1"
	TypeRename               = "chat.conversation.rename.v1"
	TypeArchive              = "chat.conversation.archive.v1"
	TypeBlock                = "chat.conversation.block.v1"
	TypeEditMessage          = "chat.message.edit.v1"
	TypeDeleteMessage        = "chat.message.delete.v1"
	TypeAddReaction          = "chat.reaction.add.v1"
	TypeRemoveReaction       = "chat.reaction.remove.v1"
	TypeSendMessageV3        = "chat.message.send.v3"
	TypeAddThumbnail         = "chat.thumbnail.add.v1"
	TypeCreateConversationV2 = "chat.conversation.create.v2"
	TypeMLSCommit            = "chat.mls.commit.v1"
	TypeMLSPropose           = "chat.mls.propose.v1"
	TypeMLSSend              = "chat.mls.send.v1"
)

// Event types (records of TopicEvents).
const (
	TypeConversationCreated   = "chat.conversation.created.v1"
	TypeMessageSent           = "chat.message.sent.v1"
	TypeMemberLeft            = "chat.member.left.v1"
	TypeMessageSentV2         = "chat.message.sent.v2"
	TypeMembersAdded          = "chat.members.added.v1"
	TypeMemberRemoved         = "chat.member.removed.v1"
	TypeRolesChanged          = "chat.member.roles.changed.v1"
	TypeRenamed               = "chat.conversation.renamed.v1"
	TypeArchived              = "chat.conversation.archived.v1"
	TypeBlocked               = "chat.conversation.blocked.v1"
	TypeMessageEdited         = "chat.message.edited.v1"
	TypeMessageDeleted        = "chat.message.deleted.v1"
	TypeReactionAdded         = "chat.reaction.added.v1"
	TypeReactionRemoved       = "chat.reaction.removed.v1"
	TypeMessageSentV3         = "chat.message.sent.v3"
	TypeThumbnailAdded        = "chat.thumbnail.added.v1"
	TypeConversationCreatedV2 = "chat.conversation.created.v2"
	TypeMLSCommitted          = "chat.mls.committed.v1"
	TypeMLSProposed           = "chat.mls.proposed.v1"
	TypeMLSMessageSent        = "chat.mls.message.sent.v1"
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

// Receipt types (records of TopicReceipts).
const (
	TypeReceipt = "chat.receipt.v1"
)

// Device types (records of TopicDevices).
const (
	TypeDeviceAdded   = "chat.device.added.v1"
	TypeDeviceRemoved = "chat.device.removed.v1"
)

// Presence types (records of TopicPresence).
const (
	TypePresence = "chat.presence.v1"
	// TypeUserErased is the audit record of a user's erasure, on
	// TopicAudit.
	TypeUserErased = "chat.user.erased.v1"
)

// Push types (records of TopicPush).
const (
	TypePushDeviceRegistered      = "chat.push.device.registered.v1"
	TypePushDeviceRemoved         = "chat.push.device.removed.v1"
	TypeConversationNotifications = "chat.push.conversation.notifications.v1"
	TypeUserNotifications         = "chat.push.user.notifications.v1"
)

// Rejection codes: stable machine-readable reasons, shared by the decider's
// replies, the WebSocket error frames and the HTTP problem types.
const (
	CodeNotMember            = "not_member"
	CodeConversationNotFound = "conversation_not_found"
	CodeConversationExists   = "conversation_exists"
	CodeInvalidCommand       = "invalid_command"
	// CodeForbidden: the user's role does not allow the command.
	CodeForbidden = "forbidden"
	// CodeBlocked: a block stands in the direct conversation.
	CodeBlocked = "blocked"
	// CodeArchived: the group is archived (read-only).
	CodeArchived = "archived"
	// CodeMessageNotFound: no message with that seq (or it was deleted).
	CodeMessageNotFound = "message_not_found"
	// CodeEditWindowClosed: the message is older than the edit window.
	CodeEditWindowClosed = "edit_window_closed"
	// CodeLimitExceeded: a size limit (members, reactions) would be
	// exceeded.
	CodeLimitExceeded = "limit_exceeded"
	// CodeNoChange: the command would change nothing (already a member,
	// already that role, reaction already there…).
	CodeNoChange = "no_change"
	// CodeStaleEpoch: an MLS commit, proposal or application message of
	// an epoch that is no longer the encrypted conversation's current
	// one (another commit came first). The client processes the commits
	// it missed and tries again in the new epoch.
	CodeStaleEpoch = "stale_epoch"
)
