package pebblestore

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
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
