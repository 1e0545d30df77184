package decider

import (
	"testing"

	"github.com/parley-chat/parley/schemas"
)

func leave(user, conversation, commandID string) cmd {
	return command(schemas.TypeLeaveConversation, conversation, schemas.LeaveConversationV1{
		CommandID: commandID, UserID: user, ConversationID: conversation, IssuedAt: testNow,
	})
}

func TestDecideLeave(t *testing.T) {
	t.Parallel()
	left := func(seq uint64) outcome { return outcome{event: schemas.TypeMemberLeft, seq: seq} }
	grp := schemas.GroupConversationID("alice", "g1")
	ab := schemas.DirectConversationID("alice", "bob")
	d := newDecider(t, Limits{})
	d.mustEvent(createGroup("alice", "g1", "Team", "bob", "carol"))
	d.mustEvent(createDirect("alice", "bob", "d1"))
	d.mustEvent(send("bob", grp, "m1", "hi"))
	for _, step := range []struct {
		name string
		c    cmd
		want outcome
	}{
		{"a member leaves a group with the next seq", leave("bob", grp, "bye"), left(2)},
		{"the same leave again is a duplicate with the original seq", leave("bob", grp, "bye"), dup(2)},
		{"a former member can no longer send", send("bob", grp, "m2", "still here?"), rejected(schemas.CodeNotMember)},
		{"a former member cannot leave again with a new command", leave("bob", grp, "bye2"), rejected(schemas.CodeNotMember)},
		{"a non-member cannot leave", leave("mallory", grp, "x"), rejected(schemas.CodeNotMember)},
		{"an unknown conversation cannot be left", leave("bob", "g_00000000000000000000000000000000", "x"), rejected(schemas.CodeConversationNotFound)},
		{"a direct conversation cannot be left", leave("alice", ab, "x"), rejected(schemas.CodeInvalidCommand)},
		{"the others go on with contiguous seqs", send("carol", grp, "m3", "bye bob"), sent(3)},
	} {
		if got := d.outcome(step.c); got != step.want {
			t.Errorf("%s: got %+v, want %+v", step.name, got, step.want)
		}
	}
}

func TestApplyMemberLeftRebuildsTheSameState(t *testing.T) {
	t.Parallel()
	grp := schemas.GroupConversationID("alice", "g1")
	d := newDecider(t, Limits{})
	events := []*Output{
		d.mustEvent(createGroup("alice", "g1", "Team", "bob")),
		d.mustEvent(leave("bob", grp, "bye")),
	}
	fresh := newTestState(t, Limits{}, 10_000)
	applyAll(t, fresh, events)
	r := &decider{t: t, st: fresh, offset: d.offset}
	if got := r.outcome(send("bob", grp, "m", "hi")); got != rejected(schemas.CodeNotMember) {
		t.Errorf("after rebuild a former member's send: %+v, want not_member", got)
	}
	if got := r.outcome(leave("bob", grp, "bye")); got != dup(1) {
		t.Errorf("after rebuild a retried leave: %+v, want the original seq 1 as a duplicate", got)
	}
}
