package pebblestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// An Apply waiting for a conversation's lock gives up when its context
// is done.
func TestApplyWaitingForALockHonoursItsContext(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unlock, err := s.locks.Lock(t.Context(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- s.Apply(ctx, []history.Event{historytest.Group("a", historytest.Base, historytest.Owner("alice"))})
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Apply: %v, want context.Canceled", err)
	}
	unlock()
	if _, err := s.Conversation(t.Context(), "a"); !errors.Is(err, history.ErrNotFound) {
		t.Errorf("the cancelled Apply applied something: %v", err)
	}
}

// TestSummaryBytesAreJSONMarshals: a summary is stored as json.Marshal
// writes it (no trailing newline, HTML escaped), whatever the pooled
// buffer held before it.
func TestSummaryBytesAreJSONMarshals(t *testing.T) {
	t.Parallel()
	at := historytest.Base
	long := history.Conversation{LastActivity: at, Messages: 7,
		LastMessage: &history.Preview{Seq: 7, SenderID: "alice", Body: strings.Repeat("<b>&é</b> ", 100), SentAt: at, Files: []string{"a.png"}}}
	long.ID, long.Kind, long.Title, long.CreatedBy, long.CreatedAt = "g", schemas.KindGroup, "<team> & co", "alice", at
	long.Members = []schemas.Member{historytest.Owner("alice"), historytest.Member("bob")}
	short := history.Conversation{LastActivity: at}
	short.ID, short.Kind, short.CreatedBy, short.CreatedAt = "d", schemas.KindDirect, "alice", at
	var buf bytes.Buffer
	for _, c := range []history.Conversation{long, short} {
		buf.Reset()
		if err := encodeSummary(&buf, c); err != nil {
			t.Fatal(err)
		}
		var sc storedConversation
		if err := json.Unmarshal(buf.Bytes(), &sc); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("summary of %s:\n got %s\nwant %s", c.ID, buf.Bytes(), want)
		}
	}
}

// inboxEntries lists the store's inbox keys as "user conversation@activity"
// and reports whether any inbox pointer is left.
func inboxEntries(t *testing.T, s *Store) (entries []string, pointers bool) {
	t.Helper()
	for _, tag := range []byte{tagInbox, tagInboxPointer} {
		prefix := []byte{tag}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			if tag == tagInboxPointer {
				pointers = true
				continue
			}
			user, rest, err := readString(it.Key()[1:])
			if err != nil {
				t.Fatal(err)
			}
			conv, err := conversationOfInboxKey(user, it.Key())
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, fmt.Sprintf("%s %s@%x", user, conv, rest[:activityLen]))
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(entries)
	return entries, pointers
}

// A store written when the inbox kept a pointer per (user, conversation)
// is converted when it opens: the pointers go, every member's inbox key
// is at its conversation's last activity, a former member's is gone, and
// the inbox moves as it should from then on.
func TestOpenDropsTheInboxPointersOfAnEarlierVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := historytest.Base
	if err := s.Apply(t.Context(), []history.Event{
		historytest.Group("g", base, historytest.Owner("ann"), historytest.Member("ben"), historytest.Member("cat")),
		historytest.Direct("ann", "dan", base),
		historytest.Message("g", 1, "ann", "hi", base.Add(time.Minute)),
	}); err != nil {
		t.Fatal(err)
	}
	want, pointers := inboxEntries(t, s)
	if pointers || len(want) != 5 {
		t.Fatalf("inbox %q (pointers %v), want 5 entries and no pointer", want, pointers)
	}
	// What the earlier version left: a pointer to each member's key, and
	// for ben a key and a pointer at an activity the conversation has
	// left behind (his current key missing); a pointer and key of eve,
	// who is no member.
	direct := historytest.Direct("ann", "dan", base).ConversationID
	cur, stale := activity(base.Add(time.Minute)), activity(base)
	b := s.db.NewBatch()
	for _, p := range []struct {
		user, conv string
		act        []byte
	}{{"ann", "g", cur}, {"ben", "g", stale}, {"cat", "g", cur}, {"ann", direct, activity(base)}, {"dan", direct, activity(base)}, {"eve", "g", stale}} {
		if err := b.Set(inboxPointerKey(p.user, p.conv), p.act, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(inboxKey(p.user, p.act, p.conv), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(inboxKey("ben", cur, "g"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, pointers := inboxEntries(t, s); pointers || !slices.Equal(got, want) {
		t.Errorf("after the conversion: inbox %q (pointers %v), want %q and no pointer", got, pointers, want)
	}
	if err := s.Apply(t.Context(), []history.Event{
		historytest.Message("g", 2, "ben", "later", base.Add(time.Hour)),
		historytest.Removed("g", 3, "ann", "cat", base.Add(2*time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := inboxEntries(t, s)
	want = []string{
		fmt.Sprintf("ann %s@%x", direct, activity(base)),
		fmt.Sprintf("ann g@%x", activity(base.Add(2*time.Hour))),
		fmt.Sprintf("ben g@%x", activity(base.Add(2*time.Hour))),
		fmt.Sprintf("dan %s@%x", direct, activity(base)),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after a message and a removal: inbox %q, want %q", got, want)
	}
}

// withFS opens the store on fs instead of the operating system's files.
func withFS(fs vfs.FS) Option {
	return func(c *config) { c.fs = fs }
}

// TestSyncMakesWhatWasAppliedDurable: Apply and ApplyReceipts commit
// without waiting for the disk, and Sync makes what they wrote durable: a
// crash of the machine (every write not synced lost) keeps what Sync
// covered and loses what came after it, which the history projection
// applies again, since its group committed only what was synced.
func TestSyncMakesWhatWasAppliedDurable(t *testing.T) {
	t.Parallel()
	fs := vfs.NewCrashableMem()
	s, err := Open("history", withFS(fs))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	synced := slices.Concat(
		[]history.Event{historytest.Group("a", historytest.Base, historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages("a", 1, 3, "bob"),
	)
	if err := s.Apply(ctx, synced); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReceipts(ctx, []history.Receipt{{ConversationID: "a", UserID: "alice", ReadSeq: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Apply(ctx, historytest.Messages("a", 4, 4, "bob")); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open("history", withFS(crashed))
	if err != nil {
		t.Fatalf("opening after the crash: %v", err)
	}
	defer s.Close()
	p, err := s.Page(ctx, "a", history.PageQuery{Forward: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, ev := range p.Events {
		seqs = append(seqs, ev.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("after the crash the store holds seqs %v, want 1 to 3: what Sync covered, not what came after it", seqs)
	}
	rs, err := s.Receipts(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rs, func(r history.Receipt) bool { return r.UserID == "alice" })
	if i < 0 || rs[i].ReadSeq != 3 {
		t.Errorf("after the crash the receipts are %+v, want alice's read seq 3", rs)
	}
}
