// Package retry calls an operation until it succeeds, waiting longer
// after each failure (exponential backoff): the one retry loop of
// Parley's connections, writes and provisioning.
//
// A Backoff is a value; Do is safe to call from several goroutines.
package retry

import (
	"context"
	"errors"
	"time"
)

// Backoff says how to retry.
type Backoff struct {
	// Initial is the wait after the first failure. Default: 100ms.
	Initial time.Duration
	// Max is the longest wait. Default: 10s.
	Max time.Duration
	// Attempts is the most calls; 0 is no limit.
	Attempts int
	// For is how long after the first call a failure is still retried;
	// 0 is no limit.
	For time.Duration
	// OnRetry, if set, is told each failure that will be retried and the
	// wait before the next call (to log it, to count it).
	OnRetry func(err error, wait time.Duration)
}

// permanent marks an error that retrying cannot help.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot help: Do returns it at
// once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls fn until it returns nil, and returns nil. It gives up and
// returns fn's last error (unwrapped from Permanent) when that error is
// Permanent, when the limits of b are reached, or when ctx is done —
// then joined with ctx's error.
func (b Backoff) Do(ctx context.Context, fn func(context.Context) error) error {
	wait, ceiling := b.Initial, b.Max
	if wait <= 0 {
		wait = 100 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 10 * time.Second
	}
	var deadline time.Time
	if b.For > 0 {
		deadline = time.Now().Add(b.For)
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var p permanent
		switch {
		case errors.As(err, &p):
			return p.err
		case ctx.Err() != nil:
			return errors.Join(err, ctx.Err())
		case b.Attempts > 0 && attempt >= b.Attempts, !deadline.IsZero() && time.Now().After(deadline):
			return err
		}
		if b.OnRetry != nil {
			b.OnRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, ceiling)
	}
}
