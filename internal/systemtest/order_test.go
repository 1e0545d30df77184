package systemtest_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// TestSenderOrder: what one socket sends to one conversation is appended
// in the order the socket sent it, although the client does not wait for
// acks (pipelining) — under load, with many sockets sending at once to
// shared groups. Each sender's acks carry increasing seqs in the order of
// its frames, and history has each sender's messages in that order.
func TestSenderOrder(t *testing.T) {
	// A busy machine may take long to answer 720 pipelined commands; the
	// order is what is tested, not the latency.
	sys := startSystem(t, t.TempDir(), func(c *app.Config) { c.CommandTimeout = time.Minute })
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	const (
		groups  = 6
		members = 3
		perUser = 40
	)
	type sender struct {
		user, conv string
		ws         *wsClient
	}
	var senders []sender
	for g := range groups {
		var users []string
		for m := range members {
			users = append(users, fmt.Sprintf("u%d-%d", g, m))
		}
		owner := api{t, addr, token(t, users[0], time.Hour)}
		status, out := owner.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Order", "members": users[1:], "command_id": fmt.Sprint("order-", g)})
		if status != http.StatusCreated {
			t.Fatalf("create: %d %v", status, out)
		}
		conv := out["conversation_id"].(string)
		for _, u := range users {
			senders = append(senders, sender{u, conv, dial(t, addr, token(t, u, time.Hour), false)})
		}
	}

	// Every socket sends all its frames back to back, all sockets at once.
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() {
			for i := range perUser {
				s.ws.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "conversation_id": s.conv,
					"command_id": fmt.Sprintf("%s-%03d", s.user, i), "body": fmt.Sprintf("%s %03d", s.user, i)})
			}
		})
	}
	wg.Wait()

	for _, s := range senders {
		acks := map[string]int{}
		s.ws.waitFor(func(frames []map[string]any) bool {
			for _, f := range frames {
				if f["type"] == "ack" {
					acks[f["id"].(string)] = int(f["seq"].(float64))
				}
				if f["type"] == "error" {
					t.Fatalf("%s: error frame %v", s.user, f)
				}
			}
			return len(acks) == perUser
		})
		prev := 0
		for i := range perUser {
			seq := acks[fmt.Sprint(i)]
			if seq <= prev {
				t.Fatalf("%s: frame %d got seq %d after seq %d: appended out of order", s.user, i, seq, prev)
			}
			prev = seq
		}
	}

	// History agrees: each sender's messages in the order sent.
	reader := api{t, addr, token(t, senders[0].user, time.Hour)}
	for g := range groups {
		conv := senders[g*members].conv
		reader.token = token(t, senders[g*members].user, time.Hour)
		got := map[string][]string{}
		for _, ev := range reader.history(conv) {
			data, _ := ev["data"].(map[string]any)
			if body, ok := data["body"].(string); ok {
				sender := data["sender_id"].(string)
				got[sender] = append(got[sender], body)
			}
		}
		for m := range members {
			user := fmt.Sprintf("u%d-%d", g, m)
			var want []string
			for i := range perUser {
				want = append(want, fmt.Sprintf("%s %03d", user, i))
			}
			if !slices.Equal(got[user], want) {
				t.Errorf("%s in history: %v, want %v", user, got[user], want)
			}
		}
	}
}

// TestSameCommandTwiceInFlight: two frames with one command id, sent
// back to back on one socket, yield one event and two acks with its seq,
// the second marked duplicate; from two devices of one user at once, the
// same.
func TestSameCommandTwiceInFlight(t *testing.T) {
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")

	ws := dial(t, addr, alice.token, false)
	for _, id := range []string{"a", "b"} {
		ws.send(map[string]any{"type": "send", "id": id, "conversation_id": conv, "command_id": "twice", "body": "once"})
	}
	first := ws.await(func(f map[string]any) bool { return f["id"] == "a" })
	second := ws.await(func(f map[string]any) bool { return f["id"] == "b" })
	if first["type"] != "ack" || second["type"] != "ack" || first["seq"] != second["seq"] ||
		first["duplicate"] != false || second["duplicate"] != true {
		t.Fatalf("answers %v and %v, want acks of one seq, the second a duplicate", first, second)
	}

	phone, laptop := dial(t, addr, alice.token, false), dial(t, addr, alice.token, false)
	phone.send(map[string]any{"type": "send", "id": "p", "conversation_id": conv, "command_id": "devices", "body": "hi"})
	laptop.send(map[string]any{"type": "send", "id": "l", "conversation_id": conv, "command_id": "devices", "body": "hi"})
	p := phone.await(func(f map[string]any) bool { return f["id"] == "p" })
	l := laptop.await(func(f map[string]any) bool { return f["id"] == "l" })
	if p["type"] != "ack" || l["type"] != "ack" || p["seq"] != l["seq"] || p["duplicate"] == l["duplicate"] {
		t.Fatalf("answers %v and %v, want acks of one seq, one a duplicate", p, l)
	}

	// History follows the log: wait until it has the last acked seq.
	var events []map[string]any
	eventually(t, func() bool {
		events = alice.history(conv)
		return len(events) > 0 && events[len(events)-1]["seq"].(float64) >= p["seq"].(float64)
	})
	var bodies []string
	for _, ev := range events {
		if data, _ := ev["data"].(map[string]any); data["body"] != nil {
			bodies = append(bodies, data["body"].(string))
		}
	}
	if !slices.Equal(bodies, []string{"once", "hi"}) {
		t.Errorf("history has %q, want one message per command id", bodies)
	}
}
