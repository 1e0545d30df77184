// Package due schedules keys at times and hands back, in order, those
// whose time has come: work that recurs per key — a delivered marker
// appended an interval after its first note, a presence entry
// re-published a heartbeat after its last publication — done on each
// key's own schedule rather than for every key on one shared tick, so
// that it is spread over the interval as the keys' events were.
//
// Times must be given in order (from one clock), as they are by the
// callers; a key scheduled again moves to its new time, and its earlier
// place is dropped when it reaches the front. Taking what is due costs
// what is taken, never a look at the keys not yet due.
//
// A Queue is not safe for concurrent use: its owners hold their own lock.
package due

import "time"

// Queue holds keys scheduled at times. The zero Queue is empty and ready.
type Queue[K comparable] struct {
	at    map[K]time.Time
	order []slot[K] // in the order of their times
}

type slot[K comparable] struct {
	key K
	at  time.Time
}

// Schedule schedules k at at, in place of any earlier time.
func (q *Queue[K]) Schedule(k K, at time.Time) {
	if q.at == nil {
		q.at = make(map[K]time.Time)
	}
	q.at[k] = at
	q.order = append(q.order, slot[K]{k, at})
}

// Scheduled tells whether k is scheduled.
func (q *Queue[K]) Scheduled(k K) bool {
	_, ok := q.at[k]
	return ok
}

// Cancel unschedules k.
func (q *Queue[K]) Cancel(k K) { delete(q.at, k) }

// Len is the number of keys scheduled.
func (q *Queue[K]) Len() int { return len(q.at) }

// Take unschedules and returns the keys scheduled at by or earlier, in
// the order of their times.
func (q *Queue[K]) Take(by time.Time) []K {
	var due []K
	i := 0
	for ; i < len(q.order) && !q.order[i].at.After(by); i++ {
		s := q.order[i]
		if at, ok := q.at[s.key]; ok && at.Equal(s.at) {
			due = append(due, s.key)
			delete(q.at, s.key)
		}
	}
	q.order = q.order[i:]
	return due
}

// TakeAll unschedules and returns every key scheduled, in the order of
// their times.
func (q *Queue[K]) TakeAll() []K {
	var due []K
	for _, s := range q.order {
		if at, ok := q.at[s.key]; ok && at.Equal(s.at) {
			due = append(due, s.key)
		}
	}
	clear(q.at)
	q.order = q.order[:0]
	return due
}
