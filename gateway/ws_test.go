// The WebSocket endpoint over a real socket, with a hub of fakes: how
// frames are refused, and how a socket authenticates or is closed.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
)

// idleSession is a session that delivers no event until closed; the
// frames signalled to it (acks, presence) it writes to its sink at once.
type idleSession struct {
	once sync.Once
	done chan struct{}

	mu   sync.Mutex
	ctx  context.Context
	sink delivery.Sink
}

func (s *idleSession) Start(ctx context.Context, sink delivery.Sink, _ func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.sink = ctx, sink
}
func (s *idleSession) Wait()                            {}
func (s *idleSession) Done() <-chan struct{}            { return s.done }
func (s *idleSession) Err() error                       { return nil }
func (s *idleSession) Close()                           { s.once.Do(func() { close(s.done) }) }
func (s *idleSession) Resume(string, map[string]uint64) {}
func (s *idleSession) Signal(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil {
		_ = s.sink.Write(s.ctx, frame)
	}
}

// emptyHub knows no conversation; sessions deliver nothing.
type emptyHub struct{}

func (emptyHub) Await(string, string, string) (<-chan delivery.Outcome, func()) {
	panic("emptyHub: no command may reach the hub")
}
func (emptyHub) Conversation(context.Context, string) (history.Conversation, error) {
	return history.Conversation{}, history.ErrNotFound
}
func (emptyHub) NewSession(string) Session { return &idleSession{done: make(chan struct{})} }

// noAppends fails the test if anything is appended.
type noAppends struct{ t *testing.T }

func (a noAppends) Enqueue(context.Context, string, string, any, string) (<-chan error, error) {
	a.t.Error("a command was appended")
	return nil, errors.New("no appends")
}

var wsSecret = []byte("websocket-test-secret-of-32-bytes-or-more")

type wsEnv struct {
	t    *testing.T
	s    *Server
	url  string
	auth *Authenticator
}

func newWSEnv(t *testing.T, cfg Config) *wsEnv {
	t.Helper()
	if cfg.Auth == nil {
		auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = auth
	}
	if cfg.Hub == nil {
		cfg.Hub = emptyHub{}
	}
	cfg.Commands, cfg.History = noAppends{t}, &searchHistory{}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		srv.Close()
	})
	return &wsEnv{t: t, s: s, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws", auth: authOf(cfg.Auth)}
}

// authOf is the HS256 Authenticator of v, or nil for another Verifier.
func authOf(v Verifier) *Authenticator { a, _ := v.(*Authenticator); return a }

// token issues a token of user that expires at exp.
func (e *wsEnv) token(user string, exp time.Time) string {
	e.t.Helper()
	// Issued an hour before exp, so that iat and nbf pass.
	tok, err := e.auth.Issue(user, time.Hour, exp.Add(-time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// dial opens a socket, with token in the Authorization header unless it
// is "".
func (e *wsEnv) dial(token string) *websocket.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{}
	if token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	c, _, err := websocket.Dial(ctx, e.url, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func write(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// read returns the next frame, or the error that ended the socket.
func read(t *testing.T, c *websocket.Conn) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("server frame %q: %v", data, err)
	}
	return f, nil
}

func mustRead(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	f, err := read(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wantClose reads until the socket closes and checks its close code.
func wantClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	for {
		f, err := read(t, c)
		if err == nil {
			t.Logf("frame before the close: %v", f)
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("socket ended with %v, want close %d", err, code)
		}
		if ce.Code != code || !strings.Contains(ce.Reason, reason) {
			t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

func TestSocketWithoutAuthIsClosedWith4500(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, Config{AuthTimeout: 200 * time.Millisecond})
	c := e.dial("")
	wantClose(t, c, CloseUnauthorized, "no auth frame within 200ms")
}

func TestFirstFrameMustBeAValidAuth(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, Config{})
	tests := []struct {
		name, frame, code, id, reason string
	}{
		{"a ping", `{"type":"ping","id":"p1"}`, codeInvalidRequest, "p1", "the first frame must be a valid auth frame"},
		{"an auth with an unknown field", `{"type":"auth","id":"a1","token":"x","user":"bob"}`, codeInvalidRequest, "a1", "the first frame must be a valid auth frame"},
		{"an auth with a numeric token", `{"type":"auth","id":"a1","token":1}`, codeInvalidRequest, "a1", "the first frame must be a valid auth frame"},
		{"not JSON", `hello`, codeBadFrame, "", "the first frame must be a valid auth frame"},
		{"a bad token", `{"type":"auth","id":"a2","token":"x.y.z"}`, codeUnauthorized, "a2", "invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := e.dial("")
			write(t, c, tt.frame)
			f := mustRead(t, c)
			if f["type"] != "error" || f["code"] != tt.code || idOf(f) != tt.id {
				t.Errorf("answered %v, want error %s with id %q", f, tt.code, tt.id)
			}
			wantClose(t, c, CloseUnauthorized, tt.reason)
		})
	}
}

func idOf(f map[string]any) string { id, _ := f["id"].(string); return id }

// TestMalformedFramesOverTheSocket sends every malformed variant of every
// frame type on an authenticated socket: each is answered with its error
// frame, the rule's code and id, and the socket stays open.
func TestMalformedFramesOverTheSocket(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, Config{})
	c := e.dial(e.token("alice", time.Now().Add(time.Hour)))
	for typ, variants := range malformedFrames() {
		for _, v := range variants {
			if v.frame == `` {
				continue // an empty text frame is covered by decodeFrame's tests
			}
			write(t, c, v.frame)
			f := mustRead(t, c)
			if f["type"] != "error" || f["code"] != v.code || idOf(f) != v.id || f["retryable"] != false {
				t.Errorf("%s/%s: %s answered with %v, want error %s with id %q", typ, v.name, v.frame, f, v.code, v.id)
			}
			if _, has := f["id"]; has && v.id == "" {
				t.Errorf("%s/%s: an id echoed where the rule echoes none: %v", typ, v.name, f)
			}
		}
	}
	write(t, c, `{"type":"ping","id":"still-open"}`)
	if f := mustRead(t, c); f["type"] != "pong" || f["id"] != "still-open" {
		t.Errorf("ping answered with %v", f)
	}
}

// TestTokenLeewayOnBothTransports issues tokens that expired inside and
// outside a leeway of 10s, and presents them over HTTP, on the upgrade,
// in the first auth frame and in a later one: each transport accepts the
// first and refuses the second as token_expired. (The leeway is 10s, not
// the default 5s, so that a busy machine stays well inside it.)
func TestTokenLeewayOnBothTransports(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret, Leeway: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := newWSEnv(t, Config{Auth: auth})
	for _, tt := range []struct {
		name     string
		ago      time.Duration
		accepted bool
	}{
		{"expired 4s ago, inside the leeway", 4 * time.Second, true},
		{"expired 16s ago, beyond the leeway", 16 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Each transport's token is made right before it is used:
			// parallel tests wait for a free slot, and the leeway is
			// seconds.
			token := func() (tok, exp string) {
				at := time.Now().Add(-tt.ago).Truncate(time.Second)
				return e.token("alice", at), at.UTC().Format(time.RFC3339)
			}

			t.Run("HTTP", func(t *testing.T) {
				t.Parallel()
				tok, _ := token()
				h := e.s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
				req := httptest.NewRequest(http.MethodGet, "/v1/conversations", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var p problem
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				if tt.accepted && rec.Code != http.StatusNoContent {
					t.Errorf("answered %d %s, want the request served", rec.Code, rec.Body)
				}
				if !tt.accepted && (rec.Code != http.StatusUnauthorized || p.Code != codeTokenExpired) {
					t.Errorf("answered %d %s, want 401 token_expired", rec.Code, rec.Body)
				}
			})
			t.Run("upgrade header", func(t *testing.T) {
				t.Parallel()
				tok, _ := token()
				c := e.dial(tok)
				if !tt.accepted {
					wantClose(t, c, CloseTokenExpired, "token expired")
					return
				}
				write(t, c, `{"type":"ping","id":"p"}`)
				if f := mustRead(t, c); f["type"] != "pong" {
					t.Errorf("ping answered with %v", f)
				}
				// Once the leeway after its expiry has passed too.
				wantClose(t, c, CloseTokenExpired, "token expired")
			})
			t.Run("first auth frame", func(t *testing.T) {
				t.Parallel()
				tok, wantExpiry := token()
				c := e.dial("")
				write(t, c, `{"type":"auth","id":"a1","token":"`+tok+`"}`)
				f := mustRead(t, c)
				if tt.accepted {
					if f["type"] != "auth_ok" || f["id"] != "a1" || f["expires_at"] != wantExpiry {
						t.Errorf("answered %v, want auth_ok expiring at the token's exp %s", f, wantExpiry)
					}
				} else if f["type"] != "error" || f["code"] != codeTokenExpired || f["id"] != "a1" {
					t.Errorf("answered %v, want error token_expired with id a1", f)
				}
				wantClose(t, c, CloseTokenExpired, "token expired")
			})
			t.Run("later auth frame", func(t *testing.T) {
				t.Parallel()
				c := e.dial(e.token("alice", time.Now().Add(time.Hour)))
				tok, wantExpiry := token()
				write(t, c, `{"type":"auth","id":"a2","token":"`+tok+`"}`)
				f := mustRead(t, c)
				if tt.accepted {
					if f["type"] != "auth_ok" || f["id"] != "a2" || f["expires_at"] != wantExpiry {
						t.Errorf("answered %v, want auth_ok expiring at the token's exp %s", f, wantExpiry)
					}
					return
				}
				if f["type"] != "error" || f["code"] != codeTokenExpired || f["id"] != "a2" {
					t.Errorf("answered %v, want error token_expired with id a2", f)
				}
				// The socket lives on with its earlier token.
				write(t, c, `{"type":"ping","id":"p"}`)
				if f := mustRead(t, c); f["type"] != "pong" {
					t.Errorf("ping answered with %v", f)
				}
			})
		})
	}
}

// countingHub is emptyHub counting the sessions it hands out.
type countingHub struct {
	emptyHub
	sessions atomic.Int64
}

func (h *countingHub) NewSession(user string) Session {
	h.sessions.Add(1)
	return h.emptyHub.NewSession(user)
}

// TestSessionIsRegisteredBeforeTheClientIsTold: a socket's session is
// registered with the hub by the time the client learns it is
// authenticated — the handshake's answer for a token in the header,
// auth_ok for an auth frame — so that nothing appended once the client
// holds its socket can pass it by. A session registered later, on the
// socket's own goroutine, lost that race now and then under load.
func TestSessionIsRegisteredBeforeTheClientIsTold(t *testing.T) {
	t.Parallel()
	hub := &countingHub{}
	e := newWSEnv(t, Config{Hub: hub})
	for i := range 50 {
		tok := e.token(fmt.Sprint("u", i), time.Now().Add(time.Hour))
		how := "the handshake"
		if i%2 == 0 {
			e.dial(tok)
		} else {
			how = "auth_ok"
			c := e.dial("")
			write(t, c, `{"type":"auth","id":"a","token":"`+tok+`"}`)
			if f := mustRead(t, c); f["type"] != "auth_ok" {
				t.Fatalf("auth frame answered %v, want auth_ok", f)
			}
		}
		if n := hub.sessions.Load(); n != int64(i+1) {
			t.Fatalf("when the client of socket %d had %s the hub had handed out %d sessions, want %d", i+1, how, n, i+1)
		}
	}
}
