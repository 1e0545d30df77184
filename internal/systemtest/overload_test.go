package systemtest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
	"github.com/parley-chat/parley/schemas"
)

// TestGatewayRefusesOnceTooManyAwaitTheDecider: a gateway node whose
// commands get no answer — the only decider has gone — takes as many as
// PARLEY_MAX_AWAITING and refuses the next at once with overloaded,
// appending nothing for it: chat.commands grows by the commands taken
// and no more, and the node's gauge says how many wait.
func TestGatewayRefusesOnceTooManyAwaitTheDecider(t *testing.T) {
	k := kafkatest.Start(t)
	fake := cqlfake.Start(t)
	core := startNode(t, k, fake.Addr(), "core", app.All)
	coreStopped := false
	defer func() {
		if !coreStopped {
			stopSystem(t, core)
		}
	}()
	edge := startNode(t, k, fake.Addr(), "edge", app.Roles{Gateway: true}, "-max-awaiting", "2", "-command-timeout", "1h")
	defer stopSystem(t, edge)
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := auth.Issue("alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := api{t, edge.HTTPAddr(), alice}
	conv := a.createDirect("bob")
	// The conversation is in the history store before its decider goes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := a.do(http.MethodGet, "/v1/conversations/"+conv, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new conversation is not in the history store 30 s later (%d)", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopSystem(t, core)
	coreStopped = true

	c := dial(t, edge.HTTPAddr(), alice, false)
	commands := k.Names.Topic(schemas.TopicCommands)
	before := recordsIn(t, k.Cluster, commands)
	for i := range 2 {
		c.send(map[string]any{"type": "send", "id": fmt.Sprint("r", i), "conversation_id": conv, "command_id": fmt.Sprint("c-", i), "body": "hi"})
	}
	deadline = time.Now().Add(30 * time.Second)
	for metric(t, edge.HTTPAddr(), "parley_gateway_awaiting_commands") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the two sends never waited for their answer together (gauge %v)", metric(t, edge.HTTPAddr(), "parley_gateway_awaiting_commands"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	c.send(map[string]any{"type": "send", "id": "r2", "conversation_id": conv, "command_id": "c-2", "body": "hi"})
	f := c.await(func(f map[string]any) bool { return f["id"] == "r2" })
	if f["type"] != "error" || f["code"] != "overloaded" || f["retryable"] != true {
		t.Fatalf("the third send got %v, want a retryable overloaded error", f)
	}
	if waited := time.Since(sent); waited > 10*time.Second {
		t.Errorf("the refusal took %v: it must come at once", waited)
	}
	if got := recordsIn(t, k.Cluster, commands) - before; got != 2 {
		t.Errorf("chat.commands grew by %d records, want 2: a refused command appends nothing", got)
	}
	if n := metric(t, edge.HTTPAddr(), `parley_rejections_total{code="overloaded",where="gateway"}`); n != 1 {
		t.Errorf("%v overloaded refusals counted, want 1", n)
	}
	for _, fr := range c.snapshot() {
		if id := fr["id"]; id == "r0" || id == "r1" {
			t.Errorf("a send with no decider to decide it was answered: %v", fr)
		}
	}
}
