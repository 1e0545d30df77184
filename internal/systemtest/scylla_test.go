package systemtest_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// TestChatOnScyllaDB runs the system with the production history adapter
// (gocql over the CQL native protocol) against the CQL stand-in, through
// an outage at start and one in the middle of a run.
func TestChatOnScyllaDB(t *testing.T) {
	fake := cqlfake.Start(t)
	fake.Stop() // ScyllaDB is down when Parley starts.

	sys := startSystem(t, t.TempDir(), func(c *app.Config) {
		c.ScyllaHosts = []string{fake.Addr()}
		c.ScyllaKeyspace = "parley_e2e"
	})
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	alice := api{t, addr, token(t, "alice", time.Hour)}

	status, p := api{t, addr, ""}.do("GET", "/readyz", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(p["detail"]), "history") {
		t.Fatalf("readyz while ScyllaDB is down: %d %v, want 503 naming the history store", status, p)
	}
	if err := fake.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { s, _ := api{t, addr, ""}.do("GET", "/readyz", nil); return s == http.StatusOK })

	conv := alice.createDirect("bob")
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			status, out := alice.do("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"command_id": fmt.Sprint("m", i), "body": fmt.Sprint("message ", i)})
			if status != http.StatusCreated || out["seq"] != float64(i) {
				t.Fatalf("send %d: %d %v", i, status, out)
			}
		}
	}
	send(1, 20)
	eventually(t, func() bool { return len(alice.history(conv)) == 21 })

	// ScyllaDB goes away mid-run: sends still succeed (the log is the
	// source of truth), history catches up when it is back, nothing
	// skipped and nothing twice.
	fake.Stop()
	send(21, 40)
	if status, _ := alice.do("GET", "/v1/conversations/"+conv+"/history", nil); status != http.StatusServiceUnavailable && status != http.StatusOK {
		t.Errorf("history while ScyllaDB is down: %d, want 503 (or 200 from a connection that survived)", status)
	}
	if err := fake.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		status, out := alice.do("GET", "/v1/conversations/"+conv+"/history?limit=1", nil)
		if status != http.StatusOK {
			return false
		}
		evs := out["events"].([]any)
		return len(evs) == 1 && evs[0].(map[string]any)["seq"] == float64(40)
	})
	if got := seqs(alice.history(conv)); !slices.Equal(got, seqRange(0, 40)) {
		t.Errorf("history after the outage has seqs %v, want 0..40 once each", got)
	}
}

// eventually polls cond until it holds, failing after 30 s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	if !within(30*time.Second, cond) {
		t.Fatal("condition did not hold within 30s")
	}
}

// within polls cond until it holds (true) or timeout passes (false): the
// one place the system tests and benchmarks sleep to wait for a
// condition.
func within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
