package files

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/internal/files"
)

// Sweeper deletes uploads that no message attached once they are older
// than TTL: files uploaded and never sent. TTL must stay well above the
// gateway's UploadMaxAge (the oldest upload a message may attach), so
// that a message accepted just in time has been projected before its
// upload could be swept.
type Sweeper struct {
	Store Store
	// TTL is how long an unattached upload is kept. Default: 24 hours.
	TTL time.Duration
	// Interval is the time between sweeps. Default: 1 hour.
	Interval time.Duration
	// Now is the clock. Default: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (s Sweeper) withDefaults() Sweeper {
	if s.TTL <= 0 {
		s.TTL = 24 * time.Hour
	}
	if s.Interval <= 0 {
		s.Interval = time.Hour
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// Run sweeps every Interval until ctx is done; a failed sweep is logged
// and tried again at the next.
func (s Sweeper) Run(ctx context.Context) error {
	s = s.withDefaults()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Warn("sweeping unattached uploads", "err", err)
		} else if n > 0 {
			s.Logger.Info("swept unattached uploads", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes, once, every upload older than TTL without a marker of
// a message attaching it, and returns how many it deleted.
func (s Sweeper) Sweep(ctx context.Context) (int, error) {
	s = s.withDefaults()
	cutoff := s.Now().Add(-s.TTL)
	var stale []string
	err := s.Store.List(ctx, files.UploadsPrefix, func(key string, modified time.Time) error {
		if modified.Before(cutoff) {
			stale = append(stale, key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range stale {
		conv, id, ok := files.ParseKey(key)
		if !ok {
			continue
		}
		_, err := s.Store.Get(ctx, attachedKey(conv, id), 64)
		switch {
		case err == nil:
			continue // attached
		case !errors.Is(err, files.ErrNotFound):
			return n, fmt.Errorf("checking upload %s: %w", key, err)
		}
		if err := s.Store.Delete(ctx, key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
