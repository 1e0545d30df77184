package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/retry"
)

var errFlaky = errors.New("flaky")

func TestDo(t *testing.T) {
	t.Parallel()
	fast := retry.Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}
	t.Run("retries until the call succeeds, waiting longer each time up to Max", func(t *testing.T) {
		t.Parallel()
		var waits []time.Duration
		b := fast
		b.OnRetry = func(err error, wait time.Duration) {
			if !errors.Is(err, errFlaky) {
				t.Errorf("OnRetry got %v", err)
			}
			waits = append(waits, wait)
		}
		calls := 0
		err := b.Do(context.Background(), func(context.Context) error {
			if calls++; calls < 5 {
				return errFlaky
			}
			return nil
		})
		want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
		if err != nil || calls != 5 || len(waits) != len(want) {
			t.Fatalf("err %v after %d calls, waits %v", err, calls, waits)
		}
		for i := range want {
			if waits[i] != want[i] {
				t.Errorf("waits %v, want %v", waits, want)
				break
			}
		}
	})
	t.Run("a permanent error is returned at once, unwrapped", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := fast.Do(context.Background(), func(context.Context) error { calls++; return retry.Permanent(errFlaky) })
		if err != errFlaky || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up after Attempts", func(t *testing.T) {
		t.Parallel()
		b := fast
		b.Attempts = 3
		calls := 0
		err := b.Do(context.Background(), func(context.Context) error { calls++; return errFlaky })
		if !errors.Is(err, errFlaky) || calls != 3 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up when the context is done, saying so", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := retry.Backoff{Initial: time.Hour}.Do(ctx, func(context.Context) error {
			if calls++; calls == 1 {
				cancel()
			}
			return errFlaky
		})
		if !errors.Is(err, errFlaky) || !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up after For", func(t *testing.T) {
		t.Parallel()
		b := fast
		b.For = time.Nanosecond
		calls := 0
		err := b.Do(context.Background(), func(context.Context) error { calls++; return errFlaky }) // a call outlasts a nanosecond
		if !errors.Is(err, errFlaky) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
}
