package systemtest_test

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/schemas"
)

// cluster is gateway nodes over one Kafka (see kafkatest) and one ScyllaDB
// stand-in; the first node runs every role (router included).
type cluster struct {
	t     *testing.T
	names kafkalog.Names
	nodes map[string]*app.System
	auth  *gateway.Authenticator
}

func startCluster(t *testing.T, routing string, names ...string) *cluster {
	t.Helper()
	k := kafkatest.Start(t, kafkatest.Prefixed())
	fake := cqlfake.Start(t)
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, names: k.Names, nodes: map[string]*app.System{}, auth: auth}
	for i, name := range names {
		roles := app.Roles{Gateway: true}
		if i == 0 {
			roles = app.All
		}
		sys := startNode(t, k, fake.Addr(), name, roles, "-routing", routing)
		t.Cleanup(func() { stopSystem(t, sys) })
		c.nodes[name] = sys
	}
	return c
}

func (c *cluster) token(user string) string {
	s, err := c.auth.Issue(user, time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *cluster) dial(node, user string) *wsClient {
	return dial(c.t, c.nodes[node].HTTPAddr(), c.token(user), false)
}

func (c *cluster) api(node, user string) api {
	return api{c.t, c.nodes[node].HTTPAddr(), c.token(user)}
}

// metric returns the value of a counter series on node's /metrics, 0 if
// it is not there.
func (c *cluster) metric(node, series string) float64 {
	c.t.Helper()
	resp, err := httpClient.Get("http://" + c.nodes[node].HTTPAddr() + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				c.t.Fatalf("%s: %q", series, v)
			}
			return f
		}
	}
	return 0
}

func (c *cluster) readSeries(topic string) string {
	return `parley_delivery_records_read_total{topic="` + c.names.Topic(topic) + `"}`
}

// TestTargetedRouting runs four gateway nodes under targeted routing:
// users with a device on each of two nodes chat with every event once
// and in order on every socket; a node holding none of the
// conversation's members reads none of its events; a node with no
// socket at all answers HTTP sends — accepted and duplicate — made on it.
func TestTargetedRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (four gateway nodes and a router, about 12 s); make test runs it")
	}
	c := startCluster(t, app.RoutingTargeted, "n1", "n2", "n3", "n4")
	devices := map[string]*wsClient{
		"alice@n1": c.dial("n1", "alice"), "alice@n2": c.dial("n2", "alice"),
		"bob@n1": c.dial("n1", "bob"), "bob@n2": c.dial("n2", "bob"),
	}
	dave := c.dial("n3", "dave") // in no conversation of theirs
	conv := c.api("n2", "alice").createDirect("bob")

	var wg sync.WaitGroup
	for name, ws := range map[string]*wsClient{"a1": devices["alice@n1"], "b2": devices["bob@n2"]} {
		wg.Go(func() {
			for i := range 40 {
				ws.send(map[string]any{"type": "send", "id": fmt.Sprint(name, i), "conversation_id": conv, "command_id": fmt.Sprint(name, "-", i), "body": "hi"})
			}
		})
	}
	// HTTP only, on n4, where alice holds no socket: the answers come
	// back to n4 all the same.
	http4 := c.api("n4", "alice")
	var httpSeqs []int
	for i := range 5 {
		httpSeqs = append(httpSeqs, http4.send(conv, fmt.Sprint("h-", i)))
	}
	wg.Wait()
	if status, out := http4.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "h-2", "body": "again"}); status != http.StatusOK || out["duplicate"] != true || out["seq"] != float64(httpSeqs[2]) {
		t.Errorf("retried send on n4: %d %v, want 200, duplicate, seq %d", status, out, httpSeqs[2])
	}
	const last = 85 // the creation, 80 WebSocket sends, 5 HTTP sends
	for name, ws := range devices {
		ws.waitFor(func([]map[string]any) bool { return len(ws.events(conv)) >= last+1 })
		if got := ws.events(conv); !slices.Equal(got, seqRange(0, last)) {
			t.Errorf("%s received %v, want 0..%d exactly once in order", name, got, last)
		}
	}
	// Dave's own conversation, last: once he has it, everything before
	// it has been routed.
	carolConv := c.api("n1", "dave").createDirect("carol")
	dave.waitFor(func([]map[string]any) bool { return len(dave.events(carolConv)) == 1 })
	if got := dave.events(conv); len(got) != 0 {
		t.Errorf("dave received %v of a conversation he is not in", got)
	}
	if got := c.metric("n3", c.readSeries(schemas.DeliveryTopic("n3"))); got != 1 {
		t.Errorf("n3, holding no member of %s, read %v records of its delivery topic, want 1 (dave's own creation)", conv, got)
	}
	if got := c.metric("n3", c.readSeries(schemas.TopicEvents)); got != 0 {
		t.Errorf("n3 read %v records of chat.events, want none under targeted routing", got)
	}
	// n4 read the answers to its 6 commands (5 events, 1 duplicate
	// reply) and nothing else.
	if got := c.metric("n4", c.readSeries(schemas.DeliveryTopic("n4"))); got != 6 {
		t.Errorf("n4 read %v records of its delivery topic, want 6", got)
	}
	if got := c.metric("n1", c.readSeries(schemas.DeliveryTopic("n1"))); got < last+1 {
		t.Errorf("n1 read %v records of its delivery topic, want at least %d", got, last+1)
	}
}

// TestTargetedRegistrationRace opens sockets and has events follow at
// once, again and again, so that events are routed while the router's
// registry does not know the socket yet: nothing may be lost, with no
// further event to reveal a gap. A fresh socket gets what was sent after
// it opened; a resuming one gets everything after its last seq.
func TestTargetedRegistrationRace(t *testing.T) {
	c := startCluster(t, app.RoutingTargeted, "n1", "n2")
	alice := c.api("n1", "alice")
	conv := alice.createDirect("bob")
	last := alice.send(conv, "first")
	for i := range 8 {
		resume := i%2 == 1
		bob := c.dial("n2", "bob")
		if resume {
			bob.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: last}})
		}
		seq := alice.send(conv, fmt.Sprint("race-", i)) // at once: no wait for presence
		want := []int{seq}
		if resume {
			want = seqRange(last+1, seq)
		}
		bob.waitFor(func([]map[string]any) bool { return len(bob.events(conv)) >= len(want) })
		// Barrier: a later message of the same conversation. Its events
		// reach bob's socket in order, so once he has it, a duplicate of
		// anything before it would have arrived already.
		marker := alice.send(conv, fmt.Sprint("marker-", i))
		bob.waitFor(func([]map[string]any) bool { return slices.Contains(bob.events(conv), marker) })
		if got := bob.events(conv); !slices.Equal(got, append(want, marker)) {
			t.Errorf("round %d (resume %v): bob's new socket received %v, want %v", i, resume, got, append(want, marker))
		}
		_ = bob.c.CloseNow()
		if i%3 == 0 {
			last = alice.send(conv, fmt.Sprint("while-away-", i))
		} else {
			last = marker
		}
	}
}
