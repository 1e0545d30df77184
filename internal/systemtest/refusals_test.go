package systemtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMalformedRequestFields: a field of the wrong JSON type or out of
// range, and text that is not valid UTF-8, are refused with
// invalid_request in plain words — and nothing is appended.
func TestMalformedRequestFields(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	alice.send(conv, "first")
	path := "/v1/conversations/" + conv + "/messages"
	cases := []struct {
		name, body, field string
	}{
		{"a negative reply_to", `{"command_id":"m1","body":"hi","reply_to":-1}`, "reply_to"},
		{"a fractional reply_to", `{"command_id":"m2","body":"hi","reply_to":1.5}`, "reply_to"},
		{"a reply_to as a string", `{"command_id":"m3","body":"hi","reply_to":"1"}`, "reply_to"},
		{"a body as a number", `{"command_id":"m4","body":42}`, "body"},
		{"a body that is not UTF-8", "{\"command_id\":\"m5\",\"body\":\"caf\xe9\"}", "UTF-8"},
	}
	for _, c := range cases {
		status, out := alice.do("POST", path, c.body)
		detail, _ := out["detail"].(string)
		if status != http.StatusBadRequest || out["code"] != "invalid_request" || !strings.Contains(detail, c.field) {
			t.Errorf("%s: %d %v, want 400 invalid_request naming %s", c.name, status, out, c.field)
		}
		if strings.Contains(detail, "uint64") || strings.Contains(detail, "Go ") || strings.Contains(detail, "json:") {
			t.Errorf("%s: detail %q speaks Go, not the API", c.name, detail)
		}
	}
	if _, out := alice.do("GET", "/v1/conversations/"+conv, nil); out["last_seq"] != float64(1) {
		t.Errorf("last seq %v after refused requests, want 1", out["last_seq"])
	}
}

// TestResumeBeyondTheLastSeq: a resume from a seq the conversation has
// not reached is refused for that conversation — it would otherwise
// silently drop live events up to it — and the socket then gets every
// live event.
func TestResumeBeyondTheLastSeq(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	alice.send(conv, "one")

	ws := dial(t, addr, token(t, "bob", time.Hour), false)
	ws.send(map[string]any{"type": "resume", "id": "r1", "conversations": map[string]any{conv: 50}})
	refusal := ws.await(func(f map[string]any) bool { return f["type"] == "error" && f["id"] == "r1" })
	if refusal["code"] != "invalid_request" || !strings.Contains(refusal["message"].(string), conv) {
		t.Errorf("refusal %v, want invalid_request naming the conversation", refusal)
	}
	ws.await(func(f map[string]any) bool { return f["type"] == "resumed" && f["id"] == "r1" })
	alice.send(conv, "two")
	ws.await(func(f map[string]any) bool { return f["type"] == "event" && f["seq"] == float64(2) })
}
