package decider

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// Limits are the decider's validation limits.
type Limits struct {
	// MaxBodyBytes is the largest message body in bytes. Default: 16 KiB.
	MaxBodyBytes int
	// MaxMembers is the largest conversation. Default: 10,000.
	MaxMembers int
	// MaxTitleRunes is the longest group title. Default: 200.
	MaxTitleRunes int
	// RecentCommands is how many client command ids per conversation are
	// remembered for deduplication. Default: 1024.
	RecentCommands int
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 16 << 10
	}
	if l.MaxMembers == 0 {
		l.MaxMembers = 10000
	}
	if l.MaxTitleRunes == 0 {
		l.MaxTitleRunes = 200
	}
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
type State struct {
	limits Limits
	convs  map[string]*conversation
	// LastCommandOffset is the highest chat.commands offset answered by an
	// event in this partition, or -1.
	LastCommandOffset int64
}

type conversation struct {
	kind      schemas.Kind
	createdBy string
	createCmd string
	members   map[string]schemas.Role
	lastSeq   uint64
	// recent maps user\x00command id to the seq it produced; ring keeps
	// insertion order to evict the oldest.
	recent map[string]uint64
	ring   []string
	next   int
}

// NewState returns an empty state.
func NewState(l Limits) *State {
	return &State{limits: l.WithDefaults(), convs: make(map[string]*conversation), LastCommandOffset: -1}
}

// Seq returns the last seq of conversation and whether it exists.
func (s *State) Seq(conversation string) (uint64, bool) {
	c, ok := s.convs[conversation]
	if !ok {
		return 0, false
	}
	return c.lastSeq, true
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
	if !attrs.HasSeq || attrs.Seq <= c.lastSeq {
		return nil
	}
	if attrs.Seq != c.lastSeq+1 {
		return fmt.Errorf("conversation %s: seq %d follows %d", attrs.Subject, attrs.Seq, c.lastSeq)
	}
	c.lastSeq = attrs.Seq
	switch attrs.Type {
	case schemas.TypeMessageSent:
		v, err := schemas.Decode(attrs.Type, value)
		if err != nil {
			return err
		}
		m := v.(*schemas.MessageSentV1)
		s.remember(c, m.SenderID, m.CommandID, m.Seq)
	case schemas.TypeMemberLeft:
		v, err := schemas.Decode(attrs.Type, value)
		if err != nil {
			return err
		}
		m := v.(*schemas.MemberLeftV1)
		delete(c.members, m.UserID)
		s.remember(c, m.UserID, m.CommandID, m.Seq)
	}
	return nil
}

func (s *State) create(e *schemas.ConversationCreatedV1) {
	c := &conversation{
		kind:      e.Kind,
		createdBy: e.CreatedBy,
		createCmd: e.CommandID,
		members:   make(map[string]schemas.Role, len(e.Members)),
		recent:    make(map[string]uint64),
	}
	for _, m := range e.Members {
		c.members[m.UserID] = m.Role
	}
	s.convs[e.ConversationID] = c
}

func (s *State) remember(c *conversation, user, command string, seq uint64) {
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

// Decide turns a command into an event or a reply and, for an event,
// applies it to the state. offset is the command's chat.commands offset.
// It returns an error only for a record that is not a valid command,
// which the caller dead-letters.
func (s *State) Decide(attrs schemas.Attributes, value []byte, offset int64, now time.Time) (Decision, error) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		return Decision{}, err
	}
	switch cmd := v.(type) {
	case *schemas.CreateConversationV1:
		if cmd.ConversationID != attrs.Subject {
			return Decision{}, fmt.Errorf("command for %s keyed as %s", cmd.ConversationID, attrs.Subject)
		}
		return s.decideCreate(attrs, cmd, offset, now)
	case *schemas.SendMessageV1:
		if cmd.ConversationID != attrs.Subject {
			return Decision{}, fmt.Errorf("command for %s keyed as %s", cmd.ConversationID, attrs.Subject)
		}
		return s.decideSend(attrs, cmd, offset, now)
	case *schemas.LeaveConversationV1:
		if cmd.ConversationID != attrs.Subject {
			return Decision{}, fmt.Errorf("command for %s keyed as %s", cmd.ConversationID, attrs.Subject)
		}
		return s.decideLeave(attrs, cmd, offset, now)
	default:
		return Decision{}, fmt.Errorf("%w: %s is not a command", schemas.ErrUnknownType, attrs.Type)
	}
}

func (s *State) decideLeave(attrs schemas.Attributes, cmd *schemas.LeaveConversationV1, offset int64, now time.Time) (Decision, error) {
	reject := func(code, reason string) (Decision, error) {
		return s.reject(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, code, reason, now)
	}
	c, ok := s.convs[cmd.ConversationID]
	if !ok {
		return reject(schemas.CodeConversationNotFound, "no such conversation")
	}
	// A retried leave is a duplicate even though the user is no longer a
	// member: check the command id first.
	if seq, dup := c.recent[cmd.UserID+"\x00"+cmd.CommandID]; dup {
		return s.duplicate(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, seq, now)
	}
	if _, member := c.members[cmd.UserID]; !member {
		return reject(schemas.CodeNotMember, "only members can leave this conversation")
	}
	if c.kind != schemas.KindGroup {
		return reject(schemas.CodeInvalidCommand, "a direct conversation cannot be left")
	}
	c.lastSeq++
	delete(c.members, cmd.UserID)
	s.remember(c, cmd.UserID, cmd.CommandID, c.lastSeq)
	ev := &schemas.MemberLeftV1{
		ConversationID: cmd.ConversationID,
		Seq:            c.lastSeq,
		UserID:         cmd.UserID,
		CommandID:      cmd.CommandID,
		LeftAt:         now,
	}
	return s.event(attrs, schemas.TypeMemberLeft, cmd.ConversationID, c.lastSeq, ev, offset, now)
}

func (s *State) decideCreate(attrs schemas.Attributes, cmd *schemas.CreateConversationV1, offset int64, now time.Time) (Decision, error) {
	reject := func(code, reason string) (Decision, error) {
		return s.reject(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, code, reason, now)
	}
	if c, ok := s.convs[cmd.ConversationID]; ok {
		if c.kind == schemas.KindDirect || (c.createdBy == cmd.UserID && c.createCmd == cmd.CommandID) {
			if _, member := c.members[cmd.UserID]; member {
				return s.duplicate(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, 0, now)
			}
		}
		return reject(schemas.CodeConversationExists, "the conversation already exists")
	}
	others := slices.Clone(cmd.Members)
	slices.Sort(others)
	others = slices.Compact(others)
	others = slices.DeleteFunc(others, func(u string) bool { return u == cmd.UserID })
	members := make([]schemas.Member, 0, len(others)+1)
	switch cmd.Kind {
	case schemas.KindDirect:
		if len(others) != 1 {
			return reject(schemas.CodeInvalidCommand, "a direct conversation has exactly one other member")
		}
		if cmd.ConversationID != schemas.DirectConversationID(cmd.UserID, others[0]) {
			return reject(schemas.CodeInvalidCommand, "conversation id does not match the pair")
		}
		if cmd.Title != "" {
			return reject(schemas.CodeInvalidCommand, "a direct conversation has no title")
		}
		members = append(members, schemas.Member{UserID: cmd.UserID, Role: schemas.RoleMember}, schemas.Member{UserID: others[0], Role: schemas.RoleMember})
	case schemas.KindGroup:
		if cmd.ConversationID != schemas.GroupConversationID(cmd.UserID, cmd.CommandID) {
			return reject(schemas.CodeInvalidCommand, "conversation id does not match the creator and command id")
		}
		if n := utf8.RuneCountInString(cmd.Title); n == 0 || n > s.limits.MaxTitleRunes {
			return reject(schemas.CodeInvalidCommand, fmt.Sprintf("a group title has 1 to %d characters", s.limits.MaxTitleRunes))
		}
		if len(others)+1 > s.limits.MaxMembers {
			return reject(schemas.CodeInvalidCommand, fmt.Sprintf("a conversation has at most %d members", s.limits.MaxMembers))
		}
		members = append(members, schemas.Member{UserID: cmd.UserID, Role: schemas.RoleOwner})
		for _, u := range others {
			members = append(members, schemas.Member{UserID: u, Role: schemas.RoleMember})
		}
	}
	slices.SortFunc(members, func(a, b schemas.Member) int { return strings.Compare(a.UserID, b.UserID) })
	ev := &schemas.ConversationCreatedV1{
		ConversationID: cmd.ConversationID,
		Seq:            0,
		Kind:           cmd.Kind,
		Title:          cmd.Title,
		CreatedBy:      cmd.UserID,
		Members:        members,
		CommandID:      cmd.CommandID,
		CreatedAt:      now,
	}
	s.create(ev)
	return s.event(attrs, schemas.TypeConversationCreated, cmd.ConversationID, 0, ev, offset, now)
}

func (s *State) decideSend(attrs schemas.Attributes, cmd *schemas.SendMessageV1, offset int64, now time.Time) (Decision, error) {
	reject := func(code, reason string) (Decision, error) {
		return s.reject(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, code, reason, now)
	}
	c, ok := s.convs[cmd.ConversationID]
	if !ok {
		return reject(schemas.CodeConversationNotFound, "no such conversation")
	}
	if _, member := c.members[cmd.UserID]; !member {
		return reject(schemas.CodeNotMember, "only members can send to this conversation")
	}
	if seq, dup := c.recent[cmd.UserID+"\x00"+cmd.CommandID]; dup {
		return s.duplicate(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, seq, now)
	}
	if cmd.Body == "" || len(cmd.Body) > s.limits.MaxBodyBytes {
		return reject(schemas.CodeInvalidCommand, fmt.Sprintf("a message body has 1 to %d bytes", s.limits.MaxBodyBytes))
	}
	c.lastSeq++
	s.remember(c, cmd.UserID, cmd.CommandID, c.lastSeq)
	ev := &schemas.MessageSentV1{
		ConversationID: cmd.ConversationID,
		Seq:            c.lastSeq,
		SenderID:       cmd.UserID,
		Body:           cmd.Body,
		CommandID:      cmd.CommandID,
		SentAt:         now,
	}
	return s.event(attrs, schemas.TypeMessageSent, cmd.ConversationID, c.lastSeq, ev, offset, now)
}

func (s *State) event(cmd schemas.Attributes, typ, conversation string, seq uint64, ev any, offset int64, now time.Time) (Decision, error) {
	value, err := json.Marshal(ev)
	if err != nil {
		return Decision{}, fmt.Errorf("encoding %s: %w", typ, err)
	}
	a := producers.NewAttributes(typ, conversation, now)
	a.Seq, a.HasSeq = seq, true
	a.TraceParent = cmd.TraceParent
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
	a := producers.NewAttributes(typ, conversation, now)
	a.TraceParent = cmd.TraceParent
	return Decision{Reply: &Output{Attrs: a, Value: value}}, nil
}
