package systemtest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// TestGatewayNodeKilled runs a second gateway node as a real `parley
// gateway` process and kills it with SIGKILL mid-conversation: its
// clients reconnect to the surviving node and resume with no gap and no
// duplicate, a user who was only on the killed node goes offline within
// the presence timeout (then online again when back), and the surviving
// node's clients notice nothing.
func TestGatewayNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary, kills a node and waits out its presence timeout, about 10 s); make test runs it")
	}
	bin := buildParley(t)
	k := kafkatest.Start(t, kafkatest.Prefixed())
	fake := cqlfake.Start(t)
	node1 := startNode(t, k, fake.Addr(), "node1", app.All, "-presence-heartbeat", "200ms", "-presence-timeout", "2s")
	defer stopSystem(t, node1)

	addr2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	node2 := startParley(t, bin, addr2, "gateway", "-node-id", "node2", "-data-dir", t.TempDir(), "-http-addr", addr2,
		"-kafka-brokers", strings.Join(k.Brokers(), ","), "-topic-prefix", k.Names.Prefix, "-scylla-hosts", fake.Addr(), "-scylla-keyspace", "multinode",
		"-jwt-secret", testSecret, "-partitions", "4", "-log-level", "warn",
		"-presence-heartbeat", "200ms", "-presence-timeout", "2s")

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
	b2 := dial(t, addr2, bobTok, false) // bob is only on node 2
	conv := api{t, node1.HTTPAddr(), aliceTok}.createDirect("bob")
	waitConversation(t, node1.Store(), conv, 0)
	a1.send(map[string]any{"type": "presence_watch", "id": "pw", "user_ids": []string{"bob"}})
	if f := a1.await(func(f map[string]any) bool { return f["id"] == "pw" }); fmt.Sprint(f["users"]) != "[map[status:online user_id:bob]]" {
		t.Fatalf("bob before the kill: %v, want online", f)
	}
	for i := range 20 {
		a1.send(map[string]any{"type": "send", "id": fmt.Sprint("s", i), "conversation_id": conv, "command_id": fmt.Sprint("before-", i), "body": "hi"})
	}
	b2.waitFor(func([]map[string]any) bool { return len(b2.events(conv)) >= 21 })

	// kill -9 node 2: no close frames, no presence goodbye.
	if err := node2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = node2.Wait()
	if code := b2.closeStatus(); code != -1 {
		t.Errorf("a killed node's socket ended with close code %d, want none (a dropped connection)", code)
	}
	for i := range 10 {
		a1.send(map[string]any{"type": "send", "id": fmt.Sprint("k", i), "conversation_id": conv, "command_id": fmt.Sprint("while-down-", i), "body": "are you there?"})
	}
	presenceOf := func(frames []map[string]any, user string) string {
		status := ""
		for _, f := range frames {
			if f["type"] == "presence" && f["id"] == nil {
				for _, u := range f["users"].([]any) {
					if u := u.(map[string]any); u["user_id"] == user {
						status = u["status"].(string)
					}
				}
			}
		}
		return status
	}
	a1.waitFor(func(fs []map[string]any) bool { return presenceOf(fs, "bob") == "offline" })

	// Bob reconnects to node 1 and resumes from the last seq he saw.
	last := b2.events(conv)[len(b2.events(conv))-1]
	b1 := dial(t, node1.HTTPAddr(), bobTok, false)
	b1.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: last}})
	b1.await(func(f map[string]any) bool { return f["type"] == "resumed" })
	if got := b1.events(conv); !slices.Equal(got, seqRange(last+1, 30)) {
		t.Errorf("bob resumed on node 1 with %v, want %d..30", got, last+1)
	}
	a1.waitFor(func(fs []map[string]any) bool { return presenceOf(fs, "bob") == "online" })
	// Alice, on the surviving node, saw every message once, in order.
	a1.waitFor(func([]map[string]any) bool { return len(a1.events(conv)) >= 31 })
	if got := a1.events(conv); !slices.Equal(got, seqRange(0, 30)) {
		t.Errorf("alice on the surviving node received %v", got)
	}
}
