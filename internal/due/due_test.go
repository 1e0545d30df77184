package due_test

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/due"
)

// TestQueue: keys come back once their time has come, in the order of
// their times, each once; a key scheduled again comes back at its new
// time only, and a cancelled one not at all.
func TestQueue(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var q due.Queue[string]
	if got := q.Take(at(100)); len(got) != 0 {
		t.Fatalf("an empty queue gave %v", got)
	}
	q.Schedule("a", at(1))
	q.Schedule("b", at(2))
	q.Schedule("c", at(3))
	q.Schedule("d", at(4))
	q.Schedule("a", at(5)) // moved
	q.Cancel("c")
	if !q.Scheduled("a") || q.Scheduled("c") || q.Len() != 3 {
		t.Fatalf("scheduled a %v, c %v, %d keys; want a, not c, 3 keys", q.Scheduled("a"), q.Scheduled("c"), q.Len())
	}
	for _, step := range []struct {
		by   int
		want []string
	}{
		{0, nil},
		{1, nil}, // a moved to 5
		{2, []string{"b"}},
		{2, nil}, // taken once
		{4, []string{"d"}},
		{10, []string{"a"}},
	} {
		if got := q.Take(at(step.by)); !slices.Equal(got, step.want) {
			t.Errorf("due by %ds: %v, want %v", step.by, got, step.want)
		}
	}
	if q.Len() != 0 {
		t.Errorf("%d keys left, want none", q.Len())
	}

	q.Schedule("x", at(20))
	q.Schedule("y", at(21))
	q.Schedule("x", at(22))
	if got := q.TakeAll(); !slices.Equal(got, []string{"y", "x"}) {
		t.Errorf("TakeAll: %v, want y then x", got)
	}
	if got := q.Take(at(100)); len(got) != 0 || q.Len() != 0 {
		t.Errorf("after TakeAll: %v due, %d keys", got, q.Len())
	}
}
