// A connection that may come later: the history store and the search
// index of a process whose cluster is not reachable at start.

package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/retry"
)

// lazy holds a resource that is opened in the background, with backoff,
// when it cannot be opened at start: the process comes up anyway, /readyz
// says why the resource is not ready, calls through get answer
// "unavailable", and whatever consumes into it waits (Wait). It is safe
// for concurrent use.
type lazy[T io.Closer] struct {
	// unavailable is the error of get until the resource is open.
	unavailable error
	mu          sync.RWMutex
	v           T
	open        bool
	lastErr     error
	ready       chan struct{}
}

func newLazy[T io.Closer](unavailable error) *lazy[T] {
	return &lazy[T]{unavailable: unavailable, lastErr: unavailable, ready: make(chan struct{})}
}

// set makes v the resource.
func (l *lazy[T]) set(v T) {
	l.mu.Lock()
	l.v, l.open, l.lastErr = v, true, nil
	l.mu.Unlock()
	close(l.ready)
}

// connect calls open in the background until it succeeds or ctx is
// done, and makes its result the resource; wg waits for it.
func (l *lazy[T]) connect(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, open func(context.Context) (T, error)) {
	wg.Go(func() {
		b := retry.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, OnRetry: func(err error, wait time.Duration) {
			l.mu.Lock()
			l.lastErr = err
			l.mu.Unlock()
			log.Warn("unavailable; retrying", "err", err, "backoff", wait)
		}}
		_ = b.Do(ctx, func(ctx context.Context) error {
			v, err := open(ctx)
			if err == nil {
				l.set(v)
				log.Info("connected")
			}
			return err
		})
	})
}

// get returns the resource, or an error wrapping unavailable and the
// last error of opening it.
func (l *lazy[T]) get() (T, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.open {
		var zero T
		if l.lastErr == l.unavailable {
			return zero, l.unavailable
		}
		return zero, fmt.Errorf("%w: %w", l.unavailable, l.lastErr)
	}
	return l.v, nil
}

// Wait blocks until the resource is open or ctx is done.
func (l *lazy[T]) Wait(ctx context.Context) error {
	select {
	case <-l.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the resource if it is open; get answers unavailable
// after it.
func (l *lazy[T]) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.open {
		return nil
	}
	err := l.v.Close()
	var zero T
	l.v, l.open, l.lastErr = zero, false, l.unavailable
	return err
}
