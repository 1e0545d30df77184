// The socket's own buffers over a real socket: nothing the client sent
// early is lost.

package gateway

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestFrameSentWithTheUpgradeIsRead sends a ping frame in the same write
// as the upgrade request, before the server's 101: net/http has read it
// with the request, and the socket's own, smaller buffer must still hold
// it. The pong must come after the 101.
func TestFrameSentWithTheUpgradeIsRead(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, Config{})
	addr := strings.TrimPrefix(strings.TrimSuffix(e.url, "/v1/ws"), "ws://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ping := `{"type":"ping","id":"early"}`
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + e.token("alice", time.Now().Add(time.Hour)) + "\r\n\r\n"
	// A client frame is masked; a zero key leaves the payload as it is.
	msg := append([]byte(req), 0x81, 0x80|byte(len(ping)), 0, 0, 0, 0)
	msg = append(msg, ping...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"pong","id":"early"}`
	var got []byte
	buf := make([]byte, 512)
	for {
		head, rest, ok := bytes.Cut(got, []byte("\r\n\r\n"))
		if ok && len(rest) >= 2+len(want) {
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
				t.Fatalf("upgrade answered %q", head)
			}
			if rest[0] != 0x81 || int(rest[1]) != len(want) || string(rest[2:2+len(want)]) != want {
				t.Fatalf("after the 101: %q, want the pong %s", rest, want)
			}
			return
		}
		n, err := c.Read(buf)
		if err != nil {
			if err == io.EOF {
				t.Fatalf("the server closed the socket after %q", got)
			}
			t.Fatalf("reading after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
}
