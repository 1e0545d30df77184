// The WebSocket endpoint: authentication by first frame, the client's
// frames, and each socket's delivery session.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// WebSocket close codes (see schemas/asyncapi.yaml). 4000–4499 mean
// "reconnect and resume"; 4500–4999 mean "do not retry without fixing
// something first".
const (
	CloseSlowConsumer      websocket.StatusCode = 4000
	CloseUnauthorized      websocket.StatusCode = 4500
	CloseTokenExpired      websocket.StatusCode = 4501
	CloseProtocolViolation websocket.StatusCode = 4502
)

type errorFrame struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
	// RetryAfterMs is how long to wait before sending the same request
	// again, when the server knows (rate_limited, overloaded).
	RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
}

type ackFrame struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	Duplicate      bool   `json:"duplicate"`
}

type authOKFrame struct {
	Type      string    `json:"type"`
	ID        string    `json:"id,omitempty"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// socket is one WebSocket connection's state. One goroutine serves it,
// reading the client's frames; its session writes on a goroutine of its
// own only while frames wait, and requests are answered on theirs. What
// ends a socket from elsewhere — shutdown, the token's expiry, a slow
// consumer, a failed write — closes its connection (end), which ends the
// read: an idle socket parks no goroutine but its reader, and no timer
// that ticks.
type socket struct {
	s        *Server
	c        *websocket.Conn
	id       Identity
	inflight chan struct{}
	work     sync.WaitGroup
	lanes    lanes // orders each conversation's commands up to their append
	sess     Session
	expiry   *time.Timer
	mu       sync.Mutex // guards id, expiry, watch, authed and the ending below
	device   string
	watch    *presence.Watch
	authed   bool
	// counted is the user whose socket count (Server.open) this socket
	// is in, once it is; set by the reader only.
	counted string
	// disconnect ends the socket's presence, when presence is on.
	disconnect func()
	// ended is set once the socket is to close, with how: by end, or by
	// finish when the reader stopped first.
	ended  bool
	code   websocket.StatusCode
	reason string
	// cancel cancels the socket's context, once its connection is
	// closed.
	cancel context.CancelFunc

	wmu sync.Mutex // guards the write-deadline context below
	// wctx is the context writes under wparent run with until wrenew; it
	// expires at wdeadline (see writeCtx).
	wparent           context.Context
	wctx              context.Context
	wcancel           context.CancelFunc
	wrenew, wdeadline time.Time
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ip, limited := s.limitedAddress(r)
	if !limited {
		ip = "" // firstFrameAuth counts no failure either
	} else if d := s.ipConnects.take(ip); d > 0 {
		writeProblem(w, s.reject("gateway", rateLimited("connections from this address", d)))
		return
	}
	tok, hasTok := bearer(r)
	up := upgrade{ip: ip, hasToken: hasTok, device: r.URL.Query().Get("device_id")}
	if hasTok {
		// Verified before the upgrade, so that a user over the socket
		// limit is refused with a 429 rather than a socket; an invalid
		// token still gets its socket and close code (open), unless the
		// address has failed too often.
		up.id, up.verr = s.cfg.Auth.Verify(tok)
		if up.verr != nil {
			if e := s.authFailed(r, nil); e != nil {
				writeProblem(w, s.reject("gateway", e))
				return
			}
		} else if !s.open.acquire(up.id.UserID) {
			writeProblem(w, s.reject("gateway", tooManySockets(s.cfg.MaxSocketsPerUser)))
			return
		} else {
			up.counted = true
			// Registered before the handshake completes, so that every
			// event appended once the client has its socket is owed to
			// it; frames wait for the socket to start the session.
			up.sess = s.cfg.Hub.NewSession(up.id.UserID)
		}
	}
	w = socketBuffers{ResponseWriter: w, read: s.cfg.ReadBufferSize, write: s.cfg.WriteBufferSize}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Authentication is by bearer token, never by cookie, so a page
		// of another origin gains nothing by opening a socket: no
		// origin check is needed and browsers on any origin may connect.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		if up.counted {
			s.open.release(up.id.UserID)
		}
		if up.sess != nil {
			up.sess.Close()
		}
		return // Accept has written the HTTP error
	}
	// The socket outlives this handler: it is served on a goroutine of
	// its own, and the handler returns, so that net/http's request,
	// response and connection state, and the handler's stack (grown by
	// the HTTP server and the router), are not kept for the socket's
	// life. What the socket needs of the request is taken before.
	s.sockets.Go(func() { s.serveSocket(c, up) })
}

// tooManySockets is the answer to a user who has max sockets open on
// this node already: at the upgrade a 429, after a first-frame auth an
// error frame before the close with 1013 (try again later).
func tooManySockets(max int) *apiError {
	e := newError(codeRateLimited, "too many sockets: this user has "+strconv.Itoa(max)+" open on this node; close one first")
	e.RetryAfter = socketLimitRetryAfter
	return e
}

// socketLimitRetryAfter is the retry hint of tooManySockets: when a
// socket of the user closes is unknown, so it only keeps a client that
// heeds it from reconnecting in a loop.
const socketLimitRetryAfter = 10 * time.Second

// upgrade is what a socket keeps of its upgrade request.
type upgrade struct {
	ip string // the client's address (clientIP); "" if exempt
	// hasToken is set when the request had an Authorization header; id
	// and verr are its token's verification.
	hasToken bool
	id       Identity
	verr     error
	// counted is set when id's socket is counted (Server.open) already.
	counted bool
	// sess is id's session, registered with the hub at the upgrade when
	// the token was valid (see socket.open).
	sess   Session
	device string // the device_id query parameter
}

// serveSocket serves an accepted socket until it closes.
func (s *Server) serveSocket(c *websocket.Conn, up upgrade) {
	// A frame may carry a body of MaxBodyBytes with JSON escaping; larger
	// frames close the socket with 1009, smaller oversized bodies get a
	// too_large error frame and the socket stays open.
	c.SetReadLimit(int64(4*s.cfg.Limits.MaxBodyBytes + 4096))

	// The socket's context is its own: the request's ends when the
	// handler returns. Shutdown is not seen through it either:
	// cancelling the context of a Read tears the connection down before
	// a close frame can be sent. Shutdown closes the socket (end), which
	// ends the read.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	k := &socket{s: s, c: c, inflight: make(chan struct{}, s.cfg.MaxInFlight), cancel: cancel}
	if up.counted {
		k.counted = up.id.UserID
	}
	defer func() {
		if k.counted != "" {
			s.open.release(k.counted)
		}
	}()
	stop := context.AfterFunc(s.stopping, k.shutdown)
	defer stop()
	code, reason := k.finish(k.run(ctx, up))
	if code != websocket.StatusNormalClosure {
		s.log.Debug("closing socket", "user_id", k.id.UserID, "code", int(code), "reason", reason)
	}
	// Close before cancelling: cancelling a Read's context tears the
	// connection down without a close frame, and the client needs the
	// code to know whether to resume. When end has closed it already,
	// this waits for that.
	_ = c.Close(code, reason)
	cancel()
	k.work.Wait()
	if k.sess != nil {
		k.sess.Wait()
	}
}

// end closes the socket with code and reason, unless it is closing
// already, and returns at once: the close handshake runs on a goroutine
// of the socket's, then the socket's context is cancelled. The reader
// sees its read end and the socket closes with this code. It is safe to
// call from any goroutine, the hub's included.
func (k *socket) end(code websocket.StatusCode, reason string) {
	k.closeWith(code, reason, true)
}

// shutdown closes the socket as the server stops: with going-away, or,
// before it has authenticated, by dropping it — it has nothing to
// resume.
func (k *socket) shutdown() {
	k.mu.Lock()
	authed := k.authed
	k.mu.Unlock()
	k.closeWith(websocket.StatusGoingAway, "server shutting down", authed)
}

func (k *socket) closeWith(code websocket.StatusCode, reason string, handshake bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ended {
		return
	}
	k.ended, k.code, k.reason = true, code, reason
	// Under mu, so that it is counted before finish lets serveWS wait.
	k.work.Go(func() {
		if handshake {
			_ = k.c.Close(code, reason)
		} else {
			_ = k.c.CloseNow()
		}
		k.cancel()
	})
}

// finish settles how the socket closes once its reader has stopped: as
// end said if it came first, else with code and reason.
func (k *socket) finish(code websocket.StatusCode, reason string) (websocket.StatusCode, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.ended {
		k.ended, k.code, k.reason = true, code, reason
	}
	return k.code, k.reason
}

// sessionEnded is told why the socket's session ended; it must not
// block (see SessionLifecycle.Start).
func (k *socket) sessionEnded(ctx context.Context, err error) {
	switch {
	case errors.Is(err, delivery.ErrSlowConsumer):
		k.end(CloseSlowConsumer, "slow consumer")
	case errors.Is(err, context.Canceled):
		// Closed by the socket itself, which knows why.
	default:
		k.end(k.closeFor(ctx, err))
	}
}

// run serves the socket until it should close, and says how.
func (k *socket) run(ctx context.Context, up upgrade) (websocket.StatusCode, string) {
	var code websocket.StatusCode
	var reason string
	var ok bool
	onOwnStack(func() { code, reason, ok = k.open(ctx, up) })
	if !ok {
		if k.sess != nil {
			k.sess.Close()
		}
		return code, reason
	}
	defer onOwnStack(k.closeSession)
	return k.finish(k.closeFor(ctx, k.readLoop(ctx)))
}

// onOwnStack runs f on a goroutine of its own and waits for it. A
// goroutine's stack keeps the size its deepest call gave it until a
// collection finds it mostly unused, which a parked reader's never is:
// what the reader does besides reading (authentication, JSON, the
// stores, presence) runs here, so that its stack stays at the few KiB
// waiting for a frame takes, for the socket's life.
func onOwnStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// open authenticates the socket and starts its session and presence,
// or says how to close it (false). The session is registered with the
// hub before the client learns that it is authenticated (the
// handshake's answer or auth_ok), so that it is owed every event
// appended from then on.
func (k *socket) open(ctx context.Context, up upgrade) (websocket.StatusCode, string, bool) {
	if up.hasToken {
		if up.verr != nil {
			code, reason := authClose(up.verr)
			return code, reason, false
		}
		k.id, k.sess = up.id, up.sess
	} else if code, reason, ok := k.firstFrameAuth(ctx, up.ip); !ok {
		return code, reason, false
	}
	if k.device == "" {
		k.device = up.device
	}
	if k.device == "" {
		k.device = kafkalog.NewID()[:16]
	} else if !schemas.ValidDeviceID(k.device) {
		return CloseProtocolViolation, "invalid device_id", false
	}
	k.mu.Lock()
	k.authed = true
	k.expiry = time.AfterFunc(k.untilExpiry(k.id.ExpiresAt), func() { k.end(CloseTokenExpired, "token expired") })
	k.mu.Unlock()

	if p := k.s.cfg.Presence; p != nil {
		k.disconnect = p.Connect(ctx, k.id.UserID, k.device)
	}
	k.sess.Start(ctx, k, func(err error) { k.sessionEnded(ctx, err) })
	return 0, "", true
}

// closeSession undoes open once the socket is to close: run settles
// how first, since closing the session tells sessionEnded, which must
// not be taken for why.
func (k *socket) closeSession() {
	if k.disconnect != nil {
		k.unwatch()
		k.disconnect()
	}
	k.sess.Close()
	k.expiry.Stop()
}

func (k *socket) closeFor(ctx context.Context, err error) (websocket.StatusCode, string) {
	if k.s.stopping.Err() != nil {
		return websocket.StatusGoingAway, "server shutting down"
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return websocket.StatusNormalClosure, ""
	}
	if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
		return websocket.StatusMessageTooBig, "frame too big"
	}
	if errors.Is(err, errProtocol) {
		return CloseProtocolViolation, "a socket cannot change user"
	}
	if ctx.Err() != nil {
		return websocket.StatusGoingAway, "closing"
	}
	return websocket.StatusInternalError, "internal error"
}

// errProtocol ends a socket whose client broke the protocol.
var errProtocol = errors.New("protocol violation")

func authClose(err error) (websocket.StatusCode, string) {
	if errors.Is(err, ErrTokenExpired) {
		return CloseTokenExpired, "token expired"
	}
	return CloseUnauthorized, "invalid token"
}

// untilExpiry is how long a socket authenticated with a token expiring
// at exp stays open: until exp plus the leeway the token was accepted
// with.
func (k *socket) untilExpiry(exp time.Time) time.Duration {
	return time.Until(exp.Add(k.s.cfg.Auth.Leeway()))
}

// readCtx is the context the socket's reads run under: ctx's values
// without its cancellation. What ends a socket closes its connection,
// which ends a read; a context that can be cancelled would cost every
// read a registration with it (the library's context.AfterFunc).
func readCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// firstFrameAuth authenticates a socket with its first frame, which must
// be a valid auth frame within AuthTimeout, or says how to close it. A
// first frame that is not is answered with its error frame first.
func (k *socket) firstFrameAuth(ctx context.Context, ip string) (websocket.StatusCode, string, bool) {
	// The timeout closes the socket rather than cancel the read: a Read
	// whose context ends tears the connection down before a close frame
	// can be sent, and the client is owed 4500.
	timeout := time.AfterFunc(k.s.cfg.AuthTimeout, func() {
		k.end(CloseUnauthorized, "no auth frame within "+k.s.cfg.AuthTimeout.String())
	})
	typ, data, err := k.c.Read(readCtx(ctx))
	if !timeout.Stop() || err != nil {
		// Timed out, dropped by shutdown (finish says which), or closed
		// by the client.
		return websocket.StatusNormalClosure, "", false
	}
	refuse := func(id string, e *apiError) (websocket.StatusCode, string, bool) {
		if ip != "" {
			k.s.ipAuthFailures.take(ip) // the socket closes all the same
		}
		_ = k.writeError(ctx, id, k.s.reject("gateway", e))
		switch e.Code {
		case codeTokenExpired:
			return CloseTokenExpired, "token expired", false
		case codeUnauthorized:
			return CloseUnauthorized, "invalid token", false
		}
		return CloseUnauthorized, "the first frame must be a valid auth frame", false
	}
	if typ != websocket.MessageText {
		return refuse("", newError(codeBadFrame, "frames are JSON text"))
	}
	fr, e := decodeFrame(data)
	if e != nil {
		return refuse(fr.ID, e)
	}
	if fr.Type != "auth" {
		return refuse(fr.ID, newError(codeInvalidRequest, "the first frame must be auth"))
	}
	id, err := k.s.cfg.Auth.Verify(fr.Token)
	if err != nil {
		return refuse(fr.ID, authError(err))
	}
	if !k.s.open.acquire(id.UserID) {
		_ = k.writeError(ctx, fr.ID, k.s.reject("gateway", tooManySockets(k.s.cfg.MaxSocketsPerUser)))
		return websocket.StatusTryAgainLater, "too many sockets", false
	}
	k.counted = id.UserID
	k.id = id
	if fr.DeviceID != "" {
		k.device = fr.DeviceID
	}
	k.sess = k.s.cfg.Hub.NewSession(id.UserID)
	if err := k.writeJSON(ctx, authOKFrame{Type: "auth_ok", ID: fr.ID, UserID: id.UserID, ExpiresAt: id.ExpiresAt.UTC()}); err != nil {
		return websocket.StatusNormalClosure, "", false
	}
	return 0, "", true
}

// Write implements delivery.Sink. Each write is bounded by between
// WriteTimeout/2 and WriteTimeout (see writeCtx).
func (k *socket) Write(ctx context.Context, frame []byte) error {
	frame = withoutForeignWelcome(frame, k.id.UserID, k.device)
	return k.c.Write(k.writeCtx(ctx), websocket.MessageText, frame)
}

// writeCtx returns a context with a deadline for a write under ctx: one
// shared by every write of the socket under a context that ends with
// ctx (see endsWith), renewed once half of WriteTimeout has passed, so a
// write gets at least half of it. A context.WithTimeout per frame was
// ~10% of the server's CPU under fan-out (BENCHMARKS.md, scenario (b)).
// A replaced context is never cancelled early, since a concurrent write
// may still be using it (cancelling would close the socket): its own
// deadline releases it.
func (k *socket) writeCtx(ctx context.Context) context.Context {
	now := time.Now()
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if k.wctx != nil && endsWith(k.wparent, ctx) && now.Before(k.wrenew) {
		return k.wctx
	}
	if k.wcancel != nil && !now.Before(k.wdeadline) {
		k.wcancel() // expired already: only releases it
	}
	k.wparent = ctx
	k.wdeadline = now.Add(k.s.cfg.WriteTimeout)
	k.wrenew = now.Add(k.s.cfg.WriteTimeout / 2)
	k.wctx, k.wcancel = context.WithDeadline(ctx, k.wdeadline)
	return k.wctx
}

// endsWith reports whether contexts a and b end together: the same Done
// channel and deadline. A context.WithValue ends with its parent, so the
// acks written under a request's context (a value over the socket's)
// share the write context of the events written under the socket's; a
// write uses its context for nothing but its end.
func endsWith(a, b context.Context) bool {
	if a == b {
		return true
	}
	da, oka := a.Deadline()
	db, okb := b.Deadline()
	return a.Done() == b.Done() && oka == okb && da.Equal(db)
}

func (k *socket) writeJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return k.Write(ctx, b)
}

func (k *socket) writeError(ctx context.Context, id string, e *apiError) error {
	return k.writeJSON(ctx, errorFrame{Type: "error", ID: id, Code: e.Code, Message: e.Message, Retryable: e.Retryable, RetryAfterMs: retryAfterMs(e.RetryAfter)})
}

// retryAfterMs is d in whole milliseconds, rounded up.
func retryAfterMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// readLoop reads the client's frames and serves each (on its own
// stack: see onOwnStack) until the socket ends. Each frame is read into
// a buffer of the server's pool (see frameBuffers), taken once the frame
// has begun and given back once it is served: an idle socket holds
// none, and serving a frame keeps none of its bytes (decodeFrame copies
// what it keeps).
func (k *socket) readLoop(ctx context.Context) error {
	rctx := readCtx(ctx)
	for {
		typ, r, err := k.c.Reader(rctx)
		if err != nil {
			return err
		}
		buf := k.s.frameBuffers.get()
		data, err := readFrame(r, *buf)
		if err == nil {
			onOwnStack(func() { err = k.frame(ctx, typ, data) })
		}
		*buf = data
		k.s.frameBuffers.put(buf)
		if err != nil {
			return err
		}
	}
}

// readFrame reads r to its end into buf, from its start, growing it as
// io.ReadAll does, and returns what it read.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// frameBuffers are the buffers the sockets read their frames into,
// shared by the sockets of a server.
type frameBuffers struct{ pool sync.Pool }

// maxPooledFrame is the largest buffer given back to frameBuffers: a
// frame of a few hundred bytes is the rule, and one that needed more
// leaves its buffer to the collector rather than pin it in the pool.
const maxPooledFrame = 16 << 10

func (f *frameBuffers) get() *[]byte {
	if b, ok := f.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (f *frameBuffers) put(b *[]byte) {
	if cap(*b) <= maxPooledFrame {
		f.pool.Put(b)
	}
}

// frame serves one frame of the client.
func (k *socket) frame(ctx context.Context, typ websocket.MessageType, data []byte) error {
	if typ != websocket.MessageText {
		return k.writeError(ctx, "", k.s.reject("gateway", newError(codeBadFrame, "frames are JSON text")))
	}
	f, e := decodeFrame(data)
	if e != nil {
		return k.writeError(ctx, f.ID, k.s.reject("gateway", e))
	}
	return k.handle(ctx, k.sess, f)
}

func (k *socket) handle(ctx context.Context, sess Session, f clientFrame) error {
	switch f.Type {
	case "ping":
		return k.writeJSON(ctx, pongFrame{Type: "pong", ID: f.ID})
	case "send":
		return k.ordered(ctx, f, func(ctx context.Context) (sendResponse, *apiError) {
			return k.s.send(ctx, k.id.UserID, f.ConversationID, f.CommandID, f.Body, f.ReplyTo, f.Attachments, "")
		})
	case "edit", "delete", "react", "unreact":
		return k.ordered(ctx, f, func(ctx context.Context) (sendResponse, *apiError) {
			return k.messageCommand(ctx, f)
		})
	case "read":
		return k.async(ctx, f, func(ctx context.Context) (sendResponse, *apiError) {
			seq, e := k.s.read(ctx, k.id.UserID, f.ConversationID, f.Seq)
			return sendResponse{ConversationID: f.ConversationID, Seq: seq}, e
		})
	case "resume":
		if d := k.s.userRequests.take(k.id.UserID); d > 0 {
			return k.writeError(ctx, f.ID, k.s.reject("gateway", rateLimited("requests", d)))
		}
		good := make(map[string]uint64, len(f.Conversations))
		for conv, last := range f.Conversations {
			c, e := k.s.member(ctx, k.id.UserID, conv)
			if e == nil && last > c.LastSeq {
				// A cursor ahead of the conversation would drop live
				// events up to it without a word.
				e = newError(codeInvalidRequest, "seq "+strconv.FormatUint(last, 10)+" is beyond the conversation's last seq "+strconv.FormatUint(c.LastSeq, 10))
			}
			if e != nil {
				e.Message = conv + ": " + e.Message
				if err := k.writeError(ctx, f.ID, k.s.reject("gateway", e)); err != nil {
					return err
				}
				continue
			}
			good[conv] = last
		}
		sess.Resume(f.ID, good)
		return nil
	case "typing":
		return k.typing(ctx, f)
	case "presence_set":
		// Each one is published to chat.presence: a command like the
		// others, though answered only when refused.
		if d := k.s.userCommands.take(k.id.UserID); d > 0 {
			return k.writeError(ctx, f.ID, k.s.reject("gateway", rateLimited("commands", d)))
		}
		return k.presenceSet(ctx, f)
	case "presence_watch":
		if d := k.s.userRequests.take(k.id.UserID); d > 0 {
			return k.writeError(ctx, f.ID, k.s.reject("gateway", rateLimited("requests", d)))
		}
		return k.presenceWatch(ctx, sess, f)
	case "auth":
		id, err := k.s.cfg.Auth.Verify(f.Token)
		if err != nil {
			return k.writeError(ctx, f.ID, k.s.reject("gateway", authError(err)))
		}
		if id.UserID != k.id.UserID {
			return fmt.Errorf("%w: a socket cannot change user", errProtocol)
		}
		// A fresh token for the same user extends the socket's life.
		k.mu.Lock()
		k.id.ExpiresAt = id.ExpiresAt
		k.expiry.Reset(k.untilExpiry(id.ExpiresAt))
		k.mu.Unlock()
		return k.writeJSON(ctx, authOKFrame{Type: "auth_ok", ID: f.ID, UserID: id.UserID, ExpiresAt: id.ExpiresAt.UTC()})
	default: // a type decodeFrame knows and handle does not
		return k.writeError(ctx, f.ID, k.s.reject("gateway", newError(codeUnknownType, "unknown frame type "+f.Type)))
	}
}

// async serves a request frame that waits for an answer on its own
// goroutine, answering with an ack or an error frame.
func (k *socket) async(ctx context.Context, f clientFrame, do func(context.Context) (sendResponse, *apiError)) error {
	if ok, err := k.admit(ctx, f); !ok {
		return err
	}
	k.work.Go(func() { k.answer(ctx, f, do) })
	return nil
}

// ordered serves a command frame like async, on its conversation's lane:
// the commands this socket sends to one conversation are appended in the
// order it received them, each as soon as the one before has its place
// in the log's order (or is refused), without waiting for the broker or
// for its answer (see lanes).
func (k *socket) ordered(ctx context.Context, f clientFrame, do func(context.Context) (sendResponse, *apiError)) error {
	if ok, err := k.admit(ctx, f); !ok {
		return err
	}
	k.lanes.run(&k.work, f.ConversationID, func() {
		done := make(chan struct{})
		var once sync.Once
		signal := func() { once.Do(func() { close(done) }) }
		k.work.Go(func() {
			defer signal() // answered without appending: the lane goes on
			k.answer(withAppended(ctx, signal), f, do)
		})
		<-done
	})
	return nil
}

// admit checks that request frame f can be served and takes an in-flight
// slot, or says why not (false). In-flight requests are bounded: when
// full, the server stops reading this socket until answers come
// (backpressure, not an error).
func (k *socket) admit(ctx context.Context, f clientFrame) (bool, error) {
	if f.ID == "" {
		return false, k.writeError(ctx, "", k.s.reject("gateway", newError(codeInvalidRequest, "a "+f.Type+" frame needs an id")))
	}
	// Every frame admitted is a command: counted against the user's
	// rate, before it takes a slot; a refused one appends nothing and
	// the socket stays open.
	if d := k.s.userCommands.take(k.id.UserID); d > 0 {
		return false, k.writeError(ctx, f.ID, k.s.reject("gateway", rateLimited("commands", d)))
	}
	select {
	case k.inflight <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// answer answers f with do's outcome, an ack or an error frame, and
// gives its in-flight slot back.
func (k *socket) answer(ctx context.Context, f clientFrame, do func(context.Context) (sendResponse, *apiError)) {
	defer func() { <-k.inflight }()
	out, e := do(ctx)
	if e != nil {
		_ = k.writeError(ctx, f.ID, e)
		return
	}
	_ = k.writeJSON(ctx, ackFrame{Type: "ack", ID: f.ID, ConversationID: out.ConversationID, Seq: out.Seq, Duplicate: out.Duplicate})
}

// messageCommand serves the edit, delete, react and unreact frames.
func (k *socket) messageCommand(ctx context.Context, f clientFrame) (sendResponse, *apiError) {
	if f.Seq == nil || *f.Seq == 0 {
		return sendResponse{}, k.s.reject("gateway", newError(codeInvalidRequest, "seq names the message: a positive integer"))
	}
	user, conv, seq := k.id.UserID, f.ConversationID, *f.Seq
	var typ string
	var cmd schemas.Command
	switch f.Type {
	case "edit":
		if e := k.s.checkBody(f.Body); e != nil {
			return sendResponse{}, k.s.reject("gateway", e)
		}
		typ, cmd = schemas.TypeEditMessage, &schemas.EditMessageV1{CommandID: f.CommandID, UserID: user, ConversationID: conv, MessageSeq: seq, Body: f.Body, IssuedAt: now()}
	case "delete":
		typ, cmd = schemas.TypeDeleteMessage, &schemas.DeleteMessageV1{CommandID: f.CommandID, UserID: user, ConversationID: conv, MessageSeq: seq, IssuedAt: now()}
	default:
		if !schemas.ValidEmoji(f.Emoji) {
			return sendResponse{}, k.s.reject("gateway", newError(codeInvalidRequest, "a reaction is one emoji, up to 64 bytes"))
		}
		typ = schemas.TypeAddReaction
		if f.Type == "unreact" {
			typ = schemas.TypeRemoveReaction
		}
		cmd = &schemas.ReactV1{CommandID: f.CommandID, UserID: user, ConversationID: conv, MessageSeq: seq, Emoji: f.Emoji, IssuedAt: now()}
	}
	return k.s.conversationCommand(ctx, user, conv, f.CommandID, typ, cmd, func(c history.Conversation) *conversation.Refusal {
		m := k.s.message(ctx, c, seq)
		switch typ {
		case schemas.TypeEditMessage:
			return k.s.cfg.Limits.Edit(&c.State, user, seq, m, f.Body, time.Now())
		case schemas.TypeDeleteMessage:
			return c.Delete(user, seq, m)
		}
		return k.s.cfg.Limits.React(&c.State, user, seq, m, f.Emoji, typ == schemas.TypeAddReaction)
	})
}

var _ delivery.Sink = (*socket)(nil)
