// Package history is the history projection: it folds chat.events into a
// store of every conversation's events, keyed by (conversation, seq), and
// of each conversation's summary and members, which the gateway serves as
// history pages, conversation lists and membership checks.
//
// The store is a port with two adapters: pebblestore (embedded, the
// default) and scyllastore (production). Both pass the suite in
// historytest. Applying is idempotent: an event already applied, replayed
// or redelivered, changes nothing.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// ErrNotFound is returned for a conversation the store does not know.
var ErrNotFound = errors.New("not found")

// Event is one event of a conversation as the history keeps it: the
// CloudEvents attributes and the JSON value, exactly as in chat.events.
type Event struct {
	ConversationID string
	Seq            uint64
	ID             string // ce_id
	Type           string // ce_type
	Time           time.Time
	Data           json.RawMessage
}

// Conversation is a conversation's summary.
type Conversation struct {
	ID        string
	Kind      schemas.Kind
	Title     string
	CreatedBy string
	CreatedAt time.Time
	Members   []schemas.Member // sorted by user id
	// LastSeq is the seq of the newest event applied.
	LastSeq uint64
	// LastActivity is the time of the newest event applied.
	LastActivity time.Time
	// ReadSeq is, in a list from Conversations(user), the seq up to which
	// user has read the conversation; 0 elsewhere. Sending a message
	// marks everything up to it as read.
	ReadSeq uint64
}

// Unread is how many events of the conversation follow the user's read
// seq: last seq − read seq. Meaningful in a list from Conversations.
func (c Conversation) Unread() uint64 {
	if c.ReadSeq >= c.LastSeq {
		return 0
	}
	return c.LastSeq - c.ReadSeq
}

// IsMember reports whether user is a member of c.
func (c Conversation) IsMember(user string) bool {
	for _, m := range c.Members {
		if m.UserID == user {
			return true
		}
	}
	return false
}

// PageQuery selects a page of a conversation's events.
type PageQuery struct {
	// Forward selects events with seq > After in ascending order;
	// otherwise events with seq < Before (no bound when Before is 0) in
	// descending order.
	Forward bool
	After   uint64
	Before  uint64
	// Limit is the most events returned; it must be at least 1.
	Limit int
}

// Page is a page of events, in the order the query asked for.
type Page struct {
	Events []Event
	// HasMore reports whether more events exist beyond the page in the
	// query's direction.
	HasMore bool
}

// Writer applies events. Implementations must be safe for concurrent use
// and idempotent: applying an event whose (conversation, seq) was already
// applied changes nothing. Events of one conversation arrive in seq order
// within a batch, but a batch may repeat events applied before.
type Writer interface {
	Apply(ctx context.Context, events []Event) error
}

// Reader serves history. Implementations must be safe for concurrent use.
type Reader interface {
	// Page returns a page of a conversation's events; ErrNotFound if the
	// conversation is unknown.
	Page(ctx context.Context, conversationID string, q PageQuery) (Page, error)
	// Conversation returns a conversation's summary or ErrNotFound.
	Conversation(ctx context.Context, conversationID string) (Conversation, error)
	// Conversations returns the conversations user is a member of, most
	// recent activity first, at most limit of them, with user's ReadSeq.
	Conversations(ctx context.Context, userID string, limit int) ([]Conversation, error)
}

// Store is what an adapter provides: both sides and Close.
type Store interface {
	Writer
	Reader
	Close() error
}
