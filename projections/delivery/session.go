// Sessions: one socket's bounded queue, cursors, resume and backfill.

package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-chat/parley/projections/history"
)

// ErrSlowConsumer ends a session whose send queue overflowed.
var ErrSlowConsumer = errors.New("slow consumer: send queue full")

// Sink is where a session writes frames: one socket. Write must honour
// ctx and is called from one goroutine at a time.
type Sink interface {
	Write(ctx context.Context, frame []byte) error
}

type item struct {
	conv  string
	seq   uint64
	at    time.Time
	frame []byte
	// resume is set for a resume request instead of an event.
	resume *resumeRequest
	// signal marks an ephemeral frame (typing): written as it is, outside
	// the conversation's sequence.
	signal bool
}

type resumeRequest struct {
	id   string
	from map[string]uint64
}

// Session is one socket's delivery state: a bounded queue and, per
// conversation, the next seq the socket expects. Its cursors are owned by
// the goroutine in Run.
type Session struct {
	hub  *Hub
	user string

	qmu sync.Mutex // guards queue and head
	// queue[head:] are the frames waiting to be written, oldest first:
	// shared, read-only items, 8 bytes a slot. It grows only as frames
	// wait, up to Config.QueueSize, and an idle session keeps at most
	// idleQueueCap slots (see pop).
	queue []*item
	head  int
	// ready holds a token while frames may be waiting: Run's wake-up.
	ready chan struct{}

	cursors map[string]uint64
	// liveFrom is, for a conversation whose events began reaching the
	// socket live before the client resumed it, the first seq written:
	// a later resume from an older seq owes the client what came before.
	liveFrom map[string]uint64
	// start is when the session began: under targeted routing, the
	// boundary of what it owes the client in conversations it did not
	// resume (see Feed.firstEvent).
	start time.Time

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
}

// NewSession registers a session of user with the hub. Run delivers to
// the socket; Close unregisters it.
func (h *Hub) NewSession(user string) *Session {
	s := &Session{
		hub:      h,
		user:     user,
		ready:    make(chan struct{}, 1),
		cursors:  make(map[string]uint64),
		liveFrom: make(map[string]uint64),
		start:    time.Now(),
		failed:   make(chan struct{}),
	}
	h.register(s)
	h.cfg.Metrics.Connections.Inc()
	return s
}

// Close unregisters the session. It is idempotent.
func (s *Session) Close() {
	s.fail(context.Canceled)
}

func (s *Session) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
		s.hub.unregister(s)
		s.hub.cfg.Metrics.Connections.Dec()
	})
}

// Done is closed when the session has ended: closed, or failed as a
// slow consumer. Err then says why.
func (s *Session) Done() <-chan struct{} { return s.failed }

// Err is why the session ended, once Done is closed.
func (s *Session) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

// idleQueueCap is the most slots a session keeps once its queue is
// empty: enough that a trickle of frames does not allocate each time,
// little enough that idle sockets cost next to nothing.
const idleQueueCap = 8

// push enqueues without blocking and reports whether the queue had room:
// fewer than Config.QueueSize frames waiting, not counting the one being
// written. A caller that gets false must call overflow, but not while
// holding the hub's lock: ending a session unregisters it, which takes
// that lock.
func (s *Session) push(it *item) bool {
	s.qmu.Lock()
	if len(s.queue)-s.head >= s.hub.cfg.QueueSize {
		s.qmu.Unlock()
		return false
	}
	if len(s.queue) == cap(s.queue) && s.head > 0 {
		// Reuse the slots already written rather than grow.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, it)
	s.qmu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // a token is there already
	}
	return true
}

// pop takes the oldest waiting frame, if any. Once the queue is empty it
// lets go of a backing array grown beyond idleQueueCap by a burst.
func (s *Session) pop() (*item, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.head == len(s.queue) {
		return nil, false
	}
	it := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
		if cap(s.queue) > idleQueueCap {
			s.queue = nil
		}
	}
	return it, true
}

// overflow ends a session whose queue is full.
func (s *Session) overflow() {
	s.hub.cfg.Metrics.SlowConsumers.Inc()
	s.fail(ErrSlowConsumer)
}

// Signal queues a frame that is outside every conversation's sequence
// (typing, presence) for the socket, without blocking; a full queue ends
// the session as a slow consumer.
func (s *Session) Signal(frame []byte) {
	if !s.push(&item{signal: true, frame: frame}) {
		s.overflow()
	}
}

// Resume asks the session to deliver, for each conversation, the events
// after the seq given (the last one the client has), then live ones; when
// it has caught up it writes a "resumed" frame answering request id. The
// caller must have checked that the user is a member of each
// conversation.
func (s *Session) Resume(id string, last map[string]uint64) {
	if !s.push(&item{resume: &resumeRequest{id: id, from: last}}) {
		s.overflow()
	}
}

// Run writes frames to sink until ctx is done, the sink fails or the
// session is ended; it returns why (ErrSlowConsumer for a slow client).
func (s *Session) Run(ctx context.Context, sink Sink) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.failed:
			return s.failErr
		case <-s.ready:
			for {
				it, ok := s.pop()
				if !ok {
					break
				}
				var err error
				if it.resume != nil {
					err = s.resume(ctx, sink, it.resume)
				} else {
					err = s.deliver(ctx, sink, it)
				}
				if err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-s.failed:
					return s.failErr
				default:
				}
			}
		}
	}
}

// deliver writes a live event, first filling any gap before it.
func (s *Session) deliver(ctx context.Context, sink Sink, it *item) error {
	if it.signal {
		return sink.Write(ctx, it.frame)
	}
	next, known := s.cursors[it.conv]
	switch {
	case !known:
		// A conversation the client did not resume: live from here on,
		// after what the feed says the socket is owed.
		if skip, err := s.hub.feed.firstEvent(ctx, s, sink, it); skip || err != nil {
			return err
		}
		s.wroteLive(it.conv, it.seq)
	case it.seq < next:
		return nil // already delivered, by a backfill
	case it.seq > next:
		if err := s.backfill(ctx, sink, it.conv, next, it.seq-1); err != nil {
			return err
		}
		if s.cursors[it.conv] > it.seq {
			return nil
		}
	}
	if err := sink.Write(ctx, it.frame); err != nil {
		return err
	}
	s.cursors[it.conv] = it.seq + 1
	s.delivered(it.conv, it.seq)
	s.hub.cfg.Metrics.Deliveries.Inc()
	if !it.at.IsZero() {
		s.hub.cfg.Metrics.DeliverLatency.Observe(time.Since(it.at).Seconds())
	}
	return nil
}

func (s *Session) resume(ctx context.Context, sink Sink, r *resumeRequest) error {
	caughtUp := make(map[string]uint64, len(r.from))
	for conv, last := range r.from {
		next := last + 1
		if from, ok := s.liveFrom[conv]; ok && from > next {
			// Events from seq from on reached the socket live before the
			// client said where it was: what came before them is owed,
			// after them — late, but never a gap.
			cur := s.cursors[conv]
			if err := s.backfill(ctx, sink, conv, next, from-1); err != nil {
				return err
			}
			s.cursors[conv] = max(cur, s.cursors[conv])
		}
		delete(s.liveFrom, conv)
		if cur, ok := s.cursors[conv]; ok && cur > next {
			next = cur // this socket already has more than the client said
		}
		s.cursors[conv] = next
		target := s.hub.Latest(conv)
		if c, err := s.hub.cfg.History.Conversation(ctx, conv); err == nil && c.LastSeq > target {
			target = c.LastSeq
		}
		if target >= next {
			if err := s.backfill(ctx, sink, conv, next, target); err != nil {
				return err
			}
		}
		caughtUp[conv] = s.cursors[conv] - 1
	}
	return sink.Write(ctx, encodeResumed(r.id, caughtUp))
}

// wroteLive notes that seq of conv was written to the socket live, in a
// conversation it has not resumed.
func (s *Session) wroteLive(conv string, seq uint64) {
	if from, ok := s.liveFrom[conv]; ok && from <= seq {
		return
	}
	s.liveFrom[conv] = seq
}

// backfill writes the events from seq from to seq to (inclusive, from >= 1:
// the creation, seq 0, is never backfilled — the conversation itself is
// served over HTTP) from the history store, announcing with a gap frame
// what it cannot or will not deliver, and leaves the cursor after to.
func (s *Session) backfill(ctx context.Context, sink Sink, conv string, from, to uint64) error {
	if limit := uint64(s.hub.cfg.BackfillLimit); to-from+1 > limit {
		skipTo := to - limit
		if err := sink.Write(ctx, encodeGap(conv, from, skipTo, GapBackfillLimit)); err != nil {
			return err
		}
		from = skipTo + 1
	}
	next := from
	deadline := time.Now().Add(s.hub.cfg.GapWait)
	wait := 5 * time.Millisecond
	for next <= to {
		page, err := s.hub.cfg.History.Page(ctx, conv, history.PageQuery{
			Forward: true, After: next - 1, Limit: int(min(to-next+1, 200)),
		})
		progressed := false
		if err == nil {
			for _, ev := range page.Events {
				if ev.Seq != next || ev.Seq > to {
					break
				}
				if err := sink.Write(ctx, EncodeEvent(ev.ConversationID, ev.Seq, ev.Type, ev.ID, ev.Time, ev.Data)); err != nil {
					return err
				}
				s.delivered(ev.ConversationID, ev.Seq)
				s.hub.cfg.Metrics.Deliveries.Inc()
				next++
				progressed = true
			}
		}
		if progressed {
			continue
		}
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			s.hub.log.Warn("backfill", "conversation_id", conv, "err", err)
		}
		if time.Now().After(deadline) {
			if err := sink.Write(ctx, encodeGap(conv, next, to, GapHistoryUnavailable)); err != nil {
				return err
			}
			next = to + 1
			break
		}
		// The history projection is behind the live stream: wait for it.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.failed:
			return s.failErr
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
	s.cursors[conv] = next
	return nil
}

func (s *Session) delivered(conv string, seq uint64) {
	if f := s.hub.cfg.Delivered; f != nil {
		f(conv, s.user, seq)
	}
}

// String describes the session for logs.
func (s *Session) String() string { return fmt.Sprintf("session(%s)", s.user) }
