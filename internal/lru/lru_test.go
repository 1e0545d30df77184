package lru_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/lru"
)

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	var evicted []string
	m := lru.New(3, lru.OnEvict(func(k string, _ int) { evicted = append(evicted, k) }))
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("c", 3)
	if _, ok := m.Get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	m.Put("d", 4) // evicts b
	if _, ok := m.Peek("b"); ok {
		t.Error("b kept; it was the least recently used")
	}
	m.Peek("c") // a peek is no use: c goes next
	m.Put("e", 5)
	if !slices.Equal(evicted, []string{"b", "c"}) {
		t.Errorf("evicted %v, want [b c]", evicted)
	}
	var keys []string
	m.All(func(k string, _ int) bool { keys = append(keys, k); return true })
	if !slices.Equal(keys, []string{"e", "d", "a"}) || m.Len() != 3 {
		t.Errorf("entries %v (len %d), want [e d a]", keys, m.Len())
	}
	m.Put("a", 10) // an update is a use, not a new entry
	if v, _ := m.Get("a"); v != 10 || m.Len() != 3 {
		t.Errorf("a = %d, len %d", v, m.Len())
	}
	m.Delete("a")
	if _, ok := m.Get("a"); ok || m.Len() != 2 || len(evicted) != 2 {
		t.Errorf("after Delete: len %d, evicted %v", m.Len(), evicted)
	}
}

func TestBoundedUnderManyKeys(t *testing.T) {
	m := lru.New[int, string](100)
	for i := range 100_000 {
		m.Put(i, fmt.Sprint(i))
		if m.Len() > 100 {
			t.Fatalf("%d entries after %d puts", m.Len(), i+1)
		}
	}
	for i := range 99_900 {
		if _, ok := m.Peek(i); ok {
			t.Fatalf("old key %d kept", i)
		}
	}
}

func TestKeepSparesEntriesUntilReleased(t *testing.T) {
	busy := map[int]bool{0: true, 1: true}
	m := lru.New(2, lru.Keep(func(k int, _ struct{}) bool { return busy[k] }))
	for i := range 5 {
		m.Put(i, struct{}{})
	}
	// 0 and 1 are kept although least recently used; the map is over
	// its capacity only by what is kept.
	for _, k := range []int{0, 1} {
		if _, ok := m.Peek(k); !ok {
			t.Errorf("kept entry %d evicted", k)
		}
	}
	if m.Len() != 2 {
		t.Errorf("len %d, want 2 (the kept ones)", m.Len())
	}
	busy[0], busy[1] = false, false
	m.Put(9, struct{}{})
	m.Shrink()
	if m.Len() != 2 {
		t.Errorf("len %d after release, want 2", m.Len())
	}
	if _, ok := m.Peek(9); !ok {
		t.Error("the newest entry was evicted")
	}
}
