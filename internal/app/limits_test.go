package app

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
)

// TestLimitSettingsReachTheGateway: the limit settings become the
// gateway's limits, 0 meaning none; bad values are all reported.
func TestLimitSettingsReachTheGateway(t *testing.T) {
	t.Parallel()
	load := func(env map[string]string) (Config, error) {
		return Load("run", nil, func(k string) string { return env[k] }, io.Discard)
	}
	cfg, err := load(map[string]string{
		"PARLEY_USER_COMMAND_RATE": "2.5", "PARLEY_USER_COMMAND_BURST": "5",
		"PARLEY_USER_REQUEST_RATE":    "0",
		"PARLEY_MAX_SOCKETS_PER_USER": "0", "PARLEY_MAX_INFLIGHT": "7", "PARLEY_MAX_AWAITING": "9", "PARLEY_WS_AUTH_TIMEOUT": "3s", "PARLEY_SSE_HEARTBEAT": "4s",
		"PARLEY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1,::ffff:172.16.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	var g gateway.Config
	cfg.gatewayLimits(&g)
	want := gateway.Config{
		MaxInFlight: 7, MaxAwaiting: 9, AuthTimeout: 3 * time.Second, SSEHeartbeat: 4 * time.Second, MaxSocketsPerUser: -1,
		UserCommands:   gateway.Rate{PerSecond: 2.5, Burst: 5},
		UserRequests:   gateway.Rate{PerSecond: -1},
		IPConnects:     gateway.Rate{PerSecond: 1000, Burst: 2000},
		IPAuthFailures: gateway.Rate{PerSecond: 10, Burst: 100},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("172.16.0.1/32")},
		Exempt:         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("gateway limits\n%+v\nwant\n%+v", g, want)
	}

	_, err = load(map[string]string{
		"PARLEY_USER_COMMAND_RATE": "-1", "PARLEY_IP_CONNECT_BURST": "0", "PARLEY_TRUSTED_PROXIES": "lb.internal", "PARLEY_RATE_LIMIT_EXEMPT": "10.0.0.0/33",
		"PARLEY_MAX_INFLIGHT": "0", "PARLEY_MAX_AWAITING": "0", "PARLEY_HTTP_IDLE_TIMEOUT": "0s", "PARLEY_IP_AUTH_FAILURE_RATE": "NaN",
	})
	for _, want := range []string{"PARLEY_USER_COMMAND_RATE", "PARLEY_IP_CONNECT_BURST", `PARLEY_TRUSTED_PROXIES: "lb.internal"`, `PARLEY_RATE_LIMIT_EXEMPT: "10.0.0.0/33"`, "PARLEY_MAX_INFLIGHT", "PARLEY_MAX_AWAITING", "PARLEY_HTTP_IDLE_TIMEOUT", "PARLEY_IP_AUTH_FAILURE_RATE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad limits: error %v does not name %s", err, want)
		}
	}
}

// serveTest serves the public HTTP server of cfg on a loopback port.
func serveTest(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), cfg, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// closedWithin reads from c until the server closes it, and fails if
// that takes longer than limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was still open after %v", limit)
	}
}

// TestSlowClientsAreClosed: a client that never finishes its request's
// headers (slow loris) is closed after the read-header timeout, and an
// idle keep-alive connection after the idle timeout.
func TestSlowClientsAreClosed(t *testing.T) {
	t.Parallel()
	t.Run("headers never finished", func(t *testing.T) {
		t.Parallel()
		addr := serveTest(t, Config{HTTPReadHeaderTimeout: 200 * time.Millisecond, HTTPIdleTimeout: time.Hour})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: parley\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		t.Parallel()
		addr := serveTest(t, Config{HTTPReadHeaderTimeout: time.Hour, HTTPIdleTimeout: 200 * time.Millisecond})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: parley\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("answered %d (close %v), want 200 kept alive", resp.StatusCode, resp.Close)
		}
		closedWithin(t, c, 5*time.Second)
	})
}
