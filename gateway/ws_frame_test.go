// Tests of the read loop's reused frame buffers: a frame is read whole
// into a buffer that the next frame overwrites, so nothing served may
// keep its bytes.

package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestReadFrameReusesItsBuffer: frames of every size around the
// buffer's growth steps read whole, one after the other into the same
// buffer, whether the reader hands them over at once or a byte at a time.
func TestReadFrameReusesItsBuffer(t *testing.T) {
	t.Parallel()
	buf := make([]byte, 0, 512)
	for _, oneByte := range []bool{false, true} {
		for _, n := range []int{0, 1, 100, 511, 512, 513, 1024, 5000, 70000, 3} {
			want := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			var r io.Reader = bytes.NewReader(want)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			got, err := readFrame(r, buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("one byte at a time %v: read %d bytes, want %d", oneByte, len(got), n)
			}
			buf = got
		}
	}
	boom := fmt.Errorf("boom")
	if _, err := readFrame(iotest.ErrReader(boom), buf); err != boom {
		t.Errorf("readFrame of a failing reader = %v, want %v", err, boom)
	}
}

// TestDecodedFramesKeepNoneOfTheirBytes: every valid frame of every type,
// and every malformed one's error, decode the same after the frame's
// bytes are overwritten, as the next frame read into the buffer does.
func TestDecodedFramesKeepNoneOfTheirBytes(t *testing.T) {
	t.Parallel()
	var frames []string
	for _, fs := range validFrames {
		frames = append(frames, fs...)
	}
	for _, vs := range malformedFrames() {
		for _, v := range vs {
			frames = append(frames, v.frame)
		}
	}
	// Escapes take decodeFrame's other paths.
	frames = append(frames, `{"type":"send","id":"r\u00e9q","conversation_id":"c\"1","command_id":"x","body":"a\nb"}`)
	for _, frame := range frames {
		want, wantErr := decodeFrame([]byte(frame))
		data := []byte(frame)
		got, gotErr := decodeFrame(data)
		for i := range data {
			data[i] = 'X'
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
			t.Errorf("%s: after its bytes were overwritten decoded as %+v, %v; want %+v, %v", frame, got, gotErr, want, wantErr)
		}
	}
}

// TestPipelinedFramesAnsweredInOrder: pings of different lengths sent
// back to back on one real socket, each read into the buffer the one
// before it used, are each answered with their own id, in order.
func TestPipelinedFramesAnsweredInOrder(t *testing.T) {
	t.Parallel()
	c := pingSocket(t)
	var frames []byte
	var ids []string
	for i := range 50 {
		id := strings.Repeat(string(rune('a'+i%26)), 1+(i*7)%60)
		ids = append(ids, id)
		payload := `{"type":"ping","id":"` + id + `"}`
		// A client frame is masked; a zero key leaves the payload as it is.
		frames = append(frames, 0x81, 0x80|byte(len(payload)), 0, 0, 0, 0)
		frames = append(frames, payload...)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var head [2]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, head[1])
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if want := `{"type":"pong","id":"` + id + `"}`; string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

// TestWriteCtxSharedByContextsThatEndTogether: a request's context (a
// value over the socket's) and the socket's share one write context,
// which ends with them; a context that can end on its own gets its own.
func TestWriteCtxSharedByContextsThatEndTogether(t *testing.T) {
	t.Parallel()
	k := &socket{s: &Server{cfg: Config{WriteTimeout: time.Hour}}}
	ctx, cancel := context.WithCancel(context.Background())
	event := k.writeCtx(ctx)
	if ack := k.writeCtx(withAppended(ctx, func() {})); ack != event {
		t.Error("the request's write context is not the socket's")
	}
	own, cancelOwn := context.WithCancel(ctx)
	defer cancelOwn()
	if k.writeCtx(own) == event {
		t.Error("a context that ends on its own shares the socket's write context")
	}
	shorter, cancelShorter := context.WithTimeout(ctx, time.Minute)
	defer cancelShorter()
	if w := k.writeCtx(shorter); w == event {
		t.Error("a context with its own deadline shares the socket's write context")
	} else if d, ok := w.Deadline(); !ok || time.Until(d) > time.Minute {
		t.Errorf("write context deadline %v, %v; want within the minute of its parent", d, ok)
	}
	shared := k.writeCtx(ctx)
	if k.writeCtx(withAppended(ctx, func() {})) != shared {
		t.Error("the request's write context is not the socket's")
	}
	cancel() // cancels its descendants before it returns
	if shared.Err() == nil {
		t.Fatal("the shared write context did not end with the socket's")
	}
}

func TestEndsWith(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	c, cancel := context.WithCancel(bg)
	defer cancel()
	d, cancelD := context.WithDeadline(c, time.Now().Add(time.Hour))
	defer cancelD()
	for _, x := range []struct {
		name string
		a, b context.Context
		want bool
	}{
		{"same", c, c, true},
		{"a value over it", c, context.WithValue(c, appendedKey{}, 1), true},
		{"a value over its deadline", d, context.WithValue(d, appendedKey{}, 1), true},
		{"a child that can be cancelled", c, d, false},
		{"never ending, both", bg, context.WithoutCancel(c), true},
		{"never ending and cancellable", bg, c, false},
	} {
		if got := endsWith(x.a, x.b); got != x.want {
			t.Errorf("%s: endsWith = %v, want %v", x.name, got, x.want)
		}
	}
}
