package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/schemacheck"
)

// TestChat runs the whole embedded system in-process and drives it over
// real HTTP and WebSocket connections, as clients would.
func TestChat(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (the whole walkthrough over HTTP and WebSockets, about 15 s); make test runs it")
	}
	dir := t.TempDir()
	sys := startSystem(t, dir)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	carol := api{t, addr, token(t, "carol", time.Hour)}

	aws := dial(t, addr, alice.token, false)
	bws := dial(t, addr, bob.token, true) // browser style: auth frame
	conv := alice.createDirect("bob")
	if again := bob.createDirect("alice"); again != conv {
		t.Fatalf("the same pair made two conversations: %s and %s", conv, again)
	}

	t.Run("two users exchange 200 messages concurrently and see the same sequence", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, c := range []*wsClient{aws, bws} {
			wg.Go(func() {
				for i := range 100 {
					c.send(map[string]any{"type": "send", "id": fmt.Sprint("s", i), "conversation_id": conv,
						"command_id": fmt.Sprintf("%p-%d", c, i), "body": fmt.Sprintf("message %d", i)})
				}
			})
		}
		wg.Wait()
		for _, c := range []*wsClient{aws, bws} {
			c.waitFor(func(frames []map[string]any) bool {
				acks := 0
				for _, f := range frames {
					if f["type"] == "error" {
						t.Fatalf("send failed: %v", f)
					}
					if f["type"] == "ack" {
						acks++
					}
				}
				return acks == 100
			})
		}
		want := seqRange(0, 200)
		for name, c := range map[string]*wsClient{"alice": aws, "bob": bws} {
			c.waitFor(func([]map[string]any) bool { return len(c.events(conv)) >= len(want) })
			if got := c.events(conv); !slices.Equal(got, want) {
				t.Errorf("%s received seqs %v, want 0..200 exactly once, in order", name, got)
			}
		}
		waitConversation(t, sys.Store(), conv, 200)
		if got := seqs(bob.history(conv)); !slices.Equal(got, want) {
			t.Errorf("history has seqs %v, want 0..200", got)
		}
	})

	t.Run("a retried send yields one message", func(t *testing.T) {
		var seqsSeen []float64
		for i := range 3 {
			aws.send(map[string]any{"type": "send", "id": fmt.Sprint("retry", i), "conversation_id": conv, "command_id": "retried-command", "body": "once"})
			ack := aws.await(func(f map[string]any) bool { return f["id"] == fmt.Sprint("retry", i) })
			if ack["type"] != "ack" || ack["duplicate"] != (i > 0) {
				t.Fatalf("attempt %d: got %v, want an ack with duplicate=%v", i, ack, i > 0)
			}
			seqsSeen = append(seqsSeen, ack["seq"].(float64))
		}
		if seqsSeen[0] != seqsSeen[1] || seqsSeen[1] != seqsSeen[2] {
			t.Errorf("acks name different seqs: %v", seqsSeen)
		}
		waitConversation(t, sys.Store(), conv, uint64(seqsSeen[0]))
		n := 0
		for _, e := range bob.history(conv) {
			if e["data"].(map[string]any)["command_id"] == "retried-command" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("history holds the retried message %d times, want 1", n)
		}
	})

	t.Run("a non-member is refused on send, history and socket", func(t *testing.T) {
		before := logEnd(t, sys.Kafka())
		cws := dial(t, addr, carol.token, false)
		cws.send(map[string]any{"type": "send", "id": "c1", "conversation_id": conv, "command_id": "c1", "body": "let me in"})
		if f := cws.await(func(f map[string]any) bool { return f["id"] == "c1" }); f["type"] != "error" || f["code"] != "not_member" {
			t.Errorf("send by a non-member: got %v, want error not_member", f)
		}
		cws.send(map[string]any{"type": "resume", "id": "r1", "conversations": map[string]int{conv: 0}})
		if f := cws.await(func(f map[string]any) bool { return f["id"] == "r1" && f["type"] == "error" }); f["code"] != "not_member" {
			t.Errorf("resume by a non-member: got %v, want error not_member", f)
		}
		if status, p := carol.do("GET", "/v1/conversations/"+conv+"/history", nil); status != http.StatusForbidden || p["code"] != "not_member" {
			t.Errorf("history for a non-member: %d %v, want 403 not_member", status, p)
		}
		if status, _ := carol.do("GET", "/v1/conversations/"+conv, nil); status != http.StatusForbidden {
			t.Errorf("conversation for a non-member: %d, want 403", status)
		}
		if status, p := carol.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "c2", "body": "x"}); status != http.StatusForbidden {
			t.Errorf("HTTP send by a non-member: %d %v, want 403", status, p)
		}
		_, list := carol.do("GET", "/v1/conversations", nil)
		if n := len(list["conversations"].([]any)); n != 0 {
			t.Errorf("a non-member lists %d conversations, want 0", n)
		}
		// A live message must not reach her socket either.
		aws.send(map[string]any{"type": "send", "id": "after-carol", "conversation_id": conv, "command_id": "after-carol", "body": "private"})
		aws.await(func(f map[string]any) bool { return f["id"] == "after-carol" })
		cws.send(map[string]any{"type": "ping", "id": "p"})
		cws.await(func(f map[string]any) bool { return f["type"] == "pong" })
		if got := cws.events(conv); len(got) != 0 {
			t.Errorf("a non-member's socket received events %v", got)
		}
		after := logEnd(t, sys.Kafka())
		if after[schemas.TopicCommands] != before[schemas.TopicCommands]+1 {
			t.Errorf("chat.commands grew by %d, want 1 (only alice's send)", after[schemas.TopicCommands]-before[schemas.TopicCommands])
		}
	})

	t.Run("a reconnecting client gets exactly the missed messages, then live ones", func(t *testing.T) {
		b1 := dial(t, addr, bob.token, false)
		status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "before-gap", "body": "see you"})
		if status != http.StatusCreated {
			t.Fatalf("send: %d %v", status, out)
		}
		last := int(out["seq"].(float64))
		b1.waitFor(func([]map[string]any) bool { return slices.Contains(b1.events(conv), last) })
		_ = b1.c.Close(websocket.StatusNormalClosure, "")
		for i := range 50 {
			status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": fmt.Sprint("gap-", i), "body": "while you were away"})
			if status != http.StatusCreated {
				t.Fatalf("send: %d %v", status, out)
			}
		}
		b2 := dial(t, addr, bob.token, false)
		b2.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: last}})
		resumed := b2.await(func(f map[string]any) bool { return f["type"] == "resumed" })
		if got, want := b2.events(conv), seqRange(last+1, last+50); !slices.Equal(got, want) {
			t.Fatalf("resume delivered %v, want %v", got, want)
		}
		if got := resumed["conversations"].(map[string]any)[conv]; got != float64(last+50) {
			t.Errorf("resumed says caught up to %v, want %d", got, last+50)
		}
		aws.send(map[string]any{"type": "send", "id": "live", "conversation_id": conv, "command_id": "live-after-resume", "body": "live"})
		b2.waitFor(func([]map[string]any) bool { return len(b2.events(conv)) == 51 })
		if got, want := b2.events(conv), seqRange(last+1, last+51); !slices.Equal(got, want) {
			t.Errorf("after resume got %v, want %v", got, want)
		}
	})

	t.Run("typing indicators reach the other members, coalesced, and never the log", func(t *testing.T) {
		before := logEnd(t, sys.Kafka())
		for i := range 5 {
			aws.send(map[string]any{"type": "typing", "id": fmt.Sprint("t", i), "conversation_id": conv})
		}
		f := bws.await(func(f map[string]any) bool { return f["type"] == "user_typing" })
		if f["conversation_id"] != conv || f["user_id"] != "alice" || f["expires_at"] == nil {
			t.Errorf("typing frame %v", f)
		}
		for _, f := range aws.snapshot() {
			if f["type"] == "user_typing" || f["type"] == "error" {
				t.Errorf("the typing user's own socket got %v", f)
			}
		}
		cws := dial(t, addr, carol.token, false)
		cws.send(map[string]any{"type": "typing", "id": "ct", "conversation_id": conv})
		if f := cws.await(func(f map[string]any) bool { return f["id"] == "ct" }); f["code"] != "not_member" {
			t.Errorf("typing by a non-member: %v, want error not_member", f)
		}
		after := logEnd(t, sys.Kafka())
		if got := after[schemas.TopicEphemeral] - before[schemas.TopicEphemeral]; got != 1 {
			t.Errorf("5 quick indicators made %d chat.ephemeral records, want 1", got)
		}
		for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents} {
			if after[topic] != before[topic] {
				t.Errorf("typing appended %d records to %s", after[topic]-before[topic], topic)
			}
		}
	})

	t.Run("presence: watchers see devices come and go, strangers stay hidden", func(t *testing.T) {
		dave := api{t, addr, token(t, "dave", time.Hour)}
		daveConv := dave.createDirect("bob")
		waitConversation(t, sys.Store(), daveConv, 0) // who may see whom comes from history
		dws := dial(t, addr, dave.token, true)
		// A socket's presence goes through chat.presence: it shows once the
		// presence projection has it.
		eventuallyT(t, "bob to see dave online", func() bool {
			_, out := bob.do("GET", "/v1/presence?user_ids=dave", nil)
			users, _ := out["users"].([]any)
			return len(users) == 1 && users[0].(map[string]any)["status"] == "online"
		}, func() string { return "GET /v1/presence never showed dave online" })
		bws.send(map[string]any{"type": "presence_watch", "id": "pw", "user_ids": []string{"alice", "dave", "carol", "zed"}})
		reply := bws.await(func(f map[string]any) bool { return f["id"] == "pw" })
		got := map[string]string{}
		for _, u := range reply["users"].([]any) {
			got[u.(map[string]any)["user_id"].(string)] = u.(map[string]any)["status"].(string)
		}
		if len(got) != 2 || got["alice"] != "online" || got["dave"] != "online" {
			t.Fatalf("watch reply %v, want alice and dave online and no one else (carol and zed share no conversation with bob)", reply)
		}
		stateOf := func(user string) func([]map[string]any) (string, string) {
			return func(frames []map[string]any) (string, string) {
				status, seen := "", ""
				for _, f := range frames {
					if f["type"] != "presence" || f["id"] != nil {
						continue
					}
					for _, u := range f["users"].([]any) {
						if u := u.(map[string]any); u["user_id"] == user {
							status, _ = u["status"].(string)
							seen, _ = u["last_seen"].(string)
						}
					}
				}
				return status, seen
			}
		}
		aws.send(map[string]any{"type": "presence_set", "status": "away"})
		bws.waitFor(func(fs []map[string]any) bool { st, _ := stateOf("alice")(fs); return st == "away" })
		aws.send(map[string]any{"type": "presence_set", "status": "online"})
		bws.waitFor(func(fs []map[string]any) bool { st, _ := stateOf("alice")(fs); return st == "online" })
		_ = dws.c.Close(websocket.StatusNormalClosure, "")
		bws.waitFor(func(fs []map[string]any) bool { st, seen := stateOf("dave")(fs); return st == "offline" && seen != "" })

		status, out := bob.do("GET", "/v1/presence?user_ids=alice,dave,carol", nil)
		if status != http.StatusOK || len(out["users"].([]any)) != 2 {
			t.Errorf("GET presence as bob: %d %v, want alice and dave only", status, out)
		}
		status, out = carol.do("GET", "/v1/presence?user_ids=alice,bob", nil)
		if status != http.StatusOK || len(out["users"].([]any)) != 0 {
			t.Errorf("GET presence as carol, who shares nothing: %d %v, want no users", status, out)
		}
		if status, p := bob.do("GET", "/v1/presence", nil); status != http.StatusBadRequest || p["code"] != "invalid_request" {
			t.Errorf("GET presence without user_ids: %d %v", status, p)
		}
		aws.sendInvalid([]byte(`{"type":"presence_set","id":"bad","status":"invisible"}`))
		if f := aws.await(func(f map[string]any) bool { return f["id"] == "bad" }); f["code"] != "invalid_request" {
			t.Errorf("a bad status: %v, want error invalid_request", f)
		}
	})

	t.Run("every frame type, as its schema allows it, is served", func(t *testing.T) {
		ws := dial(t, addr, alice.token, false)
		// reply answers a request frame with id (as raw JSON) and returns
		// the reply, failing on an error frame.
		reply := func(id, raw string) map[string]any {
			t.Helper()
			ws.sendRaw([]byte(raw))
			f := ws.await(func(f map[string]any) bool { return f["id"] == id })
			if f["type"] == "error" {
				t.Fatalf("%s refused: %v", raw, f)
			}
			return f
		}
		seqOf := func(f map[string]any) int { n, _ := f["seq"].(float64); return int(n) }
		c := `"conversation_id":"` + conv + `"`
		if f := reply("v1", `{"type":"ping","id":"v1"}`); f["type"] != "pong" {
			t.Errorf("ping: %v", f)
		}
		// Whole numbers written with a fraction or an exponent are
		// integers to JSON Schema, and so to the gateway.
		first := reply("v2a", `{"type":"send","id":"v2a",`+c+`,"command_id":"v2a-send","body":"schema-valid","reply_to":0}`)
		sent := reply("v2", fmt.Sprintf(`{"type":"send","id":"v2",%s,"command_id":"v2-send","body":"a reply","reply_to":%d.0}`, c, seqOf(first)))
		seq := seqOf(sent)
		if sent["type"] != "ack" || seq == 0 {
			t.Fatalf("send: %v", sent)
		}
		if f := reply("v3", fmt.Sprintf(`{"type":"edit","id":"v3",%s,"command_id":"v3-edit","seq":%d.0,"body":"edited"}`, c, seq)); f["type"] != "ack" {
			t.Errorf("edit: %v", f)
		}
		if f := reply("v4", fmt.Sprintf(`{"type":"react","id":"v4",%s,"command_id":"v4-react","seq":%d,"emoji":"👍"}`, c, seq)); f["type"] != "ack" {
			t.Errorf("react: %v", f)
		}
		if f := reply("v5", fmt.Sprintf(`{"type":"unreact","id":"v5",%s,"command_id":"v5-unreact","seq":%d,"emoji":"👍"}`, c, seq)); f["type"] != "ack" {
			t.Errorf("unreact: %v", f)
		}
		if f := reply("v6", fmt.Sprintf(`{"type":"delete","id":"v6",%s,"command_id":"v6-delete","seq":%de0}`, c, seq)); f["type"] != "ack" {
			t.Errorf("delete: %v", f)
		}
		if f := reply("v7", `{"type":"read","id":"v7",`+c+`,"seq":0}`); f["type"] != "ack" {
			t.Errorf("read: %v", f)
		}
		if f := reply("v8", `{"type":"read","id":"v8",`+c+`}`); f["type"] != "ack" {
			t.Errorf("read: %v", f)
		}
		if f := reply("v9", fmt.Sprintf(`{"type":"resume","id":"v9","conversations":{"%s":%d}}`, conv, seq)); f["type"] != "resumed" {
			t.Errorf("resume: %v", f)
		}
		if f := reply("v10", `{"type":"presence_watch","id":"v10","user_ids":["bob"]}`); f["type"] != "presence" {
			t.Errorf("presence_watch: %v", f)
		}
		if f := reply("v11", `{"type":"auth","id":"v11","token":"`+alice.token+`","device_id":"laptop-1"}`); f["type"] != "auth_ok" {
			t.Errorf("auth: %v", f)
		}
		// Frames answered only when refused: a ping after them finds no
		// error before it.
		ws.sendRaw([]byte(`{"type":"typing","id":"v12",` + c + `}`))
		ws.sendRaw([]byte(`{"type":"typing",` + c + `}`))
		ws.sendRaw([]byte(`{"type":"presence_set","id":"v13","status":"online"}`))
		ws.sendRaw([]byte(`{"type":"presence_set","status":"online"}`))
		reply("v14", `{"type":"ping","id":"v14"}`)
		if errs := errorFrames(ws.snapshot()); len(errs) > 0 {
			t.Errorf("frames their schemas accept were refused: %v", errs)
		}
	})

	t.Run("bad input gets a clear error and appends nothing", func(t *testing.T) {
		before := logEnd(t, sys.Kafka())
		ws := dial(t, addr, alice.token, false)
		// Each is answered by the protocol's rule: not an object,
		// bad_frame without id; a bad id, invalid_request without it;
		// otherwise the frame's id echoed.
		frames := []struct {
			raw  string
			code string
			id   string
		}{
			{`{"type":"send",`, "bad_frame", ""},
			{`[1,2,3]`, "bad_frame", ""},
			{`null`, "bad_frame", ""},
			{`{"type":"teleport","id":"x1"}`, "unknown_type", "x1"},
			{`{"id":"x2"}`, "invalid_request", "x2"},
			{`{"type":5,"id":"x2b"}`, "invalid_request", "x2b"},
			{`{"type":"send","id":"x3","conversation_id":"` + conv + `","command_id":"x3","body":""}`, "invalid_request", "x3"},
			{`{"type":"send","id":"x4","conversation_id":"` + conv + `","command_id":"x4","body":"` + strings.Repeat("a", 16<<10+1) + `"}`, "too_large", "x4"},
			{`{"type":"send","id":"x5","conversation_id":"g_00000000000000000000000000000000","command_id":"x5","body":"hi"}`, "conversation_not_found", "x5"},
			{`{"type":"send","id":"x6","conversation_id":"not a valid id!","command_id":"x6","body":"hi"}`, "invalid_request", "x6"},
			{`{"type":"send","id":"x7","conversation_id":"` + conv + `","command_id":"bad command id!","body":"hi"}`, "invalid_request", "x7"},
			{`{"type":"send","id":"x8","conversation_id":"` + conv + `","command_id":"x8","body":42}`, "invalid_request", "x8"},
			{`{"type":"send","id":"x9","conversation_id":"` + conv + `","command_id":"x9","body":"hi","colour":"red"}`, "invalid_request", "x9"},
			{`{"type":"send","id":"x10","conversation_id":"` + conv + `","command_id":"x10","body":"hi","reply_to":-1}`, "invalid_request", "x10"},
			{`{"type":"read","id":"x11","conversation_id":"` + conv + `","seq":-1}`, "invalid_request", "x11"},
			{`{"type":"read","id":"x12","conversation_id":"` + conv + `","seq":1.5}`, "invalid_request", "x12"},
			{`{"type":"read","id":"x13","conversation_id":"` + conv + `","seq":"1"}`, "invalid_request", "x13"},
			{`{"type":"delete","id":"x14","conversation_id":"` + conv + `","command_id":"x14","seq":0}`, "invalid_request", "x14"},
			{`{"type":"resume","id":"x15","conversations":["` + conv + `"]}`, "invalid_request", "x15"},
			{`{"type":"ping","id":"` + strings.Repeat("i", 65) + `"}`, "invalid_request", ""},
			{`{"type":"ping","id":17}`, "invalid_request", ""},
		}
		for i, f := range frames {
			ws.sendInvalid([]byte(f.raw))
			// One at a time, so that the error frames come in order.
			ws.waitFor(func(fs []map[string]any) bool { return len(errorFrames(fs)) > i })
		}
		var codes, ids []string
		for _, fr := range errorFrames(ws.snapshot()) {
			codes = append(codes, fr["code"].(string))
			id, _ := fr["id"].(string)
			ids = append(ids, id)
			if fr["message"] == "" || fr["retryable"] != false {
				t.Errorf("error frame %v lacks a message or says retryable", fr)
			}
		}
		for i, f := range frames {
			if i >= len(codes) || codes[i] != f.code || ids[i] != f.id {
				t.Errorf("frame %.40q: got codes %v ids %q, want %s with id %q at %d", f.raw, codes, ids, f.code, f.id, i)
			}
		}
		// The socket is still usable.
		ws.send(map[string]any{"type": "ping", "id": "still-there"})
		ws.await(func(f map[string]any) bool { return f["type"] == "pong" && f["id"] == "still-there" })

		for _, c := range []struct {
			name, method, path string
			body               any
			tok                string
			status             int
			code               string
		}{
			{"no token", "GET", "/v1/conversations", nil, "", 401, "unauthorized"},
			{"garbage token", "GET", "/v1/conversations", nil, "garbage", 401, "unauthorized"},
			{"expired token", "GET", "/v1/conversations", nil, token(t, "alice", -time.Hour), 401, "token_expired"},
			{"empty body", "POST", "/v1/conversations", "", alice.token, 400, "bad_request"},
			{"malformed JSON", "POST", "/v1/conversations", `{"kind":`, alice.token, 400, "bad_request"},
			{"unknown field", "POST", "/v1/conversations", `{"kind":"direct","members":["bob"],"colour":"red"}`, alice.token, 400, "bad_request"},
			{"direct with self", "POST", "/v1/conversations", map[string]any{"kind": "direct", "members": []string{"alice"}}, alice.token, 400, "invalid_request"},
			{"unknown kind", "POST", "/v1/conversations", map[string]any{"kind": "channel", "members": []string{"bob"}}, alice.token, 400, "invalid_request"},
			{"oversized body", "POST", "/v1/conversations/" + conv + "/messages", map[string]any{"command_id": "big", "body": strings.Repeat("b", 16<<10+1)}, alice.token, 413, "too_large"},
			{"empty message", "POST", "/v1/conversations/" + conv + "/messages", map[string]any{"command_id": "e", "body": ""}, alice.token, 400, "invalid_request"},
			{"unknown conversation", "GET", "/v1/conversations/g_00000000000000000000000000000000/history", nil, alice.token, 404, "conversation_not_found"},
			{"both after and before", "GET", "/v1/conversations/" + conv + "/history?after=1&before=5", nil, alice.token, 400, "invalid_request"},
			{"limit out of range", "GET", "/v1/conversations/" + conv + "/history?limit=1000", nil, alice.token, 400, "invalid_request"},
			{"unknown endpoint", "GET", "/v1/nothing", nil, alice.token, 404, "not_found"},
		} {
			status, p := api{t, addr, c.tok}.do(c.method, c.path, c.body)
			if status != c.status || p["code"] != c.code || p["detail"] == "" {
				t.Errorf("%s: got %d %v, want %d %s with a detail", c.name, status, p, c.status, c.code)
			}
		}
		after := logEnd(t, sys.Kafka())
		for topic, n := range after {
			if n != before[topic] {
				t.Errorf("%s grew by %d records for rejected requests", topic, n-before[topic])
			}
		}
	})

	t.Run("bad and expired tokens close the socket with do-not-retry codes", func(t *testing.T) {
		for _, c := range []struct {
			name string
			tok  string
			want websocket.StatusCode
		}{
			{"garbage", "garbage", gateway.CloseUnauthorized},
			{"expired", token(t, "alice", -time.Hour), gateway.CloseTokenExpired},
			{"wrong algorithm", noneToken("alice"), gateway.CloseUnauthorized},
		} {
			ws := dial(t, addr, c.tok, false)
			if got := ws.closeStatus(); got != c.want {
				t.Errorf("%s token: close code %d, want %d", c.name, got, c.want)
			}
		}
		ws := dial(t, addr, "", false)
		ws.send(map[string]any{"type": "ping", "id": "1"})
		if got := ws.closeStatus(); got != gateway.CloseUnauthorized {
			t.Errorf("no auth frame first: close code %d, want %d", got, gateway.CloseUnauthorized)
		}
	})

	t.Run("a token is honoured 5s past its expiry and no longer, over HTTP and WebSocket alike", func(t *testing.T) {
		// Each token is made right before it is used: the leeway is 5s.
		if status, p := (api{t, addr, token(t, "alice", -2*time.Second)}).do("GET", "/v1/conversations", nil); status != 200 {
			t.Errorf("HTTP, expired 2s ago: %d %v, want 200", status, p)
		}
		if status, p := (api{t, addr, token(t, "alice", -8*time.Second)}).do("GET", "/v1/conversations", nil); status != 401 || p["code"] != "token_expired" {
			t.Errorf("HTTP, expired 8s ago: %d %v, want 401 token_expired", status, p)
		}

		ws := dial(t, addr, "", false)
		ws.send(map[string]any{"type": "auth", "id": "inside", "token": token(t, "alice", -2*time.Second)})
		f := ws.await(func(f map[string]any) bool { return f["id"] == "inside" })
		exp, err := time.Parse(time.RFC3339, fmt.Sprint(f["expires_at"]))
		if f["type"] != "auth_ok" || err != nil || !exp.Before(time.Now()) || exp.Before(time.Now().Add(-10*time.Second)) {
			t.Errorf("auth frame, expired 2s ago: %v, want auth_ok with the token's own expiry", f)
		}
		if got := ws.closeStatus(); got != gateway.CloseTokenExpired {
			t.Errorf("once the leeway has passed: close code %d, want %d", got, gateway.CloseTokenExpired)
		}

		ws = dial(t, addr, "", false)
		ws.send(map[string]any{"type": "auth", "id": "outside", "token": token(t, "alice", -8*time.Second)})
		if f := ws.await(func(f map[string]any) bool { return f["id"] == "outside" }); f["type"] != "error" || f["code"] != "token_expired" {
			t.Errorf("auth frame, expired 8s ago: %v, want error token_expired", f)
		}
		if got := ws.closeStatus(); got != gateway.CloseTokenExpired {
			t.Errorf("auth frame, expired 8s ago: close code %d, want %d", got, gateway.CloseTokenExpired)
		}
	})

	t.Run("replaying chat.events rebuilds an identical history store", func(t *testing.T) {
		running := sys.Store()
		want := waitConversation(t, running, conv, uint64(alice.send(conv, "before-replay")))
		fresh, err := pebblestore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		replay(t, sys.Kafka(), fresh)
		got, err := fresh.Conversation(context.Background(), conv)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(got, want) {
			t.Errorf("replayed summary %s, running %s", asJSON(got), asJSON(want))
		}
		a, b := allEvents(t, running, conv), allEvents(t, fresh, conv)
		if len(a) != len(b) || len(a) < 250 {
			t.Fatalf("running store has %d events, replayed %d", len(a), len(b))
		}
		for i := range a {
			if a[i].Seq != b[i].Seq || a[i].ID != b[i].ID || a[i].Type != b[i].Type || !a[i].Time.Equal(b[i].Time) || string(a[i].Data) != string(b[i].Data) {
				t.Fatalf("event %d differs: running %+v, replayed %+v", i, a[i], b[i])
			}
		}
		for _, user := range []string{"alice", "bob", "carol"} {
			x, _ := running.Conversations(context.Background(), user, 100)
			y, _ := fresh.Conversations(context.Background(), user, 100)
			if !sameJSON(x, y) {
				t.Errorf("%s's conversations differ: running %s, replayed %s", user, asJSON(x), asJSON(y))
			}
		}
	})

	t.Run("the decider refuses non-members and dead-letters garbage written straight to the log", func(t *testing.T) {
		before := logEnd(t, sys.Kafka())
		ctx := context.Background()
		w := producers.NewCommandWriter(sys.Kafka(), sys.TopicNames(), slogDiscard())
		defer w.Close()
		// A client that bypasses the gateway: the decider is the authority.
		if err := w.Append(ctx, schemas.TypeSendMessage, conv, &schemas.SendMessageV1{
			CommandID: "sneaky", UserID: "carol", ConversationID: conv, Body: "let me in", IssuedAt: time.Now(),
		}, ""); err != nil {
			t.Fatal(err)
		}
		garbage := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeSendMessage, conv, time.Now()), []byte(`{"not":"a command"`))
		kw := kafkalog.NewWriter(sys.Kafka(), schemas.TopicCommands)
		if err := kw.WriteMessages(ctx, garbage); err != nil {
			t.Fatal(err)
		}
		kw.Close()
		// The partition goes on: a valid send after the garbage works.
		status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "after-garbage", "body": "still working"})
		if status != http.StatusCreated {
			t.Fatalf("send after garbage: %d %v", status, out)
		}
		var rejected, dead []kafka.Message
		eventually(t, func() bool {
			rejected, dead = nil, nil
			for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicReplies) {
				if a, _ := kafkalog.Decode(m); a.Type == schemas.TypeCommandRejected && strings.Contains(string(m.Value), "sneaky") {
					rejected = append(rejected, m)
				}
			}
			dead = kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicDLQ)
			return len(rejected) == 1 && len(dead) == 1
		})
		if !strings.Contains(string(rejected[0].Value), `"code":"not_member"`) {
			t.Errorf("rejection %s, want code not_member", rejected[0].Value)
		}
		headers := map[string]string{}
		for _, h := range dead[0].Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[schemas.HeaderDLQTopic] != schemas.TopicCommands || headers[schemas.HeaderDLQError] == "" || headers[schemas.HeaderDLQGroup] != schemas.GroupDecider {
			t.Errorf("dead letter headers %v", headers)
		}
		after := logEnd(t, sys.Kafka())
		if got := after[schemas.TopicEvents] - before[schemas.TopicEvents]; got != 1 {
			t.Errorf("chat.events grew by %d, want 1 (only alice's send)", got)
		}
	})

	t.Run("every record the system wrote validates against its schema", func(t *testing.T) {
		// Make sure every type has been written at least once: a group
		// that one member leaves.
		status, out := alice.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Schema check", "members": []string{"carol"}, "command_id": "schema-group"})
		if status != http.StatusCreated {
			t.Fatalf("create group: %d %v", status, out)
		}
		g := "/v1/conversations/" + out["conversation_id"].(string)
		m := alice.send(out["conversation_id"].(string), "schema-m")
		for _, c := range []struct {
			who          api
			method, path string
			body         any
		}{
			{alice, "POST", g + "/members", map[string]any{"user_ids": []string{"bob"}}},
			{alice, "PUT", g + "/members/carol/role", map[string]any{"role": "admin"}},
			{carol, "PATCH", g, map[string]any{"title": "Schema checked"}},
			{carol, "PUT", fmt.Sprintf("%s/messages/%d/reactions/%s", g, m, url.PathEscape("✅")), nil},
			{carol, "DELETE", fmt.Sprintf("%s/messages/%d/reactions/%s", g, m, url.PathEscape("✅")), nil},
			{alice, "PATCH", fmt.Sprintf("%s/messages/%d", g, m), map[string]any{"body": "edited"}},
			{alice, "POST", g + "/messages", map[string]any{"command_id": "schema-reply", "body": "re", "reply_to": m}},
			{alice, "DELETE", fmt.Sprintf("%s/messages/%d", g, m), nil},
			{alice, "POST", g + "/read", map[string]any{}},
			{carol, "DELETE", g + "/members/bob", nil},
			{alice, "PATCH", g, map[string]any{"archived": true}},
			{alice, "PATCH", g, map[string]any{"archived": false}},
			{carol, "POST", g + "/leave", map[string]any{"command_id": "schema-leave"}},
			{carol, "PUT", "/v1/blocks/dave", nil},
			// chat.push: a registration, its removal, and both settings.
			{alice, "PUT", "/v1/devices/phone-1/push", map[string]any{"provider": "webpush", "subscription": map[string]any{
				"endpoint": "https://fcm.googleapis.com/fcm/send/schema",
				"keys":     map[string]any{"p256dh": "BIPUL12DLfytvTajnryr2PRdAgXS3HGKiLqndGcJGabyhHheJYlNGCeXl1dn18gSJ1WAkAPIxr4gK0_dQds4yiI", "auth": "FPssNDTKnInHVndSTdbKFw"},
			}}},
			{alice, "DELETE", "/v1/devices/phone-1/push", nil},
			{alice, "PUT", g + "/notifications", map[string]any{"level": "mentions", "muted_until": "2030-01-01T00:00:00Z"}},
			{alice, "PUT", "/v1/notifications", map[string]any{"hide_previews": true, "quiet_hours": map[string]any{"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"}}},
		} {
			if status, out := c.who.do(c.method, c.path, c.body); status >= 300 {
				t.Fatalf("%s %s: %d %v", c.method, c.path, status, out)
			}
		}
		// A group of the old clients' time: chat.message.send.v1 still
		// works; chat.message.sent.v1 is only in old logs (the decider
		// writes v2), so it is checked by its fixture and replay tests.
		superseded := map[string]bool{schemas.TypeMessageSent: true}
		// Messages with files and thumbnails need a file store, which
		// this package runs without (versitygw allows one per process):
		// internal/files/filestest produces and checks them
		// (TestThumbnailOfAPhoto reads the log). An erasure needs content
		// sealing (PARLEY_CONTENT_KEK), which this system runs without:
		// internal/app's TestErasureShredsAUsersContent produces it and
		// validates it against its schema.
		elsewhere := map[string]bool{
			schemas.TypeSendMessageV3: true, schemas.TypeMessageSentV3: true,
			schemas.TypeAddThumbnail: true, schemas.TypeThumbnailAdded: true,
			schemas.TypeUserErased: true,
			// End-to-end encrypted conversations need MLS clients:
			// TestMLSClients makes and validates them, and
			// producers' TestDeviceWriter a device's removal.
			schemas.TypeCreateConversationV2: true, schemas.TypeConversationCreatedV2: true,
			schemas.TypeMLSCommit: true, schemas.TypeMLSCommitted: true, schemas.TypeMLSPropose: true, schemas.TypeMLSProposed: true,
			schemas.TypeMLSSend: true, schemas.TypeMLSMessageSent: true, schemas.TypeDeviceAdded: true, schemas.TypeDeviceRemoved: true,
		}
		v, err := schemacheck.New()
		if err != nil {
			t.Fatal(err)
		}
		// Records a consumer dead-lettered are the ones allowed to be bad.
		deadLettered := map[string]bool{}
		for _, m := range kafkatest.ReadAll(t, sys.Kafka(), schemas.TopicDLQ) {
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			deadLettered[h[schemas.HeaderDLQTopic]+"/"+h[schemas.HeaderDLQPartition]+"/"+h[schemas.HeaderDLQOffset]] = true
		}
		counts := map[string]int{}
		for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents, schemas.TopicReplies, schemas.TopicEphemeral, schemas.TopicPresence, schemas.TopicReceipts, schemas.TopicPush} {
			for _, m := range kafkatest.ReadAll(t, sys.Kafka(), topic) {
				if deadLettered[fmt.Sprintf("%s/%d/%d", topic, m.Partition, m.Offset)] {
					continue
				}
				attrs, err := kafkalog.Decode(m)
				if err != nil {
					t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
				}
				if err := v.Validate(attrs.Type, m.Value); err != nil {
					t.Errorf("%s offset %d (%s): %v\n%s", topic, m.Offset, attrs.Type, err, m.Value)
				}
				if topic == schemas.TopicReceipts {
					var r schemas.ReceiptV1
					_ = json.Unmarshal(m.Value, &r)
					if string(m.Key) != schemas.ReceiptKey(r.ConversationID, r.UserID, r.Kind) || attrs.Subject != r.ConversationID {
						t.Errorf("%s offset %d: key %q, ce_subject %q for %+v", topic, m.Offset, m.Key, attrs.Subject, r)
					}
				} else if topic == schemas.TopicPush {
					rec, err := schemas.Decode(attrs.Type, m.Value)
					var who struct {
						UserID string `json:"user_id"`
					}
					_ = json.Unmarshal(m.Value, &who)
					if err != nil || string(m.Key) != schemas.PushKey(rec) || attrs.Subject != who.UserID {
						t.Errorf("%s offset %d: key %q, ce_subject %q for %s (%v)", topic, m.Offset, m.Key, attrs.Subject, m.Value, err)
					}
				} else if string(m.Key) != attrs.Subject {
					t.Errorf("%s offset %d: key %q but ce_subject %q", topic, m.Offset, m.Key, attrs.Subject)
				}
				if attrs.HasSeq != (topic == schemas.TopicEvents) {
					t.Errorf("%s offset %d: ce_seq present = %v", topic, m.Offset, attrs.HasSeq)
				}
				if topic == schemas.TopicEvents {
					var data struct{ Seq uint64 }
					if err := json.Unmarshal(m.Value, &data); err != nil || data.Seq != attrs.Seq {
						t.Errorf("%s offset %d: ce_seq %d but value seq %d (%v)", topic, m.Offset, attrs.Seq, data.Seq, err)
					}
				}
				counts[attrs.Type]++
			}
		}
		for _, typ := range schemas.Types() {
			switch {
			case superseded[typ] && counts[typ] != 0:
				t.Errorf("the system wrote %d records of the superseded %s", counts[typ], typ)
			case !superseded[typ] && !elsewhere[typ] && counts[typ] == 0:
				t.Errorf("the test produced no %s record to validate", typ)
			}
		}
	})

	lastSeq := alice.send(conv, "before-restart")
	stopSystem(t, sys)
	if code := aws.closeStatus(); code != websocket.StatusGoingAway {
		t.Errorf("on shutdown a socket was closed with %d, want 1001 going away", code)
	}

	t.Run("after a restart history and seq continue", func(t *testing.T) {
		sys := startSystem(t, dir)
		defer stopSystem(t, sys)
		alice := api{t, sys.HTTPAddr(), alice.token}
		status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "after-restart", "body": "still here"})
		if status != http.StatusCreated || out["seq"] != float64(lastSeq+1) {
			t.Fatalf("first send after restart: %d %v, want seq %d", status, out, lastSeq+1)
		}
		// A command retried across the restart is still a duplicate.
		status, out = alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": "retried-command", "body": "once"})
		if status != http.StatusOK || out["duplicate"] != true {
			t.Errorf("retry across restart: %d %v, want 200 duplicate", status, out)
		}
		waitConversation(t, sys.Store(), conv, uint64(lastSeq+1))
		if got := seqs(alice.history(conv)); !slices.Equal(got, seqRange(0, lastSeq+1)) {
			t.Errorf("history after restart: %v", got)
		}
	})
}

func errorFrames(frames []map[string]any) []map[string]any {
	var out []map[string]any
	for _, f := range frames {
		if f["type"] == "error" {
			out = append(out, f)
		}
	}
	return out
}

// noneToken is an unsigned token ("alg":"none"), which must be refused.
func noneToken(user string) string {
	enc := func(s string) string {
		return strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(b64(s)), "=")
	}
	exp := time.Now().Add(time.Hour).Unix()
	return enc(`{"alg":"none","typ":"JWT"}`) + "." + enc(fmt.Sprintf(`{"sub":%q,"iss":"parley","aud":"parley","exp":%d}`, user, exp)) + "."
}

// logEnd returns the total record count (sum of high watermarks) of each
// of Parley's topics but chat.presence, which every connect writes to.
func logEnd(t *testing.T, cluster *kafkalog.Cluster) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents, schemas.TopicReplies, schemas.TopicEphemeral, schemas.TopicDLQ} {
		out[topic] = recordsIn(t, cluster, topic)
	}
	return out
}

// recordsIn returns the record count of topic: the sum of its
// partitions' high watermarks.
func recordsIn(t *testing.T, cluster *kafkalog.Cluster, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := kafkalog.NewClient(cluster)
	n, err := kafkalog.Partitions(ctx, client, topic)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []kafka.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("%s partition %d: %v", topic, po.Partition, po.Error)
		}
		total += po.LastOffset
	}
	return total
}

// replay reads chat.events from offset 0 with plain partition readers, as
// an analytics team would, into w.
func replay(t *testing.T, cluster *kafkalog.Cluster, w history.Writer) {
	t.Helper()
	ctx := context.Background()
	client := kafkalog.NewClient(cluster)
	n, err := kafkalog.Partitions(ctx, client, schemas.TopicEvents)
	if err != nil {
		t.Fatal(err)
	}
	for p := range n {
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{schemas.TopicEvents: {kafka.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatal(err)
		}
		hw := resp.Topics[schemas.TopicEvents][0].LastOffset
		if hw == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cluster.Brokers(), Topic: schemas.TopicEvents, Partition: p, MaxWait: 500 * time.Millisecond})
		proj := history.Projection{W: w}
		var batch []history.Event
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			attrs, err := kafkalog.Decode(m)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := proj.Decode(recordOf(m, attrs))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, ev)
			if m.Offset == hw-1 {
				break
			}
		}
		r.Close()
		if err := w.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
}

func waitConversation(t *testing.T, s history.Reader, id string, seq uint64) history.Conversation {
	t.Helper()
	var c history.Conversation
	var err error
	if !within(30*time.Second, func() bool {
		c, err = s.Conversation(context.Background(), id)
		return err == nil && c.LastSeq >= seq
	}) {
		t.Fatalf("history did not reach seq %d of %s: %+v %v", seq, id, c, err)
	}
	return c
}

func allEvents(t *testing.T, s history.Reader, id string) []history.Event {
	t.Helper()
	var out []history.Event
	page, err := s.Page(context.Background(), id, history.PageQuery{Before: 1, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, page.Events...)
	for {
		page, err := s.Page(context.Background(), id, history.PageQuery{Forward: true, After: out[len(out)-1].Seq, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Events...)
		if !page.HasMore {
			return out
		}
	}
}
