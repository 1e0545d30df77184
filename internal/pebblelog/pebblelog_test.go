package pebblelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestErrorsThatKeepComingAreLoggedOncePerInterval: the first of a kind
// of error is logged, its repeats within repeatEvery are counted, not
// logged, and the next one after it says how many were left out; another
// kind is logged on its own.
func TestErrorsThatKeepComingAreLoggedOncePerInterval(t *testing.T) {
	var out bytes.Buffer
	l := NewLogger(slog.New(slog.NewTextHandler(&out, nil)))
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }
	lines := func() []string { return strings.Split(strings.TrimSpace(out.String()), "\n") }

	for i := range 100 {
		l.Errorf("background error: %s", "write 00"+string(rune('0'+i%10))+".sst: no space left on device")
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "background error: write 000.sst") {
		t.Fatalf("100 errors of one kind at once logged %d lines, want the first alone:\n%s", len(got), out.String())
	}
	l.Errorf("compaction error: %s", "boom")
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "compaction error: boom") {
		t.Fatalf("an error of another kind was not logged on its own:\n%s", out.String())
	}
	clock = clock.Add(repeatEvery - time.Millisecond)
	l.Errorf("background error: %s", "still")
	if got := lines(); len(got) != 2 {
		t.Fatalf("a repeat within %v was logged:\n%s", repeatEvery, out.String())
	}
	clock = clock.Add(time.Millisecond)
	l.Errorf("background error: %s", "again")
	got := lines()
	if len(got) != 3 || !strings.Contains(got[2], "background error: again") || !strings.Contains(got[2], "left_out=100") {
		t.Fatalf("the repeat %v after the first: want it logged with left_out=100 (99, then one more), got:\n%s", repeatEvery, out.String())
	}
	l.Errorf("background error: %s", "at once again")
	if got := lines(); len(got) != 3 {
		t.Fatalf("a repeat right after a logged one was logged:\n%s", out.String())
	}
}
