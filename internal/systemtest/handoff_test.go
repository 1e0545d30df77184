package systemtest_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestOneNodeHandoff: on one node (`parley run`, broadcast routing) the
// gateway hands its commands to the decider, and the decider what it
// appends to the sockets' hub, in process, beside the log. Three members of a group send pipelined at once; every member's
// socket gets every event of the group once, in seq order, with no gap —
// and the hub took events from both sources. After a restart on the same
// data (the hand-off starts again while the log brings what it missed),
// the sockets resume from their last seq and again get every event once,
// in order.
func TestOneNodeHandoff(t *testing.T) {
	dir := t.TempDir()
	sys := startSystem(t, dir)
	addr := sys.HTTPAddr()
	users := []string{"ann", "ben", "cat"}
	owner := api{t, addr, token(t, users[0], time.Hour)}
	status, out := owner.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Handoff", "members": users[1:], "command_id": "handoff"})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	conv := out["conversation_id"].(string)

	const perUser = 40
	round := func(sockets []*wsClient, tag string) {
		var wg sync.WaitGroup
		for i, ws := range sockets {
			wg.Go(func() {
				for n := range perUser {
					ws.send(map[string]any{"type": "send", "id": fmt.Sprint(tag, n), "conversation_id": conv,
						"command_id": fmt.Sprintf("%s-%s-%d", tag, users[i], n), "body": "hi"})
				}
			})
		}
		wg.Wait()
	}
	check := func(sockets []*wsClient, from, to int) {
		for i, ws := range sockets {
			ws.waitFor(func(frames []map[string]any) bool {
				for _, f := range frames {
					if f["type"] == "error" || f["type"] == "gap" {
						t.Fatalf("%s: %v", users[i], f)
					}
				}
				got := ws.events(conv)
				return len(got) > 0 && got[len(got)-1] >= to
			})
			if got := ws.events(conv); !slices.Equal(got, seqRange(from, to)) {
				t.Fatalf("%s got seqs %v, want %d to %d once each, in order", users[i], got, from, to)
			}
		}
	}

	var sockets []*wsClient
	for _, u := range users {
		ws := dial(t, addr, token(t, u, time.Hour), false)
		ws.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: 0}})
		sockets = append(sockets, ws)
	}
	// Which source brings an event to the hub first is a race the
	// hand-off usually wins; on a loaded machine the log can win a whole
	// round, so up to five rounds are sent for the hand-off to show.
	n := len(users) * perUser
	total := 0
	var fromDecider float64
	for r := range 5 {
		round(sockets, fmt.Sprint("a", r))
		total += n
		check(sockets, 1, total)
		if fromDecider = metric(t, addr, `parley_delivery_events_taken_total{from="decider"}`); fromDecider > 0 {
			break
		}
	}
	if fromDecider <= 0 {
		t.Errorf("no event was taken from the decider's hand-off (metric %v)", fromDecider)
	}
	t.Logf("taken from the decider %v, from the log %v", fromDecider, metric(t, addr, `parley_delivery_events_taken_total{from="log"}`))
	// The gateway hands its commands to the decider in the same way.
	if handed := metric(t, addr, `parley_decider_commands_taken_total{from="gateway"}`); handed <= 0 {
		t.Errorf("no command was taken from the gateway's hand-off (metric %v)", handed)
	}
	stopSystem(t, sys)

	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	addr = sys.HTTPAddr()
	sockets = sockets[:0]
	for _, u := range users {
		ws := dial(t, addr, token(t, u, time.Hour), false)
		ws.send(map[string]any{"type": "resume", "id": "r", "conversations": map[string]int{conv: total}})
		sockets = append(sockets, ws)
	}
	round(sockets, "b")
	check(sockets, total+1, total+n)
}
