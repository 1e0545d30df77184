package push_test

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/schemas"
)

// What the store says of a conversation and of its members, past and
// present, after a replay: the members, the last seq and the messages;
// each user's read markers (a sender has read up to their own message),
// unread counts, and a badge that counts only the conversations the user
// is still a member of.
func TestStoreStateAfterAReplay(t *testing.T) {
	t.Parallel()
	s, err := push.OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const g = "g_state"
	msg := func(seq uint64, from string) push.Item {
		return push.Item{Type: schemas.TypeMessageSent, Time: at, Value: &schemas.MessageSentV1{ConversationID: g, Seq: seq, SenderID: from, Body: "hi", CommandID: "c", SentAt: at}}
	}
	items := []push.Item{
		{Type: schemas.TypeConversationCreated, Time: at, Value: &schemas.ConversationCreatedV1{ConversationID: g, Kind: schemas.KindGroup, CreatedBy: "alice",
			Members: []schemas.Member{{UserID: "alice"}, {UserID: "bob"}, {UserID: "carol"}}, CommandID: "c", CreatedAt: at}},
		msg(1, "alice"), msg(2, "bob"), msg(3, "alice"),
		{Type: schemas.TypeReceipt, Time: at, Value: &schemas.ReceiptV1{ConversationID: g, UserID: "carol", Kind: schemas.ReceiptRead, Seq: 1, At: at}},
		{Type: schemas.TypeMemberRemoved, Time: at, Value: &schemas.MemberRemovedV1{ConversationID: g, Seq: 4, UserID: "alice", MemberID: "carol", CommandID: "c", RemovedAt: at}},
		msg(5, "alice"),
	}
	// Applied twice, as a replay after a crash would: nothing changes.
	for range 2 {
		if err := push.RebuildProjection(s).Apply(t.Context(), items); err != nil {
			t.Fatal(err)
		}
	}
	c, found, err := s.Conversation(g)
	if err != nil || !found {
		t.Fatalf("Conversation: %v, found %v", err, found)
	}
	if !slices.Equal(c.Members, []string{"alice", "bob"}) || c.LastSeq != 5 || !slices.Equal(c.Messages, []uint64{1, 2, 3, 5}) || c.Encrypted {
		t.Errorf("conversation %+v; want alice and bob, last seq 5, messages 1, 2, 3, 5", c)
	}
	if _, found, err := s.Conversation("g_unknown"); err != nil || found {
		t.Errorf("an unknown conversation: found %v, %v", found, err)
	}
	for user, want := range map[string]push.UserState{
		"alice": {Conversations: []push.UserConversation{{ConversationID: g, Member: true, ReadSeq: 5}}},
		"bob":   {Conversations: []push.UserConversation{{ConversationID: g, Member: true, ReadSeq: 2, Unread: 2}}, Badge: 2},
		"carol": {Conversations: []push.UserConversation{{ConversationID: g, ReadSeq: 1, Unread: 3}}},
		"dave":  {Conversations: []push.UserConversation{}},
	} {
		got, err := s.User(user)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Conversations, want.Conversations) || got.Badge != want.Badge {
			t.Errorf("%s: %+v; want %+v", user, got, want)
		}
	}
}
