// The rules a command is judged by: the permission matrix, the content
// rules and the limits, each written once.

package conversation

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/schemas"
)

// Limits are the configurable limits of conversations and messages.
type Limits struct {
	// MaxBodyBytes is the largest message body in bytes. Default: 16 KiB.
	MaxBodyBytes int
	// MaxMembers is the largest conversation. Default: 10,000.
	MaxMembers int
	// MaxTitleRunes is the longest group title. Default: 200.
	MaxTitleRunes int
	// MaxReactions is the most distinct emoji on one message. Default: 50.
	MaxReactions int
	// EditWindow is how long after sending its author may edit a message.
	// Default: 15 minutes.
	EditWindow time.Duration
	// MaxAttachments is the most files one message carries. Default: 10.
	MaxAttachments int
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
	if l.MaxReactions == 0 {
		l.MaxReactions = 50
	}
	if l.EditWindow == 0 {
		l.EditWindow = 15 * time.Minute
	}
	if l.MaxAttachments == 0 {
		l.MaxAttachments = 10
	}
	return l
}

// Refusal is why a command may not be applied: a stable code
// (schemas.Code*) and a sentence for people.
type Refusal struct {
	Code   string
	Reason string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Reason }

func refuse(code, reason string) *Refusal { return &Refusal{Code: code, Reason: reason} }

// Action is something a member may or may not do in a group, depending
// on roles: the rows of the permission matrix (README "Roles and
// permissions"). What depends on more than roles — editing only one's
// own messages, the edit window, blocks, archives — the checks below
// add.
type Action string

// Actions of the permission matrix.
const (
	ActionAddMembers   Action = "add members"
	ActionRemoveMember Action = "remove a member"
	ActionSetRole      Action = "change a role or transfer the ownership"
	ActionRename       Action = "rename"
	ActionArchive      Action = "archive or unarchive"
	ActionDeleteOthers Action = "delete another member's message"
	ActionLeave        Action = "leave"
)

// Permit reports whether a member with role actor may do action in a
// group, to a member with role target where the action has one (remove
// a member), with the reason for a refusal. others is how many members
// besides the actor the group has (an owner may leave only alone).
// Everything else a member may do — send, reply, react, edit and delete
// their own messages — every member may.
func Permit(action Action, actor, target schemas.Role, others int) (ok bool, reason string) {
	owner, admin := actor == schemas.RoleOwner, actor == schemas.RoleAdmin
	switch action {
	case ActionAddMembers:
		return owner || admin, "only the owner and admins can add members"
	case ActionRemoveMember:
		switch target {
		case schemas.RoleOwner:
			return false, "the owner cannot be removed"
		case schemas.RoleAdmin:
			return owner, "only the owner can remove an admin"
		}
		return owner || admin, "only the owner and admins can remove members"
	case ActionSetRole:
		return owner, "only the owner can change roles"
	case ActionRename:
		return owner || admin, "only the owner and admins can rename the group"
	case ActionArchive:
		return owner, "only the owner can archive or unarchive the group"
	case ActionDeleteOthers:
		return owner || admin, "only the author, or the owner and admins of a group, can delete a message"
	case ActionLeave:
		return !owner || others == 0, "the owner must transfer the ownership before leaving"
	}
	return false, "unknown action"
}

// permit refuses with forbidden what Permit does not allow user in s.
func (s *State) permit(user string, action Action, target schemas.Role) *Refusal {
	role, _ := s.Role(user)
	if ok, why := Permit(action, role, target, len(s.Members)-1); !ok {
		return refuse(schemas.CodeForbidden, why)
	}
	return nil
}

// NotFound refuses a command on a conversation that does not exist.
func NotFound() *Refusal {
	return refuse(schemas.CodeConversationNotFound, "no such conversation")
}

// Member refuses a command of user on s when user is not a member.
func (s *State) Member(user string) *Refusal {
	if !s.IsMember(user) {
		return refuse(schemas.CodeNotMember, "you are not a member of this conversation")
	}
	return nil
}

// group refuses a command that only groups have.
func (s *State) group(what string) *Refusal {
	if s.Kind != schemas.KindGroup {
		return refuse(schemas.CodeInvalidCommand, "a direct conversation cannot be "+what)
	}
	return nil
}

// notArchived refuses any change to an archived group.
func (s *State) notArchived() *Refusal {
	if s.Archived {
		return refuse(schemas.CodeArchived, "the group is archived (read-only)")
	}
	return nil
}

// Writable refuses a command of user that adds content to an archived
// group or to a direct conversation under a block.
func (s *State) Writable(user string) *Refusal {
	switch {
	case s.Archived:
		return s.notArchived()
	case len(s.BlockedBy) > 0 && slices.Contains(s.BlockedBy, user):
		return refuse(schemas.CodeBlocked, "you have blocked the other member; unblock first")
	case len(s.BlockedBy) > 0:
		return refuse(schemas.CodeBlocked, "the other member has blocked you")
	}
	return nil
}

// Body refuses a message body outside the limits.
func (l Limits) Body(body string) *Refusal {
	if body == "" || len(body) > l.MaxBodyBytes {
		return refuse(schemas.CodeInvalidCommand, fmt.Sprintf("a message body has 1 to %d bytes", l.MaxBodyBytes))
	}
	return nil
}

// Title refuses a group title outside the limits, or only of spaces.
func (l Limits) Title(title string) *Refusal {
	if n := utf8.RuneCountInString(title); n == 0 || n > l.MaxTitleRunes || strings.TrimSpace(title) == "" {
		return refuse(schemas.CodeInvalidCommand, fmt.Sprintf("a group title has 1 to %d characters", l.MaxTitleRunes))
	}
	return nil
}

// Size refuses a conversation of members members.
func (l Limits) Size(members int) *Refusal {
	if members > l.MaxMembers {
		return refuse(schemas.CodeLimitExceeded, fmt.Sprintf("a conversation has at most %d members", l.MaxMembers))
	}
	return nil
}

// others returns the members of a creation besides its creator, sorted,
// once each.
func others(cmd *schemas.CreateConversationV1) []string {
	others := slices.Clone(cmd.Members)
	slices.Sort(others)
	others = slices.Compact(others)
	return slices.DeleteFunc(others, func(u string) bool { return u == cmd.UserID })
}

// IDFor returns the id the conversation cmd creates must have: a direct
// conversation's derives from the pair, a group's from its creator and
// command id. It is "" for a direct conversation that does not name
// exactly one other member, and for an unknown kind.
func IDFor(cmd *schemas.CreateConversationV1) string {
	switch cmd.Kind {
	case schemas.KindDirect:
		if o := others(cmd); len(o) == 1 {
			return schemas.DirectConversationID(cmd.UserID, o[0])
		}
	case schemas.KindGroup:
		return schemas.GroupConversationID(cmd.UserID, cmd.CommandID)
	}
	return ""
}

// Create refuses a creation whose kind, members, title or id do not fit
// together, or returns the members of the new conversation, sorted:
// the creator (owner of a group) and the others given, once each.
func (l Limits) Create(cmd *schemas.CreateConversationV1) ([]schemas.Member, *Refusal) {
	others := others(cmd)
	members := make([]schemas.Member, 0, len(others)+1)
	switch cmd.Kind {
	case schemas.KindDirect:
		if len(others) != 1 {
			return nil, refuse(schemas.CodeInvalidCommand, "a direct conversation has exactly one other member")
		}
		if cmd.ConversationID != IDFor(cmd) {
			return nil, refuse(schemas.CodeInvalidCommand, "conversation id does not match the pair")
		}
		if cmd.Title != "" {
			return nil, refuse(schemas.CodeInvalidCommand, "a direct conversation has no title")
		}
		members = append(members, schemas.Member{UserID: cmd.UserID, Role: schemas.RoleMember}, schemas.Member{UserID: others[0], Role: schemas.RoleMember})
	case schemas.KindGroup:
		if cmd.ConversationID != IDFor(cmd) {
			return nil, refuse(schemas.CodeInvalidCommand, "conversation id does not match the creator and command id")
		}
		if r := l.Title(cmd.Title); r != nil {
			return nil, r
		}
		if r := l.Size(len(others) + 1); r != nil {
			return nil, r
		}
		members = append(members, schemas.Member{UserID: cmd.UserID, Role: schemas.RoleOwner})
		for _, u := range others {
			members = append(members, schemas.Member{UserID: u, Role: schemas.RoleMember})
		}
	default:
		return nil, refuse(schemas.CodeInvalidCommand, `kind must be "direct" or "group"`)
	}
	return SortMembers(members), nil
}

// Message is what the rules need to know of the message a command
// names. A caller that cannot tell (its copy of the conversation lags
// the log) passes nil, and the checks that need the message are left to
// the decider.
type Message struct {
	// Author is the sender; empty when the seq is not a message.
	Author  string
	SentAt  time.Time
	Deleted bool
	// Reactions maps emoji to the users who reacted with it; consulted
	// only when ReactionsKnown (a lagging copy must not refuse a
	// reaction that it has not seen yet).
	Reactions      map[string]map[string]struct{}
	ReactionsKnown bool
}

// live refuses a command on seq when m shows no live message there.
func live(seq uint64, m *Message, what string) *Refusal {
	if m != nil && (m.Author == "" || m.Deleted) {
		return refuse(schemas.CodeMessageNotFound, fmt.Sprintf("%sno message with seq %d", what, seq))
	}
	return nil
}

// Send refuses a message of user, answering replyTo (0 for none), whose
// message is reply.
func (l Limits) Send(s *State, user, body string, replyTo uint64, reply *Message) *Refusal {
	return l.SendFiles(s, user, body, replyTo, reply, 0)
}

// SendFiles refuses a message of user carrying files attachments: as
// Send, except that a message with files may have an empty body, and
// that it carries at most MaxAttachments.
func (l Limits) SendFiles(s *State, user, body string, replyTo uint64, reply *Message, files int) *Refusal {
	if r := s.Writable(user); r != nil {
		return r
	}
	if files > l.MaxAttachments {
		return refuse(schemas.CodeLimitExceeded, fmt.Sprintf("a message carries at most %d files", l.MaxAttachments))
	}
	if r := l.Body(body); r != nil && (files == 0 || body != "") {
		return r
	}
	if replyTo != 0 {
		return live(replyTo, reply, "reply_to: ")
	}
	return nil
}

// Edit refuses an edit by user of the message at seq.
func (l Limits) Edit(s *State, user string, seq uint64, m *Message, body string, now time.Time) *Refusal {
	if r := s.Writable(user); r != nil {
		return r
	}
	if r := live(seq, m, ""); r != nil || m == nil {
		return r
	}
	switch {
	case m.Author != user:
		return refuse(schemas.CodeForbidden, "only the author can edit a message")
	case now.Sub(m.SentAt) > l.EditWindow:
		return refuse(schemas.CodeEditWindowClosed, fmt.Sprintf("a message can be edited for %v after it was sent", l.EditWindow))
	}
	return l.Body(body)
}

// Delete refuses a deletion by user of the message at seq.
func (s *State) Delete(user string, seq uint64, m *Message) *Refusal {
	if r := live(seq, m, ""); r != nil {
		return r
	}
	if r := s.notArchived(); r != nil || m == nil || m.Author == user {
		return r
	}
	if s.Kind != schemas.KindGroup {
		return refuse(schemas.CodeForbidden, "only the author can delete a message in a direct conversation")
	}
	return s.permit(user, ActionDeleteOthers, "")
}

// React refuses adding (add) or removing user's reaction emoji to the
// message at seq.
func (l Limits) React(s *State, user string, seq uint64, m *Message, emoji string, add bool) *Refusal {
	if r := s.Writable(user); r != nil {
		return r
	}
	if r := live(seq, m, ""); r != nil || m == nil || !m.ReactionsKnown {
		return r
	}
	_, has := m.Reactions[emoji][user]
	switch {
	case add && has:
		return refuse(schemas.CodeNoChange, "you already reacted with "+emoji)
	case !add && !has:
		return refuse(schemas.CodeNoChange, "you have not reacted with "+emoji)
	}
	if _, used := m.Reactions[emoji]; add && !used && len(m.Reactions) >= l.MaxReactions {
		return refuse(schemas.CodeLimitExceeded, fmt.Sprintf("a message has at most %d different reactions", l.MaxReactions))
	}
	return nil
}

// Leave refuses user's leaving s.
func (s *State) Leave(user string) *Refusal {
	if r := s.group("left"); r != nil {
		return r
	}
	return s.permit(user, ActionLeave, "")
}

// AddMembers refuses user's adding members to s. Which of them are
// members already, and the size the group would reach, only the decider
// can tell (see Added).
func (s *State) AddMembers(user string) *Refusal {
	if r := s.group("given members"); r != nil {
		return r
	}
	if r := s.permit(user, ActionAddMembers, ""); r != nil {
		return r
	}
	return s.notArchived()
}

// Added returns the users of ids who are not members of s, as new
// members, sorted, or refuses when there are none or the group would
// outgrow the limits.
func (l Limits) Added(s *State, ids []string) ([]schemas.Member, *Refusal) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var added []schemas.Member
	for _, id := range ids {
		if !s.IsMember(id) {
			added = append(added, schemas.Member{UserID: id, Role: schemas.RoleMember})
		}
	}
	if len(added) == 0 {
		return nil, refuse(schemas.CodeNoChange, "every user given is a member already")
	}
	if r := l.Size(len(s.Members) + len(added)); r != nil {
		return nil, r
	}
	return added, nil
}

// RemoveMember refuses user's removing target from s. That target is no
// member (any more) only the decider can tell: it answers no_change.
func (s *State) RemoveMember(user, target string) *Refusal {
	if r := s.group("given members"); r != nil {
		return r
	}
	if target == user {
		return refuse(schemas.CodeInvalidCommand, "to remove yourself, leave the conversation")
	}
	if r := s.notArchived(); r != nil {
		return r
	}
	role, _ := s.Role(target)
	return s.permit(user, ActionRemoveMember, role)
}

// NotMember refuses a change to target, who is not a member of s.
func (s *State) NotMember(target string) *Refusal {
	if !s.IsMember(target) {
		return refuse(schemas.CodeNoChange, target+" is not a member")
	}
	return nil
}

// SetRole refuses user's giving target a role in s.
func (s *State) SetRole(user, target string) *Refusal {
	if r := s.group("given roles"); r != nil {
		return r
	}
	if r := s.permit(user, ActionSetRole, ""); r != nil {
		return r
	}
	if r := s.notArchived(); r != nil {
		return r
	}
	if target == user {
		return refuse(schemas.CodeInvalidCommand, "the owner changes their own role by transferring the ownership")
	}
	return nil
}

// RoleChange refuses giving target role when target is no member or has
// it already; that only the decider can tell.
func (s *State) RoleChange(target string, role schemas.Role) *Refusal {
	current, ok := s.Role(target)
	switch {
	case !ok:
		return refuse(schemas.CodeInvalidCommand, target+" is not a member: add them first")
	case current == role:
		return refuse(schemas.CodeNoChange, target+" already has role "+string(role))
	}
	return nil
}

// Rename refuses user's renaming s to title.
func (l Limits) Rename(s *State, user, title string) *Refusal {
	if r := s.group("renamed"); r != nil {
		return r
	}
	if r := s.permit(user, ActionRename, ""); r != nil {
		return r
	}
	if r := s.notArchived(); r != nil {
		return r
	}
	return l.Title(title)
}

// Archive refuses user's archiving or unarchiving s.
func (s *State) Archive(user string) *Refusal {
	if r := s.group("archived"); r != nil {
		return r
	}
	return s.permit(user, ActionArchive, "")
}

// Block refuses a block or unblock in s.
func (s *State) Block() *Refusal {
	if s.Kind != schemas.KindDirect {
		return refuse(schemas.CodeInvalidCommand, "blocking is for direct conversations; leave a group instead")
	}
	return nil
}

// Retitle refuses renaming s to the title it has.
func (s *State) Retitle(title string) *Refusal {
	if title == s.Title {
		return refuse(schemas.CodeNoChange, "the group already has this title")
	}
	return nil
}

// Rearchive refuses setting the archive flag of s to what it is.
func (s *State) Rearchive(archived bool) *Refusal {
	if archived == s.Archived {
		return refuse(schemas.CodeNoChange, "the group is already so")
	}
	return nil
}

// Reblock refuses user's setting their block in s to what it is.
func (s *State) Reblock(user string, blocked bool) *Refusal {
	if slices.Contains(s.BlockedBy, user) == blocked {
		return refuse(schemas.CodeNoChange, "the block is already so")
	}
	return nil
}
