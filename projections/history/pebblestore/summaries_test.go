package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// The summaries Apply keeps decoded fold as the stored ones do: a store
// that applies batches one after another, with its cache, ends with
// exactly the keys and values of a store reopened before every batch,
// which reads every summary from disk; an erasure between the batches
// included.
func TestCachedSummariesFoldAsStoredOnes(t *testing.T) {
	t.Parallel()
	base := historytest.Base
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	const g = "g"
	direct := historytest.Direct("ann", "ben", base)
	d := direct.ConversationID
	steps := []func(s *Store) error{
		apply(historytest.Group(g, base, historytest.Owner("ann"), historytest.Member("ben")), direct),
		apply(historytest.Message(g, 1, "ann", "hello", at(1)), historytest.Message(d, 1, "ben", "hi ann", at(1))),
		apply(historytest.Added(g, 2, "ann", at(2), historytest.Member("cat"), historytest.Member("dan")),
			historytest.MessageV3(g, 3, "cat", "a file for you", at(3), "plan.pdf")),
		apply(historytest.RolesChanged(g, 4, "ann", at(4), historytest.Admin("cat")), historytest.Renamed(g, 5, "cat", "Lighthouse", at(5))),
		apply(historytest.Edited(g, 6, "cat", 3, "the plan, edited", at(6)), historytest.Reacted(g, 7, "ben", 3, "👍", at(7))),
		apply(historytest.Blocked(d, 2, "ann", true, at(8)), historytest.Removed(g, 8, "ann", "dan", at(8))),
		func(s *Store) error {
			return s.Erase(t.Context(), history.Erasure{SubjectRef: schemas.ErasureRef("cat"), At: at(9)})
		},
		apply(historytest.Message(g, 9, "ben", "after the erasure", at(10)), historytest.Left(g, 10, "ben", at(11)),
			historytest.Deleted(g, 11, "ann", 1, at(12)), historytest.Archived(g, 12, "ann", true, at(13))),
		apply(historytest.Blocked(d, 3, "ann", false, at(14)), historytest.Message(d, 4, "ann", "sorry", at(15))),
	}
	warm := openStore(t, t.TempDir())
	coldDir := t.TempDir()
	for i, step := range steps {
		if err := step(warm); err != nil {
			t.Fatalf("step %d, cached: %v", i, err)
		}
		cold := openStore(t, coldDir)
		if err := step(cold); err != nil {
			t.Fatalf("step %d, reopened: %v", i, err)
		}
		if err := cold.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cold := openStore(t, coldDir)
	if len(dump(t, warm)) < 20 {
		t.Fatalf("the store holds only %d keys", len(dump(t, warm)))
	}
	if w, c := dump(t, warm), dump(t, cold); !equalDumps(w, c) {
		t.Errorf("the stores differ:\ncached:   %q\nreopened: %q", w, c)
	}
}

func apply(events ...history.Event) func(*Store) error {
	return func(s *Store) error { return s.Apply(context.Background(), events) }
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// dump lists the store's keys and values, in order.
func dump(t *testing.T, s *Store) [][2][]byte {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out
}

func equalDumps(a, b [][2][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i][0], b[i][0]) || !bytes.Equal(a[i][1], b[i][1]) {
			return false
		}
	}
	return true
}

// The cache keeps two generations within their bounds, moves what a
// look-up finds in the older to the newer, leaves out a summary with too
// many members, and forgets what it is told to.
func TestSummaryCacheBounds(t *testing.T) {
	t.Parallel()
	sum := func(id string, members int) history.Conversation {
		var c history.Conversation
		c.ID = id
		c.Members = make([]schemas.Member, members)
		return c
	}
	var c summaryCache
	for i := range maxCachedSummaries {
		c.put([]history.Conversation{sum(fmt.Sprint(i), 2)})
	}
	if _, ok := c.get("0"); !ok {
		t.Fatal("a full generation lost its first summary")
	}
	// The next summary starts a new generation and the full one becomes
	// the older: what a look-up finds there moves to the newer.
	c.put([]history.Conversation{sum("new", 2)})
	for _, id := range []string{"0", "1", "new"} {
		if _, ok := c.get(id); !ok {
			t.Errorf("%s is not cached", id)
		}
	}
	if _, ok := c.cur["1"]; !ok {
		t.Error("a summary found in the older generation did not move to the newer")
	}
	if len(c.cur)+len(c.old) > 2*maxCachedSummaries || c.members > maxCachedMembers {
		t.Errorf("%d + %d summaries and %d members cached", len(c.cur), len(c.old), c.members)
	}
	c.put([]history.Conversation{sum("large", maxCachedMembers/16+1)})
	if _, ok := c.get("large"); ok {
		t.Error("a summary of more than a sixteenth of a generation's members is cached")
	}
	c.forget([]string{"0", "new"})
	for _, id := range []string{"0", "new"} {
		if _, ok := c.get(id); ok {
			t.Errorf("%s is cached after it was forgotten", id)
		}
	}
	// Members bound a generation too.
	var m summaryCache
	for i := range 20 {
		m.put([]history.Conversation{sum(fmt.Sprint(i), maxCachedMembers/16)})
	}
	if m.members > maxCachedMembers || len(m.cur) > 16 {
		t.Errorf("a generation holds %d summaries of %d members", len(m.cur), m.members)
	}
}
