package systemtest_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/freeport"
)

// freePort returns a TCP port free on 127.0.0.1 at the time of asking,
// which no connection is given meanwhile (freeport).
func freePort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(freeport.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestAcknowledgedSurvivesKill9 checks invariant 4 of the architecture
// with the real binary: every message acknowledged to a client survives a
// kill -9 of `parley run` (broker, decider, projections and all), and the
// conversation's seq continues after the restart.
func TestAcknowledgedSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and restarts it after a kill -9, about 5 s); make test runs it")
	}
	addr, start := restartableRun(t)
	cmd := start()
	alice := api{t, addr, token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	var acked []int
	for i := range 30 {
		acked = append(acked, alice.send(conv, fmt.Sprint("k", i)))
	}
	kill9(t, cmd)

	start()
	alice = api{t, addr, alice.token}
	if next := alice.send(conv, "after-kill"); next != acked[len(acked)-1]+1 {
		t.Errorf("first seq after the kill is %d, want %d", next, acked[len(acked)-1]+1)
	}
	eventually(t, func() bool { return len(alice.history(conv)) == len(acked)+2 })
	got := seqs(alice.history(conv))
	if want := seqRange(0, len(acked)+1); !slices.Equal(got, want) {
		t.Errorf("history after the kill has seqs %v, want %v: every acknowledged message once", got, want)
	}
}
