package decider

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/parley-chat/parley/schemas"
)

func dev(user, device string) schemas.DeviceRef {
	return schemas.DeviceRef{UserID: user, DeviceID: device}
}

func createEncrypted(user, device, commandID string, kind schemas.Kind, members ...string) (cmd, string) {
	id := schemas.GroupConversationID(user, commandID)
	title := "Secret"
	if kind == schemas.KindDirect {
		id, title = schemas.DirectConversationID(user, members[0]), ""
	}
	return command(schemas.TypeCreateConversationV2, id, schemas.CreateConversationV2{
		CommandID: commandID, UserID: user, ConversationID: id, Kind: kind, Title: title,
		Members: members, Encrypted: true, DeviceID: device, IssuedAt: testNow,
	}), id
}

func commit(user, device, conv, commandID string, epoch uint64, add, remove []schemas.DeviceRef) cmd {
	c := schemas.MLSCommitV1{
		CommandID: commandID, UserID: user, ConversationID: conv, DeviceID: device, Epoch: epoch,
		Commit: []byte("commit " + commandID), AddDevices: add, RemoveDevices: remove, IssuedAt: testNow,
	}
	if len(add) > 0 {
		c.Welcome = []byte("welcome " + commandID)
	}
	return command(schemas.TypeMLSCommit, conv, c)
}

func mlsSend(user, device, conv, commandID string, epoch uint64) cmd {
	return command(schemas.TypeMLSSend, conv, schemas.MLSSendV1{
		CommandID: commandID, UserID: user, ConversationID: conv, DeviceID: device, Epoch: epoch,
		Ciphertext: []byte{0, 1, 0, 2, 0xde, 0xad}, IssuedAt: testNow,
	})
}

func propose(user, device, conv, commandID string, epoch uint64, leave bool) cmd {
	return command(schemas.TypeMLSPropose, conv, schemas.MLSProposeV1{
		CommandID: commandID, UserID: user, ConversationID: conv, DeviceID: device, Epoch: epoch,
		Proposal: []byte("proposal"), Leave: leave, IssuedAt: testNow,
	})
}

var (
	committed = func(seq uint64) outcome { return outcome{event: schemas.TypeMLSCommitted, seq: seq} }
	mlsSent   = func(seq uint64) outcome { return outcome{event: schemas.TypeMLSMessageSent, seq: seq} }
	proposed  = func(seq uint64) outcome { return outcome{event: schemas.TypeMLSProposed, seq: seq} }
)

// TestDecideEncryptedGroup walks an encrypted group through its life:
// the epoch only moves by commits of the current epoch, the first of
// two concurrent commits wins, members come and go with the devices
// commits add and remove, and plain content is refused throughout.
func TestDecideEncryptedGroup(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	create, g := createEncrypted("alice", "phone", "e1", schemas.KindGroup, "bob")
	ev := d.mustEvent(create)
	if ev.Attrs.Type != schemas.TypeConversationCreatedV2 {
		t.Fatalf("created as %s", ev.Attrs.Type)
	}
	v, err := schemas.Decode(ev.Attrs.Type, ev.Value)
	if err != nil || !schemas.IsEncrypted(v) {
		t.Fatalf("creation %s: not encrypted (%v)", ev.Value, err)
	}
	for _, step := range []struct {
		name string
		c    cmd
		want outcome
	}{
		{"a plain message is refused", send("alice", g, "p1", "hello"), rejected(schemas.CodeInvalidCommand)},
		{"a plain add of members is refused", command(schemas.TypeAddMembers, g, schemas.AddMembersV1{CommandID: "p2", UserID: "alice", ConversationID: g, MemberIDs: []string{"carol"}, IssuedAt: testNow}), rejected(schemas.CodeInvalidCommand)},
		{"a plain leave is refused", leave("bob", g, "p3"), rejected(schemas.CodeInvalidCommand)},
		{"the creator's device sends in epoch 0", mlsSend("alice", "phone", g, "m0", 0), mlsSent(1)},
		{"a device not in the group cannot send", mlsSend("alice", "laptop", g, "m1", 0), rejected(schemas.CodeForbidden)},
		{"a member without a device in the group cannot send", mlsSend("bob", "phone", g, "m2", 0), rejected(schemas.CodeForbidden)},
		{"a future epoch is refused", mlsSend("alice", "phone", g, "m3", 1), rejected(schemas.CodeStaleEpoch)},
		{"alice adds bob's devices and carol (a new member)", commit("alice", "phone", g, "c1", 0, []schemas.DeviceRef{dev("bob", "phone"), dev("bob", "laptop"), dev("carol", "tab")}, nil), committed(2)},
		{"the retried commit is a duplicate", commit("alice", "phone", g, "c1", 0, []schemas.DeviceRef{dev("bob", "phone"), dev("bob", "laptop"), dev("carol", "tab")}, nil), dup(2)},
		{"a message of the old epoch is stale", mlsSend("bob", "phone", g, "m4", 0), rejected(schemas.CodeStaleEpoch)},
		{"bob sends in epoch 1", mlsSend("bob", "phone", g, "m5", 1), mlsSent(3)},
		{"carol, added by the commit, sends", mlsSend("carol", "tab", g, "m6", 1), mlsSent(4)},
		{"the first of two concurrent commits wins", commit("bob", "laptop", g, "c2", 1, nil, nil), committed(5)},
		{"the second, of the same epoch, is stale", commit("carol", "tab", g, "c3", 1, nil, nil), rejected(schemas.CodeStaleEpoch)},
		{"a member may not remove others' devices", commit("carol", "tab", g, "c4", 2, nil, []schemas.DeviceRef{dev("bob", "phone")}), rejected(schemas.CodeForbidden)},
		{"a member removes one of their own devices", commit("bob", "phone", g, "c5", 2, nil, []schemas.DeviceRef{dev("bob", "laptop")}), committed(6)},
		{"a device already added cannot be added again", commit("alice", "phone", g, "c6", 3, []schemas.DeviceRef{dev("carol", "tab")}, nil), rejected(schemas.CodeInvalidCommand)},
		{"a member cannot commit their own removal", commit("carol", "tab", g, "c7", 3, nil, []schemas.DeviceRef{dev("carol", "tab")}), rejected(schemas.CodeInvalidCommand)},
		{"carol proposes to leave", propose("carol", "tab", g, "l1", 3, true), proposed(7)},
		{"bob (no admin) commits carol's leave", commit("bob", "phone", g, "c8", 3, nil, []schemas.DeviceRef{dev("carol", "tab")}), committed(8)},
		{"carol, gone, can no longer send", mlsSend("carol", "tab", g, "m7", 4), rejected(schemas.CodeNotMember)},
		{"the owner removes bob", commit("alice", "phone", g, "c9", 4, nil, []schemas.DeviceRef{dev("bob", "phone")}), committed(9)},
		{"bob, gone, can no longer commit", commit("bob", "phone", g, "c10", 5, nil, nil), rejected(schemas.CodeNotMember)},
		{"alice goes on in epoch 5", mlsSend("alice", "phone", g, "m8", 5), mlsSent(10)},
	} {
		if got := d.outcome(step.c); got != step.want {
			t.Errorf("%s: got %+v, want %+v", step.name, got, step.want)
		}
	}
	c, err := d.st.conversation(g)
	if err != nil {
		t.Fatal(err)
	}
	if c.Epoch != 5 || len(c.Members) != 1 || len(c.Devices) != 1 || c.Devices[0] != dev("alice", "phone") {
		t.Errorf("final state: epoch %d, members %v, devices %v", c.Epoch, c.Members, c.Devices)
	}
}

func TestCommitEventRecordsMembersAndEpoch(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	create, g := createEncrypted("alice", "phone", "e1", schemas.KindGroup)
	d.mustEvent(create)
	ev := d.mustEvent(commit("alice", "phone", g, "c1", 0, []schemas.DeviceRef{dev("bob", "b1"), dev("bob", "b2")}, nil))
	v, err := schemas.Decode(ev.Attrs.Type, ev.Value)
	if err != nil {
		t.Fatal(err)
	}
	e := v.(*schemas.MLSCommittedV1)
	if e.Epoch != 1 || len(e.MembersAdded) != 1 || e.MembersAdded[0] != (schemas.Member{UserID: "bob", Role: schemas.RoleMember}) ||
		!bytes.Equal(e.Welcome, []byte("welcome c1")) || len(e.AddedDevices) != 2 {
		t.Errorf("committed: %s", ev.Value)
	}
	var raw map[string]any
	if err := json.Unmarshal(ev.Value, &raw); err != nil || raw["commit"] != "Y29tbWl0IGMx" {
		t.Errorf("the commit is not base64 in the event: %s", ev.Value)
	}
}

func TestEncryptedDirectConversationKeepsItsTwoMembers(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	create, c := createEncrypted("alice", "phone", "e1", schemas.KindDirect, "bob")
	d.mustEvent(create)
	for _, step := range []struct {
		name string
		c    cmd
		want outcome
	}{
		{"the other member's devices join", commit("alice", "phone", c, "c1", 0, []schemas.DeviceRef{dev("bob", "phone")}, nil), committed(1)},
		{"a third user cannot be added", commit("bob", "phone", c, "c2", 1, []schemas.DeviceRef{dev("carol", "x")}, nil), rejected(schemas.CodeInvalidCommand)},
		{"one cannot remove the other's devices", commit("alice", "phone", c, "c3", 1, nil, []schemas.DeviceRef{dev("bob", "phone")}), rejected(schemas.CodeForbidden)},
		{"leaving a direct conversation cannot be proposed", propose("bob", "phone", c, "l1", 1, true), rejected(schemas.CodeInvalidCommand)},
		{"the other sends", mlsSend("bob", "phone", c, "m1", 1), mlsSent(2)},
	} {
		if got := d.outcome(step.c); got != step.want {
			t.Errorf("%s: got %+v, want %+v", step.name, got, step.want)
		}
	}
}

func TestMLSCommandsInAPlainConversationAreRefused(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	d.mustEvent(createGroup("alice", "g1", "Plain", "bob"))
	g := schemas.GroupConversationID("alice", "g1")
	if got := d.outcome(mlsSend("alice", "phone", g, "m1", 0)); got != rejected(schemas.CodeInvalidCommand) {
		t.Errorf("MLS message in a plain group: %+v", got)
	}
	if got := d.outcome(commit("alice", "phone", g, "c1", 0, nil, nil)); got != rejected(schemas.CodeInvalidCommand) {
		t.Errorf("commit in a plain group: %+v", got)
	}
	// A v2 creation that is not encrypted is a v1 event, as ever.
	v2 := command(schemas.TypeCreateConversationV2, schemas.GroupConversationID("alice", "g2"), schemas.CreateConversationV2{
		CommandID: "g2", UserID: "alice", ConversationID: schemas.GroupConversationID("alice", "g2"), Kind: schemas.KindGroup,
		Title: "Plain too", Members: []string{"bob"}, IssuedAt: testNow,
	})
	if got := d.outcome(v2); got != created(0) {
		t.Errorf("plain v2 creation: %+v", got)
	}
}

// TestRebuiltEncryptedStateDecidesTheSame: the epoch, devices and
// pending leaves survive a rebuild from the events.
func TestRebuiltEncryptedStateDecidesTheSame(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	create, g := createEncrypted("alice", "phone", "e1", schemas.KindGroup)
	events := []*Output{
		d.mustEvent(create),
		d.mustEvent(commit("alice", "phone", g, "c1", 0, []schemas.DeviceRef{dev("bob", "phone")}, nil)),
		d.mustEvent(mlsSend("bob", "phone", g, "m1", 1)),
		d.mustEvent(propose("bob", "phone", g, "l1", 1, true)),
	}
	fresh := newTestState(t, Limits{}, 10_000)
	applyAll(t, fresh, events)
	r := &decider{t: t, st: fresh, offset: d.offset}
	if got := r.outcome(mlsSend("bob", "phone", g, "m2", 0)); got != rejected(schemas.CodeStaleEpoch) {
		t.Errorf("after rebuild, epoch 0: %+v", got)
	}
	if got := r.outcome(mlsSend("bob", "phone", g, "m1", 1)); got != dup(2) {
		t.Errorf("after rebuild, a retried message: %+v", got)
	}
	if got := r.outcome(commit("alice", "phone", g, "c2", 1, nil, []schemas.DeviceRef{dev("bob", "phone")})); got != committed(4) {
		t.Errorf("after rebuild, committing bob's proposed leave: %+v", got)
	}
}

// TestMalformedMLSCommandsAreDeadLettered: an MLS command its schema
// refuses is not a command: the caller dead-letters it, the state moves
// on.
func TestMalformedMLSCommandsAreDeadLettered(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	create, g := createEncrypted("alice", "phone", "e1", schemas.KindGroup)
	d.mustEvent(create)
	for name, c := range map[string]cmd{
		"a commit without its bytes": with(commit("alice", "phone", g, "c1", 0, nil, nil), func(v *schemas.MLSCommitV1) { v.Commit = nil }),
		"devices added, no welcome":  with(commit("alice", "phone", g, "c2", 0, []schemas.DeviceRef{dev("bob", "b")}, nil), func(v *schemas.MLSCommitV1) { v.Welcome = nil }),
		"a message of a bad device":  with(mlsSend("alice", "phone", g, "m1", 0), func(v *schemas.MLSSendV1) { v.DeviceID = "no spaces" }),
		"an encrypted creation without its device": with(func() cmd { c, _ := createEncrypted("alice", "phone", "e2", schemas.KindGroup); return c }(),
			func(v *schemas.CreateConversationV2) { v.DeviceID = "" }),
	} {
		if got := d.outcome(c); got != deadLtr {
			t.Errorf("%s: %+v, want dead-lettered", name, got)
		}
	}
	if got := d.outcome(mlsSend("alice", "phone", g, "m2", 0)); got != mlsSent(1) {
		t.Errorf("after the malformed commands: %+v", got)
	}
}
