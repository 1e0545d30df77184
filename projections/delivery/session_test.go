// Tests of sessions: live events, gaps, resume, slow consumers.

package delivery

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery/deliverytest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
)

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

// newTestHub returns a hub that is never Run: the tests feed it events
// through its event path directly.
func newTestHub(t testing.TB, h history.Reader, tweak func(*Config)) *Hub {
	cfg := Config{History: h, GapWait: 2 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	return NewHub(cfg)
}

// live feeds ev to the hub as if its broadcast feed read it from
// chat.events.
func live(h *Hub, ev history.Event) {
	h.feed.(*broadcast).event(context.Background(), attrsOf(ev), ev.Data)
}

func attrsOf(ev history.Event) schemas.Attributes {
	return schemas.Attributes{ID: ev.ID, Type: ev.Type, Source: schemas.Source, Subject: ev.ConversationID,
		Time: ev.Time, Seq: ev.Seq, HasSeq: true, CommandOffset: -1}
}

type runningSession struct {
	s        *Session
	finished chan struct{} // closed when Run has returned err
	err      error
}

// run starts a session of user writing to sink.
func run(t *testing.T, h *Hub, user string, sink Sink) *runningSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSession{s: h.NewSession(user), finished: make(chan struct{})}
	go func() {
		defer close(rs.finished)
		rs.err = rs.s.Run(ctx, sink)
	}()
	t.Cleanup(func() {
		cancel()
		rs.s.Close()
		select {
		case <-rs.finished:
		case <-time.After(10 * time.Second):
			t.Error("session Run did not return")
		}
	})
	return rs
}

// result waits for Run to return and gives its error.
func (rs *runningSession) result(t *testing.T) error {
	t.Helper()
	select {
	case <-rs.finished:
		return rs.err
	case <-time.After(10 * time.Second):
		t.Fatal("session Run did not return")
		return nil
	}
}

func registered(h *Hub, s *Session) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.sessions[s.user][s]
	return ok
}

var (
	convC  = "c1"
	convD  = "c2"
	member = historytest.Member
)

func group(conv string, users ...string) history.Event {
	ms := make([]schemas.Member, len(users))
	for i, u := range users {
		ms[i] = member(u)
	}
	return historytest.Group(conv, historytest.Base, ms...)
}

func msgs(conv string, from, to uint64) []history.Event {
	return historytest.Messages(conv, from, to, "alice")
}

func msg(conv string, seq uint64) history.Event {
	return historytest.Message(conv, seq, "alice", "hi", historytest.MessageTime(seq))
}

func TestSessionLiveEvents(t *testing.T) {
	t.Parallel()
	t.Run("live events are written in order", func(t *testing.T) {
		t.Parallel()
		h := newTestHub(t, openStore(t), nil)
		sink := &deliverytest.Sink{}
		run(t, h, "alice", sink)
		live(h, group(convC, "alice", "bob"))
		for _, ev := range msgs(convC, 1, 5) {
			live(h, ev)
		}
		deliverytest.WaitFrames(t, sink, "event c1 0", "event c1 1", "event c1 2", "event c1 3", "event c1 4", "event c1 5")
	})
	t.Run("events the socket already has are dropped", func(t *testing.T) {
		t.Parallel()
		h := newTestHub(t, openStore(t), nil)
		sink := &deliverytest.Sink{}
		run(t, h, "alice", sink)
		live(h, group(convC, "alice", "bob"))
		for _, seq := range []uint64{1, 2, 1, 2, 0, 3} {
			live(h, msg(convC, seq))
		}
		deliverytest.WaitFrames(t, sink, "event c1 0", "event c1 1", "event c1 2", "event c1 3")
	})
	t.Run("a gap before a live event is filled from history first", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 6)
		store(t, st, append([]history.Event{group(convC, "alice", "bob")}, evs...)...)
		h := newTestHub(t, st, nil)
		sink := &deliverytest.Sink{}
		run(t, h, "bob", sink)
		live(h, evs[0])
		live(h, evs[3]) // seq 4: 2 and 3 come from history
		live(h, evs[1]) // already backfilled
		live(h, evs[5]) // seq 6: 5 from history
		deliverytest.WaitFrames(t, sink, "event c1 1", "event c1 2", "event c1 3", "event c1 4", "event c1 5", "event c1 6")
		// Backfilled frames are the same bytes as live ones.
		for i, f := range sink.Frames() {
			ev := evs[i]
			if want := EncodeEvent(ev.ConversationID, ev.Seq, ev.Type, ev.ID, ev.Time, ev.Data); !bytes.Equal(f, want) {
				t.Errorf("frame %d:\n got %s\nwant %s", i, f, want)
			}
		}
	})
	t.Run("a session waits for a lagging history and then fills the gap", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 4)
		store(t, st, group(convC, "alice", "bob"), evs[0])
		lagging := &countingReader{Reader: st, after: 1}
		h := newTestHub(t, lagging, func(c *Config) { c.GapWait = 10 * time.Second })
		sink := &deliverytest.Sink{}
		run(t, h, "bob", sink)
		live(h, evs[0])
		live(h, evs[3])
		deliverytest.WaitFrames(t, sink, "event c1 1")
		// The session writes a frame before it asks history again, so
		// once it has asked for the gap three times with nothing written,
		// it is waiting, not giving up.
		deliverytest.WaitFor(t, "the session to ask history for the gap again", func() bool { return lagging.pages.Load() >= 3 })
		if got := sink.Summaries(t); len(got) != 1 {
			t.Fatalf("frames %q while history lags, want only the first event", got)
		}
		store(t, st, evs[1], evs[2]) // the history projection catches up
		deliverytest.WaitFrames(t, sink, "event c1 1", "event c1 2", "event c1 3", "event c1 4")
	})
	t.Run("a gap history cannot fill within GapWait is announced before the event", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 5)
		store(t, st, group(convC, "alice", "bob"), evs[0])
		h := newTestHub(t, st, func(c *Config) { c.GapWait = 50 * time.Millisecond })
		sink := &deliverytest.Sink{}
		run(t, h, "bob", sink)
		live(h, evs[0])
		live(h, evs[3])
		live(h, evs[4])
		deliverytest.WaitFrames(t, sink, "event c1 1", "gap c1 2-3 history_unavailable", "event c1 4", "event c1 5")
	})
	t.Run("a live gap larger than BackfillLimit is announced and the newest events backfilled", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 20)
		store(t, st, append([]history.Event{group(convC, "alice", "bob")}, evs...)...)
		h := newTestHub(t, st, func(c *Config) { c.BackfillLimit = 4 })
		sink := &deliverytest.Sink{}
		run(t, h, "bob", sink)
		live(h, evs[0])
		live(h, evs[19])
		deliverytest.WaitFrames(t, sink, "event c1 1", "gap c1 2-15 backfill_limit",
			"event c1 16", "event c1 17", "event c1 18", "event c1 19", "event c1 20")
	})
}

func TestSessionResume(t *testing.T) {
	t.Parallel()
	t.Run("resume backfills exactly the events after the client's seq and says so", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		store(t, st, group(convC, "alice", "bob"), group(convD, "alice", "carol"))
		store(t, st, msgs(convC, 1, 10)...)
		store(t, st, msgs(convD, 1, 2)...)
		h := newTestHub(t, st, nil)
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 3, convD: 0})
		want := []string{"event c1 4", "event c1 5", "event c1 6", "event c1 7", "event c1 8", "event c1 9", "event c1 10",
			"event c2 1", "event c2 2", "resumed r1 map[c1:10 c2:2]"}
		deliverytest.WaitFor(t, "the resume", func() bool { return len(sink.Frames()) >= len(want) })
		got := sink.Summaries(t)
		// Conversations are resumed in any order, each in seq order.
		for _, conv := range []string{convC, convD} {
			if g, w := deliverytest.Only(got, conv), deliverytest.Only(want, conv); !slices.Equal(g, w) {
				t.Errorf("frames of %s:\n got %q\nwant %q", conv, g, w)
			}
		}
		if len(got) != len(want) || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("frames %q, want the resumed frame last", got)
		}

		live(h, msg(convC, 10)) // the socket has it
		live(h, msg(convC, 11))
		deliverytest.WaitFor(t, "the live event", func() bool { return len(sink.Frames()) > len(want) })
		if got := sink.Summaries(t)[len(want):]; !slices.Equal(got, []string{"event c1 11"}) {
			t.Errorf("after the resume: %q, want only event 11", got)
		}
	})
	t.Run("resume with nothing missing writes only the resumed frame", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		store(t, st, group(convC, "alice", "bob"))
		store(t, st, msgs(convC, 1, 3)...)
		h := newTestHub(t, st, nil)
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 3})
		deliverytest.WaitFrames(t, sink, "resumed r1 map[c1:3]")
	})
	t.Run("a live event before the resume frame leaves no gap: what came before it follows", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		store(t, st, group(convC, "alice", "bob"))
		store(t, st, msgs(convC, 1, 10)...)
		h := newTestHub(t, st, nil)
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		// The interleaving: event 10 reaches the socket, then the client's
		// resume from seq 5 (it has 1 to 5) is read.
		live(h, msg(convC, 10))
		deliverytest.WaitFrames(t, sink, "event c1 10")
		rs.s.Resume("r1", map[string]uint64{convC: 5})
		deliverytest.WaitFrames(t, sink, "event c1 10", "event c1 6", "event c1 7", "event c1 8", "event c1 9", "resumed r1 map[c1:10]")
		live(h, msg(convC, 11))
		deliverytest.WaitFrames(t, sink, "event c1 10", "event c1 6", "event c1 7", "event c1 8", "event c1 9", "resumed r1 map[c1:10]", "event c1 11")
		// A second resume from an old seq owes nothing more.
		rs.s.Resume("r2", map[string]uint64{convC: 2})
		deliverytest.WaitFrames(t, sink, "event c1 10", "event c1 6", "event c1 7", "event c1 8", "event c1 9", "resumed r1 map[c1:10]", "event c1 11", "resumed r2 map[c1:11]")
	})
	t.Run("resume below what the socket already has repeats nothing", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		store(t, st, group(convC, "alice", "bob"))
		store(t, st, msgs(convC, 1, 5)...)
		h := newTestHub(t, st, nil)
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 3})
		deliverytest.WaitFrames(t, sink, "event c1 4", "event c1 5", "resumed r1 map[c1:5]")
		rs.s.Resume("r2", map[string]uint64{convC: 1})
		deliverytest.WaitFrames(t, sink, "event c1 4", "event c1 5", "resumed r1 map[c1:5]", "resumed r2 map[c1:5]")
	})
	t.Run("resume past BackfillLimit announces the oldest events as a gap", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		store(t, st, group(convC, "alice", "bob"))
		store(t, st, msgs(convC, 1, 12)...)
		h := newTestHub(t, st, func(c *Config) { c.BackfillLimit = 5 })
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 0})
		deliverytest.WaitFrames(t, sink, "gap c1 1-7 backfill_limit",
			"event c1 8", "event c1 9", "event c1 10", "event c1 11", "event c1 12", "resumed r1 map[c1:12]")
	})
	t.Run("resume to a seq seen live but not yet in history ends in a gap", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 7)
		store(t, st, append([]history.Event{group(convC, "alice", "bob")}, evs[:5]...)...)
		h := newTestHub(t, st, func(c *Config) { c.GapWait = 50 * time.Millisecond })
		live(h, evs[5]) // no session yet: the hub only learns seq 7 exists
		live(h, evs[6])
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 4})
		deliverytest.WaitFrames(t, sink, "event c1 5", "gap c1 6-7 history_unavailable", "resumed r1 map[c1:7]")
	})
	t.Run("a backfill waiting for history gives up with a gap before live events overflow the queue", func(t *testing.T) {
		t.Parallel()
		st := openStore(t)
		evs := msgs(convC, 1, 7)
		store(t, st, append([]history.Event{group(convC, "alice", "bob"), group(convD, "alice", "carol")}, evs[:5]...)...)
		// History lags for longer than the test waits: only the queue
		// filling up can end the wait.
		h := newTestHub(t, st, func(c *Config) { c.GapWait, c.QueueSize = time.Minute, 4 })
		live(h, evs[5])
		live(h, evs[6])
		sink := &deliverytest.Sink{}
		rs := run(t, h, "alice", sink)
		rs.s.Resume("r1", map[string]uint64{convC: 4})
		deliverytest.WaitFrames(t, sink, "event c1 5")
		// Live events of another conversation queue behind the waiting
		// resume: half the queue is enough to stop waiting.
		store(t, st, msg(convD, 1), msg(convD, 2))
		live(h, msg(convD, 1))
		live(h, msg(convD, 2))
		deliverytest.WaitFrames(t, sink, "event c1 5", "gap c1 6-7 history_unavailable", "resumed r1 map[c1:7]", "event c2 1", "event c2 2")
		if err := rs.s.Err(); err != nil {
			t.Errorf("session ended: %v", err)
		}
	})
}

// TestLookingBackGivesUpWhenTheQueueBacksUp: the look back of a
// conversation the socket did not resume (appendedSince) waits for a
// lagging history at most until half the session's queue is waiting
// behind it, not for GapWait: a full queue would end the session.
func TestLookingBackGivesUpWhenTheQueueBacksUp(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	store(t, st, group(convC, "alice", "bob"))
	store(t, st, msgs(convC, 1, 5)...)
	h := newTestHub(t, st, func(c *Config) { c.GapWait, c.QueueSize = time.Minute, 4 })
	s := h.NewSession("alice")
	defer s.Close()
	// Not started: what is pushed stays queued, as behind a writer that
	// waits.
	s.Signal([]byte(`{"type":"user_typing"}`))
	s.Signal([]byte(`{"type":"user_typing"}`))
	done := make(chan []history.Event, 1)
	go func() { done <- s.appendedSince(context.Background(), convC, 9) }() // history lacks 6 to 8
	select {
	case found := <-done:
		if len(found) != 0 {
			t.Errorf("found %d events, want none", len(found))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the look back waited for history with half the queue waiting behind it")
	}
}

// countingReader counts the pages asked of it after seq after, the way a
// session asks for a gap it backfills.
type countingReader struct {
	history.Reader
	after uint64
	pages atomic.Int32
}

func (r *countingReader) Page(ctx context.Context, conv string, q history.PageQuery) (history.Page, error) {
	if q.After == r.after {
		r.pages.Add(1)
	}
	return r.Reader.Page(ctx, conv, q)
}

func TestSessionSlowConsumer(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	h := newTestHub(t, st, func(c *Config) { c.QueueSize = 2 })
	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sink := &deliverytest.Sink{Before: func(ctx context.Context, _ []byte) error {
		once.Do(func() { close(blocked); <-release })
		return nil
	}}
	rs := run(t, h, "alice", sink)
	other := &deliverytest.Sink{}
	run(t, h, "bob", other)

	// Each event is fed once bob has written the one before, so that
	// only alice's queue fills up.
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		live(h, group(convC, "alice", "bob")) // taken by Run, which blocks writing it
		<-blocked
		for i, ev := range msgs(convC, 1, 4) { // two fit in the queue, the third overflows
			deliverytest.Within(10*time.Second, func() bool { return len(other.Frames()) >= i+1 })
			live(h, ev)
		}
	}()
	select {
	case <-fed:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to a full session queue blocked the hub")
	}
	if registered(h, rs.s) {
		t.Error("the slow session is still registered with the hub")
	}
	h.mu.RLock()
	_, aliceLeft := h.sessions["alice"]
	h.mu.RUnlock()
	if aliceLeft {
		t.Error("the hub still lists sessions of alice")
	}
	close(release)
	if err := rs.result(t); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("Run = %v, want ErrSlowConsumer", err)
	}
	// Other sessions are not held back.
	deliverytest.WaitFrames(t, other, "event c1 0", "event c1 1", "event c1 2", "event c1 3", "event c1 4")
}

func TestSessionClose(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, openStore(t), nil)
	rs := run(t, h, "alice", &deliverytest.Sink{})
	rs.s.Close()
	rs.s.Close() // idempotent
	if err := rs.result(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after Close = %v, want context.Canceled", err)
	}
	if registered(h, rs.s) {
		t.Error("a closed session is still registered")
	}
}

func TestSessionSinkErrorEndsRun(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, openStore(t), nil)
	broken := errors.New("socket gone")
	rs := run(t, h, "alice", &deliverytest.Sink{Before: func(context.Context, []byte) error { return broken }})
	live(h, group(convC, "alice", "bob"))
	if err := rs.result(t); !errors.Is(err, broken) {
		t.Errorf("Run = %v, want the sink's error", err)
	}
}

// TestSessionIdleHoldsNoWriter: a session's writer goroutine runs only
// while frames wait, and once a burst is written the queue it grew is let
// go; frames after that are written by a new writer, in order.
func TestSessionIdleHoldsNoWriter(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, openStore(t), nil)
	hold := make(chan struct{})
	var once sync.Once
	sink := &deliverytest.Sink{Before: func(context.Context, []byte) error {
		once.Do(func() { <-hold }) // the first write waits until the burst is queued
		return nil
	}}
	rs := run(t, h, "alice", sink)
	idle := func() bool {
		rs.s.qmu.Lock()
		defer rs.s.qmu.Unlock()
		return !rs.s.writing && len(rs.s.queue) == 0 && cap(rs.s.queue) <= idleQueueCap
	}
	live(h, group(convC, "alice", "bob"))
	for _, ev := range msgs(convC, 1, 3*idleQueueCap) {
		live(h, ev)
	}
	rs.s.qmu.Lock()
	grown := cap(rs.s.queue)
	rs.s.qmu.Unlock()
	if grown <= idleQueueCap {
		t.Fatalf("a burst of %d frames grew the queue to %d slots only", 3*idleQueueCap, grown)
	}
	close(hold)
	want := []string{"event c1 0"}
	for seq := 1; seq <= 3*idleQueueCap; seq++ {
		want = append(want, "event c1 "+strconv.Itoa(seq))
	}
	deliverytest.WaitFrames(t, sink, want...)
	if !deliverytest.Within(10*time.Second, idle) {
		t.Fatal("the session still has a writer or a grown queue once idle")
	}
	live(h, msg(convC, 3*idleQueueCap+1))
	deliverytest.WaitFrames(t, sink, append(want, "event c1 "+strconv.Itoa(3*idleQueueCap+1))...)
	if !deliverytest.Within(10*time.Second, idle) {
		t.Fatal("the session's writer did not exit after a single frame")
	}
}
