package systemtest_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

const testSecret = "multi-node-test-secret-0123456789abcdef"

// startNode starts roles as a separate node over a shared broker and
// ScyllaDB (the CQL stand-in), as `parley gateway` and friends run in
// production.
func startNode(t *testing.T, k kafkatest.Cluster, scylla, nodeID string, roles app.Roles, extra ...string) *app.System {
	t.Helper()
	cfg, err := app.Load("node", append([]string{"-node-id", nodeID,
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-kafka-brokers", strings.Join(k.Brokers(), ","), "-topic-prefix", k.Names.Prefix,
		"-scylla-hosts", scylla, "-scylla-keyspace", "multinode", "-jwt-secret", testSecret,
		"-partitions", "4", "-log-level", "warn", "-s3-listen", "off",
	}, extra...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := app.Start(ctx, cfg, roles, cfg.Logger(logOut))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// TestTwoGatewayNodes runs two gateway nodes over one Kafka and one
// ScyllaDB: users with a device on each node chat with the same
// guarantees as on one node, and when a node goes away its clients
// resume on the other with no gap and no duplicate.
func TestTwoGatewayNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (two nodes under each routing mode, started and stopped in turn, about 12 s); make test runs it")
	}
	for _, routing := range []string{app.RoutingTargeted, app.RoutingBroadcast} {
		t.Run(routing, func(t *testing.T) { testTwoGatewayNodes(t, routing) })
	}
}

func testTwoGatewayNodes(t *testing.T, routing string) {
	// Under a prefix even on the embedded broker: every role must resolve
	// every name.
	k := kafkatest.Start(t, kafkatest.Prefixed())
	fake := cqlfake.Start(t)
	node1 := startNode(t, k, fake.Addr(), "node1", app.All, "-routing", routing)
	defer stopSystem(t, node1)
	node2 := startNode(t, k, fake.Addr(), "node2", app.Roles{Gateway: true}, "-routing", routing)
	node2Stopped := false
	defer func() {
		if !node2Stopped {
			stopSystem(t, node2)
		}
	}()

	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(user string) string {
		s, err := auth.Issue(user, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	aliceTok, bobTok := tok("alice"), tok("bob")
	a1 := dial(t, node1.HTTPAddr(), aliceTok, false)
	a2 := dial(t, node2.HTTPAddr(), aliceTok, false)
	b1 := dial(t, node1.HTTPAddr(), bobTok, false)
	b2 := dial(t, node2.HTTPAddr(), bobTok, true)
	conv := api{t, node2.HTTPAddr(), aliceTok}.createDirect("bob")

	var wg sync.WaitGroup
	for name, c := range map[string]*wsClient{"a1": a1, "b2": b2} {
		wg.Go(func() {
			for i := range 50 {
				c.send(map[string]any{"type": "send", "id": fmt.Sprint(name, i), "conversation_id": conv, "command_id": fmt.Sprint(name, "-", i), "body": "hi"})
			}
		})
	}
	wg.Wait()
	devices := map[string]*wsClient{"a1": a1, "a2": a2, "b1": b1, "b2": b2}
	for name, c := range devices {
		c.waitFor(func([]map[string]any) bool { return len(c.events(conv)) >= 101 })
		if got := c.events(conv); !slices.Equal(got, seqRange(0, 100)) {
			t.Errorf("device %s received %v, want 0..100 exactly once in order", name, got)
		}
	}

	// Node 2 goes away while Alice keeps sending from node 1.
	stopSystem(t, node2)
	node2Stopped = true
	for name, c := range map[string]*wsClient{"a2": a2, "b2": b2} {
		if code := c.closeStatus(); code != websocket.StatusGoingAway {
			t.Errorf("%s closed with %d, want 1001", name, code)
		}
	}
	for i := range 20 {
		a1.send(map[string]any{"type": "send", "id": fmt.Sprint("late", i), "conversation_id": conv, "command_id": fmt.Sprint("late-", i), "body": "still here"})
	}
	a1.waitFor(func([]map[string]any) bool { return len(a1.events(conv)) >= 121 })
	for name, old := range map[string]*wsClient{"a2": a2, "b2": b2} {
		tokn := aliceTok
		if name == "b2" {
			tokn = bobTok
		}
		last := old.events(conv)[len(old.events(conv))-1]
		c := dial(t, node1.HTTPAddr(), tokn, false)
		c.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: last}})
		c.waitFor(func([]map[string]any) bool { return len(c.events(conv)) >= 120-last })
		c.await(func(f map[string]any) bool { return f["type"] == "resumed" })
		if got := c.events(conv); !slices.Equal(got, seqRange(last+1, 120)) {
			t.Errorf("%s resumed on node 1 with %v, want %d..120", name, got, last+1)
		}
	}
	// Node 1's own clients did not notice.
	for name, c := range map[string]*wsClient{"a1": a1, "b1": b1} {
		c.waitFor(func([]map[string]any) bool { return len(c.events(conv)) >= 121 })
		if got := c.events(conv); !slices.Equal(got, seqRange(0, 120)) {
			t.Errorf("%s on the surviving node received %v", name, got)
		}
	}
}
