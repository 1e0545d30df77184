// Decide: a command judged against its conversation by the rules of
// package conversation, and turned into an event or a reply.

package decider

import (
	"fmt"
	"slices"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

// Decide turns a command into an event or a reply and, for an event,
// applies it to the state. offset is the command's chat.commands offset.
// It returns an error for a record that is not a valid command, which
// the caller dead-letters, or an error of the store (errStore), after
// which the state can no longer be trusted and is rebuilt.
//
// The rules it enforces are package conversation's, documented in
// README.md; every cell of the permission matrix is tested.
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
	if create, ok := schemas.AsCreate(v); ok {
		return s.decideCreate(attrs, create, offset, now)
	}
	c, err := s.conversation(conv)
	if err != nil {
		return Decision{}, err
	}
	if c == nil {
		return d.refuse(conversation.NotFound())
	}
	d.c = c
	// A retried command is a duplicate even if it could no longer be
	// applied (the user has left since, say): check the command id first.
	seq, dup, err := s.store.command(conv, user, commandID)
	if err != nil {
		return Decision{}, err
	}
	if dup {
		return s.duplicate(attrs, commandID, user, conv, seq, now)
	}
	if r := c.Member(user); r != nil {
		return d.refuse(r)
	}
	l, st := s.limits.Limits, &c.State
	if r := plainRefusal(st, v); r != nil {
		return d.refuse(r)
	}
	switch cmd := v.(type) {
	case *schemas.MLSCommitV1:
		added, removed, r := l.Commit(st, user, cmd.DeviceID, cmd.Epoch, cmd.AddDevices, cmd.RemoveDevices)
		return d.unless(r).then(schemas.TypeMLSCommitted, &schemas.MLSCommittedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, DeviceID: cmd.DeviceID, Epoch: cmd.Epoch + 1,
			Commit: cmd.Commit, Welcome: cmd.Welcome, AddedDevices: cmd.AddDevices, RemovedDevices: cmd.RemoveDevices,
			MembersAdded: added, MembersRemoved: removed, CommandID: commandID, CommittedAt: now,
		})
	case *schemas.MLSProposeV1:
		return d.unless(st.Propose(user, cmd.DeviceID, cmd.Epoch, cmd.Leave)).then(schemas.TypeMLSProposed, &schemas.MLSProposedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, DeviceID: cmd.DeviceID, Epoch: cmd.Epoch,
			Proposal: cmd.Proposal, Leave: cmd.Leave, CommandID: commandID, ProposedAt: now,
		})
	case *schemas.MLSSendV1:
		return d.unless(st.MLSMessage(user, cmd.DeviceID, cmd.Epoch)).then(schemas.TypeMLSMessageSent, &schemas.MLSMessageSentV1{
			ConversationID: conv, Seq: d.next(), SenderID: user, DeviceID: cmd.DeviceID, Epoch: cmd.Epoch,
			Ciphertext: cmd.Ciphertext, CommandID: commandID, SentAt: now,
		})
	case *schemas.SendMessageV1:
		return d.send(cmd.Body, 0)
	case *schemas.SendMessageV2:
		return d.send(cmd.Body, cmd.ReplyTo)
	case *schemas.SendMessageV3:
		if len(cmd.Attachments) == 0 {
			return d.send(cmd.Body, cmd.ReplyTo)
		}
		return d.sendFiles(cmd)
	case *schemas.AddThumbnailV1:
		r, err := s.thumbnail(conv, user, cmd)
		if err != nil {
			return Decision{}, err
		}
		return d.unless(r).then(schemas.TypeThumbnailAdded, &schemas.ThumbnailAddedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, MessageSeq: cmd.MessageSeq, UploadID: cmd.UploadID,
			Width: cmd.Width, Height: cmd.Height, Size: cmd.Size, CommandID: commandID, AddedAt: now,
		})
	case *schemas.LeaveConversationV1:
		return d.unless(st.Leave(user)).then(schemas.TypeMemberLeft, &schemas.MemberLeftV1{
			ConversationID: conv, Seq: d.next(), UserID: user, CommandID: commandID, LeftAt: now,
		})
	case *schemas.AddMembersV1:
		if r := st.AddMembers(user); r != nil {
			return d.refuse(r)
		}
		added, r := l.Added(st, cmd.MemberIDs)
		return d.unless(r).then(schemas.TypeMembersAdded, &schemas.MembersAddedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, Members: added, CommandID: commandID, AddedAt: now,
		})
	case *schemas.RemoveMemberV1:
		return d.unless(st.RemoveMember(user, cmd.MemberID), st.NotMember(cmd.MemberID)).then(schemas.TypeMemberRemoved, &schemas.MemberRemovedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, MemberID: cmd.MemberID, CommandID: commandID, RemovedAt: now,
		})
	case *schemas.SetRoleV1:
		changes := []schemas.Member{{UserID: cmd.MemberID, Role: cmd.Role}}
		if cmd.Role == schemas.RoleOwner {
			changes = append(changes, schemas.Member{UserID: user, Role: schemas.RoleAdmin})
		}
		return d.unless(st.SetRole(user, cmd.MemberID), st.RoleChange(cmd.MemberID, cmd.Role)).then(schemas.TypeRolesChanged, &schemas.RolesChangedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, Changes: changes, CommandID: commandID, ChangedAt: now,
		})
	case *schemas.RenameV1:
		return d.unless(l.Rename(st, user, cmd.Title), st.Retitle(cmd.Title)).then(schemas.TypeRenamed, &schemas.RenamedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, Title: cmd.Title, CommandID: commandID, RenamedAt: now,
		})
	case *schemas.ArchiveV1:
		return d.unless(st.Archive(user), st.Rearchive(cmd.Archived)).then(schemas.TypeArchived, &schemas.ArchivedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, Archived: cmd.Archived, CommandID: commandID, ArchivedAt: now,
		})
	case *schemas.BlockV1:
		return d.unless(st.Block(), st.Reblock(user, cmd.Blocked)).then(schemas.TypeBlocked, &schemas.BlockedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, Blocked: cmd.Blocked, CommandID: commandID, BlockedAt: now,
		})
	case *schemas.EditMessageV1:
		m, err := s.facts(conv, cmd.MessageSeq)
		if err != nil {
			return Decision{}, err
		}
		return d.unless(l.Edit(st, user, cmd.MessageSeq, m, cmd.Body, now)).then(schemas.TypeMessageEdited, &schemas.MessageEditedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, MessageSeq: cmd.MessageSeq, Body: cmd.Body,
			MessageSentAt: m.SentAt.UTC(), CommandID: commandID, EditedAt: now,
		})
	case *schemas.DeleteMessageV1:
		m, err := s.facts(conv, cmd.MessageSeq)
		if err != nil {
			return Decision{}, err
		}
		return d.unless(st.Delete(user, cmd.MessageSeq, m)).then(schemas.TypeMessageDeleted, &schemas.MessageDeletedV1{
			ConversationID: conv, Seq: d.next(), UserID: user, MessageSeq: cmd.MessageSeq, CommandID: commandID, DeletedAt: now,
		})
	case *schemas.ReactV1:
		add := attrs.Type == schemas.TypeAddReaction
		typ := schemas.TypeReactionRemoved
		if add {
			typ = schemas.TypeReactionAdded
		}
		m, err := s.facts(conv, cmd.MessageSeq)
		if err != nil {
			return Decision{}, err
		}
		return d.unless(l.React(st, user, cmd.MessageSeq, m, cmd.Emoji, add)).then(typ, &schemas.ReactionV1{
			ConversationID: conv, Seq: d.next(), UserID: user, MessageSeq: cmd.MessageSeq, Emoji: cmd.Emoji, CommandID: commandID, At: now,
		})
	}
	return Decision{}, fmt.Errorf("%w: %s is not a command", schemas.ErrUnknownType, attrs.Type)
}

// plainRefusal refuses, in an encrypted conversation, the commands that
// carry readable content or change members without an MLS commit.
func plainRefusal(st *conversation.State, v any) *conversation.Refusal {
	switch v.(type) {
	case *schemas.SendMessageV1, *schemas.SendMessageV2, *schemas.SendMessageV3:
		return st.Plain("a plain message")
	case *schemas.EditMessageV1:
		return st.Plain("an edit")
	case *schemas.DeleteMessageV1:
		return st.Plain("a deletion")
	case *schemas.ReactV1:
		return st.Plain("a reaction")
	case *schemas.AddThumbnailV1:
		return st.Plain("a thumbnail")
	case *schemas.AddMembersV1, *schemas.RemoveMemberV1, *schemas.LeaveConversationV1:
		return st.Plain("a member change without an MLS commit")
	}
	return nil
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
	c         *tracked
}

func (d *decision) reject(code, reason string) (Decision, error) {
	return d.s.reject(d.attrs, d.commandID, d.user, d.conv, code, reason, d.now)
}

func (d *decision) refuse(r *conversation.Refusal) (Decision, error) {
	return d.reject(r.Code, r.Reason)
}

// unless returns what decides the command: the first refusal of rs that
// is not nil, or else accepting the event (verdict.then).
func (d *decision) unless(rs ...*conversation.Refusal) verdict {
	for _, r := range rs {
		if r != nil {
			return verdict{d, r}
		}
	}
	return verdict{d, nil}
}

// verdict is a decision's refusal, or nil to accept its event. A value
// rather than a function, so that a decision stays on Decide's stack.
type verdict struct {
	d *decision
	r *conversation.Refusal
}

// then refuses the command, or accepts ev of type typ.
func (v verdict) then(typ string, ev any) (Decision, error) {
	if v.r != nil {
		return v.d.refuse(v.r)
	}
	return v.d.accept(typ, ev)
}

// accept folds the event into the state and returns it for appending.
func (d *decision) accept(typ string, ev any) (Decision, error) {
	if err := d.s.fold(d.c, typ, ev); err != nil {
		return Decision{}, err
	}
	return d.s.event(d.attrs, typ, d.conv, d.c.LastSeq, ev, d.offset, d.now)
}

// next is the seq the accepted event will have.
func (d *decision) next() uint64 { return d.c.LastSeq + 1 }

func (d *decision) send(body string, replyTo uint64) (Decision, error) {
	replied := &conversation.Message{}
	if replyTo != 0 {
		var err error
		if replied, err = d.s.facts(d.conv, replyTo); err != nil {
			return Decision{}, err
		}
	}
	return d.unless(d.s.limits.Send(&d.c.State, d.user, body, replyTo, replied)).then(schemas.TypeMessageSentV2, &schemas.MessageSentV2{
		ConversationID: d.conv, Seq: d.next(), SenderID: d.user, Body: body, ReplyTo: replyTo, CommandID: d.commandID, SentAt: d.now,
	})
}

// sendFiles decides a message with attachments. The gateway checked each
// upload against the file store before it appended the command; the
// decider records their metadata only, and never an upload twice in one
// message (schemas.Decode refused that).
func (d *decision) sendFiles(cmd *schemas.SendMessageV3) (Decision, error) {
	replied := &conversation.Message{}
	if cmd.ReplyTo != 0 {
		var err error
		if replied, err = d.s.facts(d.conv, cmd.ReplyTo); err != nil {
			return Decision{}, err
		}
	}
	r := d.s.limits.SendFiles(&d.c.State, d.user, cmd.Body, cmd.ReplyTo, replied, len(cmd.Attachments))
	return d.unless(r).then(schemas.TypeMessageSentV3, &schemas.MessageSentV3{
		ConversationID: d.conv, Seq: d.next(), SenderID: d.user, Body: cmd.Body, ReplyTo: cmd.ReplyTo,
		Attachments: cmd.Attachments, CommandID: d.commandID, SentAt: d.now,
	})
}

// thumbnail refuses a thumbnail of upload cmd.UploadID of the message at
// cmd.MessageSeq, appended on behalf of user: the message must be a live
// message of user's that carries the upload, without a thumbnail of it.
func (s *State) thumbnail(conv, user string, cmd *schemas.AddThumbnailV1) (*conversation.Refusal, error) {
	m, ok, err := s.store.message(conv, cmd.MessageSeq)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok || m.author == "" || m.deleted:
		return &conversation.Refusal{Code: schemas.CodeMessageNotFound, Reason: fmt.Sprintf("no message with seq %d", cmd.MessageSeq)}, nil
	case m.author != user:
		return &conversation.Refusal{Code: schemas.CodeForbidden, Reason: "a thumbnail is added on behalf of the message's sender"}, nil
	case !slices.Contains(m.uploads, cmd.UploadID):
		return &conversation.Refusal{Code: schemas.CodeInvalidCommand, Reason: fmt.Sprintf("message %d carries no upload %s", cmd.MessageSeq, cmd.UploadID)}, nil
	case slices.Contains(m.thumbs, cmd.UploadID):
		return &conversation.Refusal{Code: schemas.CodeNoChange, Reason: "the upload has a thumbnail"}, nil
	}
	return nil, nil
}

func (s *State) decideCreate(attrs schemas.Attributes, cmd *schemas.CreateConversationV2, offset int64, now time.Time) (Decision, error) {
	reject := func(code, reason string) (Decision, error) {
		return s.reject(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, code, reason, now)
	}
	c, err := s.conversation(cmd.ConversationID)
	if err != nil {
		return Decision{}, err
	}
	if c != nil {
		if c.Kind == schemas.KindDirect || (c.CreatedBy == cmd.UserID && c.createCmd == cmd.CommandID) {
			if c.IsMember(cmd.UserID) {
				return s.duplicate(attrs, cmd.CommandID, cmd.UserID, cmd.ConversationID, 0, now)
			}
		}
		return reject(schemas.CodeConversationExists, "the conversation already exists")
	}
	members, r := s.limits.Create(&schemas.CreateConversationV1{
		CommandID: cmd.CommandID, UserID: cmd.UserID, ConversationID: cmd.ConversationID, Kind: cmd.Kind, Title: cmd.Title, Members: cmd.Members,
	})
	if r != nil {
		return reject(r.Code, r.Reason)
	}
	created := &schemas.ConversationCreatedV2{
		ConversationID: cmd.ConversationID,
		Seq:            0,
		Kind:           cmd.Kind,
		Title:          cmd.Title,
		CreatedBy:      cmd.UserID,
		Members:        members,
		CommandID:      cmd.CommandID,
		CreatedAt:      now,
	}
	// A conversation that is not encrypted is created as ever, with a
	// v1 event: consumers that know no v2 read it.
	typ, ev := schemas.TypeConversationCreated, any(&schemas.ConversationCreatedV1{
		ConversationID: created.ConversationID, Seq: 0, Kind: created.Kind, Title: created.Title, CreatedBy: created.CreatedBy,
		Members: created.Members, CommandID: created.CommandID, CreatedAt: created.CreatedAt,
	})
	if cmd.Encrypted {
		created.Encrypted = true
		created.Devices = []schemas.DeviceRef{{UserID: cmd.UserID, DeviceID: cmd.DeviceID}}
		typ, ev = schemas.TypeConversationCreatedV2, created
	}
	if err := s.create(created); err != nil {
		return Decision{}, err
	}
	return s.event(attrs, typ, cmd.ConversationID, 0, ev, offset, now)
}
