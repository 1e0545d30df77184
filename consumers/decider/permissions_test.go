package decider

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/conversation/conversationtest"
	"github.com/parley-chat/parley/schemas"
)

// The permission matrix of a group (README "Roles and permissions"), one
// cell per action and actor: owner olga, admins adam and ada, members mia
// and max, and nick, who is not a member. Every cell runs on a fresh
// group in which olga, adam, mia and max have each sent one message
// (seqs 1 to 4).
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	const (
		owner     = conversationtest.Owner
		admin     = conversationtest.Admin
		member    = conversationtest.Member
		nonMember = conversationtest.NonMember
	)
	ownMessage := map[string]uint64{owner: 1, admin: 2, member: 3, nonMember: 4}
	const maxMessage = 4 // by max, a plain member
	type action struct {
		name string
		cmd  func(actor, conv string) cmd
	}
	act := func(typ string, v func(actor, conv string) schemas.Command) func(actor, conv string) cmd {
		return func(actor, conv string) cmd { return command(typ, conv, v(actor, conv)) }
	}
	actions := []action{
		{"send", func(a, c string) cmd { return send(a, c, "x", "hi") }},
		{"reply", act(schemas.TypeSendMessageV2, func(a, c string) schemas.Command {
			return &schemas.SendMessageV2{CommandID: "x", UserID: a, ConversationID: c, Body: "re", ReplyTo: maxMessage}
		})},
		{"add member", act(schemas.TypeAddMembers, func(a, c string) schemas.Command {
			return &schemas.AddMembersV1{CommandID: "x", UserID: a, ConversationID: c, MemberIDs: []string{"newbie"}}
		})},
		{"remove member", removeCmd("max")},
		{"remove admin", removeCmd("ada")},
		{"remove owner", removeCmd(owner)},
		{"promote member to admin", roleCmd("max", schemas.RoleAdmin)},
		{"demote admin to member", roleCmd("ada", schemas.RoleMember)},
		{"transfer ownership", roleCmd("max", schemas.RoleOwner)},
		{"rename", act(schemas.TypeRename, func(a, c string) schemas.Command {
			return &schemas.RenameV1{CommandID: "x", UserID: a, ConversationID: c, Title: "New title"}
		})},
		{"archive", act(schemas.TypeArchive, func(a, c string) schemas.Command {
			return &schemas.ArchiveV1{CommandID: "x", UserID: a, ConversationID: c, Archived: true}
		})},
		{"edit own message", func(a, c string) cmd { return editCmd(a, c, ownMessage[a]) }},
		{"edit another's message", func(a, c string) cmd { return editCmd(a, c, maxMessage) }},
		{"delete own message", func(a, c string) cmd { return deleteCmd(a, c, ownMessage[a]) }},
		{"delete another's message", func(a, c string) cmd { return deleteCmd(a, c, maxMessage) }},
		{"react", func(a, c string) cmd { return reactCmd(schemas.TypeAddReaction, a, c, maxMessage, "👍") }},
		{"leave", act(schemas.TypeLeaveConversation, func(a, c string) schemas.Command {
			return &schemas.LeaveConversationV1{CommandID: "x", UserID: a, ConversationID: c}
		})},
	}
	want := map[string][4]string{}
	for _, row := range conversationtest.Matrix() {
		want[row.Action] = row.Outcomes
	}
	const ok = conversationtest.Accepted
	if len(want) != len(actions) {
		t.Fatalf("%d actions, %d rows", len(actions), len(want))
	}
	for _, a := range actions {
		for i, actor := range conversationtest.Actors {
			t.Run(fmt.Sprintf("%s by %s", a.name, actor), func(t *testing.T) {
				t.Parallel()
				d, conv := matrixGroup(t)
				got := d.outcome(a.cmd(actor, conv))
				code := want[a.name][i]
				switch {
				case code == ok && (got.event == "" || got.reply != ""):
					t.Errorf("got %+v, want an event", got)
				case code != ok && got != rejected(code):
					t.Errorf("got %+v, want rejected with %s", got, code)
				}
			})
		}
	}
}

// matrixGroup returns a decider with the group of TestPermissionMatrix.
func matrixGroup(t *testing.T) (*decider, string) {
	t.Helper()
	conv := schemas.GroupConversationID("olga", "matrix")
	d := newDecider(t, Limits{})
	d.st.create(&schemas.Creation{ConversationID: conv, Kind: schemas.KindGroup, Title: "Matrix", CreatedBy: "olga",
		Members: []schemas.Member{
			{UserID: "olga", Role: schemas.RoleOwner}, {UserID: "adam", Role: schemas.RoleAdmin}, {UserID: "ada", Role: schemas.RoleAdmin},
			{UserID: "mia", Role: schemas.RoleMember}, {UserID: "max", Role: schemas.RoleMember},
		}, CommandID: "matrix", CreatedAt: testNow})
	for i, u := range []string{"olga", "adam", "mia", "max"} {
		if got := d.outcome(send(u, conv, fmt.Sprint("m", i), "message")); got != sent(uint64(i+1)) {
			t.Fatalf("setting up: %+v", got)
		}
	}
	return d, conv
}

func removeCmd(target string) func(actor, conv string) cmd {
	return func(a, c string) cmd {
		return command(schemas.TypeRemoveMember, c, &schemas.RemoveMemberV1{CommandID: "x", UserID: a, ConversationID: c, MemberID: target})
	}
}

func roleCmd(target string, role schemas.Role) func(actor, conv string) cmd {
	return func(a, c string) cmd {
		return command(schemas.TypeSetRole, c, &schemas.SetRoleV1{CommandID: "role-" + target, UserID: a, ConversationID: c, MemberID: target, Role: role})
	}
}

func editCmd(actor, conv string, seq uint64) cmd {
	return command(schemas.TypeEditMessage, conv, &schemas.EditMessageV1{CommandID: "x", UserID: actor, ConversationID: conv, MessageSeq: seq, Body: "edited"})
}

func deleteCmd(actor, conv string, seq uint64) cmd {
	return command(schemas.TypeDeleteMessage, conv, &schemas.DeleteMessageV1{CommandID: "x", UserID: actor, ConversationID: conv, MessageSeq: seq})
}

func reactCmd(typ, actor, conv string, seq uint64, emoji string) cmd {
	return command(typ, conv, &schemas.ReactV1{CommandID: "react-" + fmt.Sprint(seq), UserID: actor, ConversationID: conv, MessageSeq: seq, Emoji: emoji})
}
