// The buffers a socket reads and writes through: smaller than net/http's,
// since an idle socket keeps them for its life.

package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// socketBuffers is the upgrade's http.ResponseWriter with a Hijack that
// gives the WebSocket library buffers of the sizes configured. The
// library (coder/websocket's Accept) reads and writes a socket through
// the bufio.ReadWriter Hijack returns, for the socket's whole life;
// net/http's own are 4 KiB each. Frames larger than the write buffer
// take two writes instead of one (the library writes a frame's header
// and payload through the buffer and flushes once per frame); larger
// reads go around the read buffer.
type socketBuffers struct {
	http.ResponseWriter
	read, write int
}

// Hijack implements http.Hijacker.
func (w socketBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The response head is written by now, but flush in case.
	if err := brw.Writer.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("flushing the upgrade response: %w", err)
	}
	br := bufio.NewReaderSize(conn, w.read)
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent more after its request, and net/http has read
		// it already: it must be in the new buffer, where the library
		// looks for it (Accept keeps what is buffered, not what the
		// buffer's reader holds).
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(w.read, n))
		if _, err := br.Peek(n); err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("moving what the client sent early: %w", err)
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, w.write)), nil
}

// Unwrap lets http.ResponseController reach the ResponseWriter beneath.
func (w socketBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }
