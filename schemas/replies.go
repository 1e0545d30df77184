// Replies: the outcome of a command that produced no event, on
// chat.replies.

package schemas

import "errors"

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
