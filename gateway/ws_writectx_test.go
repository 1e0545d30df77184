package gateway

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestWriteCtxReusedThenRenewed checks the per-socket write deadline:
// writes under the same context share one deadline context for half of
// WriteTimeout, get a fresh one afterwards or under another context, and
// a replaced context is not cancelled while its deadline lasts (a
// concurrent write may still be using it).
//
// It runs in a synctest bubble: the clock is fake, so the deadlines are
// exact and passing half the timeout takes no wall time.
func TestWriteCtxReusedThenRenewed(t *testing.T) {
	synctest.Test(t, testWriteCtxReusedThenRenewed)
}

func testWriteCtxReusedThenRenewed(t *testing.T) {
	const timeout = 200 * time.Millisecond
	k := &socket{s: &Server{cfg: Config{WriteTimeout: timeout}}}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()

	c1 := k.writeCtx(parent)
	dl, ok := c1.Deadline()
	if !ok || time.Until(dl) > timeout || time.Until(dl) < timeout/2 {
		t.Fatalf("deadline %v (%v), want within %v", dl, ok, timeout)
	}
	if c2 := k.writeCtx(parent); c2 != c1 {
		t.Fatal("a second write under the same context got a new deadline context")
	}

	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	c3 := k.writeCtx(other)
	if c3 == c1 {
		t.Fatal("a write under another context reused the first one's")
	}
	if c1.Err() != nil {
		t.Fatal("the replaced context was cancelled before its deadline")
	}

	// Advances the bubble's fake clock past the renewal point; no real
	// waiting and no goroutine to synchronise with.
	time.Sleep(timeout/2 + time.Millisecond)
	c4 := k.writeCtx(other)
	if c4 == c3 {
		t.Fatal("not renewed after half the timeout")
	}
	if dl, _ := c4.Deadline(); time.Until(dl) < timeout/2 {
		t.Fatalf("renewed deadline only %v away", time.Until(dl))
	}
	cancelOther()
	if c4.Err() == nil {
		t.Fatal("cancelling the parent did not cancel the write context")
	}
}
