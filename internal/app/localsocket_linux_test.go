//go:build linux

package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTheProcessReachesItsEmbeddedBrokerByItsLocalSocket: on the embedded
// default every role's Kafka connection — writers, readers, consumer
// groups, admin clients — is to the broker's local socket, none over TCP
// (BENCHMARKS.md, "The process's own Kafka connections over a local
// socket"), while the broker still listens on its TCP address for other
// processes. Linux only: the socket is in its abstract namespace, and the
// connections are counted in its /proc/net/tcp; elsewhere every
// connection is TCP.
func TestTheProcessReachesItsEmbeddedBrokerByItsLocalSocket(t *testing.T) {
	t.Parallel()
	cfg := embeddedConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := Start(ctx, cfg, All, cfg.Logger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sys.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	_, port, err := net.SplitHostPort(sys.broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// Every role has joined its groups once the system is ready.
	if tcp := establishedTo(t, port); tcp != 0 {
		t.Errorf("%d connections to the broker's TCP port %s from a process that runs it", tcp, port)
	}
	c, err := net.DialTimeout("tcp", sys.broker.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("the broker's TCP address, for other processes: %v", err)
	}
	defer c.Close()
	if tcp := establishedTo(t, port); tcp != 1 {
		t.Errorf("%d connections to the broker's TCP port %s after dialing it once: the count cannot see them", tcp, port)
	}
}

// establishedTo counts the machine's established IPv4 TCP connections to
// port (decimal), from /proc/net/tcp.
func establishedTo(t *testing.T, port string) int {
	t.Helper()
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// sl local_address rem_address st ..., addresses as HEXIP:HEXPORT
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" {
			continue
		}
		if _, rport, ok := strings.Cut(f[2], ":"); ok && rport == fmt.Sprintf("%04X", p) {
			n++
		}
	}
	return n
}
