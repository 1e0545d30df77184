package freeport_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/freeport"
)

// TestAddrIsFreeAndOutsideTheEphemeralPorts: the address can be listened
// on, and its port is one no connection of this machine's is given: a
// port-0 listener's, which the kernel takes from its ephemeral range, is
// never one of Addr's.
func TestAddrIsFreeAndOutsideTheEphemeralPorts(t *testing.T) {
	eph, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer eph.Close()
	ephemeral := eph.Addr().(*net.TCPAddr).Port
	for range 20 {
		addr := freeport.Addr(t)
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		if port >= ephemeral || port < 10000 {
			t.Fatalf("port %d: want one in [10000, %d), below the ephemeral port the kernel gave", port, ephemeral)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		ln.Close()
	}
}
