package history_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

func event(t *testing.T, typ string, seq uint64, at time.Time, v any) history.Event {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return history.Event{ConversationID: "g_e", Seq: seq, ID: typ, Type: typ, Time: at, Data: b}
}

// TestSummaryOfAnEncryptedConversation: the summary knows the
// conversation is encrypted, follows its members through MLS commits,
// and counts its ciphertext messages without previewing them.
func TestSummaryOfAnEncryptedConversation(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	alice := schemas.DeviceRef{UserID: "alice", DeviceID: "phone"}
	bob := schemas.DeviceRef{UserID: "bob", DeviceID: "laptop"}
	events := []history.Event{
		event(t, schemas.TypeConversationCreatedV2, 0, at, schemas.ConversationCreatedV2{
			ConversationID: "g_e", Kind: schemas.KindGroup, Title: "E", CreatedBy: "alice",
			Members: []schemas.Member{{UserID: "alice", Role: schemas.RoleOwner}}, Encrypted: true,
			Devices: []schemas.DeviceRef{alice}, CommandID: "c0", CreatedAt: at,
		}),
		event(t, schemas.TypeMLSCommitted, 1, at, schemas.MLSCommittedV1{
			ConversationID: "g_e", Seq: 1, UserID: "alice", DeviceID: "phone", Epoch: 1, Commit: []byte{1}, Welcome: []byte{2},
			AddedDevices: []schemas.DeviceRef{bob}, MembersAdded: []schemas.Member{{UserID: "bob", Role: schemas.RoleMember}},
			CommandID: "c1", CommittedAt: at,
		}),
		event(t, schemas.TypeMLSMessageSent, 2, at.Add(time.Second), schemas.MLSMessageSentV1{
			ConversationID: "g_e", Seq: 2, SenderID: "bob", DeviceID: "laptop", Epoch: 1, Ciphertext: []byte("opaque"),
			CommandID: "m1", SentAt: at.Add(time.Second),
		}),
		event(t, schemas.TypeMLSCommitted, 3, at.Add(2*time.Second), schemas.MLSCommittedV1{
			ConversationID: "g_e", Seq: 3, UserID: "alice", DeviceID: "phone", Epoch: 2, Commit: []byte{3},
			RemovedDevices: []schemas.DeviceRef{bob}, MembersRemoved: []string{"bob"}, CommandID: "c2", CommittedAt: at,
		}),
	}
	var c history.Conversation
	for _, ev := range events {
		if _, err := history.ApplyToSummary(&c, ev); err != nil {
			t.Fatalf("seq %d: %v", ev.Seq, err)
		}
		if ev.Seq == 2 && (len(c.Members) != 2 || !c.IsMember("bob")) {
			t.Errorf("after the commit adding bob: members %v", c.Members)
		}
	}
	if !c.Encrypted || c.Epoch != 2 || len(c.Devices) != 1 || c.Devices[0] != alice {
		t.Errorf("encryption state: encrypted %v epoch %d devices %v", c.Encrypted, c.Epoch, c.Devices)
	}
	if c.IsMember("bob") || c.Messages != 1 {
		t.Errorf("members %v, messages %d", c.Members, c.Messages)
	}
	if p := c.LastMessage; p == nil || p.Seq != 2 || p.SenderID != "bob" || p.Body != "" {
		t.Errorf("preview %+v, want bob's message without a body", p)
	}
}
