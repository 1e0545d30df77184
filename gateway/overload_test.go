// Backpressure: a command refused because the log is saturated is
// answered at once, over a real socket and over HTTP, with the stable
// code the documents name.

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// saturatedLog refuses every command as producers.CommandWriter does
// when MaxPending commands wait for the broker.
type saturatedLog struct{}

func (saturatedLog) Enqueue(_ context.Context, typ, _ string, _ any, _ string) (<-chan error, error) {
	return nil, fmt.Errorf("appending %s: %w", typ, producers.ErrOverloaded)
}

// memberHub knows a fixed set of conversations, awaits outcomes that
// never come, and gives sockets idle sessions.
type memberHub struct{ searchHub }

func (memberHub) Await(string, string, string) (<-chan delivery.Outcome, func()) {
	return make(chan delivery.Outcome), func() {}
}
func (memberHub) NewSession(string) Session { return &idleSession{done: make(chan struct{})} }

// noMessages is a history with the conversations given and no message.
type noMessages struct{ *searchHistory }

func (noMessages) Page(context.Context, string, history.PageQuery) (history.Page, error) {
	return history.Page{}, nil
}

// TestOverloadedIsAnsweredAtOnce: a command the log refuses as saturated
// is answered at once — not after the command timeout — with the
// request's id, the stable code overloaded and retryable; over HTTP, 503
// problem+json with Retry-After; both as the documents say.
func TestOverloadedIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	convs := map[string]history.Conversation{"g_ab": searchConv("g_ab", "alice", "bob")}
	// A command timeout far longer than the test: an answer that came
	// from it instead of the refusal would fail the test by its deadline.
	s, err := New(Config{Auth: auth, Commands: saturatedLog{}, Hub: memberHub{searchHub{convs}}, History: noMessages{&searchHistory{convs: convs}}, CommandTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	check, err := contractcheck.New()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Issue("alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("a send frame gets an overloaded error frame with its id", func(t *testing.T) {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/ws", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		frame := []byte(`{"type":"send","id":"req-7","conversation_id":"g_ab","command_id":"c-7","body":"hi"}`)
		if err := check.ClientFrame(frame); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			t.Fatal(err)
		}
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := check.ServerFrame(data); err != nil {
				t.Errorf("%v: %s", err, data)
			}
			var f errorFrame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Fatal(err)
			}
			if f.Type != "error" {
				continue // the session's own frames
			}
			if f.ID != "req-7" || f.Code != "overloaded" || !f.Retryable {
				t.Fatalf("error frame %s, want id req-7, code overloaded, retryable", data)
			}
			return
		}
	})

	t.Run("an HTTP send gets 503 problem+json with Retry-After", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/conversations/g_ab/messages", bytes.NewBufferString(`{"command_id":"c-8","body":"hi"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		ct := resp.Header.Get("Content-Type")
		if err := check.Response(http.MethodPost, "/v1/conversations/g_ab/messages", resp.StatusCode, ct, body.Bytes()); err != nil {
			t.Error(err)
		}
		var p problem
		if err := json.Unmarshal(body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || ct != "application/problem+json" || p.Code != "overloaded" || !p.Retryable {
			t.Fatalf("%d %s %+v, want 503 problem+json, code overloaded, retryable", resp.StatusCode, ct, p)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After %q, want 1", ra)
		}
	})
}

// heldHub awaits outcomes the test hands out: each Await is announced on
// awaited, and answered when the test calls answer with its command id.
type heldHub struct {
	memberHub
	awaited chan string
	mu      sync.Mutex
	held    map[string]chan delivery.Outcome
}

func newHeldHub(convs map[string]history.Conversation) *heldHub {
	return &heldHub{memberHub: memberHub{searchHub{convs}}, awaited: make(chan string, 16), held: map[string]chan delivery.Outcome{}}
}

func (h *heldHub) Await(_, conv, commandID string) (<-chan delivery.Outcome, func()) {
	o := make(chan delivery.Outcome, 1)
	h.mu.Lock()
	h.held[commandID] = o
	h.mu.Unlock()
	h.awaited <- commandID
	return o, func() {}
}

func (h *heldHub) answer(t *testing.T, commandID string, seq uint64) {
	t.Helper()
	h.mu.Lock()
	o, ok := h.held[commandID]
	h.mu.Unlock()
	if !ok {
		t.Fatalf("command %s is not awaited", commandID)
	}
	o <- delivery.Outcome{ConversationID: "g_ab", Seq: seq}
}

// wait returns the next command id awaited.
func (h *heldHub) wait(t *testing.T) string {
	t.Helper()
	select {
	case id := <-h.awaited:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no command awaited its answer")
		return ""
	}
}

// TestCommandsBeyondMaxAwaitingAreRefusedAtOnce: with two commands
// appended and waiting for the decider's answer, as many as MaxAwaiting,
// a third is refused at once — over the socket with an overloaded frame
// that echoes its id, over HTTP with 503 problem+json — and nothing is
// appended for it; once one of the two is answered, a command is taken
// again. The command timeout is far longer than the test, so a refusal
// that came from it would fail the test by its deadline.
func TestCommandsBeyondMaxAwaitingAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	hub := newHeldHub(map[string]history.Conversation{"g_ab": searchConv("g_ab", "alice", "bob")})
	e := newLimitEnv(t, Config{MaxAwaiting: 2, CommandTimeout: time.Hour, Hub: hub})
	c, _, err := e.dial(bearerHeader(e.token("alice")))
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string) {
		t.Helper()
		write(t, c, fmt.Sprintf(`{"type":"send","id":%q,"conversation_id":"g_ab","command_id":"c-%s","body":"hi"}`, id, id))
	}
	send("r1")
	send("r2")
	for range 2 {
		hub.wait(t)
	}
	send("r3")
	if f := e.readFrame(c); f["type"] != "error" || f["id"] != "r3" || f["code"] != "overloaded" || f["retryable"] != true {
		t.Fatalf("send r3 answered with %v, want a retryable overloaded error with id r3", f)
	}
	const path = "/v1/conversations/g_ab/messages"
	status, h, body := e.do(http.MethodPost, path, e.token("bob"), `{"command_id":"c-h1","body":"hi"}`, nil)
	if err := e.check.Response(http.MethodPost, path, status, h.Get("Content-Type"), body); err != nil {
		t.Error(err)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable || p.Code != "overloaded" || !p.Retryable || h.Get("Retry-After") != "1" {
		t.Errorf("HTTP send: %d %+v, Retry-After %q; want 503, overloaded, retryable, 1", status, p, h.Get("Retry-After"))
	}
	if n := e.log.n.Load(); n != 2 {
		t.Fatalf("%d commands appended, want 2: a refused command appends nothing", n)
	}
	if n := gauge(t, e.s.cfg.Metrics.AwaitingCommands); n != 2 {
		t.Errorf("parley_gateway_awaiting_commands is %v, want 2", n)
	}
	if n := testutil.ToFloat64(e.s.cfg.Metrics.Rejections.WithLabelValues("gateway", "overloaded")); n != 2 {
		t.Errorf("%v overloaded refusals counted, want 2", n)
	}

	hub.answer(t, "c-r1", 1)
	if f := e.readFrame(c); f["type"] != "ack" || f["id"] != "r1" {
		t.Fatalf("after r1's answer the socket got %v, want r1's ack", f)
	}
	send("r4")
	if id := hub.wait(t); id != "c-r4" {
		t.Fatalf("awaited %s, want c-r4", id)
	}
	if n := e.log.n.Load(); n != 3 {
		t.Errorf("%d commands appended, want 3: r4 is taken once r1 is answered", n)
	}
	hub.answer(t, "c-r2", 2)
	hub.answer(t, "c-r4", 3)
	acked := map[any]bool{}
	for range 2 {
		if f := e.readFrame(c); f["type"] != "ack" {
			t.Fatalf("the socket got %v, want an ack", f)
		} else {
			acked[f["id"]] = true
		}
	}
	if !acked["r2"] || !acked["r4"] {
		t.Errorf("acked %v, want r2 and r4", acked)
	}
	if n := gauge(t, e.s.cfg.Metrics.AwaitingCommands); n != 0 {
		t.Errorf("parley_gateway_awaiting_commands is %v with every command answered, want 0", n)
	}
}

// TestCommandsThatFailAreCounted: a command the log does not take, and
// one the decider does not answer in time, are answered unavailable and
// timeout, and counted in parley_rejections_total as every refusal is:
// they are what an operator's alert on failing sends watches.
func TestCommandsThatFailAreCounted(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{CommandTimeout: 50 * time.Millisecond, Hub: memberHub{searchHub{map[string]history.Conversation{"g_ab": searchConv("g_ab", "alice", "bob")}}}})
	c, _, err := e.dial(bearerHeader(e.token("alice")))
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, `{"type":"send","id":"late","conversation_id":"g_ab","command_id":"c-late","body":"hi"}`)
	if f := e.readFrame(c); f["type"] != "error" || f["id"] != "late" || f["code"] != "timeout" {
		t.Fatalf("a send nobody answers got %v, want a timeout error with id late", f)
	}
	e.log.failing.Store(true)
	write(t, c, `{"type":"send","id":"lost","conversation_id":"g_ab","command_id":"c-lost","body":"hi"}`)
	if f := e.readFrame(c); f["type"] != "error" || f["id"] != "lost" || f["code"] != "unavailable" || f["retryable"] != true {
		t.Fatalf("a send the broker refused got %v, want a retryable unavailable error with id lost", f)
	}
	status, _, body := e.do(http.MethodPost, "/v1/conversations/g_ab/messages", e.token("bob"), `{"command_id":"c-h1","body":"hi"}`, nil)
	if status != http.StatusServiceUnavailable {
		t.Errorf("an HTTP send the broker refused: %d %s, want 503", status, body)
	}
	for code, want := range map[string]float64{"timeout": 1, "unavailable": 2} {
		if n := testutil.ToFloat64(e.s.cfg.Metrics.Rejections.WithLabelValues("gateway", code)); n != want {
			t.Errorf("%v %s answers counted, want %v", n, code, want)
		}
	}
}
