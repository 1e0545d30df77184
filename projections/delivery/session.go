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
// conversation, the next seq the socket expects. Its frames are written
// by a writer goroutine that runs only while frames wait (see Start), so
// an idle session has none; writers run one after the other, and own the
// cursors in turn.
type Session struct {
	hub  *Hub
	user string

	qmu sync.Mutex // guards the fields up to writers
	// queue[head:] are the frames waiting to be written, oldest first:
	// shared, read-only items, 8 bytes a slot. It grows only as frames
	// wait, up to Config.QueueSize, and an idle session keeps at most
	// idleQueueCap slots (see pop).
	queue []*item
	head  int
	// ctx, sink and ended are what Start was given (started): a writer
	// writes to sink under ctx.
	ctx     context.Context
	sink    Sink
	ended   func(error)
	started bool
	writing bool // a writer goroutine runs
	closed  bool // the session has ended: no frame is queued any more
	writers sync.WaitGroup

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

// NewSession registers a session of user with the hub. Start (or Run)
// delivers to the socket; Close unregisters it.
func (h *Hub) NewSession(user string) *Session {
	s := &Session{
		hub:      h,
		user:     user,
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
		s.qmu.Lock()
		s.closed = true
		s.queue, s.head = nil, 0
		ended := s.ended
		s.qmu.Unlock()
		s.hub.unregister(s)
		s.hub.cfg.Metrics.Connections.Dec()
		if ended != nil {
			ended(err)
		}
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
// that lock. A session that has ended drops the frame: it has room.
func (s *Session) push(it *item) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.closed {
		return true
	}
	if len(s.queue)-s.head >= s.hub.cfg.QueueSize {
		return false
	}
	if len(s.queue) == cap(s.queue) && s.head > 0 {
		// Reuse the slots already written rather than grow.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, it)
	s.wake()
	return true
}

// wake starts a writer if frames wait and none runs. Call it with qmu
// held.
func (s *Session) wake() {
	if s.started && !s.writing && !s.closed && s.head < len(s.queue) {
		s.writing = true
		s.writers.Go(s.write)
	}
}

// pop takes the oldest waiting frame for the writer, or says that there
// is none: the writer then exits (in the same critical section, so that
// the next push starts another). Once the queue is empty it lets go of a
// backing array grown beyond idleQueueCap by a burst.
func (s *Session) pop() (*item, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.closed || s.head == len(s.queue) {
		s.writing = false
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

// backedUp reports whether half the queue or more is waiting.
func (s *Session) backedUp() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return 2*(len(s.queue)-s.head) >= s.hub.cfg.QueueSize
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

// Start has the session write its frames to sink, under ctx, from now
// on: a writer goroutine runs while frames wait and exits once none do.
// Writes fail once ctx is done, which ends the session. ended, if not
// nil, is told once why the session ended — Close (context.Canceled), a
// failed write, or ErrSlowConsumer — from the goroutine that ended it,
// which may be the hub's: it must not block. Call Start once.
func (s *Session) Start(ctx context.Context, sink Sink, ended func(error)) {
	s.qmu.Lock()
	s.ctx, s.sink, s.ended, s.started = ctx, sink, ended, true
	closed := s.closed
	s.wake()
	s.qmu.Unlock()
	if closed && ended != nil {
		ended(s.failErr) // ended before it started
	}
}

// Wait returns once the session's writer has stopped. Call it after the
// session has ended (Close): no writer starts after that.
func (s *Session) Wait() { s.writers.Wait() }

// Run starts the session writing to sink (see Start), waits until ctx is
// done or the session ends, ends it and waits for its writer: for a
// caller that has a goroutine to give. It returns why the session ended
// (ErrSlowConsumer for a slow client).
func (s *Session) Run(ctx context.Context, sink Sink) error {
	s.Start(ctx, sink, nil)
	select {
	case <-ctx.Done():
		s.fail(ctx.Err())
	case <-s.failed:
	}
	s.Wait()
	return s.failErr
}

// write is the writer goroutine: it writes the waiting frames, and ends
// the session if one fails.
func (s *Session) write() {
	for {
		it, ok := s.pop()
		if !ok {
			return
		}
		if err := s.writeItem(it); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *Session) writeItem(it *item) error {
	select {
	case <-s.failed:
		return s.failErr
	default:
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if it.resume != nil {
		return s.resume(s.ctx, s.sink, it.resume)
	}
	return s.deliver(s.ctx, s.sink, it)
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
		// Live frames queue behind this wait, and a full queue ends the
		// session as a slow consumer: waiting for a history that does
		// not come would cost the client its socket, and it would resume
		// into the same wait. At half the queue, the gap is announced now
		// and the client refetches it.
		if time.Now().After(deadline) || s.backedUp() {
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
