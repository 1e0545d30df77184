package decider

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/schemas"
)

// Decide turns a command into an event or a reply and, for an event,
// applies it to the state. offset is the command's chat.commands offset.
// It returns an error only for a record that is not a valid command,
// which the caller dead-letters.
//
// The permission matrix it enforces is documented in the package doc and
// in README.md; every cell is tested.
func (s *State) Decide(attrs schemas.Attributes, value []byte, offset int64, now time.Time) (Decision, error) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		return Decision{}, err
	}
	cmd, ok := v.(schemas.Command)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %s is not a command", schemas.ErrUnknownType, attrs.Type)
	}
	commandID, user, conv := cmd.IDs()
	if conv != attrs.Subject {
		return Decision{}, fmt.Errorf("command for %s keyed as %s", conv, attrs.Subject)
	}
	d := decision{s: s, attrs: attrs, offset: offset, now: now, commandID: commandID, user: user, conv: conv}
	if create, ok := v.(*schemas.CreateConversationV1); ok {
		return s.decideCreate(attrs, create, offset, now)
	}
	c, ok := s.convs[conv]
	if !ok {
		return d.reject(schemas.CodeConversationNotFound, "no such conversation")
	}
	d.c = c
	// A retried command is a duplicate even if it could no longer be
	// applied (the user has left since, say): check the command id first.
	if seq, dup := c.recent[user+"\x00"+commandID]; dup {
		return s.duplicate(attrs, commandID, user, conv, seq, now)
	}
	role, member := c.members[user]
	if !member {
		return d.reject(schemas.CodeNotMember, "only members can do this in this conversation")
	}
	d.role = role
	switch cmd := v.(type) {
	case *schemas.SendMessageV1:
		return d.send(cmd.Body, 0)
	case *schemas.SendMessageV2:
		return d.send(cmd.Body, cmd.ReplyTo)
	case *schemas.LeaveConversationV1:
		return d.leave()
	case *schemas.AddMembersV1:
		return d.addMembers(cmd.MemberIDs)
	case *schemas.RemoveMemberV1:
		return d.removeMember(cmd.MemberID)
	case *schemas.SetRoleV1:
		return d.setRole(cmd.MemberID, cmd.Role)
	case *schemas.RenameV1:
		return d.rename(cmd.Title)
	case *schemas.ArchiveV1:
		return d.archive(cmd.Archived)
	case *schemas.BlockV1:
		return d.block(cmd.Blocked)
	case *schemas.EditMessageV1:
		return d.edit(cmd.MessageSeq, cmd.Body)
	case *schemas.DeleteMessageV1:
		return d.delete(cmd.MessageSeq)
	case *schemas.ReactV1:
		return d.react(cmd.MessageSeq, cmd.Emoji, attrs.Type == schemas.TypeAddReaction)
	}
	return Decision{}, fmt.Errorf("%w: %s is not a command", schemas.ErrUnknownType, attrs.Type)
}

// decision is one command being decided against its conversation.
type decision struct {
	s         *State
	attrs     schemas.Attributes
	offset    int64
	now       time.Time
	commandID string
	user      string
	conv      string
	c         *conversation
	role      schemas.Role
}

func (d *decision) reject(code, reason string) (Decision, error) {
	return d.s.reject(d.attrs, d.commandID, d.user, d.conv, code, reason, d.now)
}

// accept folds the event into the state and returns it for appending.
func (d *decision) accept(typ string, ev any) (Decision, error) {
	d.s.fold(d.c, typ, ev)
	return d.s.event(d.attrs, typ, d.conv, d.c.lastSeq, ev, d.offset, d.now)
}

// next is the seq the accepted event will have.
func (d *decision) next() uint64 { return d.c.lastSeq + 1 }

// group refuses a command that only groups have.
func (d *decision) group(what string) (Decision, bool, error) {
	if d.c.kind != schemas.KindGroup {
		dec, err := d.reject(schemas.CodeInvalidCommand, "a direct conversation cannot be "+what)
		return dec, false, err
	}
	return Decision{}, true, nil
}

// writable refuses a command that adds content to an archived group or a
// direct conversation under a block.
func (d *decision) writable() (Decision, bool, error) {
	switch {
	case d.c.archived:
		dec, err := d.reject(schemas.CodeArchived, "the group is archived (read-only)")
		return dec, false, err
	case len(d.c.blockedBy) > 0:
		reason := "the other member has blocked you"
		if slices.Contains(d.c.blockedBy, d.user) {
			reason = "you have blocked the other member; unblock first"
		}
		dec, err := d.reject(schemas.CodeBlocked, reason)
		return dec, false, err
	}
	return Decision{}, true, nil
}

func (d *decision) forbidden(reason string) (Decision, error) {
	return d.reject(schemas.CodeForbidden, reason)
}

func (d *decision) send(body string, replyTo uint64) (Decision, error) {
	if dec, ok, err := d.writable(); !ok {
		return dec, err
	}
	if body == "" || len(body) > d.s.limits.MaxBodyBytes {
		return d.reject(schemas.CodeInvalidCommand, fmt.Sprintf("a message body has 1 to %d bytes", d.s.limits.MaxBodyBytes))
	}
	if replyTo != 0 {
		if m := d.c.message(replyTo); m == nil || m.deleted {
			return d.reject(schemas.CodeMessageNotFound, fmt.Sprintf("reply_to: no message with seq %d", replyTo))
		}
	}
	return d.accept(schemas.TypeMessageSentV2, &schemas.MessageSentV2{
		ConversationID: d.conv, Seq: d.next(), SenderID: d.user, Body: body, ReplyTo: replyTo, CommandID: d.commandID, SentAt: d.now,
	})
}

func (d *decision) leave() (Decision, error) {
	if dec, ok, err := d.group("left"); !ok {
		return dec, err
	}
	if ok, why := Permit(ActionLeave, d.role, "", len(d.c.members)-1); !ok {
		return d.forbidden(why)
	}
	return d.accept(schemas.TypeMemberLeft, &schemas.MemberLeftV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, CommandID: d.commandID, LeftAt: d.now,
	})
}

func (d *decision) addMembers(ids []string) (Decision, error) {
	if dec, ok, err := d.group("given members"); !ok {
		return dec, err
	}
	if ok, why := Permit(ActionAddMembers, d.role, "", 0); !ok {
		return d.forbidden(why)
	}
	if d.c.archived {
		return d.reject(schemas.CodeArchived, "the group is archived (read-only)")
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var added []schemas.Member
	for _, id := range ids {
		if _, ok := d.c.members[id]; !ok {
			added = append(added, schemas.Member{UserID: id, Role: schemas.RoleMember})
		}
	}
	if len(added) == 0 {
		return d.reject(schemas.CodeNoChange, "every user given is a member already")
	}
	if len(d.c.members)+len(added) > d.s.limits.MaxMembers {
		return d.reject(schemas.CodeLimitExceeded, fmt.Sprintf("a conversation has at most %d members", d.s.limits.MaxMembers))
	}
	return d.accept(schemas.TypeMembersAdded, &schemas.MembersAddedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, Members: added, CommandID: d.commandID, AddedAt: d.now,
	})
}

func (d *decision) removeMember(target string) (Decision, error) {
	if dec, ok, err := d.group("given members"); !ok {
		return dec, err
	}
	if target == d.user {
		return d.reject(schemas.CodeInvalidCommand, "to remove yourself, leave the conversation")
	}
	if d.c.archived {
		return d.reject(schemas.CodeArchived, "the group is archived (read-only)")
	}
	role, member := d.c.members[target]
	if ok, why := Permit(ActionRemoveMember, d.role, role, 0); !ok {
		return d.forbidden(why)
	}
	if !member {
		return d.reject(schemas.CodeNoChange, target+" is not a member")
	}
	return d.accept(schemas.TypeMemberRemoved, &schemas.MemberRemovedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, MemberID: target, CommandID: d.commandID, RemovedAt: d.now,
	})
}

func (d *decision) setRole(target string, role schemas.Role) (Decision, error) {
	if dec, ok, err := d.group("given roles"); !ok {
		return dec, err
	}
	if ok, why := Permit(ActionSetRole, d.role, "", 0); !ok {
		return d.forbidden(why)
	}
	if d.c.archived {
		return d.reject(schemas.CodeArchived, "the group is archived (read-only)")
	}
	current, ok := d.c.members[target]
	switch {
	case target == d.user:
		return d.reject(schemas.CodeInvalidCommand, "the owner changes their own role by transferring the ownership")
	case !ok:
		return d.reject(schemas.CodeInvalidCommand, target+" is not a member: add them first")
	case current == role:
		return d.reject(schemas.CodeNoChange, target+" already has role "+string(role))
	}
	changes := []schemas.Member{{UserID: target, Role: role}}
	if role == schemas.RoleOwner {
		changes = append(changes, schemas.Member{UserID: d.user, Role: schemas.RoleAdmin})
	}
	return d.accept(schemas.TypeRolesChanged, &schemas.RolesChangedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, Changes: changes, CommandID: d.commandID, ChangedAt: d.now,
	})
}

func (d *decision) rename(title string) (Decision, error) {
	if dec, ok, err := d.group("renamed"); !ok {
		return dec, err
	}
	if ok, why := Permit(ActionRename, d.role, "", 0); !ok {
		return d.forbidden(why)
	}
	if d.c.archived {
		return d.reject(schemas.CodeArchived, "the group is archived (read-only)")
	}
	if n := utf8.RuneCountInString(title); n == 0 || n > d.s.limits.MaxTitleRunes || strings.TrimSpace(title) == "" {
		return d.reject(schemas.CodeInvalidCommand, fmt.Sprintf("a group title has 1 to %d characters", d.s.limits.MaxTitleRunes))
	}
	if title == d.c.title {
		return d.reject(schemas.CodeNoChange, "the group already has this title")
	}
	return d.accept(schemas.TypeRenamed, &schemas.RenamedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, Title: title, CommandID: d.commandID, RenamedAt: d.now,
	})
}

func (d *decision) archive(archived bool) (Decision, error) {
	if dec, ok, err := d.group("archived"); !ok {
		return dec, err
	}
	if ok, why := Permit(ActionArchive, d.role, "", 0); !ok {
		return d.forbidden(why)
	}
	if archived == d.c.archived {
		return d.reject(schemas.CodeNoChange, "the group is already so")
	}
	return d.accept(schemas.TypeArchived, &schemas.ArchivedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, Archived: archived, CommandID: d.commandID, ArchivedAt: d.now,
	})
}

func (d *decision) block(blocked bool) (Decision, error) {
	if d.c.kind != schemas.KindDirect {
		return d.reject(schemas.CodeInvalidCommand, "blocking is for direct conversations; leave a group instead")
	}
	if slices.Contains(d.c.blockedBy, d.user) == blocked {
		return d.reject(schemas.CodeNoChange, "the block is already so")
	}
	return d.accept(schemas.TypeBlocked, &schemas.BlockedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, Blocked: blocked, CommandID: d.commandID, BlockedAt: d.now,
	})
}

// target returns the live message at seq, or a rejection.
func (d *decision) target(seq uint64) (*message, Decision, error) {
	m := d.c.message(seq)
	if m == nil || m.deleted {
		dec, err := d.reject(schemas.CodeMessageNotFound, fmt.Sprintf("no message with seq %d", seq))
		return nil, dec, err
	}
	return m, Decision{}, nil
}

func (d *decision) edit(seq uint64, body string) (Decision, error) {
	if dec, ok, err := d.writable(); !ok {
		return dec, err
	}
	m, dec, err := d.target(seq)
	switch {
	case m == nil:
		return dec, err
	case m.author != d.user:
		return d.forbidden("only the author can edit a message")
	case d.now.Sub(time.Unix(0, m.sentAt)) > d.s.limits.EditWindow:
		return d.reject(schemas.CodeEditWindowClosed, fmt.Sprintf("a message can be edited for %v after it was sent", d.s.limits.EditWindow))
	case body == "" || len(body) > d.s.limits.MaxBodyBytes:
		return d.reject(schemas.CodeInvalidCommand, fmt.Sprintf("a message body has 1 to %d bytes", d.s.limits.MaxBodyBytes))
	}
	return d.accept(schemas.TypeMessageEdited, &schemas.MessageEditedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, MessageSeq: seq, Body: body, MessageSentAt: time.Unix(0, m.sentAt).UTC(), CommandID: d.commandID, EditedAt: d.now,
	})
}

func (d *decision) delete(seq uint64) (Decision, error) {
	m, dec, err := d.target(seq)
	switch {
	case m == nil:
		return dec, err
	case d.c.archived:
		return d.reject(schemas.CodeArchived, "the group is archived (read-only)")
	case m.author != d.user && d.c.kind != schemas.KindGroup:
		return d.forbidden("only the author can delete a message in a direct conversation")
	case m.author != d.user:
		if ok, why := Permit(ActionDeleteOthers, d.role, "", 0); !ok {
			return d.forbidden(why)
		}
	}
	return d.accept(schemas.TypeMessageDeleted, &schemas.MessageDeletedV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, MessageSeq: seq, CommandID: d.commandID, DeletedAt: d.now,
	})
}

func (d *decision) react(seq uint64, emoji string, add bool) (Decision, error) {
	if dec, ok, err := d.writable(); !ok {
		return dec, err
	}
	m, dec, err := d.target(seq)
	if m == nil {
		return dec, err
	}
	_, has := m.reactions[emoji][d.user]
	typ := schemas.TypeReactionRemoved
	switch {
	case add && has:
		return d.reject(schemas.CodeNoChange, "you already reacted with "+emoji)
	case !add && !has:
		return d.reject(schemas.CodeNoChange, "you have not reacted with "+emoji)
	case add:
		if _, used := m.reactions[emoji]; !used && len(m.reactions) >= d.s.limits.MaxReactions {
			return d.reject(schemas.CodeLimitExceeded, fmt.Sprintf("a message has at most %d different reactions", d.s.limits.MaxReactions))
		}
		typ = schemas.TypeReactionAdded
	}
	return d.accept(typ, &schemas.ReactionV1{
		ConversationID: d.conv, Seq: d.next(), UserID: d.user, MessageSeq: seq, Emoji: emoji, CommandID: d.commandID, At: d.now,
	})
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
		if n := utf8.RuneCountInString(cmd.Title); n == 0 || n > s.limits.MaxTitleRunes || strings.TrimSpace(cmd.Title) == "" {
			return reject(schemas.CodeInvalidCommand, fmt.Sprintf("a group title has 1 to %d characters", s.limits.MaxTitleRunes))
		}
		if len(others)+1 > s.limits.MaxMembers {
			return reject(schemas.CodeLimitExceeded, fmt.Sprintf("a conversation has at most %d members", s.limits.MaxMembers))
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
