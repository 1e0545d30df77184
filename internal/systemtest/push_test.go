package systemtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/push/pushtest"
)

// TestPushOnlyToDevicesWithoutSocket: every role in one process; Bob's
// laptop has a socket open under the device id it registered for push,
// his phone has none. Alice's message reaches the laptop over its socket
// and the phone as a push (decrypted by the Web Push stand-in); the
// laptop gets no push. Bob reads the conversation: the phone's
// notification is cleared with the new badge.
func TestPushOnlyToDevicesWithoutSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (every role in one process, about 10 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir(), func(c *app.Config) {
		c.WebPushHosts = []string{"127.0.0.1"}
		c.PushWindow = 100 * time.Millisecond
	})
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	_, cfg := bob.do("GET", "/v1/push/config", nil)
	wp := pushtest.StartWebPush(t, cfg["vapid_public_key"].(string))
	for _, d := range []string{"bob-phone", "bob-laptop"} {
		if status, out := bob.do("PUT", "/v1/devices/"+d+"/push", map[string]any{"provider": "webpush", "subscription": wp.Subscribe(t, d)}); status != http.StatusOK {
			t.Fatalf("register %s: %d %v", d, status, out)
		}
	}
	eventually(t, func() bool { return metric(t, addr, "parley_push_registrations") == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	laptop := newWSClient(t, c)
	laptop.send(map[string]any{"type": "auth", "id": "auth", "token": bob.token, "device_id": "bob-laptop"})
	laptop.await(func(f map[string]any) bool { return f["type"] == "auth_ok" })
	conv := alice.createDirect("bob")
	// The push role knows the laptop is connected once presence says so
	// (to Alice, who shares a conversation with Bob).
	eventually(t, func() bool {
		_, out := alice.do("GET", "/v1/presence?user_ids=bob", nil)
		users, _ := out["users"].([]any)
		return len(users) == 1 && users[0].(map[string]any)["status"] == "online"
	})

	seq := alice.send(conv, "hello")
	laptop.await(func(f map[string]any) bool { return f["type"] == "event" && f["seq"] == float64(seq) })
	pushes := func(sub string) []push.Notification {
		var out []push.Notification
		for _, m := range wp.Received() {
			if m.Subscription != sub {
				continue
			}
			var n push.Notification
			if err := json.Unmarshal(m.Payload, &n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	eventually(t, func() bool { return len(pushes("bob-phone")) == 1 })
	eventually(t, func() bool { return metric(t, addr, "parley_push_pending") == 0 })
	if n := pushes("bob-phone")[0]; n.Type != push.KindMessage || n.ConversationID != conv || n.Seq != uint64(seq) || n.SenderID != "alice" || n.Preview != "message hello" || n.Badge != 1 {
		t.Errorf("the phone's notification %+v", n)
	}
	if got := pushes("bob-laptop"); len(got) != 0 {
		t.Errorf("the connected laptop got pushes %+v", got)
	}

	if status, out := bob.do("POST", "/v1/conversations/"+conv+"/read", map[string]any{"seq": seq}); status != http.StatusOK {
		t.Fatalf("read: %d %v", status, out)
	}
	eventually(t, func() bool { return len(pushes("bob-phone")) == 2 })
	if n := pushes("bob-phone")[1]; n.Type != push.KindClear || n.ConversationID != conv || n.Badge != 0 {
		t.Errorf("the phone's clear %+v, want badge 0", n)
	}
	if got := pushes("bob-laptop"); len(got) != 0 {
		t.Errorf("the connected laptop got pushes %+v", got)
	}
}
