package convlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockExcludesAndHonoursContext(t *testing.T) {
	t.Parallel()
	l := New()
	unlock, err := l.Lock(t.Context(), []string{"b", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	// Another conversation's lock is free unless it shares a stripe.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, []string{"a"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second Lock of a held conversation: %v, want DeadlineExceeded", err)
	}
	unlock()
	again, err := l.Lock(t.Context(), []string{"a", "b"})
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}
