// The SSE endpoint with a hub of fakes, over HTTP/1.1 and HTTP/2 with
// TLS: how a stream is refused, framed, kept alive and ended.

package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
)

// scriptedSession writes its frames as soon as it starts, records what
// it is asked to resume, and then idles until closed.
type scriptedSession struct {
	idleSession
	frames  [][]byte
	writer  sync.WaitGroup
	resumed chan map[string]uint64
	// fail, if set, ends the session as soon as it starts.
	fail error
}

func (s *scriptedSession) Err() error { return s.fail }

func (s *scriptedSession) Start(ctx context.Context, sink delivery.Sink, _ func(error)) {
	if s.fail != nil {
		s.once.Do(func() { close(s.done) })
		return
	}
	s.writer.Go(func() {
		for _, f := range s.frames {
			if sink.Write(ctx, f) != nil {
				return
			}
		}
	})
}
func (s *scriptedSession) Wait()                                   { s.writer.Wait() }
func (s *scriptedSession) Resume(_ string, last map[string]uint64) { s.resumed <- last }

// scriptedHub knows conversations c1 and c2, each at seq 10, with
// member ann; its sessions write frames.
type scriptedHub struct {
	emptyHub
	frames   [][]byte
	resumed  chan map[string]uint64
	fail     error
	sessions *atomic.Int64 // how many NewSession handed out
}

func (h scriptedHub) Conversation(_ context.Context, id string) (history.Conversation, error) {
	if id != "c1" && id != "c2" {
		return history.Conversation{}, history.ErrNotFound
	}
	c := searchConv(id, "ann")
	c.LastSeq = 10
	return c, nil
}

func (h scriptedHub) NewSession(string) Session {
	h.sessions.Add(1)
	return &scriptedSession{idleSession: idleSession{done: make(chan struct{})}, frames: h.frames, resumed: h.resumed, fail: h.fail}
}

type sseEnv struct {
	t      *testing.T
	s      *Server
	srv    *httptest.Server
	auth   *Authenticator
	hub    scriptedHub
	client *http.Client
}

// newSSEEnv serves a gateway over HTTP/1.1, or HTTP/2 with TLS.
func newSSEEnv(t *testing.T, cfg Config, http2 bool, frames ...string) *sseEnv {
	return newSSEEnvWith(t, cfg, http2, 0, frames...)
}

// newSSEEnvWith is newSSEEnv with the HTTP server's WriteTimeout.
func newSSEEnvWith(t *testing.T, cfg Config, http2 bool, writeTimeout time.Duration, frames ...string) *sseEnv {
	t.Helper()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret, Leeway: NoLeeway})
	if err != nil {
		t.Fatal(err)
	}
	hub := scriptedHub{resumed: make(chan map[string]uint64, 1), sessions: new(atomic.Int64)}
	for _, f := range frames {
		hub.frames = append(hub.frames, []byte(f))
	}
	cfg.Auth, cfg.Commands, cfg.Hub, cfg.History = auth, noAppends{t}, hub, &searchHistory{}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.WriteTimeout = writeTimeout
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		srv.Close()
	})
	return &sseEnv{t: t, s: s, srv: srv, auth: auth, hub: hub, client: srv.Client()}
}

func (e *sseEnv) token(user string, exp time.Time) string {
	e.t.Helper()
	tok, err := e.auth.Issue(user, time.Hour, exp.Add(-time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// get requests /v1/events with query and headers (key, value pairs).
func (e *sseEnv) get(query string, headers ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+"/v1/events"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

type sseMsg struct {
	id, event, data string
	hasID           bool
	comment         string
}

// messages reads resp's messages and comments until one satisfies stop,
// or the stream ends.
func messages(t *testing.T, resp *http.Response, stop func(sseMsg) bool) []sseMsg {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, func() { _ = resp.Body.Close() })
	defer timer.Stop()
	var out []sseMsg
	var m sseMsg
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			out = append(out, m)
			if stop(m) {
				return out
			}
			m = sseMsg{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			m.comment = value
		case "id":
			m.id, m.hasID = value, true
		case "event":
			m.event = value
		case "data":
			m.data = value
		}
	}
	return out
}

func TestSSEStreamsFramesWithTheCursorAsID(t *testing.T) {
	t.Parallel()
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2 over TLS"}[h2]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newSSEEnv(t, Config{SSEHeartbeat: 20 * time.Millisecond, SSERetry: 1500 * time.Millisecond}, h2,
				`{"type":"event","conversation_id":"c1","seq":11}`,
				`{"type":"user_typing","conversation_id":"c2","user_id":"bob"}`,
				`{"type":"gap","conversation_id":"c2","from_seq":5,"to_seq":9,"reason":"backfill_limit"}`,
				"{\"type\":\"event\",\"conversation_id\":\"c1\",\"seq\":12,\"data\":{\"body\":\"two\\nlines\"}}",
				`{"type":"resumed","id":"last_event_id","conversations":{"c1":12,"c2":9}}`,
			)
			resp := e.get("", "Authorization", "Bearer "+e.token("ann", time.Now().Add(time.Hour)), "Last-Event-ID", "1.c1:10")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("served over %s", resp.Proto)
			}
			// Up to the first heartbeat after the frames, without the
			// heartbeats, which may come between them.
			resumed := false
			var got []sseMsg
			for _, m := range messages(t, resp, func(m sseMsg) bool {
				resumed = resumed || m.event == "resumed"
				return resumed && m.comment == "ping"
			}) {
				if m.comment != "ping" || m.event != "" {
					got = append(got, m)
				}
			}
			if !resumed {
				t.Fatalf("got %+v, want every frame then a heartbeat", got)
			}
			if r := <-e.hub.resumed; len(r) != 1 || r["c1"] != 10 {
				t.Errorf("resumed %v, want c1 from 10", r)
			}
			want := []sseMsg{
				{comment: ""}, // the retry field's message
				{event: "event", id: "1.c1:11", hasID: true},
				{event: "user_typing"},
				{event: "gap", id: "1.c1:11,c2:9", hasID: true},
				{event: "event", id: "1.c1:12,c2:9", hasID: true},
				{event: "resumed", id: "1.c1:12,c2:9", hasID: true},
			}
			if len(got) != len(want) {
				t.Fatalf("got %d messages %+v, want %d", len(got), got, len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.event != w.event || g.id != w.id || g.hasID != w.hasID || g.comment != w.comment {
					t.Errorf("message %d: %+v, want %+v", i, g, w)
				}
				if g.event != "" && !strings.Contains(g.data, `"type":"`+g.event+`"`) {
					t.Errorf("message %d: data %q is not its frame", i, g.data)
				}
			}
			var f map[string]any
			if err := json.Unmarshal([]byte(got[4].data), &f); err != nil {
				t.Errorf("a frame with an escaped newline: %v", err)
			}
		})
	}
}

func TestSSEEndsWhenTheTokenExpires(t *testing.T) {
	t.Parallel()
	e := newSSEEnv(t, Config{}, true)
	// A token's exp is in whole seconds: 1.5 s from now is in the future.
	tok := e.token("ann", time.Now().Add(1500*time.Millisecond))
	resp := e.get("?access_token="+url.QueryEscape(tok), "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("answered %d %s", resp.StatusCode, b)
	}
	got := messages(t, resp, func(m sseMsg) bool { return m.event == "end" })
	last := got[len(got)-1]
	if last.event != "end" || !strings.Contains(last.data, `"code":4501`) || !strings.Contains(last.data, `"retryable":false`) {
		t.Fatalf("the stream ended with %+v, want an end 4501", got)
	}
}

func TestSSEEndsOnShutdown(t *testing.T) {
	t.Parallel()
	e := newSSEEnv(t, Config{}, false)
	resp := e.get("", "Authorization", "Bearer "+e.token("ann", time.Now().Add(time.Hour)))
	messages(t, resp, func(sseMsg) bool { return true }) // the retry field: the stream is up
	if n := gauge(t, e.s.cfg.Metrics.SSEStreams); n != 1 {
		t.Errorf("parley_sse_streams is %v with a stream open, want 1", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got := messages(t, resp, func(m sseMsg) bool { return m.event == "end" })
		if len(got) == 0 || !strings.Contains(got[len(got)-1].data, `"code":1001`) {
			t.Errorf("the stream ended with %+v, want an end 1001", got)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if n := gauge(t, e.s.cfg.Metrics.SSEStreams); n != 0 {
		t.Errorf("parley_sse_streams is %v once the stream has ended, want 0", n)
	}
}

func TestSSERefusals(t *testing.T) {
	t.Parallel()
	e := newSSEEnv(t, Config{MaxSocketsPerUser: 1}, false)
	good := "Bearer " + e.token("ann", time.Now().Add(time.Hour))
	tests := []struct {
		name    string
		query   string
		headers []string
		status  int
		code    string
	}{
		{"no token", "", nil, 401, codeUnauthorized},
		{"an expired token", "?access_token=" + e.token("ann", time.Now().Add(-time.Minute)), nil, 401, codeTokenExpired},
		{"a malformed Last-Event-ID", "", []string{"Authorization", good, "Last-Event-ID", "c1:3"}, 400, codeInvalidRequest},
		{"a malformed last_event_id", "?last_event_id=1.c1", []string{"Authorization", good}, 400, codeInvalidRequest},
		{"an invalid device_id", "?device_id=" + url.QueryEscape("a b"), []string{"Authorization", good}, 400, codeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.get(tt.query, tt.headers...)
			var p struct{ Code string }
			_ = json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tt.status || p.Code != tt.code {
				t.Errorf("answered %d %q, want %d %q", resp.StatusCode, p.Code, tt.status, tt.code)
			}
		})
	}
	t.Run("a stream over the user's socket limit", func(t *testing.T) {
		first := e.get("", "Authorization", good)
		messages(t, first, func(sseMsg) bool { return true })
		resp := e.get("", "Authorization", good)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("the second stream answered %d, want 429", resp.StatusCode)
		}
	})
	t.Run("a cursor beyond a conversation or of another", func(t *testing.T) {
		e := newSSEEnv(t, Config{}, false)
		resp := e.get("?last_event_id=1.c1:11,c2:4,zz:1", "Authorization", "Bearer "+e.token("ann", time.Now().Add(time.Hour)))
		errs := 0
		got := messages(t, resp, func(m sseMsg) bool {
			if m.event == "error" {
				errs++
			}
			return errs == 2
		})
		if errs != 2 {
			t.Errorf("got %+v, want two errors", got)
		}
		if r := <-e.hub.resumed; len(r) != 1 || r["c2"] != 4 {
			t.Errorf("resumed %v, want c2 from 4 only", r)
		}
	})
}

func TestSSEEndsASlowConsumer(t *testing.T) {
	t.Parallel()
	e := newSSEEnv(t, Config{}, false)
	e.hub.fail = delivery.ErrSlowConsumer
	e.s.cfg.Hub = e.hub
	resp := e.get("", "Authorization", "Bearer "+e.token("ann", time.Now().Add(time.Hour)))
	got := messages(t, resp, func(m sseMsg) bool { return m.event == "end" })
	if last := got[len(got)-1]; last.event != "end" || !strings.Contains(last.data, `"code":4000`) || !strings.Contains(last.data, `"retryable":true`) {
		t.Fatalf("the stream ended with %+v, want an end 4000", got)
	}
}

// gauge reads g's value.
func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestSSEOutlivesTheServersWriteTimeout: each write sets its own
// deadline, so an HTTP server's WriteTimeout does not cut a stream.
func TestSSEOutlivesTheServersWriteTimeout(t *testing.T) {
	t.Parallel()
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2 over TLS"}[h2], func(t *testing.T) {
			t.Parallel()
			const writeTimeout = 100 * time.Millisecond
			e := newSSEEnvWith(t, Config{SSEHeartbeat: 10 * time.Millisecond}, h2, writeTimeout)
			start := time.Now()
			resp := e.get("", "Authorization", "Bearer "+e.token("ann", time.Now().Add(time.Hour)))
			got := messages(t, resp, func(m sseMsg) bool { return m.comment == "ping" && time.Since(start) > 5*writeTimeout })
			if last := got[len(got)-1]; last.comment != "ping" || time.Since(start) <= 5*writeTimeout {
				t.Fatalf("the stream ended after %v with %+v", time.Since(start), last)
			}
		})
	}
}

// TestSSESessionIsRegisteredBeforeTheStreamOpens: a stream's session is
// registered with the hub by the time the client has the answer's
// header, so that nothing appended from then on can pass it by.
func TestSSESessionIsRegisteredBeforeTheStreamOpens(t *testing.T) {
	t.Parallel()
	e := newSSEEnv(t, Config{}, false)
	for i := range 30 {
		tok := e.token(fmt.Sprint("u", i), time.Now().Add(time.Hour))
		resp := e.get("?access_token="+url.QueryEscape(tok), "Accept", "text/event-stream")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answered %d", resp.StatusCode)
		}
		if n := e.hub.sessions.Load(); n != int64(i+1) {
			t.Fatalf("when stream %d opened the hub had handed out %d sessions, want %d", i+1, n, i+1)
		}
		_ = resp.Body.Close()
	}
}
