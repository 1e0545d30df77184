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
	"testing"
	"time"

	"github.com/coder/websocket"

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
