package router

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery/deliverytest"
)

// TestRoutingStateStaysBounded: the router and a node's hub route five
// times more conversations than they may keep; what they keep stays
// within the bound (the router's once the newest events are older than
// Resync), and conversations they forgot are routed right when their next
// events come, loaded again from history.
func TestRoutingStateStaysBounded(t *testing.T) {
	t.Parallel()
	const bound, convs = 8, 40
	env := startRoutingWith(t, bound, 300*time.Millisecond, "n1")
	alice := env.connect(t, "n1", "alice", "phone", true)
	want := map[string][]string{}
	// Each conversation's frames in seq order, once; conversations on
	// different partitions interleave as they may.
	waitEach := func() {
		t.Helper()
		n := 0
		for _, w := range want {
			n += len(w)
		}
		deliverytest.WaitFor(t, fmt.Sprint(n, " frames"), func() bool { return len(alice.Frames()) >= n })
		got := alice.Summaries(t)
		if len(got) != n {
			t.Fatalf("%d frames, want %d", len(got), n)
		}
		for id, w := range want {
			if g := deliverytest.Only(got, id); !slices.Equal(g, w) {
				t.Fatalf("%s: frames %q, want %q", id, g, w)
			}
		}
	}
	for i := range convs {
		id := fmt.Sprintf("bounded-%d", i)
		env.publish(t, "n1", nowGroup(id, "alice", "bob"))
		env.publish(t, "n1", nowMsgs(id, 1, 1)...)
		want[id] = eventsOf(id, 0, 1)
	}
	waitEach()
	checkHub := func(when string) {
		t.Helper()
		for cache, n := range env.hubs["n1"].CachedConversations() {
			if n > bound {
				t.Errorf("%s: the hub's %s cache holds %d conversations, bound %d", when, cache, n, bound)
			}
		}
	}
	checkHub("after routing")
	if n := env.hubs["n1"].CachedConversations()["membership"]; n == 0 {
		t.Error("the hub's membership cache is empty: nothing was measured")
	}
	deliverytest.WaitFor(t, "the router to forget idle conversations", func() bool {
		return env.router.CachedConversations() <= bound
	})

	// The first conversations were forgotten long ago: their next events
	// reach alice all the same, and the bound still holds.
	for i := range 3 {
		id := fmt.Sprintf("bounded-%d", i)
		env.publish(t, "n1", nowMsgs(id, 2, 2)...)
		want[id] = eventsOf(id, 0, 2)
	}
	waitEach()
	checkHub("after routing forgotten conversations")
	if n := env.router.CachedConversations(); n > bound+3 {
		t.Errorf("the router keeps %d conversations, bound %d and 3 just active", n, bound)
	}
}
