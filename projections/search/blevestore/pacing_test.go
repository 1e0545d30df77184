package blevestore

import (
	"testing"
	"time"
)

// TestRestAfter: live indexing rests twice as long as a chunk took, and
// at most half a second in all per call.
func TestRestAfter(t *testing.T) {
	for _, c := range []struct {
		what         string
		took, rested time.Duration
		want         time.Duration
	}{
		{"the first chunk", 40 * time.Millisecond, 0, 80 * time.Millisecond},
		{"near the call's bound", 40 * time.Millisecond, 450 * time.Millisecond, 50 * time.Millisecond},
		{"the call's bound reached", 40 * time.Millisecond, paceMaxRest, 0},
		{"a chunk longer than the bound", 400 * time.Millisecond, 0, paceMaxRest},
	} {
		if got := restAfter(c.took, c.rested); got != c.want {
			t.Errorf("%s: rest %v, want %v", c.what, got, c.want)
		}
	}
}
