package systemtest_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// TestContractEdges drives the responses and frames the other system tests
// do not reach — operational endpoints, methods a path does not have, the
// error answers of every conversation read, a block seen live, a gap on
// resume — so that the harness checks them against the API documents too.
func TestContractEdges(t *testing.T) {
	sys := startSystem(t, t.TempDir(), func(c *app.Config) { c.BackfillLimit = 2 })
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	carol := api{t, addr, token(t, "carol", time.Hour)}
	nobody := api{t, addr, ""}
	conv := alice.createDirect("bob")
	seq := alice.send(conv, "c-1")
	const unknown = "g_00000000000000000000000000000000"

	t.Run("operational endpoints", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if status, raw, err := getPublic(t, addr, path); err != nil || status != http.StatusOK {
				t.Errorf("GET %s: %d %v %.200s", path, status, err, raw)
			}
		}
	})

	t.Run("methods and paths the API does not have", func(t *testing.T) {
		for _, c := range [][2]string{
			{"DELETE", "/v1/conversations"},
			{"PUT", "/v1/conversations/" + conv},
			{"GET", "/v1/conversations/" + conv + "/members"},
			{"POST", "/v1/search"},
			{"GET", "/v1/conversations/" + conv + "/nothing"},
		} {
			if status, out := alice.do(c[0], c[1], nil); status < 400 {
				t.Errorf("%s %s: %d %v", c[0], c[1], status, out)
			}
		}
	})

	t.Run("the errors of reads", func(t *testing.T) {
		s := strconv.Itoa(seq)
		for _, c := range []struct {
			who          api
			method, path string
			body         any
			status       int
		}{
			{nobody, "GET", "/v1/conversations/" + conv + "/receipts", nil, 401},
			{carol, "GET", "/v1/conversations/" + conv + "/receipts", nil, 403},
			{alice, "GET", "/v1/conversations/" + unknown + "/receipts", nil, 404},
			{alice, "GET", "/v1/conversations/" + conv + "/receipts?seq=x", nil, 400},
			{carol, "GET", "/v1/conversations/" + conv + "/messages/" + s + "/thread", nil, 403},
			{alice, "GET", "/v1/conversations/" + conv + "/messages/999/thread", nil, 404},
			{alice, "GET", "/v1/conversations/" + conv + "/messages/x/thread", nil, 400},
			{carol, "POST", "/v1/conversations/" + conv + "/read", map[string]any{"seq": seq}, 403},
			{alice, "POST", "/v1/conversations/" + unknown + "/read", map[string]any{}, 404},
			{alice, "POST", "/v1/conversations/" + conv + "/read", map[string]any{"seq": -1}, 400},
			{carol, "GET", "/v1/conversations/" + conv, nil, 403},
			{alice, "GET", "/v1/conversations/" + unknown, nil, 404},
			{alice, "GET", "/v1/conversations?limit=0", nil, 400},
			{alice, "GET", "/v1/search?q=x&conversation_id=" + unknown, nil, 404},
			{nobody, "GET", "/v1/presence?user_ids=bob", nil, 401},
		} {
			if status, out := c.who.do(c.method, c.path, c.body); status != c.status {
				t.Errorf("%s %s: %d %v, want %d", c.method, c.path, status, out, c.status)
			}
		}
	})

	t.Run("a block arrives live and is refused twice", func(t *testing.T) {
		ws := dial(t, addr, bob.token, false)
		ws.send(map[string]any{"type": "ping", "id": "p"})
		ws.await(func(f map[string]any) bool { return f["type"] == "pong" })
		if status, out := alice.do("PUT", "/v1/blocks/bob?command_id=b-1", nil); status != http.StatusOK {
			t.Fatalf("block: %d %v", status, out)
		}
		ws.await(func(f map[string]any) bool {
			return f["type"] == "event" && f["event_type"] == "chat.conversation.blocked.v1"
		})
		if status, out := alice.do("PUT", "/v1/blocks/bob", nil); status != http.StatusConflict {
			t.Errorf("block again: %d %v", status, out)
		}
		if status, out := alice.do("PUT", "/v1/blocks/alice", nil); status != http.StatusBadRequest {
			t.Errorf("block oneself: %d %v", status, out)
		}
		ws.send(map[string]any{"type": "send", "id": "s", "conversation_id": conv, "command_id": "blocked-1", "body": "hi"})
		if f := ws.await(func(f map[string]any) bool { return f["id"] == "s" }); f["code"] != "blocked" {
			t.Errorf("send while blocked: %v", f)
		}
		if status, out := alice.do("DELETE", "/v1/blocks/bob", nil); status != http.StatusOK {
			t.Errorf("unblock: %d %v", status, out)
		}
	})

	t.Run("a resume further back than the backfill gets a gap", func(t *testing.T) {
		status, out := alice.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Gaps", "members": []string{"bob"}})
		if status != http.StatusCreated {
			t.Fatalf("create group: %d %v", status, out)
		}
		group := out["conversation_id"].(string)
		last := 0
		for i := range 5 {
			last = alice.send(group, "gap-"+strconv.Itoa(i))
		}
		ws := dial(t, addr, bob.token, true)
		ws.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{group: 0}})
		ws.await(func(f map[string]any) bool { return f["type"] == "resumed" })
		if gap := ws.await(func(f map[string]any) bool { return f["type"] == "gap" }); gap["reason"] != "backfill_limit" {
			t.Errorf("gap %v, want reason backfill_limit", gap)
		}
		if got := ws.events(group); len(got) == 0 || got[len(got)-1] != last {
			t.Errorf("backfill %v, want up to %d", got, last)
		}
		ws.send(map[string]any{"type": "read", "id": "rd", "conversation_id": group})
		ws.await(func(f map[string]any) bool { return f["type"] == "ack" && f["id"] == "rd" })
		ws.send(map[string]any{"type": "typing", "id": "ty", "conversation_id": unknown})
		ws.await(func(f map[string]any) bool { return f["type"] == "error" && f["id"] == "ty" })
		ws.send(map[string]any{"type": "presence_set", "id": "away", "status": "away"})
		ws.send(map[string]any{"type": "auth", "id": "again", "token": token(t, "bob", time.Hour)})
		ws.await(func(f map[string]any) bool { return f["type"] == "auth_ok" && f["id"] == "again" })
	})
}
