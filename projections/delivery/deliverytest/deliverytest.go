// Package deliverytest holds what the tests of delivery and of the
// router share: a socket that records the frames a session writes, each
// frame summarized in a line, and waiting for them with a deadline.
package deliverytest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sink records the frames a session writes (a delivery.Sink). Before, if
// set, runs before each frame is recorded and may block or fail it. It
// is safe for concurrent use.
type Sink struct {
	Before func(ctx context.Context, frame []byte) error

	mu     sync.Mutex
	frames [][]byte
}

// Write records frame, after Before.
func (s *Sink) Write(ctx context.Context, frame []byte) error {
	if s.Before != nil {
		if err := s.Before(ctx, frame); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.frames = append(s.frames, slices.Clone(frame))
	s.mu.Unlock()
	return nil
}

// Frames returns the frames written so far.
func (s *Sink) Frames() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// Summaries describes the frames written so far, one line each (see
// Summarize).
func (s *Sink) Summaries(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, f := range s.Frames() {
		out = append(out, Summarize(t, f))
	}
	return out
}

// Summarize describes a frame briefly: "event c 3", "gap c 4-7 reason",
// "resumed r1 map[c:10]", other frames by their type.
func Summarize(t testing.TB, frame []byte) string {
	t.Helper()
	var f struct {
		Type           string            `json:"type"`
		ConversationID string            `json:"conversation_id"`
		Seq            uint64            `json:"seq"`
		FromSeq        uint64            `json:"from_seq"`
		ToSeq          uint64            `json:"to_seq"`
		Reason         string            `json:"reason"`
		ID             string            `json:"id"`
		Conversations  map[string]uint64 `json:"conversations"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatalf("frame is not JSON: %v: %q", err, frame)
	}
	switch f.Type {
	case "event":
		return fmt.Sprintf("event %s %d", f.ConversationID, f.Seq)
	case "gap":
		return fmt.Sprintf("gap %s %d-%d %s", f.ConversationID, f.FromSeq, f.ToSeq, f.Reason)
	case "resumed":
		return fmt.Sprintf("resumed %s %v", f.ID, f.Conversations)
	}
	return f.Type
}

// WaitFrames waits until s holds as many frames as want, then fails the
// test unless they are want.
func WaitFrames(t testing.TB, s *Sink, want ...string) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("frames %q", want), func() bool { return len(s.Frames()) >= len(want) })
	if got := s.Summaries(t); !slices.Equal(got, want) {
		t.Fatalf("frames:\n got %q\nwant %q", got, want)
	}
}

// WaitConversationFrames waits until s holds as many frames as want,
// then fails the test unless each conversation's frames are want's, in
// want's order. Frames of different conversations may interleave in any
// order: a feed orders each conversation's events, not one
// conversation's against another's.
func WaitConversationFrames(t testing.TB, s *Sink, want ...string) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("frames %q", want), func() bool { return len(s.Frames()) >= len(want) })
	got := s.Summaries(t)
	ok := len(got) == len(want)
	for _, w := range want {
		conv := strings.Fields(w)[1]
		ok = ok && slices.Equal(Only(got, conv), Only(want, conv))
	}
	if !ok {
		t.Fatalf("frames, in each conversation's order:\n got %q\nwant %q", got, want)
	}
}

// WaitFor polls cond until it holds, failing the test after 10s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Within(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Within polls cond until it holds (true) or timeout passes (false); for
// goroutines other than the test's, which must not call t.Fatal.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Only keeps the summaries of conversation conv.
func Only(frames []string, conv string) []string {
	var out []string
	for _, f := range frames {
		if strings.Contains(f, " "+conv+" ") {
			out = append(out, f)
		}
	}
	return out
}
