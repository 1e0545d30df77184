package systemtest_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/schemas"
)

// TestLostStoresAreMadeAgainFromTheLog: a node's history store, search
// index and push store are deleted while it is stopped. At its next start
// each is made again, and its consumer groups take the log from the
// start, where their committed offsets would have skipped everything:
// the messages are in history and search again, the read marker is
// back, and the push group applied every event again. A restart with
// its stores in place marks none of them new, so no group starts over.
func TestLostStoresAreMadeAgainFromTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (three starts of a node, about 10 s); make test runs it")
	}
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	bob := api{t, sys.HTTPAddr(), token(t, "bob", time.Hour)}
	conv := alice.createDirect("bob")
	var last int
	for i := range 5 {
		last = alice.send(conv, fmt.Sprintf("aardwolf%d", i))
	}
	if status, out := bob.do(http.MethodPost, "/v1/conversations/"+conv+"/read", map[string]any{"seq": last}); status != http.StatusOK {
		t.Fatalf("read marker: %d %v", status, out)
	}
	pushGroup := fmt.Sprintf(`parley_consumer_records_total{group=%q}`, sys.TopicNames().Group(schemas.GroupPush))
	caughtUp := func(a api) {
		t.Helper()
		eventuallyT(t, "the messages in history", func() bool { return newestInHistory(a, conv) == last }, func() string { return "" })
		searchUntil(t, a, "/v1/search?q=aardwolf4")
		eventuallyT(t, "bob's read marker", func() bool { return unreadOf(bob, conv) == 0 }, func() string { return fmt.Sprint(unreadOf(bob, conv)) })
	}
	caughtUp(alice)
	stopSystem(t, sys)

	stores := []string{filepath.Join(dir, "history"), filepath.Join(dir, "search"), filepath.Join(dir, "push", "store")}
	marks := func() []string {
		var found []string
		for _, s := range stores {
			if _, err := os.Stat(s + ".new"); err == nil {
				found = append(found, s+".new")
			}
		}
		return found
	}
	sys = startSystem(t, dir)
	if m := marks(); len(m) > 0 {
		t.Errorf("a restart with every store in place marked %v new", m)
	}
	stopSystem(t, sys)

	for _, s := range stores {
		if err := os.RemoveAll(s); err != nil {
			t.Fatal(err)
		}
	}
	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	alice.base, bob.base = sys.HTTPAddr(), sys.HTTPAddr()
	caughtUp(alice)
	// Created, five messages, and the read marker's receipt of the
	// conversation: the push group applied them all again.
	eventuallyT(t, "the push group taking the log again", func() bool { return metric(t, sys.HTTPAddr(), pushGroup) >= float64(last+1) }, func() string {
		return fmt.Sprint(metric(t, sys.HTTPAddr(), pushGroup))
	})
	eventuallyT(t, "the marks removed once the groups start over", func() bool { return len(marks()) == 0 }, func() string { return fmt.Sprint(marks()) })
	if seq := alice.send(conv, "after"); seq != last+1 {
		t.Errorf("the next message got seq %d, want %d", seq, last+1)
	}
}

// unreadOf is user a's unread count of conv in the inbox, or -1.
func unreadOf(a api, conv string) int {
	status, out := a.do(http.MethodGet, "/v1/conversations", nil)
	if status != http.StatusOK {
		return -1
	}
	for _, c := range toMaps(out["conversations"]) {
		if c["conversation_id"] == conv {
			if n, ok := c["unread"].(float64); ok {
				return int(n)
			}
		}
	}
	return -1
}
