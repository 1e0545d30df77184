// Test helpers: recording sockets, running sessions, waiting with a deadline.

package router

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

var member = historytest.Member

func await(t *testing.T, ch <-chan delivery.Outcome) delivery.Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome")
		return delivery.Outcome{}
	}
}

type runningSession struct{ s *delivery.Session }

// run starts a session of user writing to sink until the test ends.
func run(t *testing.T, h *delivery.Hub, user string, sink delivery.Sink) runningSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := h.NewSession(user)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = s.Run(ctx, sink)
	}()
	t.Cleanup(func() {
		cancel()
		s.Close()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("session Run did not return")
		}
	})
	return runningSession{s}
}

func openStore(t testing.TB) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func store(t testing.TB, s history.Writer, events ...history.Event) {
	t.Helper()
	if err := s.Apply(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func attrsOf(ev history.Event) schemas.Attributes {
	return schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
		Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}
}
