package systemtest_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.yaml.in/yaml/v3"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/internal/mlswire/mlswiretest"
)

// TestAuthorizationMatrix sends every operation of the HTTP API
// (schemas/openapi.yaml: the test fails if one is missing here) and every
// conversation frame of the WebSocket protocol as each kind of caller: a
// member, a user who never was one, a former member, a user blocked in a
// direct conversation, and tokens of another issuer, for another
// audience, expired, signed with another key, and with alg "none". Each
// call is answered as documented — allowed, or refused with its status and
// code — a refusal carries nothing of the conversation (its messages,
// members or title), lists and searches of outsiders never show it, and
// nothing refused is appended.
func TestAuthorizationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (every operation as nine callers, about 10 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	as := func(u string) api { return api{t, addr, token(t, u, time.Hour)} }
	ann, mem, former, non, blk := as("ann"), as("mem"), as("former"), as("non"), as("blk")
	secret := "zeppelin-" + randomHex(t)

	// G: ann's group with mem and former, who leaves; ann and mem have
	// said the secret. D: mem and blk, each with a message, then mem
	// blocks blk.
	status, out := ann.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Hangar " + secret, "members": []string{"mem", "former"}, "command_id": "g"})
	if status != http.StatusCreated {
		t.Fatalf("create group: %d %v", status, out)
	}
	g := out["conversation_id"].(string)
	annMsg := ann.sendBody(g, "a1", "ann: "+secret)
	memMsg := mem.sendBody(g, "m1", "mem: "+secret)
	if status, out := mem.do("PUT", fmt.Sprintf("/v1/conversations/%s/messages/%d/reactions/%s", g, annMsg, url.PathEscape("👍")), nil); status != http.StatusOK {
		t.Fatalf("react: %d %v", status, out)
	}
	if status, out := former.do("POST", "/v1/conversations/"+g+"/leave", map[string]any{"command_id": "bye"}); status != http.StatusOK {
		t.Fatalf("leave: %d %v", status, out)
	}
	d := mem.createDirect("blk")
	mem.sendBody(d, "d1", "to blk: "+secret)
	blkMsg := blk.sendBody(d, "d2", "to mem: "+secret)
	status, out = mem.do("PUT", "/v1/blocks/blk", nil)
	if status != http.StatusOK {
		t.Fatalf("block: %d %v", status, out)
	}
	blockSeq := int(out["seq"].(float64))
	lastSeq := func(conv string) int {
		if conv == d {
			return lastSeqOf(t, mem, conv)
		}
		return lastSeqOf(t, ann, conv)
	}
	// Reads come from the history projection: wait until it has both
	// conversations as they now are.
	eventuallyT(t, "history to have the block", func() bool { return lastSeq(d) == blockSeq },
		func() string { return fmt.Sprint("history of the direct conversation ends at ", lastSeq(d)) })
	eventuallyT(t, "history to have the departure", func() bool { return lastSeq(g) > memMsg },
		func() string { return fmt.Sprint("history of the group ends at ", lastSeq(g)) })
	gLast := lastSeq(g)

	// The callers. Member cells run on a fresh group of ann's each (so a
	// leave or a deletion changes nothing for the next cell), where mem
	// is a plain member with a message of its own and a reaction.
	type caller struct {
		name  string
		token string
		conv  func(t *testing.T) (conv string, own, other int) // nil: bad token
	}
	fresh := 0
	memberConv := func(t *testing.T) (string, int, int) {
		ann, mem := api{t, addr, ann.token}, api{t, addr, mem.token}
		fresh++
		status, out := ann.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Fresh", "members": []string{"mem", "max"}, "command_id": fmt.Sprint("fresh-", fresh)})
		if status != http.StatusCreated {
			t.Fatalf("create group: %d %v", status, out)
		}
		c := out["conversation_id"].(string)
		other := ann.sendBody(c, "o", "hello")
		own := mem.sendBody(c, "m", "hi")
		if status, out := mem.do("PUT", fmt.Sprintf("/v1/conversations/%s/messages/%d/reactions/%s", c, other, url.PathEscape("👍")), nil); status != http.StatusOK {
			t.Fatalf("react: %d %v", status, out)
		}
		// Reads of the cell (a thread, receipts) come from the history
		// projection: wait until it has the reaction.
		eventuallyT(t, "history to have the fresh group", func() bool {
			return lastSeqOf(t, ann, c) > own
		}, func() string { return "history never reached the reaction" })
		return c, own, other
	}
	outsider := func(*testing.T) (string, int, int) { return g, memMsg, annMsg }
	callers := []caller{
		{"member", mem.token, memberConv},
		{"non-member", non.token, outsider},
		{"former member", former.token, outsider},
		{"blocked", blk.token, func(*testing.T) (string, int, int) { return d, blkMsg, blkMsg - 1 }},
	}
	for _, bt := range badTokens(t) {
		callers = append(callers, caller{name: bt.name, token: bt.token})
	}

	// want is the answer of each operation per caller: a status, and for
	// a refusal its code. Callers with a bad token are refused alike.
	type want struct {
		status int
		code   string
	}
	ok := func(status int) want { return want{status: status} }
	notMember := want{http.StatusForbidden, "not_member"}
	type op struct {
		// req builds the request for a conversation, the caller's own
		// message in it and another's.
		req    func(conv string, own, other int) (path string, body any)
		public bool
		// answers by caller name; outsiders are non-member and former
		// member, who are answered alike.
		member, outsider, blocked want
	}
	msgPath := func(conv string, seq int, rest string) string {
		return fmt.Sprintf("/v1/conversations/%s/messages/%d%s", conv, seq, rest)
	}
	thumbs := "/reactions/" + url.PathEscape("👍")
	ops := map[string]op{
		"POST /v1/conversations": {req: func(string, int, int) (string, any) {
			return "/v1/conversations", map[string]any{"kind": "direct", "members": []string{"zed"}}
		}, member: ok(201), outsider: ok(201), blocked: ok(201)},
		"GET /v1/conversations": {req: func(string, int, int) (string, any) { return "/v1/conversations", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		"GET /v1/conversations/{id}": {req: func(c string, _, _ int) (string, any) { return "/v1/conversations/" + c, nil },
			member: ok(200), outsider: notMember, blocked: ok(200)},
		"PATCH /v1/conversations/{id}": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c, map[string]any{"title": "Renamed"}
		}, member: want{403, "forbidden"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"GET /v1/conversations/{id}/history": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/history", nil
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		"POST /v1/conversations/{id}/messages": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/messages", map[string]any{"command_id": "x", "body": "intruding"}
		}, member: ok(201), outsider: notMember, blocked: want{403, "blocked"}},
		"POST /v1/conversations/{id}/leave": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/leave", map[string]any{"command_id": "x"}
		}, member: ok(200), outsider: notMember, blocked: want{422, "invalid_command"}},
		"POST /v1/conversations/{id}/members": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/members", map[string]any{"command_id": "x", "user_ids": []string{"zed"}}
		}, member: want{403, "forbidden"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"DELETE /v1/conversations/{id}/members/{user}": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/members/ann", nil
		}, member: want{403, "forbidden"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"PUT /v1/conversations/{id}/members/{user}/role": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/members/ann/role", map[string]any{"role": "member"}
		}, member: want{403, "forbidden"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"PATCH /v1/conversations/{id}/messages/{seq}": {req: func(c string, own, _ int) (string, any) {
			return msgPath(c, own, ""), map[string]any{"body": "edited"}
		}, member: ok(200), outsider: notMember, blocked: want{403, "blocked"}},
		"DELETE /v1/conversations/{id}/messages/{seq}": {req: func(c string, own, _ int) (string, any) {
			return msgPath(c, own, ""), nil
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		"GET /v1/conversations/{id}/messages/{seq}/thread": {req: func(c string, _, other int) (string, any) {
			return msgPath(c, other, "/thread"), nil
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		"PUT /v1/conversations/{id}/messages/{seq}/reactions/{emoji}": {req: func(c string, _, other int) (string, any) {
			return msgPath(c, other, thumbs), nil
		}, member: want{409, "no_change"}, outsider: notMember, blocked: want{403, "blocked"}},
		"DELETE /v1/conversations/{id}/messages/{seq}/reactions/{emoji}": {req: func(c string, _, other int) (string, any) {
			return msgPath(c, other, thumbs), nil
		}, member: ok(200), outsider: notMember, blocked: want{403, "blocked"}},
		// This package runs without a file store (versitygw allows one
		// per process; internal/files/filestest runs uploads and downloads
		// with one): a member's upload is 503, after the checks that
		// refuse outsiders and blocked users; the messages of the cells
		// carry no files, so downloads are 404 after the membership check.
		"POST /v1/conversations/{id}/uploads": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/uploads", map[string]any{"name": "a.txt", "size": 1, "content_type": "text/plain", "sha256": strings.Repeat("ab", 32)}
		}, member: want{503, "unavailable"}, outsider: notMember, blocked: want{403, "blocked"}},
		"GET /v1/conversations/{id}/messages/{seq}/attachments/{n}": {req: func(c string, _, other int) (string, any) {
			return msgPath(c, other, "/attachments/0"), nil
		}, member: want{404, "not_found"}, outsider: notMember, blocked: want{404, "not_found"}},
		"GET /v1/conversations/{id}/messages/{seq}/attachments/{n}/thumbnail": {req: func(c string, _, other int) (string, any) {
			return msgPath(c, other, "/attachments/0/thumbnail"), nil
		}, member: want{404, "not_found"}, outsider: notMember, blocked: want{404, "not_found"}},
		"POST /v1/conversations/{id}/read": {req: func(c string, _, other int) (string, any) {
			return "/v1/conversations/" + c + "/read", map[string]any{"seq": other}
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		"GET /v1/conversations/{id}/receipts": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/receipts", nil
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		// Anyone may block anyone (a new user each time); unblocking
		// someone not blocked changes nothing.
		"PUT /v1/blocks/{user}": {req: func(string, int, int) (string, any) { fresh++; return fmt.Sprint("/v1/blocks/zoe-", fresh), nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		"DELETE /v1/blocks/{user}": {req: func(string, int, int) (string, any) { return "/v1/blocks/nobody-blocks-me", nil },
			member: want{409, "no_change"}, outsider: want{409, "no_change"}, blocked: want{409, "no_change"}},
		"GET /v1/search": {req: func(string, int, int) (string, any) { return "/v1/search?q=" + secret, nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		// A stream resuming the conversation: a member's resumes it, an
		// outsider's is told it may not (and resumes nothing).
		"GET /v1/events": {req: func(c string, _, _ int) (string, any) { return "/v1/events?last_event_id=1." + c + ":0", nil },
			member: ok(200), outsider: want{200, "not_member"}, blocked: ok(200)},
		"GET /v1/presence": {req: func(string, int, int) (string, any) { return "/v1/presence?user_ids=ann,mem,blk", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		// Push: a device is always the caller's own (registrations are
		// keyed by the user of the token); a conversation's notifications
		// only a member may set.
		"GET /v1/push/config": {req: func(string, int, int) (string, any) { return "/v1/push/config", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		"PUT /v1/devices/{device_id}/push": {req: func(string, int, int) (string, any) {
			return "/v1/devices/phone-1/push", map[string]any{"provider": "webpush", "subscription": map[string]any{
				"endpoint": "https://fcm.googleapis.com/fcm/send/abc",
				"keys":     map[string]any{"p256dh": "BIPUL12DLfytvTajnryr2PRdAgXS3HGKiLqndGcJGabyhHheJYlNGCeXl1dn18gSJ1WAkAPIxr4gK0_dQds4yiI", "auth": "FPssNDTKnInHVndSTdbKFw"},
			}}
		}, member: ok(200), outsider: ok(200), blocked: ok(200)},
		"DELETE /v1/devices/{device_id}/push": {req: func(string, int, int) (string, any) { return "/v1/devices/phone-1/push", nil },
			member: ok(204), outsider: ok(204), blocked: ok(204)},
		"PUT /v1/conversations/{id}/notifications": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/notifications", map[string]any{"level": "mentions"}
		}, member: ok(200), outsider: notMember, blocked: ok(200)},
		"PUT /v1/notifications": {req: func(string, int, int) (string, any) {
			return "/v1/notifications", map[string]any{"hide_previews": true}
		},
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		// End-to-end encryption on plain conversations: the MLS commands
		// are refused by the decider for members, as not encrypted.
		"POST /v1/conversations/{id}/mls/commits": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/mls/commits", map[string]any{"device_id": "d1", "epoch": 0, "commit": b64("commit")}
		}, member: want{422, "invalid_command"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"POST /v1/conversations/{id}/mls/proposals": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/mls/proposals", map[string]any{"device_id": "d1", "epoch": 0, "proposal": b64("proposal")}
		}, member: want{422, "invalid_command"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		"POST /v1/conversations/{id}/mls/messages": {req: func(c string, _, _ int) (string, any) {
			return "/v1/conversations/" + c + "/mls/messages", map[string]any{"device_id": "d1", "epoch": 0, "ciphertext": b64("ciphertext")}
		}, member: want{422, "invalid_command"}, outsider: notMember, blocked: want{422, "invalid_command"}},
		// The key directory is no conversation's: every signed-in caller
		// is answered alike. A KeyPackage of another identity than the
		// caller's device is refused.
		"POST /v1/devices/{device}/key-packages": {req: func(string, int, int) (string, any) {
			now := time.Now()
			return "/v1/devices/d1/key-packages", map[string]any{"key_packages": []string{base64.StdEncoding.EncodeToString(mlswiretest.KeyPackage("someone/d1", now, now.Add(time.Hour), 1))}}
		}, member: want{400, "invalid_request"}, outsider: want{400, "invalid_request"}, blocked: want{400, "invalid_request"}},
		"GET /v1/devices/{device}/key-packages": {req: func(string, int, int) (string, any) { return "/v1/devices/d1/key-packages", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		"DELETE /v1/devices/{device}": {req: func(string, int, int) (string, any) { return "/v1/devices/d1", nil },
			member: want{404, "not_found"}, outsider: want{404, "not_found"}, blocked: want{404, "not_found"}},
		"GET /v1/users/{user}/devices": {req: func(string, int, int) (string, any) { return "/v1/users/ann/devices", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		"GET /v1/users/{user}/key-packages": {req: func(string, int, int) (string, any) { return "/v1/users/ann/key-packages", nil },
			member: ok(200), outsider: ok(200), blocked: ok(200)},
		// Erasing a user is for administrators only (PARLEY_ADMIN_USERS,
		// none here): everyone is refused, and nobody is erased.
		"POST /v1/users/{id}/erase": {req: func(string, int, int) (string, any) { return "/v1/users/mem/erase", nil },
			member: want{403, "forbidden"}, outsider: want{403, "forbidden"}, blocked: want{403, "forbidden"}},
		"GET /healthz":     {public: true, req: func(string, int, int) (string, any) { return "/healthz", nil }},
		"GET /readyz":      {public: true, req: func(string, int, int) (string, any) { return "/readyz", nil }},
		"GET /metrics":     {public: true, req: func(string, int, int) (string, any) { return "/metrics", nil }},
		"GET /auth/config": {public: true, req: func(string, int, int) (string, any) { return "/auth/config", nil }},
		"POST /auth/dev-token": {public: true, req: func(string, int, int) (string, any) {
			return "/auth/dev-token", map[string]any{"user_id": "zed"}
		}},
	}
	for _, key := range documentedOperations(t) {
		if _, found := ops[key]; !found {
			t.Errorf("%s (schemas/openapi.yaml) is not in the authorization matrix", key)
		}
	}

	// The outsiders' searches need the index to hold the secret: wait
	// until a member finds both messages.
	eventuallyT(t, "the search index to hold the secret", func() bool {
		status, out := mem.do("GET", "/v1/search?q="+secret, nil)
		res, _ := out["results"].([]any)
		return status == http.StatusOK && len(res) >= 2
	}, func() string { return "a member's search never found both messages" })

	leaks := regexp.MustCompile(regexp.QuoteMeta(secret) + "|Hangar|" + regexp.QuoteMeta(g))
	for _, c := range callers {
		for key, o := range ops {
			if o.public {
				continue // below
			}
			method := strings.Fields(key)[0]
			t.Run(c.name+"/"+key, func(t *testing.T) {
				w := want{http.StatusUnauthorized, "unauthorized"}
				var path string
				var body any
				switch {
				case c.conv == nil:
					if c.name == "expired token" {
						w.code = "token_expired"
					}
					path, body = o.req(g, annMsg, annMsg)
				default:
					conv, own, other := c.conv(t)
					path, body = o.req(conv, own, other)
					w = map[string]want{"member": o.member, "non-member": o.outsider, "former member": o.outsider, "blocked": o.blocked}[c.name]
				}
				a := api{t, addr, c.token}
				raw := a.raw(method, path, body)
				if raw.status != w.status || raw.code != w.code {
					t.Errorf("%s %s: %d %q, want %d %q\n%.500s", method, path, raw.status, raw.code, w.status, w.code, raw.body)
				}
				// Outsiders and bad tokens never see G.
				if c.name != "member" && c.name != "blocked" && leaks.MatchString(raw.body) {
					t.Errorf("%s %s shows %s something of the group: %.500s", method, path, c.name, raw.body)
				}
			})
		}
	}
	for key, o := range ops {
		if !o.public {
			continue
		}
		path, body := o.req("", 0, 0)
		method := strings.Fields(key)[0]
		for _, c := range callers {
			raw := api{t, addr, c.token}.raw(method, path, body)
			if raw.status != http.StatusOK {
				t.Errorf("%s with a %s token: %d, want 200 (public)", key, c.name, raw.status)
			}
		}
	}

	t.Run("websocket", func(t *testing.T) {
		frames := []struct {
			typ   string
			frame func(conv string, own, other int) map[string]any
			// outsider and blocked answers: "" for an ack, else an error
			// code.
			outsider, blocked string
		}{
			{"send", func(c string, _, _ int) map[string]any {
				return map[string]any{"type": "send", "conversation_id": c, "command_id": "ws-x", "body": "intruding"}
			}, "not_member", "blocked"},
			{"edit", func(c string, own, _ int) map[string]any {
				return map[string]any{"type": "edit", "conversation_id": c, "command_id": "ws-e", "seq": own, "body": "edited"}
			}, "not_member", "blocked"},
			{"react", func(c string, _, other int) map[string]any {
				return map[string]any{"type": "react", "conversation_id": c, "command_id": "ws-r", "seq": other, "emoji": "🎈"}
			}, "not_member", "blocked"},
			{"unreact", func(c string, _, other int) map[string]any {
				return map[string]any{"type": "unreact", "conversation_id": c, "command_id": "ws-u", "seq": other, "emoji": "👍"}
			}, "not_member", "blocked"},
			{"delete", func(c string, own, _ int) map[string]any {
				return map[string]any{"type": "delete", "conversation_id": c, "command_id": "ws-d", "seq": own}
			}, "not_member", "message_not_found"}, // blk's own message is deleted already (HTTP cell above)
			{"read", func(c string, _, other int) map[string]any {
				return map[string]any{"type": "read", "conversation_id": c, "seq": other}
			}, "not_member", ""},
			{"resume", func(c string, _, _ int) map[string]any {
				return map[string]any{"type": "resume", "conversations": map[string]any{c: 0}}
			}, "not_member", ""},
		}
		for _, who := range []struct {
			name string
			a    api
			conv string
			own  int
		}{{"non-member", non, g, memMsg}, {"former member", former, g, memMsg}, {"blocked", blk, d, blkMsg}} {
			ws := dial(t, addr, who.a.token, true)
			for i, f := range frames {
				id := fmt.Sprint(f.typ, "-", i)
				fr := f.frame(who.conv, who.own, annMsg)
				if who.conv == d {
					fr = f.frame(d, blkMsg, blkMsg-1)
				}
				fr["id"] = id
				ws.send(fr)
				got := ws.await(func(m map[string]any) bool {
					return m["id"] == id && m["type"] != "event"
				})
				wantCode := f.outsider
				if who.name == "blocked" {
					wantCode = f.blocked
				}
				if wantCode == "" {
					if got["type"] == "error" {
						t.Errorf("%s: %s answered %v, want it accepted", who.name, f.typ, got)
					}
				} else if got["type"] != "error" || got["code"] != wantCode {
					t.Errorf("%s: %s answered %v, want an error %q echoing %q", who.name, f.typ, got, wantCode, id)
				}
			}
			// typing has no id and no answer; presence of ann is not
			// shown to outsiders. Then a ping: everything before it has
			// been answered.
			ws.send(map[string]any{"type": "typing", "conversation_id": who.conv})
			ws.send(map[string]any{"type": "presence_watch", "id": "pw", "user_ids": []string{"ann"}})
			ws.send(map[string]any{"type": "ping", "id": "last"})
			ws.await(func(m map[string]any) bool { return m["id"] == "last" })
			for _, m := range ws.snapshot() {
				// Refusals may name the conversation the caller named;
				// nothing else of it may come.
				if who.name != "blocked" && (m["conversation_id"] == g || leaks.MatchString(fmt.Sprint(m)) && m["type"] != "error") {
					t.Errorf("%s's socket got something of the group: %v", who.name, m)
				}
				if m["type"] == "presence" && who.name != "blocked" {
					if users, _ := m["users"].([]any); len(users) > 0 {
						t.Errorf("%s sees ann's presence: %v", who.name, m)
					}
				}
			}
		}
		// Bad tokens: on the upgrade's header the socket is closed with
		// 4500 (4501 expired) before anything else; in an auth frame
		// they get an error frame.
		for _, bt := range badTokens(t) {
			ws := dial(t, addr, bt.token, false)
			wantClose := gateway.CloseUnauthorized
			if bt.name == "expired token" {
				wantClose = gateway.CloseTokenExpired
			}
			if got := ws.closeStatus(); got != wantClose {
				t.Errorf("upgrade with a %s: closed with %d, want %d", bt.name, got, wantClose)
			}
			if frames := ws.snapshot(); len(frames) > 0 {
				t.Errorf("upgrade with a %s: frames %v before the close", bt.name, frames)
			}
			first := dialUnauthenticated(t, addr)
			first.send(map[string]any{"type": "auth", "id": "a", "token": bt.token})
			got := first.await(func(m map[string]any) bool { return m["id"] == "a" })
			wantCode := "unauthorized"
			if bt.name == "expired token" {
				wantCode = "token_expired"
			}
			if got["type"] != "error" || got["code"] != wantCode {
				t.Errorf("auth frame with a %s: %v, want error %q", bt.name, got, wantCode)
			}
		}
	})

	// Nothing refused was appended: the next appends take the next seqs.
	// In the group nothing was accepted; in the direct conversation only
	// blk's deletion of its own message.
	if got := ann.sendBody(g, "end", "the end"); got != gLast+1 {
		t.Errorf("the group's next seq is %d, want %d: something refused was appended", got, gLast+1)
	}
	status, out = mem.do("DELETE", "/v1/blocks/blk", nil)
	if status != http.StatusOK || int(out["seq"].(float64)) != blockSeq+2 {
		t.Errorf("unblock: %d %v, want seq %d (after blk's deletion only)", status, out, blockSeq+2)
	}
}

// rawAnswer is an HTTP answer as it came: status, problem code (if any)
// and body.
type rawAnswer struct {
	status int
	code   string
	body   string
}

// raw makes a request with a's token as it is (a bad token too).
func (a api) raw(method, path string, body any) rawAnswer {
	a.t.Helper()
	resp := a.open(method, path, body)
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "text/event-stream" {
		defer resp.Body.Close()
		return a.rawStream(resp)
	}
	b := a.read(method, path, resp)
	out := rawAnswer{status: resp.StatusCode, body: string(b)}
	if resp.StatusCode >= 400 {
		var p struct{ Code string }
		if err := json.Unmarshal(b, &p); err != nil {
			a.t.Errorf("%s %s: %d is not a problem: %q", method, path, resp.StatusCode, b)
		}
		out.code = p.Code
	}
	return out
}

// rawStream reads an SSE stream until its first resumed or error
// message: the answer is 200, with the error's code if there was one.
func (a api) rawStream(resp *http.Response) rawAnswer {
	a.t.Helper()
	stop := time.AfterFunc(10*time.Second, func() { _ = resp.Body.Close() })
	defer stop.Stop()
	out := rawAnswer{status: resp.StatusCode}
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		body.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && (event == "error" || event == "resumed"):
			data := strings.TrimPrefix(line, "data: ")
			if err := contract(a.t).ServerFrame([]byte(data)); err != nil {
				a.t.Errorf("%v\n%.2000s", err, data)
			}
			var f struct{ Code string }
			_ = json.Unmarshal([]byte(data), &f)
			out.code, out.body = f.Code, body.String()
			return out
		}
	}
	a.t.Errorf("the stream ended without a resumed or error message: %v\n%.2000s", sc.Err(), body.String())
	out.body = body.String()
	return out
}

// dialUnauthenticated opens a socket that has not authenticated yet.
func dialUnauthenticated(t *testing.T, addr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	return newWSClient(t, c)
}

// lastSeqOf is the last seq of conv in a's history, -1 while history
// does not know it yet.
func lastSeqOf(t *testing.T, a api, conv string) int {
	t.Helper()
	status, out := a.do("GET", "/v1/conversations/"+conv+"/history?limit=1", nil)
	if status == http.StatusNotFound && out["code"] == "conversation_not_found" {
		return -1
	}
	if status != http.StatusOK {
		t.Fatalf("history of %s: %d %v", conv, status, out)
	}
	evs, _ := out["events"].([]any)
	if len(evs) == 0 {
		return -1
	}
	return int(evs[0].(map[string]any)["seq"].(float64))
}

// sendBody sends body over HTTP and returns its seq.
func (a api) sendBody(conv, commandID, body string) int {
	a.t.Helper()
	status, out := a.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": commandID, "body": body})
	if status != http.StatusCreated {
		a.t.Fatalf("send %s: %d %v", commandID, status, out)
	}
	return int(out["seq"].(float64))
}

type badToken struct{ name, token string }

// badTokens are tokens for user mem that must be refused.
func badTokens(t *testing.T) []badToken {
	t.Helper()
	issue := func(cfg gateway.AuthConfig, ttl time.Duration, now time.Time) string {
		a, err := gateway.NewAuthenticator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := a.Issue("mem", ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	dev := []byte(app.DevSecret)
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"iss":"parley","aud":["parley"],"sub":"mem","iat":%d,"exp":%d}`, now.Unix(), now.Add(time.Hour).Unix())) + "."
	return []badToken{
		{"token of another issuer", issue(gateway.AuthConfig{Secret: dev, Issuer: "someone-else"}, time.Hour, now)},
		{"token for another audience", issue(gateway.AuthConfig{Secret: dev, Audience: "another-service"}, time.Hour, now)},
		{"expired token", issue(gateway.AuthConfig{Secret: dev}, time.Hour, now.Add(-2*time.Hour))},
		{"token signed with another key", issue(gateway.AuthConfig{Secret: []byte("another-secret-of-at-least-32-bytes!")}, time.Hour, now)},
		{`token with alg "none"`, none},
	}
}

// documentedOperations lists "METHOD /path" of every operation in
// schemas/openapi.yaml.
func documentedOperations(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../schemas/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths {
		for method := range item {
			if slices.Contains([]string{"get", "put", "post", "patch", "delete"}, method) {
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	if len(out) < 20 {
		t.Fatalf("only %d operations in schemas/openapi.yaml: the document was not read right", len(out))
	}
	return out
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
