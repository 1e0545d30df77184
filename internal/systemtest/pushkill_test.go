package systemtest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/push"
	"github.com/parley-chat/parley/projections/push/pushtest"
)

// metric returns the value of the series of /metrics at addr whose line
// starts with series (name and labels as printed), or -1.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	status, raw, err := getPublic(t, addr, "/metrics")
	if err != nil || status != 200 {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// TestPushSurvivesKill9: the push role of `parley run`, killed with -9
// while a coalesced notification waits for its window, sends it after the
// restart — once, with the messages it stands for — and does not send
// again the notification it had sent before the kill. The browser is the
// Web Push stand-in (it decrypts what it gets with the subscription's
// private key); the server's VAPID key is the one it made in its data
// directory on first start, and keeps across the restart.
func TestPushSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and restarts it after a kill -9, about 20 s); make test runs it")
	}
	addr, start := restartableRun(t, "-push-window", "4s", "-webpush-hosts", "127.0.0.1")
	cmd := start()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	bob := api{t, addr, token(t, "bob", time.Hour)}
	status, cfg := bob.do("GET", "/v1/push/config", nil)
	key, _ := cfg["vapid_public_key"].(string)
	if status != 200 || key == "" {
		t.Fatalf("push config: %d %v", status, cfg)
	}
	wp := pushtest.StartWebPush(t, key)
	sub := wp.Subscribe(t, "bob-laptop")
	if status, out := bob.do("PUT", "/v1/devices/bob-laptop/push", map[string]any{"provider": "webpush", "subscription": sub}); status != 200 {
		t.Fatalf("register: %d %v", status, out)
	}
	eventually(t, func() bool { return metric(t, addr, "parley_push_registrations") == 1 })

	conv := alice.createDirect("bob")
	alice.send(conv, "m1")
	notes := func() []push.Notification {
		var out []push.Notification
		for _, m := range wp.Received() {
			var n push.Notification
			if err := json.Unmarshal(m.Payload, &n); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			out = append(out, n)
		}
		return out
	}
	eventually(t, func() bool { return len(notes()) == 1 })
	// Two more inside the window: they wait for it, and the process dies.
	alice.send(conv, "m2")
	last := alice.send(conv, "m3")
	kill9(t, cmd)

	start()
	if got := metric(t, addr, "parley_push_registrations"); got != 1 {
		t.Errorf("registrations after the restart: %v, want 1", got)
	}
	eventually(t, func() bool { return len(notes()) >= 2 })
	eventually(t, func() bool {
		return metric(t, addr, "parley_push_pending") == 0 && metric(t, addr, `parley_push_notifications_total{outcome="sent",provider="webpush"}`) >= 1
	})
	got := notes()
	if len(got) != 2 {
		t.Fatalf("bob's laptop got %d notifications, want 2: %+v", len(got), got)
	}
	if n := got[0]; n.Seq != 1 || n.Count != 1 || n.Preview != "message m1" {
		t.Errorf("first notification %+v", n)
	}
	if n := got[1]; n.Seq != uint64(last) || n.Count != 2 || n.Preview != "message m3" || n.Badge != 3 || n.SenderID != "alice" {
		t.Errorf("notification after the kill %+v, want seq %d, count 2, badge 3", n, last)
	}
	if sent := metric(t, addr, `parley_push_notifications_total{outcome="sent",provider="webpush"}`); sent != 1 {
		t.Errorf("the restarted process sent %v notifications, want 1", sent)
	}
}
