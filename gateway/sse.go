// The Server-Sent Events endpoint, GET /v1/events: the socket's push
// frames over a plain HTTP response, for clients that cannot open a
// WebSocket. Sending stays on the HTTP API.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// stream is one SSE response: a delivery.Sink that writes each frame as
// one message. The session's writer and the heartbeat write to it, one
// at a time (mu).
type stream struct {
	s   *Server
	w   http.ResponseWriter
	rc  *http.ResponseController
	mu  sync.Mutex // guards the writes, cur and ended
	cur *cursor
	buf []byte
	// ended is set once the end message is written: nothing follows it.
	ended bool
	// user and device are the stream's: a welcome reaches only the
	// devices it adds (withoutForeignWelcome).
	user, device string
}

// errStreamEnded refuses a frame after a stream's end message.
var errStreamEnded = errors.New("stream ended")

// sseHead is what the cursor needs of a frame.
type sseHead struct {
	Type           string            `json:"type"`
	ConversationID string            `json:"conversation_id"`
	Seq            uint64            `json:"seq"`
	ToSeq          uint64            `json:"to_seq"`
	Conversations  map[string]uint64 `json:"conversations"`
}

// Write implements delivery.Sink: frame becomes a message whose event is
// the frame's type and whose data is the frame. A frame that moves the
// cursor (event, gap, resumed) carries the cursor as its id.
func (st *stream) Write(_ context.Context, frame []byte) error {
	frame = withoutForeignWelcome(frame, st.user, st.device)
	var h sseHead
	if err := json.Unmarshal(frame, &h); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return errStreamEnded
	}
	moved := false
	switch h.Type {
	case "event":
		moved = st.cur.set(h.ConversationID, h.Seq)
	case "gap":
		moved = st.cur.set(h.ConversationID, h.ToSeq)
	case "resumed":
		for conv, seq := range h.Conversations {
			st.cur.set(conv, seq)
		}
		moved = true // the client learns the cursor it resumed from
	}
	b := st.buf[:0]
	if moved {
		b = append(b, "id: "...)
		b = append(b, st.cur.String()...)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, h.Type...)
	b = append(b, '\n')
	// Frames are compact JSON; a newline inside one would end the data
	// field, so each line gets its own (the client joins them with \n).
	for line := range strings.SplitSeq(string(frame), "\n") {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	st.buf = b
	if cap(st.buf) > 64<<10 {
		st.buf = nil // a large frame's buffer is not kept
	}
	return st.write(b)
}

// write writes b and flushes it, within WriteTimeout: the HTTP server's
// own WriteTimeout, if it has one, would cut a long stream, so each write
// sets its deadline. Call it with mu held.
func (st *stream) write(b []byte) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.s.cfg.WriteTimeout))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.rc.Flush()
}

// comment writes an SSE comment, which clients ignore: the heartbeat.
func (st *stream) comment(text string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.write([]byte(": " + text + "\n\n"))
}

// end writes the last message of a stream the server ends: an "end"
// event with the WebSocket close code that would have closed a socket
// and whether reconnecting can help.
func (st *stream) end(code int, reason string) {
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Reason    string `json:"reason"`
		Retryable bool   `json:"retryable"`
	}{"end", code, reason, code < 4500})
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ended = true
	_ = st.write([]byte("event: end\ndata: " + string(b) + "\n\n"))
}

// writeError writes an error frame as an "error" message.
func (st *stream) writeError(e *apiError) {
	b, _ := json.Marshal(errorFrame{Type: "error", Code: e.Code, Message: e.Message, Retryable: e.Retryable, RetryAfterMs: retryAfterMs(e.RetryAfter)})
	st.mu.Lock()
	defer st.mu.Unlock()
	_ = st.write([]byte("event: error\ndata: " + string(b) + "\n\n"))
}

// eventsToken is the token of an SSE request: the Authorization header's,
// else the access_token query parameter's, since a browser's EventSource
// cannot set headers (README "Guarantees and decisions").
func eventsToken(r *http.Request) (string, bool) {
	if tok, ok := bearer(r); ok {
		return tok, true
	}
	tok := r.URL.Query().Get("access_token")
	return tok, tok != ""
}

// serveEvents serves GET /v1/events.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if ip, limited := s.limitedAddress(r); limited {
		if d := s.ipConnects.take(ip); d > 0 {
			writeProblem(w, s.reject("gateway", rateLimited("connections from this address", d)))
			return
		}
	}
	tok, ok := eventsToken(r)
	if !ok {
		writeProblem(w, s.reject("gateway", s.authFailed(r, newError(codeUnauthorized, "an Authorization: Bearer token or an access_token parameter is required"))))
		return
	}
	id, err := s.cfg.Auth.Verify(tok)
	if err != nil {
		writeProblem(w, s.reject("gateway", s.authFailed(r, authError(err))))
		return
	}
	user := id.UserID
	if d := s.userRequests.take(user); d > 0 {
		writeProblem(w, s.reject("gateway", rateLimited("requests", d)))
		return
	}
	q := r.URL.Query()
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("last_event_id")
	}
	from, err := parseCursor(lastID, s.cfg.SSEMaxCursor)
	if err != nil {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "Last-Event-ID: "+err.Error())))
		return
	}
	device := q.Get("device_id")
	if device == "" {
		device = kafkalog.NewID()[:16]
	} else if !schemas.ValidDeviceID(device) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "invalid device_id")))
		return
	}
	var watch []string
	if p := q.Get("presence"); p != "" {
		if s.cfg.Presence == nil {
			writeProblem(w, s.reject("gateway", newError(codeNotFound, "presence is not enabled on this node")))
			return
		}
		var want []string
		for u := range strings.SplitSeq(p, ",") {
			if u = strings.TrimSpace(u); u != "" {
				want = append(want, u)
			}
		}
		var e *apiError
		if watch, e = s.visible(r.Context(), user, want); e != nil {
			writeProblem(w, s.reject("gateway", e))
			return
		}
		if watch == nil {
			watch = []string{} // watching, if no one: the stream still says so
		}
	}
	// The cursor's conversations are checked as a resume frame's are:
	// a member's only, and not beyond their last seq, which would drop
	// live events up to it without a word. Refused ones are reported
	// once the stream is open, and not resumed.
	var refusals []*apiError
	for conv, last := range from {
		c, e := s.member(r.Context(), user, conv)
		if e == nil && last > c.LastSeq {
			e = newError(codeInvalidRequest, "seq "+strconv.FormatUint(last, 10)+" is beyond the conversation's last seq "+strconv.FormatUint(c.LastSeq, 10))
		}
		if e != nil {
			// The id is left out of the message, as of every answer to
			// someone who may not read the conversation; the resumed
			// message lists the conversations that were resumed.
			e.Message = "a conversation of Last-Event-ID: " + e.Message
			refusals = append(refusals, s.reject("gateway", e))
			delete(from, conv)
		}
	}
	if !s.open.acquire(user) {
		writeProblem(w, s.reject("gateway", tooManySockets(s.cfg.MaxSocketsPerUser)))
		return
	}
	defer s.open.release(user)
	// Shutdown waits for streams as for sockets, and ends them.
	s.sockets.Add(1)
	defer s.sockets.Done()
	s.cfg.Metrics.SSEStreams.Inc()
	defer s.cfg.Metrics.SSEStreams.Dec()

	// Registered before the stream opens, so that it is owed every event
	// appended once the client has the answer.
	sess := s.cfg.Hub.NewSession(user)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	st := &stream{s: s, w: w, rc: http.NewResponseController(w), cur: newCursor(s.cfg.SSEMaxCursor, from), user: user, device: device}
	retry := "retry: " + strconv.FormatInt(s.cfg.SSERetry.Milliseconds(), 10) + "\n\n"
	st.mu.Lock()
	err = st.write([]byte(retry))
	st.mu.Unlock()
	if err != nil {
		sess.Close()
		return
	}
	for _, e := range refusals {
		st.writeError(e)
	}
	s.streamEvents(r.Context(), st, sess, id, device, watch, from)
}

// streamEvents runs a stream's session, following the presence of the
// users of watch unless it is nil, until the client goes, the
// session ends, the token expires or the server shuts down.
func (s *Server) streamEvents(ctx context.Context, st *stream, sess Session, id Identity, device string, watch []string, from map[string]uint64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p := s.cfg.Presence; p != nil {
		defer p.Connect(ctx, id.UserID, device)()
		if watch != nil {
			wt, states := p.Watch(watch, func(changes []presence.State) {
				if b, err := json.Marshal(presenceFrame{Type: "presence", Users: changes}); err == nil {
					sess.Signal(b)
				}
			})
			defer wt.Close()
			if b, err := json.Marshal(presenceFrame{Type: "presence", Users: states}); err == nil {
				sess.Signal(b)
			}
		}
	}
	sess.Start(ctx, st, nil)
	defer func() {
		sess.Close()
		cancel()
		// A writer blocked on a client that does not read returns at
		// its write deadline (WriteTimeout) at the latest.
		sess.Wait()
	}()
	if len(from) > 0 {
		sess.Resume("last_event_id", from)
	}
	expiry := time.NewTimer(time.Until(id.ExpiresAt.Add(s.cfg.Auth.Leeway())))
	defer expiry.Stop()
	beat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-beat.C:
			if st.comment("ping") != nil {
				return
			}
		case <-sess.Done():
			if errors.Is(sess.Err(), delivery.ErrSlowConsumer) {
				st.end(int(CloseSlowConsumer), "slow consumer")
			}
			return
		case <-expiry.C:
			st.end(int(CloseTokenExpired), "token expired")
			return
		case <-s.stopping.Done():
			st.end(1001, "server shutting down")
			return
		case <-ctx.Done():
			return // the client went
		}
	}
}

var _ delivery.Sink = (*stream)(nil)
