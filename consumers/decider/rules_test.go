package decider

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

// TestConversationRules covers what the permission matrix does not:
// limits, windows, blocks, archives, no-op commands and dedupe of the
// newer commands, each step's outcome in order.
func TestConversationRules(t *testing.T) {
	t.Parallel()
	grp := schemas.GroupConversationID("olga", "g")
	ab := schemas.DirectConversationID("alice", "bob")
	group := createGroup("olga", "g", "Group", "mia")
	direct := createDirect("alice", "bob", "d")
	add := func(actor string, ids ...string) cmd {
		return command(schemas.TypeAddMembers, grp, &schemas.AddMembersV1{CommandID: "add-" + actor + ids[0], UserID: actor, ConversationID: grp, MemberIDs: ids})
	}
	block := func(actor, id string, on bool) cmd {
		return command(schemas.TypeBlock, ab, &schemas.BlockV1{CommandID: id, UserID: actor, ConversationID: ab, Blocked: on})
	}
	archive := func(id string, on bool) cmd {
		return command(schemas.TypeArchive, grp, &schemas.ArchiveV1{CommandID: id, UserID: "olga", ConversationID: grp, Archived: on})
	}
	reply := func(actor, conv, id string, to uint64) cmd {
		return command(schemas.TypeSendMessageV2, conv, &schemas.SendMessageV2{CommandID: id, UserID: actor, ConversationID: conv, Body: "re", ReplyTo: to})
	}
	type step struct {
		c    cmd
		want outcome
		at   time.Duration // after testNow
	}
	ev := func(typ string, seq uint64) outcome { return outcome{event: typ, seq: seq} }
	tests := []struct {
		name   string
		limits Limits
		steps  []step
	}{
		{name: "adding members stops at the group size limit; members already in are skipped", limits: Limits{Limits: conversation.Limits{MaxMembers: 4}}, steps: []step{
			{c: group, want: created(0)},
			{c: add("olga", "mia"), want: rejected(schemas.CodeNoChange)},
			{c: add("olga", "a1", "a2", "a3"), want: rejected(schemas.CodeLimitExceeded)},
			{c: add("olga", "mia", "a1", "a2"), want: ev(schemas.TypeMembersAdded, 1)},
			{c: add("olga", "a3"), want: rejected(schemas.CodeLimitExceeded)},
		}},
		{name: "a retried add is a duplicate of its event", steps: []step{
			{c: group, want: created(0)},
			{c: add("olga", "zoe"), want: ev(schemas.TypeMembersAdded, 1)},
			{c: add("olga", "zoe"), want: dup(1)},
		}},
		{name: "an added member can send; a removed one cannot, and their retried command is still a duplicate", steps: []step{
			{c: group, want: created(0)},
			{c: add("olga", "zoe"), want: ev(schemas.TypeMembersAdded, 1)},
			{c: send("zoe", grp, "z1", "hi"), want: sent(2)},
			{c: removeCmd("zoe")("olga", grp), want: ev(schemas.TypeMemberRemoved, 3)},
			{c: send("zoe", grp, "z2", "hi"), want: rejected(schemas.CodeNotMember)},
			{c: send("zoe", grp, "z1", "hi"), want: dup(2)},
		}},
		{name: "an edit is refused after the edit window", limits: Limits{Limits: conversation.Limits{EditWindow: time.Minute}}, steps: []step{
			{c: group, want: created(0)},
			{c: send("mia", grp, "m1", "hi"), want: sent(1)},
			{c: editCmd("mia", grp, 1), want: ev(schemas.TypeMessageEdited, 2), at: time.Minute},
			{c: with(editCmd("mia", grp, 1), func(c *schemas.EditMessageV1) { c.CommandID = "late" }), want: rejected(schemas.CodeEditWindowClosed), at: time.Minute + time.Millisecond},
		}},
		{name: "a deleted message cannot be edited, reacted to, replied to or deleted again", steps: []step{
			{c: group, want: created(0)},
			{c: send("mia", grp, "m1", "hi"), want: sent(1)},
			{c: deleteCmd("olga", grp, 1), want: ev(schemas.TypeMessageDeleted, 2)},
			{c: with(editCmd("mia", grp, 1), func(c *schemas.EditMessageV1) { c.CommandID = "e2" }), want: rejected(schemas.CodeMessageNotFound)},
			{c: reactCmd(schemas.TypeAddReaction, "mia", grp, 1, "👍"), want: rejected(schemas.CodeMessageNotFound)},
			{c: reply("mia", grp, "r1", 1), want: rejected(schemas.CodeMessageNotFound)},
			{c: with(deleteCmd("mia", grp, 1), func(c *schemas.DeleteMessageV1) { c.CommandID = "d2" }), want: rejected(schemas.CodeMessageNotFound)},
		}},
		{name: "commands on a seq that is not a message are refused", steps: []step{
			{c: group, want: created(0)},
			{c: add("olga", "zoe"), want: ev(schemas.TypeMembersAdded, 1)},
			{c: editCmd("olga", grp, 1), want: rejected(schemas.CodeMessageNotFound)},
			{c: reply("olga", grp, "r", 7), want: rejected(schemas.CodeMessageNotFound)},
		}},
		{name: "one reaction per user per emoji, and a limit of distinct emoji per message", limits: Limits{Limits: conversation.Limits{MaxReactions: 2}}, steps: []step{
			{c: group, want: created(0)},
			{c: send("mia", grp, "m1", "hi"), want: sent(1)},
			{c: reactCmd(schemas.TypeAddReaction, "mia", grp, 1, "👍"), want: ev(schemas.TypeReactionAdded, 2)},
			{c: with(reactCmd(schemas.TypeAddReaction, "mia", grp, 1, "👍"), func(c *schemas.ReactV1) { c.CommandID = "again" }), want: rejected(schemas.CodeNoChange)},
			{c: reactCmd(schemas.TypeAddReaction, "olga", grp, 1, "👍"), want: ev(schemas.TypeReactionAdded, 3)},
			{c: with(reactCmd(schemas.TypeAddReaction, "olga", grp, 1, "🎉"), func(c *schemas.ReactV1) { c.CommandID = "tada" }), want: ev(schemas.TypeReactionAdded, 4)},
			{c: with(reactCmd(schemas.TypeAddReaction, "olga", grp, 1, "❤️"), func(c *schemas.ReactV1) { c.CommandID = "heart" }), want: rejected(schemas.CodeLimitExceeded)},
			{c: with(reactCmd(schemas.TypeRemoveReaction, "mia", grp, 1, "🎉"), func(c *schemas.ReactV1) { c.CommandID = "rm" }), want: rejected(schemas.CodeNoChange)},
			{c: with(reactCmd(schemas.TypeRemoveReaction, "olga", grp, 1, "🎉"), func(c *schemas.ReactV1) { c.CommandID = "rm" }), want: ev(schemas.TypeReactionRemoved, 5)},
			{c: with(reactCmd(schemas.TypeAddReaction, "olga", grp, 1, "❤️"), func(c *schemas.ReactV1) { c.CommandID = "heart2" }), want: ev(schemas.TypeReactionAdded, 6)},
		}},
		{name: "a block stops messages both ways until it is lifted; deleting one's own message still works", steps: []step{
			{c: direct, want: created(0)},
			{c: send("bob", ab, "b1", "hi"), want: sent(1)},
			{c: block("alice", "blk", true), want: ev(schemas.TypeBlocked, 2)},
			{c: block("alice", "blk2", true), want: rejected(schemas.CodeNoChange)},
			{c: send("bob", ab, "b2", "hello?"), want: rejected(schemas.CodeBlocked)},
			{c: send("alice", ab, "a1", "bye"), want: rejected(schemas.CodeBlocked)},
			{c: reactCmd(schemas.TypeAddReaction, "bob", ab, 1, "👍"), want: rejected(schemas.CodeBlocked)},
			{c: deleteCmd("bob", ab, 1), want: ev(schemas.TypeMessageDeleted, 3)},
			{c: block("bob", "unblk", false), want: rejected(schemas.CodeNoChange)},
			{c: block("alice", "unblk", false), want: ev(schemas.TypeBlocked, 4)},
			{c: send("bob", ab, "b3", "friends again"), want: sent(5)},
		}},
		{name: "the same pair always gets the same direct conversation, which has no groups' commands", steps: []step{
			{c: direct, want: created(0)},
			{c: createDirect("bob", "alice", "other-id"), want: dup(0)},
			{c: command(schemas.TypeAddMembers, ab, &schemas.AddMembersV1{CommandID: "x", UserID: "alice", ConversationID: ab, MemberIDs: []string{"carol"}}), want: rejected(schemas.CodeInvalidCommand)},
			{c: command(schemas.TypeRename, ab, &schemas.RenameV1{CommandID: "x", UserID: "alice", ConversationID: ab, Title: "us"}), want: rejected(schemas.CodeInvalidCommand)},
			{c: command(schemas.TypeLeaveConversation, ab, &schemas.LeaveConversationV1{CommandID: "x", UserID: "alice", ConversationID: ab}), want: rejected(schemas.CodeInvalidCommand)},
			{c: deleteCmd("alice", ab, 0), want: deadLtr},
		}},
		{name: "an archived group is read-only until its owner unarchives it; members can still leave", steps: []step{
			{c: createGroup("olga", "g", "Group", "mia", "max"), want: created(0)},
			{c: send("mia", grp, "m1", "hi"), want: sent(1)},
			{c: archive("a1", true), want: ev(schemas.TypeArchived, 2)},
			{c: archive("a2", true), want: rejected(schemas.CodeNoChange)},
			{c: send("mia", grp, "m2", "hi"), want: rejected(schemas.CodeArchived)},
			{c: editCmd("mia", grp, 1), want: rejected(schemas.CodeArchived)},
			{c: deleteCmd("mia", grp, 1), want: rejected(schemas.CodeArchived)},
			{c: add("olga", "zoe"), want: rejected(schemas.CodeArchived)},
			{c: command(schemas.TypeLeaveConversation, grp, &schemas.LeaveConversationV1{CommandID: "bye", UserID: "max", ConversationID: grp}), want: ev(schemas.TypeMemberLeft, 3)},
			{c: archive("a3", false), want: ev(schemas.TypeArchived, 4)},
			{c: send("mia", grp, "m2", "hi"), want: sent(5)},
		}},
		{name: "a transfer makes the previous owner an admin, who can then leave", steps: []step{
			{c: group, want: created(0)},
			{c: command(schemas.TypeLeaveConversation, grp, &schemas.LeaveConversationV1{CommandID: "bye", UserID: "olga", ConversationID: grp}), want: rejected(schemas.CodeForbidden)},
			{c: roleCmd("mia", schemas.RoleOwner)("olga", grp), want: ev(schemas.TypeRolesChanged, 1)},
			{c: roleCmd("mia", schemas.RoleOwner)("olga", grp), want: dup(1)},
			{c: with(roleCmd("mia", schemas.RoleMember)("olga", grp), func(c *schemas.SetRoleV1) { c.CommandID = "again" }), want: rejected(schemas.CodeForbidden)},
			{c: with(command(schemas.TypeLeaveConversation, grp, &schemas.LeaveConversationV1{CommandID: "bye", UserID: "olga", ConversationID: grp}), func(c *schemas.LeaveConversationV1) { c.CommandID = "bye2" }), want: ev(schemas.TypeMemberLeft, 2)},
		}},
		{name: "a rename needs a new, non-blank title within the limit", limits: Limits{Limits: conversation.Limits{MaxTitleRunes: 5}}, steps: []step{
			{c: group, want: created(0)},
			{c: command(schemas.TypeRename, grp, &schemas.RenameV1{CommandID: "r1", UserID: "olga", ConversationID: grp, Title: "Group"}), want: rejected(schemas.CodeNoChange)},
			{c: command(schemas.TypeRename, grp, &schemas.RenameV1{CommandID: "r2", UserID: "olga", ConversationID: grp, Title: "   "}), want: rejected(schemas.CodeInvalidCommand)},
			{c: command(schemas.TypeRename, grp, &schemas.RenameV1{CommandID: "r3", UserID: "olga", ConversationID: grp, Title: "Longer"}), want: rejected(schemas.CodeInvalidCommand)},
			{c: command(schemas.TypeRename, grp, &schemas.RenameV1{CommandID: "r4", UserID: "olga", ConversationID: grp, Title: "Crew"}), want: ev(schemas.TypeRenamed, 1)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDecider(t, tt.limits)
			for i, s := range tt.steps {
				dec, err := d.st.Decide(s.c.attrs, s.c.value, int64(i), testNow.Add(s.at))
				if got := outcomeOf(t, dec, err); got != s.want {
					t.Fatalf("step %d: got %+v, want %+v (err %v)", i, got, s.want, err)
				}
				if dec.Event != nil && s.at == 0 { // checkOutput wants testNow
					checkOutput(t, s.c, dec.Event)
				}
			}
		})
	}
}

func TestTransferEvent(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	grp := schemas.GroupConversationID("olga", "g")
	d.mustEvent(createGroup("olga", "g", "Group", "mia"))
	out := d.mustEvent(roleCmd("mia", schemas.RoleOwner)("olga", grp))
	var e schemas.RolesChangedV1
	if err := json.Unmarshal(out.Value, &e); err != nil {
		t.Fatal(err)
	}
	want := []schemas.Member{{UserID: "mia", Role: schemas.RoleOwner}, {UserID: "olga", Role: schemas.RoleAdmin}}
	if !slices.Equal(e.Changes, want) || e.UserID != "olga" {
		t.Errorf("transfer = %+v, want changes %v by olga", e, want)
	}
}
