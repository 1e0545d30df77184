// Where the client commands (ws, healthcheck) reach a role running on this
// machine: its PARLEY_HTTP_ADDR, with a wildcard host read as loopback.

package main

import "net"

// localAddr is the host:port at which a role listening on addr (the
// PARLEY_HTTP_ADDR form) is reached from this machine: an empty or
// unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") is 127.0.0.1,
// and an empty or malformed addr is the default, 127.0.0.1:8080.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if addr == "" || err != nil {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
