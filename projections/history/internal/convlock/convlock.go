// Package convlock is the lock per conversation that the history store
// adapters hold while they apply a batch, so that two calls of one
// process never fold a conversation from the same summary and lose an
// update. Conversations share a fixed number of locks by hash, which only
// costs parallelism when two busy conversations collide.
//
// A Locks is safe for concurrent use.
package convlock

import (
	"context"
	"hash/maphash"
	"slices"
)

// stripes is the number of locks.
const stripes = 64

// Locks are the conversation locks of one store.
type Locks struct {
	seed maphash.Seed
	// locks[i] is held while it holds a value.
	locks [stripes]chan struct{}
}

// New returns a set of locks, none held.
func New() *Locks {
	l := &Locks{seed: maphash.MakeSeed()}
	for i := range l.locks {
		l.locks[i] = make(chan struct{}, 1)
	}
	return l
}

// Lock takes the locks of conversations, in a fixed order so that two
// calls never deadlock, and returns the function that releases them. It
// gives up, holding nothing, with ctx.Err() when ctx is done first.
func (l *Locks) Lock(ctx context.Context, conversations []string) (unlock func(), err error) {
	idx := make([]int, 0, len(conversations))
	for _, c := range conversations {
		idx = append(idx, int(maphash.String(l.seed, c)%stripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	release := func(held []int) {
		for _, i := range held {
			<-l.locks[i]
		}
	}
	for n, i := range idx {
		select {
		case l.locks[i] <- struct{}{}:
		case <-ctx.Done():
			release(idx[:n])
			return nil, ctx.Err()
		}
	}
	return func() { release(idx) }, nil
}
