package pebblestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// An Apply waiting for a conversation's lock gives up when its context
// is done.
func TestApplyWaitingForALockHonoursItsContext(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unlock, err := s.locks.Lock(t.Context(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- s.Apply(ctx, []history.Event{historytest.Group("a", historytest.Base, historytest.Owner("alice"))})
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Apply: %v, want context.Canceled", err)
	}
	unlock()
	if _, err := s.Conversation(t.Context(), "a"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("the cancelled Apply applied something: %v", err)
	}
}

// TestSummaryBytesAreJSONMarshals: a summary is stored as json.Marshal
// writes it (no trailing newline, HTML escaped), whatever the pooled
// buffer held before it.
func TestSummaryBytesAreJSONMarshals(t *testing.T) {
	t.Parallel()
	at := historytest.Base
	long := history.Conversation{LastActivity: at, Messages: 7,
		LastMessage: &history.Preview{Seq: 7, SenderID: "alice", Body: strings.Repeat("<b>&é</b> ", 100), SentAt: at, Files: []string{"a.png"}}}
	long.ID, long.Kind, long.Title, long.CreatedBy, long.CreatedAt = "g", schemas.KindGroup, "<team> & co", "alice", at
	long.Members = []schemas.Member{historytest.Owner("alice"), historytest.Member("bob")}
	short := history.Conversation{LastActivity: at}
	short.ID, short.Kind, short.CreatedBy, short.CreatedAt = "d", schemas.KindDirect, "alice", at
	var buf bytes.Buffer
	for _, c := range []history.Conversation{long, short} {
		buf.Reset()
		if err := encodeSummary(&buf, c); err != nil {
			t.Fatal(err)
		}
		var sc storedConversation
		if err := json.Unmarshal(buf.Bytes(), &sc); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("summary of %s:\n got %s\nwant %s", c.ID, buf.Bytes(), want)
		}
	}
}
