// Package diskspace watches the free space of the file system that holds
// a node's data directory, so that the node stops taking writes while it
// still has room to finish what it has taken.
//
// On the embedded default one data directory holds the broker's log and
// every store that projects it. When that file system fills, the broker
// fails its appends, Pebble its flushes and compactions, and the search
// index its segments — some of them by panicking in goroutines of their
// own. A Guard measures the space left every interval; below the reserve
// it reports Low, and the gateways of the node refuse what would append
// (package gateway), so the log stops growing while the projections
// catch up with what it holds, within the reserve. Once space is freed
// it reports room again and the node takes writes as before: nothing to
// restart, nothing lost.
package diskspace

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Free is how many bytes of the file system holding dir an unprivileged
// process may still write (statfs's available blocks: without the blocks
// the file system keeps for root).
func Free(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// Guard reports whether the file system holding a directory has less free
// space than a reserve. Its methods are safe for concurrent use.
type Guard struct {
	dir     string
	reserve uint64
	log     *slog.Logger
	free    atomic.Uint64
	low     atomic.Bool
}

// NewGuard measures dir's free space once, so that Low is right from the
// start, and returns a Guard that Run keeps measuring. A reserve of 0
// never reports Low.
func NewGuard(dir string, reserve uint64, log *slog.Logger) (*Guard, error) {
	g := &Guard{dir: dir, reserve: reserve, log: log}
	if err := g.Check(); err != nil {
		return nil, err
	}
	return g, nil
}

// Check measures the free space once and updates Low, logging when it
// changes. A failed measurement changes nothing.
func (g *Guard) Check() error {
	free, err := Free(g.dir)
	if err != nil {
		return err
	}
	g.free.Store(free)
	low := free < g.reserve
	if g.low.Swap(low) == low {
		return nil
	}
	if low {
		g.log.Warn("the data directory's file system is below its reserve: refusing writes until space is freed",
			"dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
	} else {
		g.log.Info("the data directory's file system has room again: taking writes", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve)
	}
	return nil
}

// Run checks every interval until ctx is done. A failed measurement is
// logged once per streak and leaves Low as it was.
func (g *Guard) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := g.Check()
		switch {
		case err != nil && !failing:
			g.log.Error("measuring the data directory's free space", "dir", g.dir, "err", err)
		case err == nil && failing:
			g.log.Info("measuring the data directory's free space again", "dir", g.dir)
		}
		failing = err != nil
	}
}

// Low reports whether the free space was below the reserve when last
// measured.
func (g *Guard) Low() bool { return g.low.Load() }

// FreeBytes is the free space when last measured.
func (g *Guard) FreeBytes() uint64 { return g.free.Load() }

// Reserve is the free space below which the Guard reports Low.
func (g *Guard) Reserve() uint64 { return g.reserve }
