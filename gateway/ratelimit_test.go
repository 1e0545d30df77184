// Rate limits: the buckets on a clock the test moves, the client
// address, and each limit over real sockets and HTTP requests.

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestBucketSetRefusesOverTheRateWithTheWait(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newBucketSet(Rate{PerSecond: 10, Burst: 3}, 0, clock.Now)
	for i := range 3 {
		if d := b.take("alice"); d != 0 {
			t.Fatalf("take %d of the burst refused, wait %v", i+1, d)
		}
	}
	d := b.take("alice")
	if d <= 0 || d > 100*time.Millisecond {
		t.Fatalf("take over the burst: wait %v, want in (0, 100ms]", d)
	}
	if d := b.take("bob"); d != 0 {
		t.Errorf("another key refused (wait %v): buckets are per key", d)
	}
	// A refusal takes nothing: after the wait, exactly one more passes.
	clock.Advance(d)
	if d := b.take("alice"); d != 0 {
		t.Errorf("take after the wait refused, wait %v", d)
	}
	if d := b.take("alice"); d == 0 {
		t.Error("a second take after one token's wait passed")
	}
	if d := newBucketSet(Rate{PerSecond: -1}, 0, clock.Now).take("alice"); d != 0 {
		t.Errorf("an unlimited set refused, wait %v", d)
	}
}

// TestBucketSetStaysBounded: however many keys come, idle or busy, the
// set holds at most its maximum.
func TestBucketSetStaysBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		step time.Duration // the clock's move between keys
	}{
		{"keys that go idle (their buckets refill)", time.Second},
		{"keys that stay busy (the clock stands still)", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			const maxKeys = 100
			b := newBucketSet(Rate{PerSecond: 1, Burst: 1}, maxKeys, clock.Now)
			most := 0
			for i := range 10_000 {
				b.take("10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
				most = max(most, b.len())
				clock.Advance(tt.step)
			}
			if most > maxKeys {
				t.Errorf("the set held %d keys, more than %d", most, maxKeys)
			}
			if most < maxKeys {
				t.Errorf("the set held at most %d keys: the test did not fill it to %d", most, maxKeys)
			}
		})
	}
}

// TestBucketSetForgetsIdleKeys: far below its maximum, a set whose keys
// go idle keeps about as many buckets as are in use, not one per key ever
// seen, and a key in use keeps its bucket (an exhausted bucket is never
// dropped by a sweep).
func TestBucketSetForgetsIdleKeys(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// A bucket refills in 10 s: 1,000 keys of the loop below.
	b := newBucketSet(Rate{PerSecond: 0.1, Burst: 1}, 1_000_000, clock.Now)
	if b.take("busy") != 0 {
		t.Fatal("the first take of a fresh bucket was refused")
	}
	lastTaken := clock.Now()
	most := 0
	for i := range 20_000 {
		if b.take("user"+strconv.Itoa(i)) != 0 {
			t.Fatalf("the first take of user%d was refused", i)
		}
		if i%100 == 0 {
			// The busy key takes every second: until its bucket has
			// refilled it must be refused, or a sweep forgot it.
			now := clock.Now()
			switch refused := b.take("busy") != 0; {
			case !refused && now.Sub(lastTaken) < 10*time.Second:
				t.Fatalf("after %d keys the busy key's bucket, not refilled, was forgotten", i)
			case !refused:
				lastTaken = now
			}
		}
		most = max(most, b.len())
		clock.Advance(10 * time.Millisecond)
	}
	// About 1,000 buckets are refilling at any time; a sweep runs when
	// the set has doubled.
	if most > 4*minSweep {
		t.Errorf("the set held %d buckets for keys that went idle, want at most %d", most, 4*minSweep)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tt := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"the peer, without proxies", "203.0.113.7:5555", nil, nil, "203.0.113.7"},
		{"the peer, whose X-Forwarded-For is not believed", "203.0.113.7:5555", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"an untrusted peer's X-Forwarded-For is ignored even with proxies set", "203.0.113.7:5555", []string{"198.51.100.1"}, lb, "203.0.113.7"},
		{"a trusted proxy's last hop", "10.1.2.3:5555", []string{"198.51.100.1"}, lb, "198.51.100.1"},
		{"the last untrusted hop of a chain", "10.1.2.3:5555", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, lb, "198.51.100.1"},
		{"hops over several headers", "10.1.2.3:5555", []string{"6.6.6.6", "198.51.100.1", "10.9.9.9"}, lb, "198.51.100.1"},
		{"a trusted proxy without the header", "10.1.2.3:5555", nil, lb, "10.1.2.3"},
		{"garbage stops the walk at the last good hop", "10.1.2.3:5555", []string{"198.51.100.1, nonsense, 10.9.9.9"}, lb, "10.9.9.9"},
		{"IPv6", "[fd00::1]:5555", []string{"2001:db8::5"}, lb, "2001:db8::5"},
		{"an IPv4-mapped peer", "[::ffff:10.1.2.3]:5555", []string{"198.51.100.1"}, lb, "198.51.100.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, tt.trusted); got != tt.want {
				t.Errorf("clientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

// countingLog appends every command at once and counts them; while
// failing is set, the broker refuses each command it takes.
type countingLog struct {
	n       atomic.Int64
	failing atomic.Bool
}

func (l *countingLog) Enqueue(context.Context, string, string, any, string) (<-chan error, error) {
	l.n.Add(1)
	written := make(chan error, 1)
	if l.failing.Load() {
		written <- errors.New("the broker refused the batch")
	} else {
		written <- nil
	}
	return written, nil
}

// answeringHub accepts every command the moment it is awaited.
type answeringHub struct {
	memberHub
	seq atomic.Uint64
}

func (h *answeringHub) Await(_, conv, _ string) (<-chan delivery.Outcome, func()) {
	o := make(chan delivery.Outcome, 1)
	o <- delivery.Outcome{ConversationID: conv, Seq: h.seq.Add(1)}
	return o, func() {}
}

// limitEnv is a gateway with conversation g_ab of alice and bob, a log
// that counts appends, and the rate limits' clock in the test's hands;
// its hub answers every command at once unless the config names another.
type limitEnv struct {
	t     *testing.T
	s     *Server
	url   string
	auth  *Authenticator
	log   *countingLog
	clock *fakeClock
	check *contractcheck.Checker
}

func newLimitEnv(t *testing.T, cfg Config) *limitEnv {
	t.Helper()
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	convs := map[string]history.Conversation{"g_ab": searchConv("g_ab", "alice", "bob")}
	e := &limitEnv{t: t, auth: auth, log: &countingLog{}, clock: newFakeClock()}
	cfg.Auth, cfg.Commands, cfg.Now = auth, e.log, e.clock.Now
	if cfg.Hub == nil {
		cfg.Hub = &answeringHub{memberHub: memberHub{searchHub{convs}}}
	}
	cfg.History = noMessages{&searchHistory{convs: convs}}
	if e.s, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.s.Shutdown(ctx)
		srv.Close()
	})
	e.url = srv.URL
	if e.check, err = contractcheck.New(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *limitEnv) token(user string) string {
	e.t.Helper()
	tok, err := e.auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// dial opens a socket with header; it returns the HTTP response when
// the upgrade is refused.
func (e *limitEnv) dial(header http.Header) (*websocket.Conn, *http.Response, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/ws", &websocket.DialOptions{HTTPHeader: header})
	if c != nil {
		e.t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// do sends an HTTP request and returns its status, headers and body.
func (e *limitEnv) do(method, path, tok, body string, header http.Header) (int, http.Header, []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.Bytes()
}

// wantRateLimited checks an HTTP answer is a documented 429 problem with
// a Retry-After of want seconds.
func (e *limitEnv) wantRateLimited(method, path string, status int, h http.Header, body []byte, want string) {
	e.t.Helper()
	if status != http.StatusTooManyRequests {
		e.t.Fatalf("%s %s: %d %s, want 429", method, path, status, body)
	}
	if err := e.check.Response(method, path, status, h.Get("Content-Type"), body); err != nil {
		e.t.Error(err)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		e.t.Fatal(err)
	}
	if h.Get("Content-Type") != "application/problem+json" || p.Code != "rate_limited" || !p.Retryable {
		e.t.Errorf("%s %s: %s %+v, want problem+json rate_limited, retryable", method, path, h.Get("Content-Type"), p)
	}
	if ra := h.Get("Retry-After"); ra != want {
		e.t.Errorf("%s %s: Retry-After %q, want %q", method, path, ra, want)
	}
}

// readFrame reads the socket's next frame, checked against the
// AsyncAPI document.
func (e *limitEnv) readFrame(c *websocket.Conn) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.check.ServerFrame(data); err != nil {
		e.t.Errorf("%v: %s", err, data)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// TestCommandsOverTheUserRateAreRefusedOverTheSocket: with a burst of 2
// and a clock that stands still, two sends are acked and the third gets
// a rate_limited frame with its id and a retry hint, is not appended,
// and leaves the socket open; once the clock has moved by the hint, a
// send passes again. The HTTP writes of the same user share the bucket.
func TestCommandsOverTheUserRateAreRefusedOverTheSocket(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{UserCommands: Rate{PerSecond: 4, Burst: 2}})
	c, _, err := e.dial(bearerHeader(e.token("alice")))
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string) map[string]any {
		t.Helper()
		frame := fmt.Sprintf(`{"type":"send","id":%q,"conversation_id":"g_ab","command_id":"c-%s","body":"hi"}`, id, id)
		write(t, c, frame)
		return e.readFrame(c)
	}
	for _, id := range []string{"r1", "r2"} {
		if f := send(id); f["type"] != "ack" || f["id"] != id {
			t.Fatalf("send %s answered with %v, want its ack", id, f)
		}
	}
	f := send("r3")
	if f["type"] != "error" || f["id"] != "r3" || f["code"] != "rate_limited" || f["retryable"] != true {
		t.Fatalf("send r3 answered with %v, want a retryable rate_limited error with id r3", f)
	}
	// 4/s: a token every 250 ms.
	if ms, _ := f["retry_after_ms"].(float64); ms != 250 {
		t.Errorf("retry_after_ms %v, want 250", f["retry_after_ms"])
	}
	// presence_set is a command too (published to chat.presence).
	write(t, c, `{"type":"presence_set","id":"ps1","status":"away"}`)
	if f := e.readFrame(c); f["type"] != "error" || f["id"] != "ps1" || f["code"] != "rate_limited" {
		t.Fatalf("presence_set over the rate answered with %v, want rate_limited with id ps1", f)
	}
	write(t, c, `{"type":"ping","id":"p1"}`)
	if f := e.readFrame(c); f["type"] != "pong" {
		t.Fatalf("ping after the refusals answered with %v, want pong: the socket stays open", f)
	}
	if n := e.log.n.Load(); n != 2 {
		t.Errorf("%d commands appended, want 2: a refused command appends nothing", n)
	}

	// HTTP writes of the same user are refused too, with Retry-After.
	const path = "/v1/conversations/g_ab/messages"
	status, h, body := e.do(http.MethodPost, path, e.token("alice"), `{"command_id":"c-h1","body":"hi"}`, nil)
	e.wantRateLimited(http.MethodPost, path, status, h, body, "1")
	// Reads are not commands.
	if status, _, body := e.do(http.MethodGet, "/v1/conversations/g_ab", e.token("alice"), "", nil); status != http.StatusOK {
		t.Errorf("a read while the command bucket is empty: %d %s, want 200", status, body)
	}
	// Another user has a bucket of their own.
	if status, _, body := e.do(http.MethodPost, path, e.token("bob"), `{"command_id":"c-b1","body":"hi"}`, nil); status != http.StatusCreated && status != http.StatusOK {
		t.Errorf("bob's send: %d %s, want it accepted", status, body)
	}

	e.clock.Advance(250 * time.Millisecond)
	if f := send("r4"); f["type"] != "ack" || f["id"] != "r4" {
		t.Fatalf("send r4 after the wait answered with %v, want its ack", f)
	}
	if n := e.log.n.Load(); n != 4 {
		t.Errorf("%d commands appended, want 4 (alice's r1, r2, r4 and bob's)", n)
	}
}

// TestHTTPRequestsOverTheUserRateGet429: every authenticated request
// counts against the user's request rate, reads included.
func TestHTTPRequestsOverTheUserRateGet429(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{UserRequests: Rate{PerSecond: 0.5, Burst: 3}})
	const path = "/v1/conversations/g_ab"
	tok := e.token("alice")
	for i := range 3 {
		if status, _, body := e.do(http.MethodGet, path, tok, "", nil); status != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, status, body)
		}
	}
	status, h, body := e.do(http.MethodGet, path, tok, "", nil)
	// 0.5/s: a token every 2 s.
	e.wantRateLimited(http.MethodGet, path, status, h, body, "2")
	e.clock.Advance(2 * time.Second)
	if status, _, body := e.do(http.MethodGet, path, tok, "", nil); status != http.StatusOK {
		t.Errorf("after the wait: %d %s, want 200", status, body)
	}
}

// TestReadingFramesCountAsRequests: resume and presence_watch frames
// count against the user's request rate, shared with HTTP; over it they
// get rate_limited with their id and the socket stays open.
func TestReadingFramesCountAsRequests(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{UserRequests: Rate{PerSecond: 1, Burst: 2}})
	tok := e.token("alice")
	c, _, err := e.dial(bearerHeader(tok))
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := e.do(http.MethodGet, "/v1/conversations/g_ab", tok, "", nil); status != http.StatusOK {
		t.Fatalf("HTTP read: %d %s", status, body)
	}
	// The second token: the idle session answers a resume with nothing,
	// so a ping tells that it was served.
	write(t, c, `{"type":"resume","id":"r1","conversations":{"g_ab":0}}`)
	write(t, c, `{"type":"ping","id":"p1"}`)
	if f := e.readFrame(c); f["type"] != "pong" || f["id"] != "p1" {
		t.Fatalf("resume within the burst answered with %v, want nothing before the pong", f)
	}
	for _, frame := range []string{
		`{"type":"resume","id":"r2","conversations":{"g_ab":0}}`,
		`{"type":"presence_watch","id":"r2","user_ids":["bob"]}`,
	} {
		write(t, c, frame)
		if f := e.readFrame(c); f["type"] != "error" || f["id"] != "r2" || f["code"] != "rate_limited" || f["retry_after_ms"] != float64(1000) {
			t.Errorf("%s over the rate answered with %v, want rate_limited with id r2 and retry_after_ms 1000", frame, f)
		}
	}
	write(t, c, `{"type":"ping","id":"p2"}`)
	if f := e.readFrame(c); f["type"] != "pong" {
		t.Fatalf("ping answered with %v: the socket stays open", f)
	}
}

// TestFailedAuthenticationsPerAddress: an address that keeps failing to
// authenticate gets 429 instead of 401, while a request with a valid
// token from the same address still passes.
func TestFailedAuthenticationsPerAddress(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{IPAuthFailures: Rate{PerSecond: 1, Burst: 2}})
	const path = "/v1/conversations/g_ab"
	for i, tok := range []string{"", "x.y.z"} {
		if status, _, body := e.do(http.MethodGet, path, tok, "", nil); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s, want 401", i+1, status, body)
		}
	}
	status, h, body := e.do(http.MethodGet, path, "x.y.z", "", nil)
	e.wantRateLimited(http.MethodGet, path, status, h, body, "1")
	// An upgrade with an invalid header token is refused the same way.
	_, resp, err := e.dial(bearerHeader("x.y.z"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("upgrade with a bad token: %v, %v; want 429 with Retry-After 1", resp, err)
	}
	if status, _, body := e.do(http.MethodGet, path, e.token("alice"), "", nil); status != http.StatusOK {
		t.Errorf("a valid token from the same address: %d %s, want 200", status, body)
	}
}

// TestUpgradesPerAddress: an address's upgrades beyond its bucket get
// 429; behind a trusted proxy each forwarded client has its own bucket.
func TestUpgradesPerAddress(t *testing.T) {
	t.Parallel()
	t.Run("without trusted proxies", func(t *testing.T) {
		t.Parallel()
		e := newLimitEnv(t, Config{IPConnects: Rate{PerSecond: 0.25, Burst: 2}})
		h := bearerHeader(e.token("alice"))
		h.Set("X-Forwarded-For", "198.51.100.1") // not believed
		for i := range 2 {
			if _, _, err := e.dial(h); err != nil {
				t.Fatalf("upgrade %d of the burst: %v", i+1, err)
			}
		}
		h.Set("X-Forwarded-For", "198.51.100.2")
		_, resp, err := e.dial(h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third upgrade: %v, %v; want 429", resp, err)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "4" {
			t.Errorf("Retry-After %q, want 4", ra)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type %q, want application/problem+json", ct)
		}
	})
	t.Run("behind a trusted proxy", func(t *testing.T) {
		t.Parallel()
		e := newLimitEnv(t, Config{IPConnects: Rate{PerSecond: 0.25, Burst: 1}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
		h := bearerHeader(e.token("alice"))
		h.Set("X-Forwarded-For", "198.51.100.1")
		if _, _, err := e.dial(h); err != nil {
			t.Fatal(err)
		}
		if _, resp, err := e.dial(h); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the same client again: %v, %v; want 429", resp, err)
		}
		h.Set("X-Forwarded-For", "198.51.100.2")
		if _, _, err := e.dial(h); err != nil {
			t.Errorf("another client behind the proxy: %v", err)
		}
	})
}

// TestExemptAddressesAreNotLimitedByAddress: from an exempt address
// upgrades and failed authentications pass beyond their buckets, while
// the user's own limits still hold.
func TestExemptAddressesAreNotLimitedByAddress(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	e := newLimitEnv(t, Config{
		IPConnects: Rate{PerSecond: 0.25, Burst: 1}, IPAuthFailures: Rate{PerSecond: 0.25, Burst: 1},
		UserRequests: Rate{PerSecond: 0.25, Burst: 1}, Exempt: loopback,
	})
	for i := range 3 {
		if _, _, err := e.dial(bearerHeader(e.token("alice"))); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		if status, _, body := e.do(http.MethodGet, "/v1/conversations/g_ab", "x.y.z", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("failed authentication %d: %d %s, want 401", i+1, status, body)
		}
	}
	const path = "/v1/conversations/g_ab"
	tok := e.token("alice")
	if status, _, body := e.do(http.MethodGet, path, tok, "", nil); status != http.StatusOK {
		t.Fatalf("first request: %d %s", status, body)
	}
	status, h, body := e.do(http.MethodGet, path, tok, "", nil)
	e.wantRateLimited(http.MethodGet, path, status, h, body, "4")
}

// TestSocketsPerUser: with a cap of 2, a third socket of the user is
// refused at the upgrade with 429 (header token) or with a rate_limited
// frame and the close 1013 (first-frame auth); other users are not
// affected, and once a socket closes the user may open one again.
func TestSocketsPerUser(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{MaxSocketsPerUser: 2})
	tok := e.token("alice")
	first, _, err := e.dial(bearerHeader(tok))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.dial(bearerHeader(tok)); err != nil {
		t.Fatal(err)
	}
	_, resp, err := e.dial(bearerHeader(tok))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third socket: %v, %v; want 429", resp, err)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "10" {
		t.Errorf("Retry-After %q, want 10", ra)
	}
	if _, _, err := e.dial(bearerHeader(e.token("bob"))); err != nil {
		t.Errorf("bob's socket: %v", err)
	}

	c, _, err := e.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, fmt.Sprintf(`{"type":"auth","id":"a1","token":%q}`, tok))
	if f := e.readFrame(c); f["type"] != "error" || f["id"] != "a1" || f["code"] != "rate_limited" || f["retry_after_ms"] != float64(10000) {
		t.Errorf("first-frame auth over the cap answered with %v, want rate_limited with id a1 and retry_after_ms 10000", f)
	}
	wantClose(t, c, websocket.StatusTryAgainLater, "too many sockets")

	// A socket closed makes room, once its handler has ended: poll.
	if err := first.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, resp, err := e.dial(bearerHeader(tok))
		if err == nil {
			break
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("socket after one closed: %v, %v", resp, err)
		}
	}
}

// TestOversizedFrameClosesWith1009: a frame over the read limit (four
// times the largest body plus 4 KiB) closes the socket with 1009.
func TestOversizedFrameClosesWith1009(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{Limits: conversation.Limits{MaxBodyBytes: 100}})
	c, _, err := e.dial(bearerHeader(e.token("alice")))
	if err != nil {
		t.Fatal(err)
	}
	// Just under the limit: answered (too_large: the body is over 100
	// bytes), and the socket stays open.
	body := strings.Repeat("a", 4*100+4096-100)
	write(t, c, `{"type":"send","id":"r1","conversation_id":"g_ab","command_id":"c1","body":"`+body+`"}`)
	if f := e.readFrame(c); f["code"] != "too_large" || f["id"] != "r1" {
		t.Fatalf("a frame under the read limit answered with %v, want too_large", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The write may fail as the server closes; the close code is what
	// counts.
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"`+strings.Repeat("b", 4*100+4096)+`"}`))
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("after an oversized frame: %v, want close 1009", err)
	}
}
