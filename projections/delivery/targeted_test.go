// Tests of what only the targeted feed does.

package delivery

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// TestApplyChange: changes reach a cached summary by two paths in any
// order; one applies once its predecessor is there, and a gap on the
// authoritative path drops the summary.
func TestApplyChange(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, openStore(t), func(c *Config) { c.Node = "n" })
	at := time.Now()
	created := historytest.Group("c", at, member("a"), member("b"), member("c"))
	h.members.applyChange(created, 0, false, false)
	left := func(seq uint64, u string) history.Event { return historytest.Left("c", seq, u, at) }
	get := func() (history.Conversation, bool) { return h.members.get("c") }
	h.members.applyChange(left(5, "b"), 2, true, false) // 2 not seen yet: waits
	if c, _ := get(); !c.IsMember("b") {
		t.Fatal("a change after a gap was applied")
	}
	h.members.applyChange(left(2, "a"), 0, true, true)
	h.members.applyChange(left(5, "b"), 2, true, true)
	h.members.applyChange(left(5, "b"), 2, true, false) // again: nothing
	c, ok := get()
	if !ok || c.IsMember("a") || c.IsMember("b") || !c.IsMember("c") || c.LastSeq != 5 {
		t.Fatalf("after both departures: %+v", c)
	}
	h.members.applyChange(left(9, "c"), 7, true, true) // 7 missed: drop
	if _, ok := get(); ok {
		t.Error("a gap on chat.changes kept the summary")
	}
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	m := kafka.Message{Headers: []kafka.Header{{Key: schemas.HeaderRecipients, Value: []byte("a,b.c@d,e")}}}
	if got := slices.Collect(recipients(m)); strings.Join(got, " ") != "a b.c@d e" {
		t.Errorf("recipients = %q", got)
	}
	if got := slices.Collect(recipients(kafka.Message{Headers: []kafka.Header{{Key: schemas.HeaderRecipients}}})); len(got) != 0 {
		t.Errorf("no recipients = %q", got)
	}
}
