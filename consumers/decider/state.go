// The decider's state of one partition's conversations: the fold of
// chat.events on rebuild and after each decision, and the records a
// decision appends.

package decider

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/schemas"
)

// Limits are the decider's limits: the conversation rules'.
type Limits struct {
	conversation.Limits
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	l.Limits = l.Limits.WithDefaults()
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

// State is the decider's state of the conversations of one partition,
// rebuilt from chat.events on assignment. It is not safe for concurrent
// use: one goroutine owns a partition.
//
// In memory it keeps the conversations used most recently (members,
// roles, the last seq), at most a fixed number; the rest of the state —
// every message's author, time, deletion and reactions, every command id
// answered, and the conversations evicted from memory — is in the
// partition's Store, so that a long-lived decider does not grow with the
// messages it owns.
type State struct {
	limits Limits
	convs  *lru.Map[string, *tracked]
	store  *partitionStore
	// err is the first store error met while evicting a conversation:
	// once set, the state can no longer be trusted.
	err error
	// cached, if set, counts the conversations in memory, across the
	// partitions of one decider.
	cached *atomic.Int64
	// LastCommandOffset is the chat.commands offset answered by the
	// partition's newest event that answers one, or -1. Commands are
	// decided in their order, so it is the highest, unless the log lost
	// commands: then the newer events answer lower offsets again.
	LastCommandOffset int64
}

// tracked is one conversation in memory: its state, as every component
// folds it, and the command id that created it.
type tracked struct {
	conversation.State
	createCmd string
}

type message struct {
	author  string
	sentAt  int64 // Unix nanoseconds
	deleted bool
	// reactions maps emoji to the users who reacted with it.
	reactions map[string]map[string]struct{}
	// uploads are the upload ids of the files it carries; thumbs those
	// of them that have a thumbnail.
	uploads, thumbs []string
}

// newState returns an empty state of the partition whose keys ps holds,
// keeping at most capacity conversations in memory.
func newState(l Limits, ps *partitionStore, capacity int, cached *atomic.Int64) *State {
	s := &State{limits: l.WithDefaults(), store: ps, cached: cached, LastCommandOffset: -1}
	s.convs = lru.New(capacity, lru.OnEvict(func(_ string, c *tracked) {
		s.count(-1)
		if err := ps.putConversation(c); err != nil && s.err == nil {
			s.err = err
		}
	}))
	return s
}

func (s *State) count(n int64) {
	if s.cached != nil {
		s.cached.Add(n)
	}
}

// release uncounts the conversations in memory when the partition is
// given up.
func (s *State) release() { s.count(-int64(s.convs.Len())) }

// conversation returns the conversation id, from memory or else from
// the store, or nil if the partition has none of that id.
func (s *State) conversation(id string) (*tracked, error) {
	if s.err != nil {
		return nil, s.err
	}
	if c, ok := s.convs.Get(id); ok {
		return c, nil
	}
	c, ok, err := s.store.conversation(id)
	if !ok || err != nil {
		return nil, err
	}
	s.keep(c)
	return c, s.err
}

// keep puts c in memory, evicting the least recently used beyond the
// capacity.
func (s *State) keep(c *tracked) {
	s.count(1)
	s.convs.Put(c.ID, c)
}

// Seq returns the last seq of conversation and whether it exists.
func (s *State) Seq(conversation string) (uint64, bool, error) {
	c, err := s.conversation(conversation)
	if c == nil || err != nil {
		return 0, false, err
	}
	return c.LastSeq, true, nil
}

// Apply folds an event already in chat.events into the state, as on
// rebuild. Events at or below a conversation's last seq are ignored, so a
// duplicated write changes nothing; unknown (newer) event types still
// advance the seq. An error of the store is errStore; any other error is
// the event's, and the state stays usable.
func (s *State) Apply(attrs schemas.Attributes, value []byte) error {
	c, err := s.conversation(attrs.Subject)
	if err != nil {
		return err
	}
	if schemas.IsCreation(attrs.Type) {
		if c != nil {
			return nil
		}
		s.answered(attrs.CommandOffset)
		v, err := schemas.Decode(attrs.Type, value)
		if err != nil {
			return err
		}
		created, _ := schemas.AsCreation(v)
		return s.create(created)
	}
	if c == nil {
		return fmt.Errorf("event %s seq %d of unknown conversation %s", attrs.Type, attrs.Seq, attrs.Subject)
	}
	if !attrs.HasSeq {
		s.answered(attrs.CommandOffset)
		return nil
	}
	if attrs.Seq <= c.LastSeq {
		return nil
	}
	if attrs.Seq != c.LastSeq+1 {
		return fmt.Errorf("conversation %s: seq %d follows %d", attrs.Subject, attrs.Seq, c.LastSeq)
	}
	s.answered(attrs.CommandOffset)
	v, err := schemas.Decode(attrs.Type, value)
	if errors.Is(err, schemas.ErrUnknownType) {
		c.advance() // a type of a later version: it still took its seq
		return nil
	}
	if err != nil {
		c.advance()
		return err
	}
	return s.fold(c, attrs.Type, v)
}

// answered records offset, the chat.commands offset a new event answers,
// if it answers one (LastCommandOffset). A duplicated write of an older
// event is not new.
func (s *State) answered(offset int64) {
	if offset >= 0 {
		s.LastCommandOffset = offset
	}
}

func (c *tracked) advance() { c.State.Fold(c.LastSeq+1, nil) }

// fold applies a decoded event, whose seq is c.LastSeq+1, to c. Decide
// folds the events it makes with it too, so a rebuilt state is the state
// that made the events. Its only errors are the store's.
func (s *State) fold(c *tracked, typ string, v any) error {
	c.advance()
	seq := c.LastSeq
	c.State.Fold(seq, v)
	conv := c.ID
	switch e := v.(type) {
	case *schemas.MessageSentV1, *schemas.MessageSentV2, *schemas.MessageSentV3:
		m, _ := schemas.AsMessage(v)
		stored := &message{author: m.SenderID, sentAt: m.SentAt.UnixNano()}
		for _, a := range m.Attachments {
			stored.uploads = append(stored.uploads, a.UploadID)
		}
		if err := s.store.putMessage(conv, seq, stored); err != nil {
			return err
		}
		return s.store.putCommand(conv, m.SenderID, m.CommandID, seq)
	case *schemas.ThumbnailAddedV1:
		if err := s.changeMessage(conv, e.MessageSeq, func(m *message) {
			m.thumbs = append(m.thumbs, e.UploadID)
		}); err != nil {
			return err
		}
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MessageDeletedV1:
		if err := s.changeMessage(conv, e.MessageSeq, func(m *message) {
			m.deleted = true
			m.reactions = nil
		}); err != nil {
			return err
		}
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.ReactionV1:
		if err := s.changeMessage(conv, e.MessageSeq, func(m *message) {
			m.react(e.Emoji, e.UserID, typ == schemas.TypeReactionAdded)
		}); err != nil {
			return err
		}
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MemberLeftV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MembersAddedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MemberRemovedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.RolesChangedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.RenamedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.ArchivedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.BlockedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MessageEditedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MLSCommittedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MLSProposedV1:
		return s.store.putCommand(conv, e.UserID, e.CommandID, seq)
	case *schemas.MLSMessageSentV1:
		return s.store.putCommand(conv, e.SenderID, e.CommandID, seq)
	}
	return nil
}

// changeMessage applies f to the message at seq of conv, if there is one.
func (s *State) changeMessage(conv string, seq uint64, f func(*message)) error {
	m, ok, err := s.store.message(conv, seq)
	if !ok || err != nil {
		return err
	}
	f(&m)
	return s.store.putMessage(conv, seq, &m)
}

// facts returns what the rules need of the message at seq of conv: a
// Message with no author when seq is not a message.
func (s *State) facts(conv string, seq uint64) (*conversation.Message, error) {
	m, ok, err := s.store.message(conv, seq)
	if !ok || err != nil {
		return &conversation.Message{}, err
	}
	return &conversation.Message{
		Author: m.author, SentAt: time.Unix(0, m.sentAt), Deleted: m.deleted,
		Reactions: m.reactions, ReactionsKnown: true,
	}, nil
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

func (s *State) create(e *schemas.Creation) error {
	c := &tracked{createCmd: e.CommandID}
	c.State.Fold(0, e)
	s.keep(c)
	return s.err
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
	s.LastCommandOffset = offset
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
