// Receipts: each user's delivered and read markers, on chat.receipts.

package schemas

import (
	"errors"
	"fmt"
	"time"
)

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

// ReceiptKey is the record key of a receipt on chat.receipts: the latest
// record of each (conversation, user, kind) survives compaction.
func ReceiptKey(conversation, user, kind string) string {
	return conversation + "/" + user + "/" + kind
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
