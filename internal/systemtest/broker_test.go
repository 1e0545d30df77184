package systemtest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
)

// TestRolesOverTheBrokerProcess runs `parley broker` — the embedded
// broker alone, with Parley's topics — and every role in another process
// that reaches it as an external cluster: messages go through, and each
// process reports its own memory on its own /metrics.
func TestRolesOverTheBrokerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (builds the binary and starts two processes, about 5 s); make test runs it")
	}
	bin := buildParley(t)
	brokerHTTP := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	kafkaAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startParley(t, bin, brokerHTTP, "broker", "-data-dir", t.TempDir(), "-http-addr", brokerHTTP,
		"-kafka-listen", kafkaAddr, "-partitions", "4", "-log-level", "warn")
	rolesHTTP := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// The dev secret, given explicitly: with an external cluster a
	// secret is required, and the tests' tokens are signed with this one.
	startParley(t, bin, rolesHTTP, "run", "-data-dir", t.TempDir(), "-http-addr", rolesHTTP,
		"-kafka-brokers", kafkaAddr, "-jwt-secret", app.DevSecret, "-partitions", "4", "-log-level", "warn")

	alice := api{t, rolesHTTP, token(t, "alice", time.Hour)}
	conv := alice.createDirect("bob")
	for i := range 5 {
		if seq := alice.send(conv, fmt.Sprint("m", i)); seq != i+1 {
			t.Fatalf("send %d: seq %d, want %d", i, seq, i+1)
		}
	}
	eventually(t, func() bool { return len(alice.history(conv)) == 6 })
	if got := seqs(alice.history(conv)); !slices.Equal(got, seqRange(0, 5)) {
		t.Errorf("history seqs %v, want 0..5", got)
	}
	for _, addr := range []string{brokerHTTP, rolesHTTP} {
		status, body, err := getPublic(t, addr, "/metrics")
		if err != nil || status != 200 || !strings.Contains(string(body), "process_resident_memory_bytes") {
			t.Errorf("%s/metrics: %d %v, want 200 with process_resident_memory_bytes", addr, status, err)
		}
	}
}
