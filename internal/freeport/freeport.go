// Package freeport finds a TCP port on the loopback interface for a
// server that a test starts, and may restart, on an address it must know
// in advance.
//
// The usual way, listening on port 0 and closing, hands back a port from
// the kernel's range of ephemeral ports, which any connection made before
// the server listens may take as its own end — a browser's, a Kafka
// client's, another test's — and the server's listen then fails with
// "address already in use". Addr chooses below that range instead, where
// the kernel never places a connection, so only another Addr could choose
// the same port, at random.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the lowest port Addr chooses: above the ports services
// commonly use.
const lowest = 10000

// Addr returns 127.0.0.1:PORT, a port nothing listened on when Addr was
// called, outside the kernel's range of ephemeral ports.
func Addr(t testing.TB) string {
	t.Helper()
	below := ephemeralStart()
	for range 200 {
		port := lowest + rand.IntN(below-lowest)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatalf("no free port on 127.0.0.1 between %d and %d", lowest, below)
	return ""
}

// ephemeralStart is the first of the kernel's ephemeral ports: Linux's
// setting, else the default of Linux and of IANA's range alike, near
// enough (32768 and 49152).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				return n
			}
		}
	}
	return 32768
}
