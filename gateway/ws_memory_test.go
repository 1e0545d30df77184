// Memory per idle socket: real WebSockets against a gateway with a real
// delivery hub, measured with the runtime's own accounting.

package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/delivery"
)

// deliveryHub is a delivery.Hub as the gateway uses it, as the binary
// wires it: its sessions handed out as Sessions.
type deliveryHub struct{ *delivery.Hub }

func (h deliveryHub) NewSession(user string) Session { return h.Hub.NewSession(user) }

// rawSocket is the client end of a WebSocket with nothing of its own but
// the connection: no goroutine, no buffer kept. The measurement below
// counts it with the server's socket (a few hundred bytes of heap: the
// net.Conn and its poll descriptor).
type rawSocket struct{ net.Conn }

// dialRaw opens a WebSocket to url's host and path, authenticated with
// token in the Authorization header, by writing the handshake by hand.
func dialRaw(addr, path, token string) (rawSocket, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return rawSocket{}, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return rawSocket{}, err
	}
	// The server says nothing after its 101 until asked, so everything
	// read up to the blank line is the response's head.
	var head []byte
	var b [256]byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		n, err := c.Read(b[:])
		if err != nil {
			c.Close()
			return rawSocket{}, fmt.Errorf("reading the handshake: %w", err)
		}
		head = append(head, b[:n]...)
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		c.Close()
		return rawSocket{}, fmt.Errorf("handshake refused: %q", head)
	}
	_ = c.SetDeadline(time.Time{})
	return rawSocket{c}, nil
}

// ping sends a ping frame and reads the pong: once it has come, the
// server's socket is fully set up and in its read loop.
func (r rawSocket) ping() error {
	payload := `{"type":"ping","id":"p"}`
	// A client frame is masked; a zero key leaves the payload as it is.
	frame := append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	_ = r.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = r.SetDeadline(time.Time{}) }()
	if _, err := r.Write(frame); err != nil {
		return err
	}
	want := `{"type":"pong","id":"p"}`
	got := make([]byte, 2+len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		return fmt.Errorf("reading the pong: %w", err)
	}
	if got[0] != 0x81 || int(got[1]) != len(want) || string(got[2:]) != want {
		return fmt.Errorf("unexpected answer to a ping: %q", got)
	}
	return nil
}

// memory is what the runtime holds, after a full collection.
type memory struct {
	heap, stack uint64
	goroutines  int
}

func measure() memory {
	// Two collections: the first may leave finalizers' objects (the
	// WebSocket library sets one on each Conn) for the second.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// BenchmarkIdleSocketMemory_5000Sockets reports what an idle,
// authenticated socket costs the server: heap and goroutine stacks in use
// per socket (the runtime's HeapInuse and StackInuse growth over 5,000
// open sockets, after a full collection), and goroutines per socket. The
// gateway has a real delivery hub (never fed: the sockets stay idle) and
// no presence. Run it with -benchtime=1x: each iteration opens and closes
// 5,000 sockets (10,000 descriptors, the server's and the client's).
func BenchmarkIdleSocketMemory_5000Sockets(b *testing.B) {
	benchmarkIdleSocketMemory(b, 5000)
}

func benchmarkIdleSocketMemory(b *testing.B, n int) {
	auth, err := NewAuthenticator(AuthConfig{Secret: wsSecret})
	if err != nil {
		b.Fatal(err)
	}
	hub := delivery.NewHub(delivery.Config{History: &searchHistory{}})
	s, err := New(Config{Auth: auth, Commands: saturatedLog{}, Hub: deliveryHub{hub}, History: &searchHistory{}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	}()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tokens := make([]string, n)
	for i := range tokens {
		if tokens[i], err = auth.Issue("user"+strconv.Itoa(i), time.Hour, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	socks := make([]rawSocket, n)
	var heap, stack, goroutines float64
	b.ResetTimer()
	for range b.N {
		before := measure()
		for i := range socks {
			if socks[i], err = dialRaw(addr, "/v1/ws", tokens[i]); err != nil {
				b.Fatalf("socket %d: %v", i, err)
			}
		}
		for i, c := range socks {
			if err := c.ping(); err != nil {
				b.Fatalf("socket %d: %v", i, err)
			}
		}
		after := measure()
		heap += (float64(after.heap) - float64(before.heap)) / float64(n)
		stack += (float64(after.stack) - float64(before.stack)) / float64(n)
		goroutines += float64(after.goroutines-before.goroutines) / float64(n)
		for _, c := range socks {
			c.Close()
		}
		// The server's sockets end once they read the closed
		// connections; wait for every handler before the next round.
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > before.goroutines+10 {
			if time.Now().After(deadline) {
				b.Fatalf("%d goroutines still running after the sockets closed, %d before", runtime.NumGoroutine(), before.goroutines)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/socket")
	b.ReportMetric(stack/float64(b.N), "stack-B/socket")
	b.ReportMetric((heap+stack)/float64(b.N), "B/socket")
	b.ReportMetric(goroutines/float64(b.N), "goroutines/socket")
}
