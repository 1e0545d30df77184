// Test helpers: recording sockets, running sessions, waiting with a deadline.

package router

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

var member = historytest.Member

// fakeSink records the frames a session writes.
type fakeSink struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *fakeSink) Write(_ context.Context, frame []byte) error {
	s.mu.Lock()
	s.frames = append(s.frames, slices.Clone(frame))
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) got() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// summaries describes frames briefly: "event c 3", "gap c 4-7 reason",
// "resumed r1 map[c:10]"; signals by their type.
func (s *fakeSink) summaries(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, f := range s.got() {
		var v struct {
			Type           string            `json:"type"`
			ConversationID string            `json:"conversation_id"`
			Seq            uint64            `json:"seq"`
			FromSeq        uint64            `json:"from_seq"`
			ToSeq          uint64            `json:"to_seq"`
			Reason         string            `json:"reason"`
			ID             string            `json:"id"`
			Conversations  map[string]uint64 `json:"conversations"`
		}
		if err := json.Unmarshal(f, &v); err != nil {
			t.Fatalf("frame is not JSON: %v: %q", err, f)
		}
		switch v.Type {
		case "event":
			out = append(out, fmt.Sprintf("event %s %d", v.ConversationID, v.Seq))
		case "gap":
			out = append(out, fmt.Sprintf("gap %s %d-%d %s", v.ConversationID, v.FromSeq, v.ToSeq, v.Reason))
		case "resumed":
			out = append(out, fmt.Sprintf("resumed %s %v", v.ID, v.Conversations))
		default:
			out = append(out, v.Type)
		}
	}
	return out
}

// waitFrames waits until the sink holds want.
func waitFrames(t *testing.T, s *fakeSink, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("frames %q", want), func() bool { return len(s.summaries(t)) >= len(want) })
	if got := s.summaries(t); !slices.Equal(got, want) {
		t.Fatalf("frames:\n got %q\nwant %q", got, want)
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func only(frames []string, conv string) []string {
	var out []string
	for _, f := range frames {
		if strings.Contains(f, " "+conv+" ") {
			out = append(out, f)
		}
	}
	return out
}

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
