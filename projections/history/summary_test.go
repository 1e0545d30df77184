package history_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

func TestApplyToSummary(t *testing.T) {
	t.Parallel()
	createdAt := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	created := historytest.Created(schemas.ConversationCreatedV1{
		ConversationID: "g",
		Kind:           schemas.KindGroup,
		Title:          "T",
		CreatedBy:      "carol",
		Members: []schemas.Member{
			historytest.Owner("carol"), historytest.Member("alice"),
			historytest.Admin("bob"), historytest.Member("alice"),
		},
		CreatedAt: createdAt,
	})
	want := history.Conversation{
		State: conversation.State{
			ID:        "g",
			Kind:      schemas.KindGroup,
			Title:     "T",
			CreatedBy: "carol",
			CreatedAt: createdAt.UTC(),
			Members: []schemas.Member{
				historytest.Member("alice"), historytest.Admin("bob"), historytest.Owner("carol"),
			},
			LastSeq: 3,
		},
		LastActivity: createdAt.Add(3 * time.Second).UTC(),
	}
	events := []history.Event{
		created,
		historytest.Message("g", 1, "alice", "a", createdAt.Add(time.Second)),
		historytest.Message("g", 2, "bob", "b", createdAt.Add(3*time.Second)),
		// A later seq with an earlier time, of a type not known yet.
		{ConversationID: "g", Seq: 3, Type: "chat.future.v9", Time: createdAt.Add(2 * time.Second), Data: json.RawMessage(`{}`)},
	}
	want.Messages = 2
	// Folded in seq order, and folded again (a replay): the same summary.
	var c history.Conversation
	for range 2 {
		for _, ev := range events {
			if _, err := history.ApplyToSummary(&c, ev); err != nil {
				t.Fatalf("ApplyToSummary(%d): %v", ev.Seq, err)
			}
		}
		if c.ID != want.ID || c.Kind != want.Kind || c.Title != want.Title || c.CreatedBy != want.CreatedBy ||
			!c.CreatedAt.Equal(want.CreatedAt) || c.CreatedAt.Location() != time.UTC ||
			!slices.Equal(c.Members, want.Members) || c.LastSeq != want.LastSeq || c.Messages != want.Messages ||
			!c.LastActivity.Equal(want.LastActivity) || c.LastActivity.Location() != time.UTC {
			t.Fatalf("summary %+v, want %+v", c, want)
		}
		if p := c.LastMessage; p == nil || p.Seq != 2 || p.SenderID != "bob" || p.Body != "b" {
			t.Fatalf("last message %+v, want seq 2 by bob", p)
		}
	}
}

func TestApplyToSummaryReportsChanges(t *testing.T) {
	t.Parallel()
	var c history.Conversation
	m := historytest.Message("g", 5, "alice", "a", historytest.MessageTime(5))
	if changed, err := history.ApplyToSummary(&c, m); err != nil || !changed {
		t.Fatalf("first event: changed %v, err %v", changed, err)
	}
	if changed, err := history.ApplyToSummary(&c, m); err != nil || changed {
		t.Errorf("same event again: changed %v, err %v", changed, err)
	}
	old := historytest.Message("g", 4, "alice", "a", historytest.MessageTime(4))
	if changed, err := history.ApplyToSummary(&c, old); err != nil || changed {
		t.Errorf("older event: changed %v, err %v", changed, err)
	}
	if c.LastSeq != 5 || !c.LastActivity.Equal(historytest.MessageTime(5)) {
		t.Errorf("summary moved back: %+v", c)
	}
}

func TestApplyToSummaryRejectsMalformedCreations(t *testing.T) {
	t.Parallel()
	good := historytest.Group("g", historytest.Base, historytest.Owner("alice"))
	notZero := good
	notZero.Seq = 7
	noMembers := historytest.Created(schemas.ConversationCreatedV1{
		ConversationID: "g", Kind: schemas.KindGroup, CreatedBy: "alice", CreatedAt: historytest.Base,
	})
	truncated := good
	truncated.Data = json.RawMessage(`{"conversation_id":`)
	for name, ev := range map[string]history.Event{"seq not 0": notZero, "no members": noMembers, "truncated": truncated} {
		var c history.Conversation
		changed, err := history.ApplyToSummary(&c, ev)
		if !errors.Is(err, schemas.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
		if !changed || c.LastSeq != ev.Seq || !c.LastActivity.Equal(ev.Time) {
			t.Errorf("%s: last seq and activity not advanced: changed %v, %+v", name, changed, c)
		}
		if c.Kind != "" || c.Members != nil || c.Title != "" {
			t.Errorf("%s: summary took the malformed creation: %+v", name, c)
		}
	}
}

func TestPageQueryValidate(t *testing.T) {
	t.Parallel()
	for _, q := range []history.PageQuery{{Limit: 0}, {Limit: -3, Forward: true}} {
		if err := q.Validate(); !errors.Is(err, history.ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
	}
	if err := (history.PageQuery{Limit: 1}).Validate(); err != nil {
		t.Errorf("limit 1: %v", err)
	}
	if err := history.ValidateLimit(0); !errors.Is(err, history.ErrInvalidQuery) {
		t.Errorf("ValidateLimit(0): %v", err)
	}
}
