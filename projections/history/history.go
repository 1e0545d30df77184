// Package history is the history projection: it folds chat.events into a
// store of every conversation's events, keyed by (conversation, seq), and
// of each conversation's summary and members, which the gateway serves as
// history pages, conversation lists and membership checks.
//
// The store is a port with two adapters: pebblestore (embedded, the
// default) and scyllastore (production). Both pass the suite in
// historytest. Applying is idempotent: an event already applied, replayed
// or redelivered, changes nothing.
//
// The group also reads chat.audit: a user's erasure (chat.user.erased.v1,
// crypto-shredding) is applied live by Writer.Erase, which blanks what
// the store holds of the user's content up to the erasure, exactly as a
// store rebuilt from the sealed log after it holds it. The record names
// the user by reference only (schemas.ErasureRef); each adapter keeps,
// for every conversation where someone wrote content, the writer's
// reference, never their id, and finds the user's conversations by it.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
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
	// Message is the current state of a chat message (edits, deletion,
	// reactions), set by Page on the events that are messages once
	// anything has changed them; nil otherwise and on Apply's input.
	// Deleting a message also erases its body from Data, and from the
	// Data of its edit events: a tombstone.
	Message *MessageState
	// value is Data as schemas.Decode decodes it, when whoever built the
	// event has decoded it already (Projection.Decode, which checks every
	// event): the folds then use it rather than decode Data again.
	value any
	// erasure, set by Projection.Decode for a record of chat.audit, makes
	// the Event an erasure to apply rather than an event to store.
	erasure *Erasure
	// skip, set by Projection.Decode for a record of chat.audit of
	// another type, makes Apply pass the Event over.
	skip bool
}

// Erasure is the erasure of a user's content (chat.user.erased.v1 on
// chat.audit), as a store applies it.
type Erasure struct {
	// SubjectRef is the user's reference, schemas.ErasureRef of their id:
	// the record does not name them otherwise.
	SubjectRef string
	// At is when the user's data key was destroyed: their content up to
	// then is what the log can no longer open. Content of theirs after
	// At was sealed with a new key, and stays.
	At time.Time
}

// decode returns ev's Data as schemas.Decode decodes it.
func (ev *Event) decode() (any, error) {
	if ev.value != nil {
		return ev.value, nil
	}
	return schemas.Decode(ev.Type, ev.Data)
}

// Conversation is a conversation's summary: its state as package
// conversation folds it, and what the inbox shows of it.
type Conversation struct {
	conversation.State
	// LastActivity is the time of the newest event applied.
	LastActivity time.Time
	// Messages is how many chat messages the conversation has had
	// (deleted ones included: they stay in the timeline as tombstones).
	Messages uint64
	// LastMessage is the newest chat message, for the inbox's preview;
	// nil before the first.
	LastMessage *Preview

	// ReadSeq is, in a list from Conversations(user), the seq up to which
	// user has read the conversation; 0 elsewhere. Sending a message
	// marks everything up to it as read; read markers (chat.receipts)
	// move it forward, never back.
	ReadSeq uint64
	// ReadMessages is, in a list from Conversations(user), how many of
	// the conversation's messages have a seq at or below ReadSeq.
	ReadMessages uint64
}

// Preview is the inbox's view of a conversation's newest message.
type Preview struct {
	Seq      uint64
	SenderID string
	// Body is the message's current body cut to PreviewRunes runes (an
	// ellipsis marks a cut); empty once deleted.
	Body    string
	Edited  bool
	Deleted bool
	SentAt  time.Time
	// Files are the names of the message's files, in its order, so that
	// an edit (which carries the new body only) previews them again with
	// the new body; none once deleted.
	Files []string
}

// PreviewRunes is the longest preview body, in runes.
const PreviewRunes = 140

// Unread is how many messages of the conversation the user has not read:
// those after the user's read seq (the user's own messages are never
// among them, since sending marks read). Meaningful in a list from
// Conversations.
func (c Conversation) Unread() uint64 {
	if c.ReadMessages >= c.Messages {
		return 0
	}
	return c.Messages - c.ReadMessages
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

// Receipt is a user's read and delivered markers in a conversation.
type Receipt struct {
	ConversationID string
	UserID         string
	ReadSeq        uint64
	DeliveredSeq   uint64
}

// Writer applies events. Implementations must be safe for concurrent use
// and idempotent: applying an event whose (conversation, seq) was already
// applied changes nothing. Events of one conversation arrive in seq order
// within a batch, but a batch may repeat events applied before.
//
// ApplyReceipts folds markers from chat.receipts: each of ReadSeq and
// DeliveredSeq only moves forward (a zero or lower value changes
// nothing), so any order and any repetition give the same result. A
// marker may arrive before the events it names.
//
// Erase blanks the content of the user e names, in every event of theirs
// at or before e.At and in what is derived from it (message states,
// titles, inbox previews), exactly as a store rebuilt from the log after
// the erasure holds it (the sealed content reads blank: see
// contentkeys.Blank), and drops the superseded bytes from the store's
// files where the engine allows. It is idempotent: erasing again finds
// nothing to blank. A store finds the user's content by the reference
// it keeps with each conversation they wrote in.
type Writer interface {
	Apply(ctx context.Context, events []Event) error
	ApplyReceipts(ctx context.Context, receipts []Receipt) error
	Erase(ctx context.Context, e Erasure) error
}

// Pinger is implemented by a store that can tell whether it takes writes
// now: the projections' Probe (see consumers.Prober) asks it before a
// record the store keeps refusing is dead-lettered. Ping must be safe for
// concurrent use; nil means writes succeed now.
type Pinger interface {
	Ping(ctx context.Context) error
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
	// The list carries ReadSeq and ReadMessages.
	Conversations(ctx context.Context, userID string, limit int) ([]Conversation, error)
	// Receipts returns the markers of every member of a conversation
	// who has any (a member without a marker is absent), sorted by user
	// id; ErrNotFound if the conversation is unknown.
	Receipts(ctx context.Context, conversationID string) ([]Receipt, error)
}

// Store is what an adapter provides: both sides and Close.
type Store interface {
	Writer
	Reader
	Close() error
}
