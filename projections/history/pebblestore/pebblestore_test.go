package pebblestore_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
)

func open(t testing.TB, dir string, opts ...pebblestore.Option) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		return open(t, t.TempDir())
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	events := slices.Concat(
		[]history.Event{historytest.Group("a", historytest.Base, historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages("a", 1, 1500, "bob"),
		[]history.Event{historytest.Group("b", historytest.MessageTime(2000), historytest.Owner("bob"))},
	)
	s := open(t, dir)
	if err := s.Apply(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	wantA, err := s.Conversation(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir)
	defer s.Close()
	p, err := s.Page(t.Context(), "a", history.PageQuery{Forward: true, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1500 || p.HasMore {
		t.Fatalf("after reopening: %d events (has more %v), want 1500", len(p.Events), p.HasMore)
	}
	for i, ev := range p.Events {
		want := events[i+1]
		if ev.Seq != want.Seq || ev.ID != want.ID || ev.Type != want.Type ||
			!ev.Time.Equal(want.Time) || string(ev.Data) != string(want.Data) {
			t.Fatalf("after reopening: event %d is %+v, want %+v", i, ev, want)
		}
	}
	gotA, err := s.Conversation(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if gotA.LastSeq != wantA.LastSeq || !gotA.LastActivity.Equal(wantA.LastActivity) ||
		!slices.Equal(gotA.Members, wantA.Members) || gotA.Title != wantA.Title {
		t.Errorf("after reopening: summary %+v, want %+v", gotA, wantA)
	}
	cs, err := s.Conversations(t.Context(), "bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ID != "b" || cs[1].ID != "a" {
		t.Errorf("after reopening: bob's conversations are %+v, want b then a", cs)
	}
	// Applying the same events after a restart, as a consumer that
	// resumes from an older offset does, changes nothing.
	if err := s.Apply(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Conversation(t.Context(), "a"); again.LastSeq != 1500 {
		t.Errorf("after re-applying: last seq %d, want 1500", again.LastSeq)
	}
}

func TestClosedStoreReturnsErrClosed(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := t.Context()
	if err := s.Apply(ctx, historytest.Messages("a", 1, 1, "alice")); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Page(ctx, "a", history.PageQuery{Limit: 1}); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Page after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Conversation(ctx, "a"); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Conversation after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Conversations(ctx, "alice", 1); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Conversations after Close: %v, want ErrClosed", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, pebblestore.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

func TestOpenFailsOnAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	// The directory is locked by the open store.
	if s2, err := pebblestore.Open(dir); err == nil {
		s2.Close()
		t.Fatal("a second Open of an open store succeeded")
	}
}

func TestMalformedEventIsLogged(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	s := open(t, t.TempDir(), pebblestore.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer s.Close()
	bad := historytest.Group("a", time.Unix(0, 0), historytest.Owner("alice"))
	bad.Data = []byte(`{"truncated`)
	if err := s.Apply(t.Context(), []history.Event{bad}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "conversation_id=a") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning about the malformed event in %q", logs.String())
	}
}
