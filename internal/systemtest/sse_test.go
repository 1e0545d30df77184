package systemtest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// sseMessage is one dispatched Server-Sent Events message.
type sseMessage struct {
	event, data string
	frame       map[string]any
}

// sseClient reads a text/event-stream response as a browser's
// EventSource does (the WHATWG parsing rules), on its own goroutine,
// checking each frame against the AsyncAPI document.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	mu     sync.Mutex
	msgs   []sseMessage
	lastID string // the last event id, as EventSource keeps it
	retry  string
	pings  int
	broken []string
	notify chan struct{}
	closed chan struct{}
}

// openSSE opens GET /v1/events at base with client, the token in the
// Authorization header and lastID, if any, as Last-Event-ID.
func openSSE(t *testing.T, client *http.Client, base, query, tok, lastID string) *sseClient {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, lastID: lastID, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.read(contract(t).ServerFrame)
	t.Cleanup(func() {
		c.close()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, b := range c.broken {
			t.Error(b)
		}
	})
	return c
}

// close drops the connection, as a network failure would, and waits for
// the reader.
func (c *sseClient) close() {
	_ = c.resp.Body.Close()
	<-c.closed
}

func (c *sseClient) read(check func([]byte) error) {
	defer close(c.closed)
	defer c.wake()
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event, id string
	var data []string
	hasID := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			c.mu.Lock()
			if hasID {
				c.lastID = id
			}
			if len(data) > 0 {
				m := sseMessage{event: event, data: strings.Join(data, "\n")}
				if m.event == "" {
					m.event = "message"
				}
				if m.event != "end" {
					if err := check([]byte(m.data)); err != nil {
						c.broken = append(c.broken, fmt.Sprintf("received %v\n%.2000s", err, m.data))
					}
				}
				if err := json.Unmarshal([]byte(m.data), &m.frame); err != nil {
					c.broken = append(c.broken, fmt.Sprintf("non-JSON data %q", m.data))
				} else if m.frame["type"] != m.event {
					c.broken = append(c.broken, fmt.Sprintf("event %q carries a frame of type %v", m.event, m.frame["type"]))
				}
				c.msgs = append(c.msgs, m)
			}
			c.mu.Unlock()
			c.wake()
			event, data, hasID = "", nil, false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment
			c.mu.Lock()
			if value == "ping" {
				c.pings++
			}
			c.mu.Unlock()
			c.wake()
		case "event":
			event = value
		case "data":
			data = append(data, value)
		case "id":
			id, hasID = value, true
		case "retry":
			c.mu.Lock()
			c.retry = value
			c.mu.Unlock()
		}
	}
}

func (c *sseClient) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds of the client, or fails the test.
func (c *sseClient) waitFor(what string, cond func(c *sseClient) bool) {
	c.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.notify:
		case <-c.closed:
			c.mu.Lock()
			ok := cond(c)
			c.mu.Unlock()
			if !ok {
				c.t.Fatalf("the stream closed before %s; got %v", what, c.events())
			}
			return
		case <-deadline.C:
			c.t.Fatalf("no %s in time; got %v", what, c.events())
		}
	}
}

// seqs are the seqs of conv's events the client received, in order.
// Call with mu held.
func (c *sseClient) seqs(conv string) []int {
	var out []int
	for _, m := range c.msgs {
		if m.event == "event" && m.frame["conversation_id"] == conv {
			out = append(out, int(m.frame["seq"].(float64)))
		}
	}
	return out
}

func (c *sseClient) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, m.event+" "+m.data)
	}
	return out
}

// transports are the HTTP clients a stream is tested over: HTTP/1.1,
// and HTTP/2 without TLS (prior knowledge), which the server speaks.
func transports() map[string]*http.Client {
	var h1, h2 http.Protocols
	h1.SetHTTP1(true)
	h2.SetUnencryptedHTTP2(true)
	return map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{Protocols: &h1}},
		"HTTP/2":   {Transport: &http.Transport{Protocols: &h2}},
	}
}

// TestServerSentEvents: a stream gets its user's events in each
// conversation's seq order; dropped and reopened with the last event id,
// it gets what it missed, then live events, with nothing missing and
// nothing twice — over HTTP/1.1 and HTTP/2, and through HAProxy with
// deploy/haproxy.cfg. A stream follows the presence of the users it
// names.
func TestServerSentEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a system and HAProxy (a few seconds); make test runs it")
	}
	cfg := composeHAProxyConfig(t)
	haproxyBinary(t)
	sys := startSystem(t, t.TempDir(), func(c *app.Config) { c.SSEHeartbeat = 50 * time.Millisecond })
	defer stopSystem(t, sys)
	ann := api{t, sys.HTTPAddr(), token(t, "ann", time.Hour)}
	for name, client := range transports() {
		t.Run(name, func(t *testing.T) {
			sseResume(t, client, "http://"+sys.HTTPAddr(), api{t, ann.base, ann.token}, name)
		})
	}
	t.Run("presence", func(t *testing.T) {
		// carl follows ann, with whom he shares a conversation: the
		// stream's first presence message has her state; then dan,
		// whom carl also talks to, opens a stream and comes online.
		ann := api{t, ann.base, ann.token}
		ann.group("g-presence", "SSE presence", "carl", "dan")
		carl := api{t, ann.base, token(t, "carl", time.Hour)}
		// Whom carl may follow comes from the history projection.
		eventuallyT(t, "carl to see ann and dan", func() bool {
			_, out := carl.do("GET", "/v1/presence?user_ids=ann,dan", nil)
			users, _ := out["users"].([]any)
			return len(users) == 2
		}, func() string { return "GET /v1/presence never had both" })
		client := transports()["HTTP/1.1"]
		s := openSSE(t, client, "http://"+sys.HTTPAddr(), "?presence=ann,dan", carl.token, "")
		state := func(user, status string) func(c *sseClient) bool {
			return func(c *sseClient) bool {
				return slices.ContainsFunc(c.msgs, func(m sseMessage) bool {
					users, _ := m.frame["users"].([]any)
					return m.event == "presence" && slices.ContainsFunc(users, func(u any) bool {
						st, _ := u.(map[string]any)
						return st["user_id"] == user && st["status"] == status
					})
				})
			}
		}
		s.waitFor("ann's state", state("ann", "offline"))
		openSSE(t, client, "http://"+sys.HTTPAddr(), "?device_id=dans-phone", token(t, "dan", time.Hour), "")
		s.waitFor("dan online", state("dan", "online"))
	})
	t.Run("through HAProxy", func(t *testing.T) {
		// Both of the file's gateways are this system's.
		lb := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		startHAProxy(t, cfg, lb, "PARLEY_LB_BIND="+lb, "PARLEY_GATEWAY_1="+sys.HTTPAddr(), "PARLEY_GATEWAY_2="+sys.HTTPAddr())
		sseResume(t, transports()["HTTP/1.1"], "http://"+lb, api{t, ann.base, ann.token}, "HTTP/1.1")
	})
}

// sseResume is TestServerSentEvents' resume scenario, with
// streams opened with client at base and messages sent by ann. proto is
// the protocol the stream must be served over.
func sseResume(t *testing.T, client *http.Client, base string, ann api, proto string) {
	tag := strings.NewReplacer("/", "", ".", "", ":", "", " ", "", "_", "").Replace(strings.ToLower(t.Name()))
	tag = tag[len(tag)-min(len(tag), 20):]
	direct := ann.createDirect("bob-" + tag)
	group := ann.group("g-"+tag, "SSE "+tag, "bob-"+tag)
	convs := []string{direct, group}
	bob := token(t, "bob-"+tag, time.Hour)

	s := openSSE(t, client, base, "", bob, "")
	if want := map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto]; s.resp.ProtoMajor != want {
		t.Fatalf("served over %s, want %s", s.resp.Proto, proto)
	}
	s.waitFor("a heartbeat", func(c *sseClient) bool { return c.pings > 0 && c.retry != "" })
	sent := map[string][]int{}
	send := func(n int, round string) {
		for i := range n {
			for _, conv := range convs {
				sent[conv] = append(sent[conv], ann.send(conv, fmt.Sprintf("%s-%s-%d", round, conv, i)))
			}
		}
	}
	have := func(c *sseClient) bool {
		for _, conv := range convs {
			got := c.seqs(conv)
			if len(got) == 0 || got[len(got)-1] < slices.Max(sent[conv]) {
				return false
			}
		}
		return true
	}
	send(5, "live")
	s.waitFor("the live events", have)
	s.mu.Lock()
	lastID := s.lastID
	first := map[string][]int{}
	for _, conv := range convs {
		first[conv] = s.seqs(conv)
	}
	s.mu.Unlock()
	if lastID == "" {
		t.Fatal("no event carried an id")
	}
	s.close()

	send(5, "missed")
	r := openSSE(t, client, base, "", bob, lastID)
	r.waitFor("the resumed frame", func(c *sseClient) bool {
		return slices.ContainsFunc(c.msgs, func(m sseMessage) bool { return m.event == "resumed" })
	})
	send(3, "after")
	r.waitFor("every event", have)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, conv := range convs {
		got := append(slices.Clone(first[conv]), r.seqs(conv)...)
		// The direct conversation's first event may be its
		// creation, which a stream opened after it does not get.
		if want := sent[conv]; len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("%s: received %v across the drop, want %v, each once, in order", conv, got, want)
		}
	}
	for _, m := range r.msgs {
		if m.event == "gap" || m.event == "error" {
			t.Errorf("unexpected %s: %s", m.event, m.data)
		}
	}
}
