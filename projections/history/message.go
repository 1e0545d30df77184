// A chat message's state as later events make it: edits, deletion,
// reactions.

package history

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/schemas"
)

// MessageState is what later events have made of a chat message.
type MessageState struct {
	// Body is the current body: the last edit's, or the original; empty
	// once deleted.
	Body     string
	EditedAt time.Time // zero if never edited
	// Edits are the seqs of the message's edit events, ascending: a
	// deletion erases their bodies too.
	Edits     []uint64
	Deleted   bool
	DeletedBy string
	DeletedAt time.Time
	// Reactions are sorted by emoji, each with its users sorted.
	Reactions []Reaction
	// Version is the seq of the newest event folded in: an event at or
	// below it changes nothing, so folding is idempotent.
	Version uint64
}

// Reaction is the users who reacted to a message with one emoji.
type Reaction struct {
	Emoji string
	Users []string
}

// Target returns the seq of the message that an edit, deletion or
// reaction event changes, and whether ev is such an event. It decodes
// only what it needs.
func Target(ev Event) (uint64, bool) {
	switch ev.Type {
	case schemas.TypeMessageEdited, schemas.TypeMessageDeleted, schemas.TypeReactionAdded, schemas.TypeReactionRemoved:
	default:
		return 0, false
	}
	var t struct {
		MessageSeq uint64 `json:"message_seq"`
	}
	if err := json.Unmarshal(ev.Data, &t); err != nil || t.MessageSeq == 0 {
		return 0, false
	}
	return t.MessageSeq, true
}

// NewMessageState returns the state of a message event before anything
// changed it.
func NewMessageState(msg Event) (*MessageState, error) {
	v, err := msg.decode()
	if err != nil {
		return nil, fmt.Errorf("decoding message %d of %s: %w", msg.Seq, msg.ConversationID, err)
	}
	m, ok := schemas.AsMessage(v)
	if !ok {
		return nil, fmt.Errorf("%w: event %d of %s is a %s, not a message", schemas.ErrInvalid, msg.Seq, msg.ConversationID, msg.Type)
	}
	return &MessageState{Body: m.Body, Version: msg.Seq}, nil
}

// ApplyToMessage folds ev, an edit, deletion or reaction event of the
// message (see Target), into st and reports whether st changed. Events
// at or below st.Version change nothing. Nothing changes a deleted
// message but its Version.
func ApplyToMessage(st *MessageState, ev Event) (changed bool, err error) {
	if ev.Seq <= st.Version {
		return false, nil
	}
	st.Version = ev.Seq
	if st.Deleted {
		return true, nil
	}
	v, err := ev.decode()
	if err != nil {
		return true, fmt.Errorf("decoding event %d of %s: %w", ev.Seq, ev.ConversationID, err)
	}
	switch e := v.(type) {
	case *schemas.MessageEditedV1:
		st.Body = e.Body
		st.EditedAt = e.EditedAt.UTC()
		if _, found := slices.BinarySearch(st.Edits, ev.Seq); !found {
			st.Edits = append(st.Edits, ev.Seq)
			slices.Sort(st.Edits)
		}
	case *schemas.MessageDeletedV1:
		st.Body = ""
		st.Deleted = true
		st.DeletedBy = e.UserID
		st.DeletedAt = e.DeletedAt.UTC()
		st.Reactions = nil
	case *schemas.ReactionV1:
		st.react(e.Emoji, e.UserID, ev.Type == schemas.TypeReactionAdded)
	}
	return true, nil
}

func (st *MessageState) react(emoji, user string, add bool) {
	i, found := slices.BinarySearchFunc(st.Reactions, emoji, func(r Reaction, e string) int { return strings.Compare(r.Emoji, e) })
	if !found {
		if !add {
			return
		}
		st.Reactions = slices.Insert(st.Reactions, i, Reaction{Emoji: emoji})
	}
	r := &st.Reactions[i]
	j, has := slices.BinarySearch(r.Users, user)
	switch {
	case add && !has:
		r.Users = slices.Insert(slices.Clone(r.Users), j, user)
	case !add && has:
		r.Users = slices.Delete(slices.Clone(r.Users), j, j+1)
		if len(r.Users) == 0 {
			st.Reactions = slices.Delete(st.Reactions, i, i+1)
		}
	}
}

// Redact returns the value of a message or edit event with its body
// erased, for the tombstone of a deleted message; other values are
// returned as they are. The result still validates against its type's
// schema (a body may be empty there, never in a command).
func Redact(typ string, data json.RawMessage) (json.RawMessage, error) {
	if !schemas.IsMessage(typ) && typ != schemas.TypeMessageEdited {
		return data, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: redacting %s: %w", schemas.ErrInvalid, typ, err)
	}
	m["body"] = json.RawMessage(`""`)
	// File names are content too; the files themselves are deleted by
	// the files projection.
	delete(m, "attachments")
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("redacting %s: %w", typ, err)
	}
	return out, nil
}

// PreviewText is what the inbox shows of a message: its body, after
// "📎 " and the names of its files when it carries some
// ("📎 photo.jpg, notes.pdf look at this").
func PreviewText(m *schemas.Message) string {
	return previewOf(fileNames(m.Attachments), m.Body)
}

// PreviewBody is a preview's Body for a message with files named files
// and the current body: PreviewText, cut (CutPreview).
func PreviewBody(files []string, body string) string {
	return CutPreview(previewOf(files, body))
}

// previewOf is PreviewText of a message with files named files and body.
func previewOf(files []string, body string) string {
	if len(files) == 0 {
		return body
	}
	var b strings.Builder
	b.WriteString("📎 ")
	b.WriteString(strings.Join(files, ", "))
	if body != "" {
		b.WriteString(" ")
		b.WriteString(body)
	}
	return b.String()
}

// fileNames returns the names of attachments, in order; nil for none.
func fileNames(attachments []schemas.Attachment) []string {
	if len(attachments) == 0 {
		return nil
	}
	names := make([]string, len(attachments))
	for i, a := range attachments {
		names[i] = a.Name
	}
	return names
}

// CutPreview returns body cut to PreviewRunes runes, an ellipsis
// replacing the last one when it cuts.
func CutPreview(body string) string {
	if utf8.RuneCountInString(body) <= PreviewRunes {
		return body
	}
	n := 0
	for i := range body {
		if n == PreviewRunes-1 {
			return body[:i] + "…"
		}
		n++
	}
	return body
}
