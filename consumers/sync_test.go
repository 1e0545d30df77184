package consumers_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// syncingProjection is a projection whose store writes without waiting
// for the disk (a consumers.Syncer): each Sync calls sync, if set, with
// the call's number (from 1), and fails with its error.
type syncingProjection struct {
	projection
	sync func(call int) error

	mu    sync.Mutex
	calls int
}

func (p *syncingProjection) Sync(context.Context) error {
	p.mu.Lock()
	p.calls++
	call := p.calls
	p.mu.Unlock()
	if p.sync != nil {
		return p.sync(call)
	}
	return nil
}

func (p *syncingProjection) syncs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// TestRunGroupCommitsASyncersOffsetsOnlyOnceSynced: the offsets of what a
// Syncer applied are committed only after a Sync succeeded, one that
// fails is tried again, and a group with nothing more to read commits
// all it applied.
func TestRunGroupCommitsASyncersOffsetsOnlyOnceSynced(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	const n = 10
	write(t, k, records(n)...)

	var mu sync.Mutex
	failing := true
	p := &syncingProjection{sync: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("disk unavailable")
		}
		return nil
	}}
	g := runGroup(t, k, p)
	waitFor(t, 20*time.Second, "every record applied and a failed sync tried again", func() bool {
		return len(p.appliedItems()) == n && p.syncs() >= 2
	})
	if got := committed(t, k); !slices.Equal(got, []int64{-1, -1, -1}) {
		t.Errorf("committed %v while no sync had succeeded, want nothing", got)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	want := ends(t, k, topic)
	waitFor(t, 10*time.Second, "the commit after a sync succeeded, no record having come since", func() bool {
		return slices.Equal(committed(t, k), want)
	})
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
	restartAndCheckNothingReapplied(t, k, &p.projection, n)
}

// TestRunGroupSyncsWhatItAppliedBeforeItReturns: a group that stops with
// offsets waiting for a sync syncs and commits them before it returns.
func TestRunGroupSyncsWhatItAppliedBeforeItReturns(t *testing.T) {
	t.Parallel()
	k := startBroker(t)
	const n = 5
	write(t, k, records(n)...)

	entered, release := make(chan struct{}), make(chan struct{})
	var (
		mu      sync.Mutex
		held    bool
		stopped bool
		late    int // syncs that succeeded after the group was stopped
	)
	var p *syncingProjection
	p = &syncingProjection{sync: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
			late++
			return nil
		case held || len(p.appliedItems()) < n:
			return errors.New("disk unavailable")
		}
		// The sync due once every record is applied: held until
		// the group is stopped, then failed.
		held = true
		close(entered)
		mu.Unlock()
		<-release
		mu.Lock()
		return errors.New("disk unavailable")
	}}
	g := runGroup(t, k, p)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("Sync was not called once every record was applied")
	}
	g.cancel()
	mu.Lock()
	stopped = true
	mu.Unlock()
	close(release)
	if err := g.stop(t); err != nil {
		t.Errorf("RunGroup: %v", err)
	}
	mu.Lock()
	if late != 1 {
		t.Errorf("%d syncs after the group was stopped, want 1, as it returned", late)
	}
	mu.Unlock()
	if got, want := committed(t, k), ends(t, k, topic); !slices.Equal(got, want) {
		t.Errorf("committed %v after the group returned, want %v: all it applied", got, want)
	}
	restartAndCheckNothingReapplied(t, k, &p.projection, n)
}
