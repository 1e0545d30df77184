// The allocation of a frame's round trip through a socket's read loop.

package gateway

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
)

// BenchmarkPing_OneSocket: a real WebSocket sends a ping frame and reads
// its pong, one after the other: the server reads the frame, decodes
// it and writes the answer. The allocations counted include the raw
// client's (its pong buffer).
func BenchmarkPing_OneSocket(b *testing.B) {
	c := pingSocket(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.ping(); err != nil {
			b.Fatal(err)
		}
	}
}

// pingSocket returns a raw socket, authenticated and answered one ping,
// to a gateway with a real delivery hub (never fed) whose log refuses
// every command; tb's cleanup closes it and shuts the gateway down.
func pingSocket(tb testing.TB) rawSocket {
	tb.Helper()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		tb.Fatal(err)
	}
	hub := delivery.NewHub(delivery.Config{History: &searchHistory{}})
	s, err := New(Config{Auth: auth, Commands: saturatedLog{}, Hub: deliveryHub{hub}, History: &searchHistory{}})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(s)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Error(err)
		}
		srv.Close()
	})
	token, err := auth.Issue("alice", time.Hour, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	c, err := dialRaw(strings.TrimPrefix(srv.URL, "http://"), "/v1/ws", token)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.ping(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkWriteCtx_AckThenEvent: the write contexts of a socket's two
// frames per message it sends, its ack (under the request's context, a
// value over the socket's) and the event delivered back (under the
// socket's).
func BenchmarkWriteCtx_AckThenEvent(b *testing.B) {
	k := &socket{s: &Server{cfg: Config{WriteTimeout: time.Hour}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if k.writeCtx(withAppended(ctx, func() {})).Done() == nil || k.writeCtx(ctx).Done() == nil {
			b.Fatal("a write context without a deadline")
		}
	}
}
