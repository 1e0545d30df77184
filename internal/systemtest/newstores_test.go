package systemtest_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// TestStoresOfAnotherLogAreRefused: a node whose log is new — its
// directory deleted — beside stores made from the old one does not
// start, and says which stores and what to do; once they are moved
// aside it starts on the new log, and the stores are made from it.
func TestStoresOfAnotherLogAreRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (three starts of a node, about 5 s); make test runs it")
	}
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	last := alice.send(conv, "aardvark")
	eventuallyT(t, "the message in history", func() bool { return newestInHistory(alice, conv) == last }, func() string { return "" })
	stopSystem(t, sys)

	if err := os.RemoveAll(filepath.Join(dir, "kafka")); err != nil {
		t.Fatal(err)
	}
	sys, err := tryStartSystem(t, dir)
	if err == nil {
		stopSystem(t, sys)
		t.Fatal("a new log beside the old one's stores: started")
	}
	for _, want := range []string{"is new", filepath.Join(dir, "history"), filepath.Join(dir, "search"), filepath.Join(dir, "push", "store"), "move them aside"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); err == nil {
		t.Error("the refused start made a log")
	}

	aside := t.TempDir()
	for _, s := range []string{"history", "search", "push"} {
		if err := os.Rename(filepath.Join(dir, s), filepath.Join(aside, s)); err != nil {
			t.Fatal(err)
		}
	}
	sys = startSystem(t, dir)
	defer stopSystem(t, sys)
	alice.base = sys.HTTPAddr()
	if again := alice.createDirect("bob"); again != conv {
		t.Fatalf("the pair's conversation is %s, want %s", again, conv)
	}
	if seq := alice.send(conv, "first"); seq != 1 {
		t.Errorf("the first message of the new log got seq %d, want 1", seq)
	}
	eventuallyT(t, "the new log's message in history", func() bool { return newestInHistory(alice, conv) == 1 }, func() string { return "" })
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
