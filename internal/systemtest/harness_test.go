package systemtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

// newContract compiles the API documents once for every test.
var newContract = sync.OnceValues(contractcheck.New)

// contract returns the checker of the API documents: every response and
// frame the tests see goes through it, and one that breaks its document
// fails the test.
func contract(t testing.TB) *contractcheck.Checker {
	t.Helper()
	c, err := newContract()
	if err != nil {
		t.Fatalf("loading the API documents: %v", err)
	}
	return c
}

// startSystem starts every role in-process on free ports over dir.
func startSystem(t testing.TB, dir string, tweak ...func(*app.Config)) *app.System {
	t.Helper()
	sys, err := tryStartSystem(t, dir, tweak...)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// tryStartSystem is startSystem, returning the error Start returns.
func tryStartSystem(t testing.TB, dir string, tweak ...func(*app.Config)) (*app.System, error) {
	t.Helper()
	cfg := testConfig(t, dir, tweak...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return app.Start(ctx, cfg, app.All, testLogger(cfg))
}

// testConfig is the settings startSystem starts every role with.
func testConfig(t testing.TB, dir string, tweak ...func(*app.Config)) app.Config {
	t.Helper()
	cfg, err := app.Load("test", []string{
		"-data-dir", dir, "-http-addr", "127.0.0.1:0", "-kafka-listen", "127.0.0.1:0", "-s3-listen", "off",
		"-partitions", "4", "-log-level", "warn",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(&cfg)
	}
	return cfg
}

// testLogger logs to standard error under -v, else nowhere.
func testLogger(cfg app.Config) *slog.Logger {
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	return cfg.Logger(logOut)
}

func stopSystem(t testing.TB, sys *app.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sys.Stop(ctx); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

func token(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(app.DevSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Issue(user, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// httpClient bounds every request of the tests, so a stuck server fails
// a test instead of hanging it.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// api is an HTTP client of one user.
type api struct {
	t     testing.TB
	base  string
	token string
}

func (a api) do(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	resp, raw := a.request(method, path, body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			a.t.Fatalf("%s %s: non-JSON response %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// request makes a request with a's token (as it is: a bad one too) and
// returns the response with its body read, checked against the API
// documents; an error answer must be problem+json.
func (a api) request(method, path string, body any) (*http.Response, []byte) {
	a.t.Helper()
	resp := a.open(method, path, body)
	return resp, a.read(method, path, resp)
}

// read reads and closes resp's body and checks the answer against the
// API documents; an error answer must be problem+json.
func (a api) read(method, path string, resp *http.Response) []byte {
	a.t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the response: %v", method, path, err)
	}
	if err := contract(a.t).Response(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw); err != nil {
		a.t.Errorf("%v\n%.2000s", err, raw)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		a.t.Errorf("%s %s: error %d with Content-Type %q, want application/problem+json", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return raw
}

// open sends a request with a's token (as it is: a bad one too) and
// returns the response, its body unread.
func (a api) open(method, path string, body any) *http.Response {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = bytes.NewBufferString(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	req, _ := http.NewRequest(method, "http://"+a.base+path, rd)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

// getPublic sends a GET without a token (for /healthz, /readyz, /metrics)
// and checks the response against the OpenAPI document. A connection
// error is returned, for callers that poll until the server is up.
func getPublic(t testing.TB, addr, path string) (int, []byte, error) {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if err := contract(t).Response("GET", path, resp.StatusCode, resp.Header.Get("Content-Type"), raw); err != nil {
		t.Errorf("%v\n%.2000s", err, raw)
	}
	return resp.StatusCode, raw, nil
}

func (a api) createDirect(other string) string {
	a.t.Helper()
	status, out := a.do("POST", "/v1/conversations", map[string]any{"kind": "direct", "members": []string{other}})
	if status != http.StatusCreated && status != http.StatusOK {
		a.t.Fatalf("create direct: %d %v", status, out)
	}
	return out["conversation_id"].(string)
}

// send sends a message over HTTP and returns its seq.
func (a api) send(conv, commandID string) int {
	a.t.Helper()
	status, out := a.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": commandID, "body": "message " + commandID})
	if status != http.StatusCreated {
		a.t.Fatalf("send %s: %d %v", commandID, status, out)
	}
	return int(out["seq"].(float64))
}

// history returns every event of a conversation, ascending: the
// creation (seq 0, the only event before seq 1), then forward pages.
func (a api) history(conv string) []map[string]any {
	a.t.Helper()
	var all []map[string]any
	path := fmt.Sprintf("/v1/conversations/%s/history?limit=1&before=1", conv)
	for {
		status, out := a.do("GET", path, nil)
		if status != http.StatusOK {
			a.t.Fatalf("history: %d %v", status, out)
		}
		evs := out["events"].([]any)
		for _, e := range evs {
			all = append(all, e.(map[string]any))
		}
		last := 0
		if len(all) > 0 {
			last = int(all[len(all)-1]["seq"].(float64))
		}
		if strings.Contains(path, "after=") && !out["has_more"].(bool) {
			return all
		}
		path = fmt.Sprintf("/v1/conversations/%s/history?limit=200&after=%d", conv, last)
	}
}

// seqs returns the seq of each event.
func seqs(events []map[string]any) []int {
	out := make([]int, len(events))
	for i, e := range events {
		out[i] = int(e["seq"].(float64))
	}
	return out
}

// wsClient is a WebSocket client that collects every frame it receives.
// Every frame it sends and receives is checked against the AsyncAPI
// document; a frame that breaks it fails the test (received ones when the
// test ends, since they are read on their own goroutine).
type wsClient struct {
	t      *testing.T
	c      *websocket.Conn
	check  *contractcheck.Checker
	mu     sync.Mutex
	frames []map[string]any
	broken []string // received frames that break the document, and why
	notify chan struct{}
	closed chan struct{}
	err    error
}

// newWSClient reads c's frames until the test ends, then reports those
// that broke the AsyncAPI document.
func newWSClient(t *testing.T, c *websocket.Conn) *wsClient {
	t.Helper()
	c.SetReadLimit(1 << 20)
	w := &wsClient{t: t, c: c, check: contract(t), notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go w.read()
	t.Cleanup(func() {
		_ = c.CloseNow()
		<-w.closed
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, b := range w.broken {
			t.Error(b)
		}
	})
	return w
}

// dial connects as user, authenticating with the header (or, if
// firstFrame, with an auth frame).
func dial(t *testing.T, addr, tok string, firstFrame bool) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{}
	if !firstFrame {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + tok}}
	}
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	w := newWSClient(t, c)
	if firstFrame {
		w.send(map[string]any{"type": "auth", "id": "auth", "token": tok})
		w.await(func(f map[string]any) bool { return f["type"] == "auth_ok" })
	}
	return w
}

func (w *wsClient) read() {
	defer close(w.closed)
	for {
		_, data, err := w.c.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		if err := w.check.ServerFrame(data); err != nil {
			w.mu.Lock()
			w.broken = append(w.broken, fmt.Sprintf("received %v\n%.2000s", err, data))
			w.mu.Unlock()
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			w.mu.Lock()
			w.err = fmt.Errorf("server sent non-JSON frame %q", data)
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.frames = append(w.frames, f)
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// send sends frame, which must be valid against the AsyncAPI document.
func (w *wsClient) send(frame any) {
	w.t.Helper()
	b, err := json.Marshal(frame)
	if err != nil {
		w.t.Fatal(err)
	}
	w.sendRaw(b)
}

// sendRaw sends b, a frame written as JSON text, checked like send's.
func (w *wsClient) sendRaw(b []byte) {
	w.t.Helper()
	if err := w.check.ClientFrame(b); err != nil {
		w.t.Errorf("sending %v (a frame broken on purpose goes by sendInvalid)\n%s", err, b)
	}
	w.write(b)
}

// sendInvalid sends b unchecked: for frames that break the protocol on
// purpose, to test how the server refuses them.
func (w *wsClient) sendInvalid(b []byte) {
	w.t.Helper()
	w.write(b)
}

func (w *wsClient) write(b []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// await waits until a received frame satisfies pred and returns it.
func (w *wsClient) await(pred func(map[string]any) bool) map[string]any {
	w.t.Helper()
	var out map[string]any
	w.waitFor(func(frames []map[string]any) bool {
		for _, f := range frames {
			if pred(f) {
				out = f
				return true
			}
		}
		return false
	})
	return out
}

// waitFor waits, up to 30 s, until cond holds over the frames so far.
func (w *wsClient) waitFor(cond func([]map[string]any) bool) {
	w.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		frames := slices.Clone(w.frames)
		err := w.err
		w.mu.Unlock()
		n := len(frames)
		// cond runs without the lock: it may call methods that take it.
		if cond(frames) {
			return
		}
		if err != nil {
			w.t.Fatalf("connection ended before the condition held (%d frames): %v", n, err)
		}
		select {
		case <-w.notify:
		case <-deadline:
			w.t.Fatalf("timed out waiting; %d frames received", n)
		}
	}
}

// snapshot returns the frames received so far.
func (w *wsClient) snapshot() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.frames)
}

// events returns the seqs of the event frames of conv, in arrival order.
func (w *wsClient) events(conv string) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var seqs []int
	for _, f := range w.frames {
		if f["type"] == "event" && f["conversation_id"] == conv {
			seqs = append(seqs, int(f["seq"].(float64)))
		}
	}
	return seqs
}

// closeStatus waits for the server to close the connection and returns
// its close code.
func (w *wsClient) closeStatus() websocket.StatusCode {
	w.t.Helper()
	select {
	case <-w.closed:
	case <-time.After(30 * time.Second):
		w.t.Fatal("server did not close the connection")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return websocket.CloseStatus(w.err)
}

func seqRange(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}
