// Package lru is a map bounded in size that forgets its least recently
// used entries first: the per-conversation state that gateway nodes and
// the router keep in memory, which must not grow with every conversation
// they have ever seen. What it forgets is loaded again, on demand, from
// the history store.
//
// A Map is not safe for concurrent use: its owners hold their own lock,
// under which Get (which records a use) and Put are called.
package lru

import "container/list"

// Map holds at most Capacity entries.
type Map[K comparable, V any] struct {
	capacity int
	byKey    map[K]*list.Element
	order    *list.List // front: most recently used
	// keep, if set, spares an entry from eviction (it is then treated
	// as just used): state still needed, such as a conversation whose
	// newest event may be sent again. Entries it spares may take the
	// map past its capacity until they are no longer kept.
	keep func(K, V) bool
	// evicted, if set, is called for each entry evicted.
	evicted func(K, V)
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// Option configures a Map.
type Option[K comparable, V any] func(*Map[K, V])

// Keep spares the entries keep reports true for from eviction.
func Keep[K comparable, V any](keep func(K, V) bool) Option[K, V] {
	return func(m *Map[K, V]) { m.keep = keep }
}

// OnEvict calls f for each entry evicted (not for Delete).
func OnEvict[K comparable, V any](f func(K, V)) Option[K, V] {
	return func(m *Map[K, V]) { m.evicted = f }
}

// New returns a Map of at most capacity entries (at least 1).
func New[K comparable, V any](capacity int, opts ...Option[K, V]) *Map[K, V] {
	m := &Map[K, V]{capacity: max(1, capacity), byKey: make(map[K]*list.Element), order: list.New()}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Get returns the value of k and records a use of it.
func (m *Map[K, V]) Get(k K) (V, bool) {
	e, ok := m.byKey[k]
	if !ok {
		var zero V
		return zero, false
	}
	m.order.MoveToFront(e)
	return e.Value.(*entry[K, V]).val, true
}

// Peek returns the value of k without recording a use.
func (m *Map[K, V]) Peek(k K) (V, bool) {
	e, ok := m.byKey[k]
	if !ok {
		var zero V
		return zero, false
	}
	return e.Value.(*entry[K, V]).val, true
}

// Put sets k to v, records a use of it, and evicts the least recently
// used entries beyond the capacity.
func (m *Map[K, V]) Put(k K, v V) {
	if e, ok := m.byKey[k]; ok {
		e.Value.(*entry[K, V]).val = v
		m.order.MoveToFront(e)
		return
	}
	m.byKey[k] = m.order.PushFront(&entry[K, V]{key: k, val: v})
	m.shrink()
}

// Delete removes k.
func (m *Map[K, V]) Delete(k K) {
	if e, ok := m.byKey[k]; ok {
		m.order.Remove(e)
		delete(m.byKey, k)
	}
}

// Len is the number of entries.
func (m *Map[K, V]) Len() int { return len(m.byKey) }

// All calls f for every entry, most recently used first, until f returns
// false. It records no use; f must not change the map.
func (m *Map[K, V]) All(f func(K, V) bool) {
	for e := m.order.Front(); e != nil; e = e.Next() {
		en := e.Value.(*entry[K, V])
		if !f(en.key, en.val) {
			return
		}
	}
}

// Shrink evicts the least recently used entries beyond the capacity that
// are no longer kept: call it when what Keep reports may have changed.
func (m *Map[K, V]) Shrink() { m.shrink() }

func (m *Map[K, V]) shrink() {
	// Each entry is looked at once at most: the kept ones move to the
	// front, behind the ones looked at already.
	for tries := m.order.Len(); m.order.Len() > m.capacity && tries > 0; tries-- {
		e := m.order.Back()
		en := e.Value.(*entry[K, V])
		if m.keep != nil && m.keep(en.key, en.val) {
			m.order.MoveToFront(e)
			continue
		}
		m.order.Remove(e)
		delete(m.byKey, en.key)
		if m.evicted != nil {
			m.evicted(en.key, en.val)
		}
	}
}
