// The decider's state of one partition's conversations: the fold of
// chat.events on rebuild and after each decision, and the records a
// decision appends.

package decider

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// Limits are the decider's limits: the conversation rules' and its own.
type Limits struct {
	conversation.Limits
	// RecentCommands is how many client command ids per conversation are
	// remembered for deduplication. Default: 1024.
	RecentCommands int
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	l.Limits = l.Limits.WithDefaults()
	if l.RecentCommands == 0 {
		l.RecentCommands = 1024
	}
	return l
}

// Output is a record the decider appends: an event or a reply.
type Output struct {
	Attrs schemas.Attributes
	Value []byte
}

// Decision is the outcome of one command: exactly one of Event and Reply
// is set.
type Decision struct {
	Event *Output
	Reply *Output
}

// State is the decider's in-memory state of the conversations of one
// partition, rebuilt from chat.events on assignment. It is not safe for
// concurrent use: one goroutine owns a partition.
//
// Besides members, roles and the last seq, it keeps per conversation what
// validating message commands needs: for every message its author, time,
// whether it was deleted and its reactions — about 40 bytes a message.
type State struct {
	limits Limits
	convs  map[string]*tracked
	// LastCommandOffset is the highest chat.commands offset answered by an
	// event in this partition, or -1.
	LastCommandOffset int64
}

// tracked is one conversation: its state, as every component folds it,
// and what only the decider needs.
type tracked struct {
	conversation.State
	createCmd string
	// msgs is indexed by seq; entries of other events are zero.
	msgs []message
	// recent maps user\x00command id to the seq it produced; ring keeps
	// insertion order to evict the oldest.
	recent map[string]uint64
	ring   []string
	next   int
}

type message struct {
	author  string // "" for a seq that is not a message
	sentAt  int64  // Unix nanoseconds
	deleted bool
	// reactions maps emoji to the users who reacted with it.
	reactions map[string]map[string]struct{}
	// uploads are the upload ids of the files it carries; thumbs those
	// of them that have a thumbnail.
	uploads, thumbs []string
}

// NewState returns an empty state.
func NewState(l Limits) *State {
	return &State{limits: l.WithDefaults(), convs: make(map[string]*tracked), LastCommandOffset: -1}
}

// Seq returns the last seq of conversation and whether it exists.
func (s *State) Seq(conversation string) (uint64, bool) {
	c, ok := s.convs[conversation]
	if !ok {
		return 0, false
	}
	return c.LastSeq, true
}

// Apply folds an event already in chat.events into the state, as on
// rebuild. Events at or below a conversation's last seq are ignored, so a
// duplicated write changes nothing; unknown (newer) event types still
// advance the seq.
func (s *State) Apply(attrs schemas.Attributes, value []byte) error {
	if attrs.CommandOffset > s.LastCommandOffset {
		s.LastCommandOffset = attrs.CommandOffset
	}
	c := s.convs[attrs.Subject]
	if attrs.Type == schemas.TypeConversationCreated {
		if c != nil {
			return nil
		}
		v, err := schemas.Decode(attrs.Type, value)
		if err != nil {
			return err
		}
		s.create(v.(*schemas.ConversationCreatedV1))
		return nil
	}
	if c == nil {
		return fmt.Errorf("event %s seq %d of unknown conversation %s", attrs.Type, attrs.Seq, attrs.Subject)
	}
	if !attrs.HasSeq || attrs.Seq <= c.LastSeq {
		return nil
	}
	if attrs.Seq != c.LastSeq+1 {
		return fmt.Errorf("conversation %s: seq %d follows %d", attrs.Subject, attrs.Seq, c.LastSeq)
	}
	v, err := schemas.Decode(attrs.Type, value)
	if errors.Is(err, schemas.ErrUnknownType) {
		c.advance() // a type of a later version: it still took its seq
		return nil
	}
	if err != nil {
		c.advance()
		return err
	}
	s.fold(c, attrs.Type, v)
	return nil
}

func (c *tracked) advance() {
	c.State.Fold(c.LastSeq+1, nil)
	c.msgs = append(c.msgs, message{})
}

// fold applies a decoded event, whose seq is c.LastSeq+1, to c. Decide
// folds the events it makes with it too, so a rebuilt state is the state
// that made the events.
func (s *State) fold(c *tracked, typ string, v any) {
	c.advance()
	seq := c.LastSeq
	c.State.Fold(seq, v)
	switch e := v.(type) {
	case *schemas.MessageSentV1, *schemas.MessageSentV2, *schemas.MessageSentV3:
		m, _ := schemas.AsMessage(v)
		c.msgs[seq] = message{author: m.SenderID, sentAt: m.SentAt.UnixNano()}
		for _, a := range m.Attachments {
			c.msgs[seq].uploads = append(c.msgs[seq].uploads, a.UploadID)
		}
		s.remember(c, m.SenderID, m.CommandID, seq)
	case *schemas.ThumbnailAddedV1:
		if m := c.message(e.MessageSeq); m != nil {
			m.thumbs = append(m.thumbs, e.UploadID)
		}
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.MessageDeletedV1:
		if m := c.message(e.MessageSeq); m != nil {
			m.deleted = true
			m.reactions = nil
		}
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.ReactionV1:
		if m := c.message(e.MessageSeq); m != nil {
			m.react(e.Emoji, e.UserID, typ == schemas.TypeReactionAdded)
		}
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.MemberLeftV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.MembersAddedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.MemberRemovedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.RolesChangedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.RenamedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.ArchivedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.BlockedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	case *schemas.MessageEditedV1:
		s.remember(c, e.UserID, e.CommandID, seq)
	}
}

// message returns the message at seq, or nil if seq is not a message.
func (c *tracked) message(seq uint64) *message {
	if seq >= uint64(len(c.msgs)) || c.msgs[seq].author == "" {
		return nil
	}
	return &c.msgs[seq]
}

func (m *message) react(emoji, user string, add bool) {
	if !add {
		delete(m.reactions[emoji], user)
		if len(m.reactions[emoji]) == 0 {
			delete(m.reactions, emoji)
		}
		return
	}
	if m.reactions == nil {
		m.reactions = make(map[string]map[string]struct{})
	}
	if m.reactions[emoji] == nil {
		m.reactions[emoji] = make(map[string]struct{})
	}
	m.reactions[emoji][user] = struct{}{}
}

func (s *State) create(e *schemas.ConversationCreatedV1) {
	c := &tracked{
		createCmd: e.CommandID,
		msgs:      make([]message, 1, 16),
		recent:    make(map[string]uint64),
	}
	c.State.Fold(0, e)
	s.convs[e.ConversationID] = c
}

func (s *State) remember(c *tracked, user, command string, seq uint64) {
	key := user + "\x00" + command
	if len(c.ring) < s.limits.RecentCommands {
		c.ring = append(c.ring, key)
	} else {
		delete(c.recent, c.ring[c.next])
		c.ring[c.next] = key
		c.next = (c.next + 1) % len(c.ring)
	}
	c.recent[key] = seq
}

func (s *State) event(cmd schemas.Attributes, typ, conversation string, seq uint64, ev any, offset int64, now time.Time) (Decision, error) {
	value, err := json.Marshal(ev)
	if err != nil {
		return Decision{}, fmt.Errorf("encoding %s: %w", typ, err)
	}
	a := kafkalog.NewAttributes(typ, conversation, now)
	a.Seq, a.HasSeq = seq, true
	a.TraceParent, a.OriginNode = cmd.TraceParent, cmd.OriginNode
	a.CommandOffset = offset
	if offset > s.LastCommandOffset {
		s.LastCommandOffset = offset
	}
	return Decision{Event: &Output{Attrs: a, Value: value}}, nil
}

func (s *State) reject(cmd schemas.Attributes, commandID, user, conversation, code, reason string, now time.Time) (Decision, error) {
	return reply(cmd, schemas.TypeCommandRejected, conversation, &schemas.CommandRejectedV1{
		CommandID: commandID, CommandType: cmd.Type, UserID: user, ConversationID: conversation, Code: code, Reason: reason,
	}, now)
}

func (s *State) duplicate(cmd schemas.Attributes, commandID, user, conversation string, seq uint64, now time.Time) (Decision, error) {
	return reply(cmd, schemas.TypeCommandDuplicate, conversation, &schemas.CommandDuplicateV1{
		CommandID: commandID, CommandType: cmd.Type, UserID: user, ConversationID: conversation, Seq: seq,
	}, now)
}

func reply(cmd schemas.Attributes, typ, conversation string, r any, now time.Time) (Decision, error) {
	value, err := json.Marshal(r)
	if err != nil {
		return Decision{}, fmt.Errorf("encoding %s: %w", typ, err)
	}
	a := kafkalog.NewAttributes(typ, conversation, now)
	a.TraceParent, a.OriginNode = cmd.TraceParent, cmd.OriginNode
	return Decision{Reply: &Output{Attrs: a, Value: value}}, nil
}
