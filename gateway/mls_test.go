package gateway

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/conversation"
)

// TestMLSRequestsAreCheckedBeforeAppending: a malformed MLS command or
// encrypted creation is answered with a documented problem and appends
// nothing; a well-formed one is appended.
func TestMLSRequestsAreCheckedBeforeAppending(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{UserRequests: Rate{PerSecond: -1}, UserCommands: Rate{PerSecond: -1}})
	alice := e.token("alice")
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	commits := "/v1/conversations/g_ab/mls/commits"
	for _, c := range []struct {
		name, path, body string
		status           int
		says             string
	}{
		{"a commit without a device", commits, `{"epoch":0,"commit":"` + b64(8) + `"}`, 400, "device"},
		{"a commit that is not base64", commits, `{"device_id":"d1","epoch":0,"commit":"not base64!"}`, 400, ""},
		{"a commit too large", commits, `{"device_id":"d1","epoch":0,"commit":"` + b64(16<<10+1) + `"}`, 400, "at most"},
		{"added devices without a welcome", commits, `{"device_id":"d1","epoch":0,"commit":"` + b64(8) + `","add_devices":[{"user_id":"bob","device_id":"d2"}]}`, 400, "welcome"},
		{"a device added twice", commits, `{"device_id":"d1","epoch":0,"commit":"` + b64(8) + `","welcome":"` + b64(8) + `","add_devices":[{"user_id":"bob","device_id":"d2"},{"user_id":"bob","device_id":"d2"}]}`, 400, "twice"},
		{"a negative epoch", commits, `{"device_id":"d1","epoch":-1,"commit":"` + b64(8) + `"}`, 400, "epoch"},
		{"a message without ciphertext", "/v1/conversations/g_ab/mls/messages", `{"device_id":"d1","epoch":0}`, 400, "ciphertext"},
		{"a proposal of a bad device id", "/v1/conversations/g_ab/mls/proposals", `{"device_id":"a b","epoch":0,"proposal":"` + b64(8) + `"}`, 400, "device"},
		{"an encrypted group without its device", "/v1/conversations", `{"kind":"group","title":"E","encrypted":true}`, 400, "device"},
		{"a device for a plain group", "/v1/conversations", `{"kind":"group","title":"E","device_id":"d1"}`, 400, "device_id"},
		{"a non-member's commit", "/v1/conversations/g_other/mls/commits", `{"device_id":"d1","epoch":0,"commit":"` + b64(8) + `"}`, 404, ""},
	} {
		status, body := e.call("POST", c.path, alice, c.body)
		if status != c.status || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, status, body, c.status, c.says)
		}
	}
	if n := e.log.n.Load(); n != 0 {
		t.Fatalf("%d commands appended for refused requests", n)
	}
	for _, path := range []string{commits, "/v1/conversations/g_ab/mls/messages"} {
		field := map[string]string{commits: "commit", "/v1/conversations/g_ab/mls/messages": "ciphertext"}[path]
		if status, body := e.call("POST", path, alice, `{"device_id":"d1","epoch":3,"`+field+`":"`+b64(64)+`"}`); status != 201 {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	if n := e.log.n.Load(); n != 2 {
		t.Errorf("%d commands appended, want 2", n)
	}
}

// TestMLSBodiesHaveTheirOwnLimit: a commit with a welcome at their
// largest passes however small the message body limit is; beyond the
// MLS limits a body is too large.
func TestMLSBodiesHaveTheirOwnLimit(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, Config{UserRequests: Rate{PerSecond: -1}, UserCommands: Rate{PerSecond: -1}, Limits: conversation.Limits{MaxBodyBytes: 100}})
	alice := e.token("alice")
	full := base64.StdEncoding.EncodeToString(make([]byte, 16<<10))
	body := `{"device_id":"d1","epoch":0,"commit":"` + full + `","welcome":"` + full + `","add_devices":[{"user_id":"bob","device_id":"d2"}]}`
	if status, out := e.call("POST", "/v1/conversations/g_ab/mls/commits", alice, body); status != 201 {
		t.Errorf("the largest commit and welcome: %d %.300s", status, out)
	}
	huge := `{"device_id":"d1","epoch":0,"commit":"` + strings.Repeat("A", 80<<10) + `"}`
	if status, out := e.call("POST", "/v1/conversations/g_ab/mls/commits", alice, huge); status != 413 {
		t.Errorf("a body beyond the MLS limits: %d %.300s", status, out)
	}
	if status, out := e.call("POST", "/v1/conversations/g_ab/messages", alice, `{"command_id":"x","body":"`+strings.Repeat("a", 5000)+`"}`); status != 413 {
		t.Errorf("a plain message body is still bound by the message limit: %d %.300s", status, out)
	}
}
