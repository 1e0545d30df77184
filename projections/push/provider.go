// Providers: the port each push service is reached through, and what a
// notification carries.

package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// Provider sends notifications to the devices of one push service. Send
// returns nil once the service accepted the notification, an error
// wrapping ErrGone when the service says the token or subscription no
// longer exists, a *RetryError when trying again later may help, and any
// other error when it will not. Implementations are safe for concurrent
// use.
type Provider interface {
	Send(ctx context.Context, d Device, n Notification) error
}

// Errors of a Provider.
var (
	// ErrGone: the device's token or subscription no longer exists; its
	// registration is removed.
	ErrGone = errors.New("registration gone")
)

// RetryError is a failure that may pass: a 429 or 5xx answer, or no
// answer at all. RetryAfter is the service's Retry-After, if it gave
// one.
type RetryError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RetryError) Error() string { return "retryable: " + e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Device is a registered device as the providers need it.
type Device = schemas.DeviceRegisteredV1

// Kinds of Notification.
const (
	// KindMessage: new messages in a conversation.
	KindMessage = "message"
	// KindClear: the user has read the conversation on another device;
	// a background push that removes the conversation's notification and
	// sets the badge.
	KindClear = "clear"
)

// Notification is what one push says. It is also the JSON payload of a
// Web Push message and the custom data of APNs and FCM messages.
type Notification struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	// Seq is the last message notified (message), or the read marker
	// (clear).
	Seq uint64 `json:"seq"`
	// SenderID is the sender of the last message (message only).
	SenderID string `json:"sender_id,omitempty"`
	// Count is how many messages this notification stands for.
	Count int `json:"count,omitempty"`
	// Preview is the start of the last message's text, at most
	// PreviewRunes runes; absent when the conversation is end-to-end
	// encrypted or the user hides previews.
	Preview string `json:"preview,omitempty"`
	// Badge is the user's unread total over all conversations.
	Badge uint64 `json:"badge"`
	// EventTime is when the last message was accepted; not sent.
	EventTime time.Time `json:"-"`
}

// Title is the notification's title for providers that show one: the
// sender.
func (n Notification) Title() string { return n.SenderID }

// Body is the notification's text: the preview, or how many new messages
// there are when there is none.
func (n Notification) Body() string {
	if n.Preview != "" {
		if n.Count > 1 {
			return fmt.Sprintf("%s (+%d more)", n.Preview, n.Count-1)
		}
		return n.Preview
	}
	if n.Count == 1 {
		return "New message"
	}
	return fmt.Sprintf("%d new messages", n.Count)
}

// CollapseKey names the conversation in a form every provider's collapse
// field takes (Web Push's Topic: at most 32 characters of the URL-safe
// base64 alphabet): a later notification of the same conversation
// replaces an earlier one on the device.
func (n Notification) CollapseKey() string {
	sum := sha256.Sum256([]byte(n.ConversationID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}
