// The state of an end-to-end encrypted conversation in its summary: the
// encrypted flag, the MLS epoch, the group's devices and the members
// leaving, as the decider folds them, kept by every adapter.

package historytest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// diffEncryption describes how got's encryption state differs from
// want's, or returns "".
func diffEncryption(got, want history.Conversation) string {
	var d []string
	if got.Encrypted != want.Encrypted {
		d = append(d, fmt.Sprintf("encrypted %v, want %v", got.Encrypted, want.Encrypted))
	}
	if got.Epoch != want.Epoch {
		d = append(d, fmt.Sprintf("epoch %d, want %d", got.Epoch, want.Epoch))
	}
	if !slices.Equal(got.Devices, want.Devices) {
		d = append(d, fmt.Sprintf("devices %v, want %v", got.Devices, want.Devices))
	}
	if !slices.Equal(got.Leaving, want.Leaving) {
		d = append(d, fmt.Sprintf("leaving %v, want %v", got.Leaving, want.Leaving))
	}
	return strings.Join(d, "; ")
}

// EncryptedGroup is the life of an encrypted group ("enc"): created with
// Alice's phone (epoch 0); a commit adds Bob's laptop and Alice's tablet
// (epoch 1); Bob sends, then proposes to leave; a commit removes him
// (epoch 2), which ends his leaving.
func EncryptedGroup() []history.Event {
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	const conv = "enc"
	phone := schemas.DeviceRef{UserID: "alice", DeviceID: "phone"}
	tablet := schemas.DeviceRef{UserID: "alice", DeviceID: "tablet"}
	laptop := schemas.DeviceRef{UserID: "bob", DeviceID: "laptop"}
	return []history.Event{
		event(conv, 0, schemas.TypeConversationCreatedV2, at, schemas.ConversationCreatedV2{
			ConversationID: conv, Kind: schemas.KindGroup, Title: "E", CreatedBy: "alice",
			Members: []schemas.Member{{UserID: "alice", Role: schemas.RoleOwner}}, Encrypted: true,
			Devices: []schemas.DeviceRef{phone}, CommandID: "c0", CreatedAt: at,
		}),
		event(conv, 1, schemas.TypeMLSCommitted, at.Add(time.Second), schemas.MLSCommittedV1{
			ConversationID: conv, Seq: 1, UserID: "alice", DeviceID: "phone", Epoch: 1, Commit: []byte{1}, Welcome: []byte{2},
			AddedDevices: []schemas.DeviceRef{tablet, laptop}, MembersAdded: []schemas.Member{{UserID: "bob", Role: schemas.RoleMember}},
			CommandID: "c1", CommittedAt: at.Add(time.Second),
		}),
		event(conv, 2, schemas.TypeMLSMessageSent, at.Add(2*time.Second), schemas.MLSMessageSentV1{
			ConversationID: conv, Seq: 2, SenderID: "bob", DeviceID: "laptop", Epoch: 1, Ciphertext: []byte("opaque"),
			CommandID: "m1", SentAt: at.Add(2 * time.Second),
		}),
		event(conv, 3, schemas.TypeMLSProposed, at.Add(3*time.Second), schemas.MLSProposedV1{
			ConversationID: conv, Seq: 3, UserID: "bob", DeviceID: "laptop", Epoch: 1, Proposal: []byte{3}, Leave: true,
			CommandID: "p1", ProposedAt: at.Add(3 * time.Second),
		}),
		event(conv, 4, schemas.TypeMLSCommitted, at.Add(4*time.Second), schemas.MLSCommittedV1{
			ConversationID: conv, Seq: 4, UserID: "alice", DeviceID: "tablet", Epoch: 2, Commit: []byte{4},
			RemovedDevices: []schemas.DeviceRef{laptop}, MembersRemoved: []string{"bob"},
			CommandID: "c2", CommittedAt: at.Add(4 * time.Second),
		}),
	}
}

// testEncryption: the summary of an encrypted conversation, read alone
// and in its members' lists, has the encrypted flag, epoch, devices and
// leaving members after every batch, whatever the batches, and a replay
// changes none of it.
func testEncryption(t *testing.T, s *suite) {
	events := EncryptedGroup()
	phone := schemas.DeviceRef{UserID: "alice", DeviceID: "phone"}
	tablet := schemas.DeviceRef{UserID: "alice", DeviceID: "tablet"}
	laptop := schemas.DeviceRef{UserID: "bob", DeviceID: "laptop"}
	enc := func(epoch uint64, devices []schemas.DeviceRef, leaving []string) history.Conversation {
		var c history.Conversation
		c.Encrypted, c.Epoch, c.Devices, c.Leaving = true, epoch, devices, leaving
		return c
	}
	steps := []struct {
		batch []history.Event
		want  history.Conversation
		users []string
	}{
		{events[:1], enc(0, []schemas.DeviceRef{phone}, nil), []string{"alice"}},
		{events[1:3], enc(1, []schemas.DeviceRef{phone, tablet, laptop}, nil), []string{"alice", "bob"}},
		{events[3:4], enc(1, []schemas.DeviceRef{phone, tablet, laptop}, []string{"bob"}), []string{"alice", "bob"}},
		{events[4:], enc(2, []schemas.DeviceRef{phone, tablet}, nil), []string{"alice"}},
	}
	check := func(st history.Store, when string, want history.Conversation, users []string) {
		t.Helper()
		if d := diffEncryption(summary(t, st, "enc"), want); d != "" {
			t.Errorf("%s: summary: %s", when, d)
		}
		for _, u := range users {
			if d := diffEncryption(listed(t, st, u, "enc"), want); d != "" {
				t.Errorf("%s: %s's list: %s", when, u, d)
			}
		}
	}
	st := s.open(t)
	for i, step := range steps {
		apply(t, st, step.batch...)
		check(st, fmt.Sprintf("after batch %d", i), step.want, step.users)
	}
	last := steps[len(steps)-1]
	// A replay, whole or of an older part, changes nothing.
	apply(t, st, events...)
	apply(t, st, events[1:4]...)
	check(st, "after replays", last.want, last.users)
	// A fresh store given everything at once, and another one event at
	// a time, end the same.
	fresh := s.open(t)
	apply(t, fresh, events...)
	check(fresh, "all at once", last.want, last.users)
	slow := s.open(t)
	for _, ev := range events {
		apply(t, slow, ev)
	}
	check(slow, "one at a time", last.want, last.users)
	// A plaintext conversation has none of it.
	apply(t, st, Group("plain", time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC), schemas.Member{UserID: "alice", Role: schemas.RoleOwner}))
	if d := diffEncryption(summary(t, st, "plain"), history.Conversation{}); d != "" {
		t.Errorf("plaintext conversation: %s", d)
	}
}
