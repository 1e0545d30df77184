package producers

import (
	"testing"
	"time"
)

// TestLingerFollowsTheLanesPace: a command lingers only while its lane's
// commands come less than four lingers apart on average — never the
// first, never at a hundred a second, from the second on at two thousand
// — and the estimate follows a change of pace within a dozen commands
// either way.
func TestLingerFollowsTheLanesPace(t *testing.T) {
	const linger = time.Millisecond
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	// lingers notes n commands gap apart after at and returns which
	// lingered, and the time of the last.
	lingers := func(p *pace, at time.Time, n int, gap time.Duration) ([]bool, time.Time) {
		var out []bool
		for range n {
			at = at.Add(gap)
			out = append(out, p.note(at, linger))
		}
		return out, at
	}
	count := func(b []bool) (n int) {
		for _, v := range b {
			if v {
				n++
			}
		}
		return n
	}

	var quiet pace
	if quiet.note(t0, linger) {
		t.Error("the first command of a lane lingered")
	}
	if got, _ := lingers(&quiet, t0, 200, 10*time.Millisecond); count(got) != 0 {
		t.Errorf("a hundred commands a second: %d of 200 lingered, want none", count(got))
	}

	var busy pace
	busy.note(t0, linger)
	got, at := lingers(&busy, t0, 200, 500*time.Microsecond)
	if count(got) != 200 {
		t.Errorf("two thousand commands a second: %d of 200 lingered, want all after the first", count(got))
	}

	// Quiet for an hour: the average forgets the busy spell within a
	// few gaps, each counted as at most maxGapLingers lingers.
	got, at = lingers(&busy, at.Add(time.Hour), 20, time.Second)
	if n := count(got); n == 0 || n > 3 || got[len(got)-1] {
		t.Errorf("quiet after busy: %v lingered, want the first one to three only", got)
	}
	// Busy again: lingering again within a dozen commands or so.
	got, _ = lingers(&busy, at, 40, 500*time.Microsecond)
	first := -1
	for i, v := range got {
		if v {
			first = i
			break
		}
	}
	if first < 0 || first > 15 || count(got[first:]) != len(got)-first {
		t.Errorf("busy again: lingered %v, want from within the first 15 commands on", got)
	}

	// A clock that steps back counts as no gap, not a negative one.
	var back pace
	back.note(t0, linger)
	if !back.note(t0.Add(-time.Minute), linger) {
		t.Error("a command stamped before the previous one: no linger, want the gap counted as zero")
	}
}
