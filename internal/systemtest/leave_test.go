package systemtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// TestFormerMember: a member who leaves a group stops receiving it at
// once and can no longer read, search or write it; the others go on; a
// retried leave is answered with the original seq.
func TestFormerMember(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	carol := api{t, addr, token(t, "carol", time.Hour)}

	status, out := alice.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Airships", "members": []string{"bob", "carol"}, "command_id": "g1"})
	if status != http.StatusCreated {
		t.Fatalf("create group: %d %v", status, out)
	}
	conv := out["conversation_id"].(string)
	bws := dial(t, addr, bob.token, false)
	cws := dial(t, addr, carol.token, false)
	alice.send(conv, "before")
	bws.waitFor(func([]map[string]any) bool { return slices.Contains(bws.events(conv), 1) })

	status, out = bob.do("POST", "/v1/conversations/"+conv+"/leave", map[string]any{"command_id": "bye"})
	if status != http.StatusOK || out["seq"] != float64(2) || out["duplicate"] != false {
		t.Fatalf("leave: %d %v, want seq 2", status, out)
	}
	status, out = bob.do("POST", "/v1/conversations/"+conv+"/leave", map[string]any{"command_id": "bye"})
	if status != http.StatusOK || out["seq"] != float64(2) || out["duplicate"] != true {
		t.Errorf("retried leave: %d %v, want the original seq 2 as a duplicate", status, out)
	}

	for i := range 3 {
		status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": fmt.Sprint("after-", i), "body": "the zeppelin departs at noon"})
		if status != http.StatusCreated {
			t.Fatalf("send after bob left: %d %v", status, out)
		}
	}
	cws.waitFor(func([]map[string]any) bool { return len(cws.events(conv)) >= 5 })
	if got := cws.events(conv); !slices.Equal(got, seqRange(1, 5)) {
		t.Errorf("carol, still a member, received %v, want 1..5 (the departure is seq 2)", got)
	}
	// Bob's socket got the message before he left, his departure, and
	// nothing after.
	if got := bws.events(conv); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("bob's socket received %v, want [1 2]: the message before he left and his departure", got)
	}

	if status, p := bob.do("GET", "/v1/conversations/"+conv+"/history", nil); status != http.StatusForbidden || p["code"] != "not_member" {
		t.Errorf("history for a former member: %d %v, want 403 not_member", status, p)
	}
	if status, p := bob.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "sneak", "body": "hello?"}); status != http.StatusForbidden {
		t.Errorf("send by a former member: %d %v, want 403", status, p)
	}
	bws.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: 1}})
	if f := bws.await(func(f map[string]any) bool { return f["id"] == "r" && f["type"] == "error" }); f["code"] != "not_member" {
		t.Errorf("resume by a former member: %v", f)
	}
	eventually(t, func() bool {
		_, out := bob.do("GET", "/v1/conversations", nil)
		return len(out["conversations"].([]any)) == 0
	})

	// Search: carol finds the messages; bob, now a former member, does
	// not, with or without naming the conversation.
	q := "/v1/search?q=" + url.QueryEscape("zeppelin noon")
	searchUntil(t, carol, q)
	eventually(t, func() bool {
		_, out := carol.do("GET", q+"&limit=10", nil)
		return len(out["results"].([]any)) == 3
	})
	if status, out := bob.do("GET", q, nil); status != http.StatusOK || len(out["results"].([]any)) != 0 {
		t.Errorf("a former member's search: %d %v, want no results", status, out)
	}
	if status, out := bob.do("GET", q+"&conversation_id="+conv, nil); status != http.StatusForbidden || out["code"] != "not_member" {
		t.Errorf("a former member naming the conversation: %d %v, want 403 not_member", status, out)
	}

	// Unread: the messages after each member's read seq (sending marks
	// read; the departure at seq 2 is not a message).
	eventually(t, func() bool {
		_, out := carol.do("GET", "/v1/conversations", nil)
		cs := out["conversations"].([]any)
		return len(cs) == 1 && cs[0].(map[string]any)["last_seq"] == float64(5)
	})
	for who, want := range map[string][2]float64{"alice": {5, 0}, "carol": {0, 4}} {
		_, out := api{t, addr, token(t, who, time.Hour)}.do("GET", "/v1/conversations", nil)
		c := out["conversations"].([]any)[0].(map[string]any)
		if c["read_seq"] != want[0] || c["unread"] != want[1] {
			t.Errorf("%s's conversation: read_seq %v, unread %v; want %v and %v", who, c["read_seq"], c["unread"], want[0], want[1])
		}
	}

	// A direct conversation cannot be left.
	direct := alice.createDirect("bob")
	if status, p := alice.do("POST", "/v1/conversations/"+direct+"/leave", map[string]any{"command_id": "no"}); status != http.StatusUnprocessableEntity || p["code"] != "invalid_command" {
		t.Errorf("leaving a direct conversation: %d %v, want 422 invalid_command", status, p)
	}
}
