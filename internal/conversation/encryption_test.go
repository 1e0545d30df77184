package conversation_test

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/schemas"
)

func TestCommitDerivesMemberChangesFromDevices(t *testing.T) {
	t.Parallel()
	d := func(u, dev string) schemas.DeviceRef { return schemas.DeviceRef{UserID: u, DeviceID: dev} }
	base := func() *conversation.State {
		s := &conversation.State{}
		s.Fold(0, &schemas.ConversationCreatedV2{
			ConversationID: "g", Kind: schemas.KindGroup, Title: "T", CreatedBy: "alice", Encrypted: true,
			Members: []schemas.Member{{UserID: "alice", Role: schemas.RoleOwner}, {UserID: "bob", Role: schemas.RoleMember}, {UserID: "carol", Role: schemas.RoleMember}},
			Devices: []schemas.DeviceRef{d("alice", "a1")},
		})
		s.Fold(1, &schemas.MLSCommittedV1{Epoch: 1, AddedDevices: []schemas.DeviceRef{d("bob", "b1"), d("bob", "b2"), d("carol", "c1")}})
		return s
	}
	l := conversation.Limits{}.WithDefaults()
	for _, c := range []struct {
		name         string
		leaving      string
		user, device string
		epoch        uint64
		add, remove  []schemas.DeviceRef
		added, gone  string
		code         string
	}{
		{name: "a member removes one of their devices", user: "bob", device: "b1", epoch: 1, remove: []schemas.DeviceRef{d("bob", "b2")}},
		{name: "a member cannot remove another's device", user: "bob", device: "b1", epoch: 1, remove: []schemas.DeviceRef{d("carol", "c1")}, code: schemas.CodeForbidden},
		{name: "the owner removes a member's last device: the member goes", user: "alice", device: "a1", epoch: 1, remove: []schemas.DeviceRef{d("carol", "c1")}, gone: "[carol]"},
		{name: "the owner removes one of two devices: the member stays", user: "alice", device: "a1", epoch: 1, remove: []schemas.DeviceRef{d("bob", "b1")}},
		{name: "anyone commits a proposed leave", leaving: "carol", user: "bob", device: "b2", epoch: 1, remove: []schemas.DeviceRef{d("carol", "c1")}, gone: "[carol]"},
		{name: "nobody commits their own removal", user: "carol", device: "c1", epoch: 1, remove: []schemas.DeviceRef{d("carol", "c1")}, code: schemas.CodeInvalidCommand},
		{name: "the owner adds a new user", user: "alice", device: "a1", epoch: 1, add: []schemas.DeviceRef{d("dave", "d1"), d("dave", "d2")}, added: "[{dave member}]"},
		{name: "a member cannot add a new user", user: "bob", device: "b1", epoch: 1, add: []schemas.DeviceRef{d("dave", "d1")}, code: schemas.CodeForbidden},
		{name: "a member adds a new device of their own", user: "bob", device: "b1", epoch: 1, add: []schemas.DeviceRef{d("bob", "b3")}},
		{name: "a device already in the group", user: "alice", device: "a1", epoch: 1, add: []schemas.DeviceRef{d("bob", "b1")}, code: schemas.CodeInvalidCommand},
		{name: "a device not in the group cannot be removed", user: "alice", device: "a1", epoch: 1, remove: []schemas.DeviceRef{d("bob", "b9")}, code: schemas.CodeInvalidCommand},
		{name: "an older epoch", user: "alice", device: "a1", epoch: 0, code: schemas.CodeStaleEpoch},
		{name: "a device of another user", user: "alice", device: "b1", epoch: 1, code: schemas.CodeForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			if c.leaving != "" {
				s.Fold(2, &schemas.MLSProposedV1{UserID: c.leaving, Epoch: 1, Leave: true})
			}
			added, gone, r := l.Commit(s, c.user, c.device, c.epoch, c.add, c.remove)
			code := ""
			if r != nil {
				code = r.Code
			}
			if code != c.code {
				t.Fatalf("refusal %v, want %q", r, c.code)
			}
			if r != nil {
				return
			}
			if got := fmt.Sprint(added); (c.added == "" && len(added) > 0) || (c.added != "" && got != c.added) {
				t.Errorf("added %s, want %s", got, c.added)
			}
			if got := fmt.Sprint(gone); (c.gone == "" && len(gone) > 0) || (c.gone != "" && got != c.gone) {
				t.Errorf("removed %s, want %s", got, c.gone)
			}
		})
	}
}
