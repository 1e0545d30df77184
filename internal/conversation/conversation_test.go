package conversation_test

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFold(t *testing.T) {
	t.Parallel()
	var s conversation.State
	events := []any{
		&schemas.ConversationCreatedV1{ConversationID: "g", Kind: schemas.KindGroup, Title: "T", CreatedBy: "olga", CreatedAt: t0,
			Members: []schemas.Member{{UserID: "olga", Role: schemas.RoleOwner}, {UserID: "bob", Role: schemas.RoleMember}}},
		&schemas.MessageSentV2{Seq: 1, SenderID: "bob", Body: "hi"},
		&schemas.MembersAddedV1{Seq: 2, Members: []schemas.Member{{UserID: "al", Role: schemas.RoleMember}}},
		&schemas.RolesChangedV1{Seq: 3, Changes: []schemas.Member{{UserID: "bob", Role: schemas.RoleAdmin}, {UserID: "gone", Role: schemas.RoleAdmin}}},
		&schemas.MemberRemovedV1{Seq: 4, MemberID: "al"},
		&schemas.RenamedV1{Seq: 5, Title: "U"},
		&schemas.ArchivedV1{Seq: 6, Archived: true},
		nil, // a type of a later version: it still takes its seq
	}
	for i, v := range events {
		s.Fold(uint64(i), v)
	}
	want := []schemas.Member{{UserID: "bob", Role: schemas.RoleAdmin}, {UserID: "olga", Role: schemas.RoleOwner}}
	if !slices.Equal(s.Members, want) || s.Title != "U" || !s.Archived || s.LastSeq != 7 || s.ID != "g" || s.CreatedBy != "olga" {
		t.Fatalf("folded %+v", s)
	}
	if r, ok := s.Role("bob"); !ok || r != schemas.RoleAdmin {
		t.Errorf("Role(bob) = %q, %v", r, ok)
	}
	if s.IsMember("al") || s.IsMember("gone") {
		t.Errorf("members %v", s.Members)
	}

	// A copy taken before a fold does not see it.
	before := s
	s.Fold(8, &schemas.MemberLeftV1{Seq: 8, UserID: "bob"})
	if !before.IsMember("bob") || s.IsMember("bob") {
		t.Errorf("before %v, after %v", before.Members, s.Members)
	}

	var d conversation.State
	d.Fold(0, &schemas.ConversationCreatedV1{ConversationID: "d", Kind: schemas.KindDirect,
		Members: []schemas.Member{{UserID: "b", Role: schemas.RoleMember}, {UserID: "a", Role: schemas.RoleMember}}})
	d.Fold(1, &schemas.BlockedV1{Seq: 1, UserID: "b", Blocked: true})
	d.Fold(2, &schemas.BlockedV1{Seq: 2, UserID: "a", Blocked: true})
	if !slices.Equal(d.BlockedBy, []string{"a", "b"}) {
		t.Errorf("blocked by %v", d.BlockedBy)
	}
	d.Fold(3, &schemas.BlockedV1{Seq: 3, UserID: "a"})
	d.Fold(4, &schemas.BlockedV1{Seq: 4, UserID: "b"})
	if d.BlockedBy != nil {
		t.Errorf("blocked by %v after both unblocked", d.BlockedBy)
	}
}

// TestRulesOnAView covers what a caller whose copy of the conversation
// lags the log relies on: a message it cannot see (nil) and reactions it
// does not know are never grounds for a refusal.
func TestRulesOnAView(t *testing.T) {
	t.Parallel()
	l := conversation.Limits{EditWindow: time.Minute}.WithDefaults()
	s := conversation.State{Kind: schemas.KindGroup, LastSeq: 9, Members: []schemas.Member{
		{UserID: "adam", Role: schemas.RoleAdmin}, {UserID: "mia", Role: schemas.RoleMember}, {UserID: "olga", Role: schemas.RoleOwner},
	}}
	byMia := &conversation.Message{Author: "mia", SentAt: t0}
	code := func(r *conversation.Refusal) string {
		if r == nil {
			return ""
		}
		return r.Code
	}
	cases := []struct {
		name string
		got  *conversation.Refusal
		want string
	}{
		{"an unknown message may be edited", l.Edit(&s, "mia", 3, nil, "x", t0), ""},
		{"no message at a seq", l.Edit(&s, "mia", 3, &conversation.Message{}, "x", t0), schemas.CodeMessageNotFound},
		{"another's message", l.Edit(&s, "olga", 3, byMia, "x", t0), schemas.CodeForbidden},
		{"after the window", l.Edit(&s, "mia", 3, byMia, "x", t0.Add(2*time.Minute)), schemas.CodeEditWindowClosed},
		{"an empty edit", l.Edit(&s, "mia", 3, byMia, "", t0), schemas.CodeInvalidCommand},
		{"a deleted message", s.Delete("mia", 3, &conversation.Message{Author: "mia", Deleted: true}), schemas.CodeMessageNotFound},
		{"an admin deletes a member's", s.Delete("adam", 3, byMia), ""},
		{"a member deletes an admin's", s.Delete("mia", 3, &conversation.Message{Author: "adam"}), schemas.CodeForbidden},
		{"unknown reactions never refuse an unreact", l.React(&s, "mia", 3, byMia, "👍", false), ""},
		{"known reactions do", l.React(&s, "mia", 3, &conversation.Message{Author: "mia", ReactionsKnown: true}, "👍", false), schemas.CodeNoChange},
		{"a reply to nothing", l.Send(&s, "mia", "re", 3, &conversation.Message{}), schemas.CodeMessageNotFound},
		{"a member cannot rename", l.Rename(&s, "mia", "New"), schemas.CodeForbidden},
		{"an owner cannot leave a group with others", s.Leave("olga"), schemas.CodeForbidden},
		{"nobody removes themselves", s.RemoveMember("adam", "adam"), schemas.CodeInvalidCommand},
		{"an admin cannot remove the owner", s.RemoveMember("adam", "olga"), schemas.CodeForbidden},
		{"a group is not blocked", s.Block(), schemas.CodeInvalidCommand},
	}
	for _, c := range cases {
		if got := code(c.got); got != c.want {
			t.Errorf("%s: got %q (%v), want %q", c.name, got, c.got, c.want)
		}
	}
	s.Archived = true
	if r := l.Send(&s, "mia", "hi", 0, nil); code(r) != schemas.CodeArchived {
		t.Errorf("send to an archived group: %v", r)
	}
	if r := s.Delete("mia", 3, nil); code(r) != schemas.CodeArchived {
		t.Errorf("delete in an archived group: %v", r)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	l := conversation.Limits{MaxMembers: 3}.WithDefaults()
	create := func(kind schemas.Kind, title string, members ...string) *schemas.CreateConversationV1 {
		c := &schemas.CreateConversationV1{CommandID: "c", UserID: "ann", Kind: kind, Title: title, Members: members}
		c.ConversationID = conversation.IDFor(c)
		return c
	}
	code := func(_ []schemas.Member, r *conversation.Refusal) string {
		if r == nil {
			return ""
		}
		return r.Code
	}
	cases := []struct {
		name string
		cmd  *schemas.CreateConversationV1
		want string
	}{
		{"a direct conversation with one other", create(schemas.KindDirect, "", "bob"), ""},
		{"the other named twice is one other", create(schemas.KindDirect, "", "bob", "bob", "ann"), ""},
		{"a direct conversation with oneself", create(schemas.KindDirect, "", "ann"), schemas.CodeInvalidCommand},
		{"a direct conversation with two others", create(schemas.KindDirect, "", "bob", "cy"), schemas.CodeInvalidCommand},
		{"a titled direct conversation", create(schemas.KindDirect, "T", "bob"), schemas.CodeInvalidCommand},
		{"a group", create(schemas.KindGroup, "T", "bob", "cy"), ""},
		{"a blank group title", create(schemas.KindGroup, "  ", "bob"), schemas.CodeInvalidCommand},
		{"a group over the size limit", create(schemas.KindGroup, "T", "bob", "cy", "dee"), schemas.CodeLimitExceeded},
		{"an unknown kind", create("channel", "T"), schemas.CodeInvalidCommand},
	}
	for _, c := range cases {
		if got := code(l.Create(c.cmd)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	forged := create(schemas.KindGroup, "T", "bob")
	forged.ConversationID = "g_someone_elses"
	if got := code(l.Create(forged)); got != schemas.CodeInvalidCommand {
		t.Errorf("a group id that does not derive from creator and command id: %q", got)
	}
}
