package systemtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/schemas"
)

// TestALogThatLostRecordsIsRefusedThenRecovered: a node's log loses the
// tail of the chat.events partition of a conversation, below what the
// consumer groups had read: four bytes of its segment overwritten (a
// damaged disk). The next start is refused and names the partition and
// the groups; `parley recover` moves the stores aside and rewinds the
// groups; the start after it makes the stores again from the log.
//
//   - With chat.commands whole, the decider decides again the commands
//     whose events were lost, in their order: history holds every
//     message again, with the seqs it had.
//   - With chat.commands cut short too (a crash of the machine before
//     the broker synced it), the commands lost with the events are lost;
//     the decider reads the commands appended since (it would skip them
//     below the offsets it had), and the next message follows what
//     history holds.
func TestALogThatLostRecordsIsRefusedThenRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (six starts of a node, about 30 s); make test runs it")
	}
	const sent = 40
	overwrite := func(t *testing.T) func(seg string, size int64) {
		return func(seg string, size int64) {
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, size*3/4); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("events", func(t *testing.T) {
		dir, alice, conv := sendAndStop(t, sent)
		events := damage(t, dir, schemas.TopicEvents, overwrite(t))
		refused(t, dir, events+" ends at offset", "group parley-projection-history", "group parley-projection-search", "group parley-projection-push")
		out := recoverLog(t, dir)
		for _, want := range []string{"lost: " + events, "parley-decider decides again the commands of partitions [" + partOf(events) + "]"} {
			if !strings.Contains(out, want) {
				t.Errorf("recover printed\n%s\nwithout %q", out, want)
			}
		}
		sys := startSystem(t, dir)
		defer stopSystem(t, sys)
		alice.base = sys.HTTPAddr()
		eventuallyT(t, "every message in history again", func() bool { return newestInHistory(alice, conv) == sent }, func() string {
			return fmt.Sprint(newestInHistory(alice, conv))
		})
		evs := alice.history(conv)
		if got := seqs(evs); !slices.Equal(got, seqRange(0, sent)) {
			t.Fatalf("history %v, want 0..%d", got, sent)
		}
		for _, e := range evs[1:] {
			data, _ := e["data"].(map[string]any)
			if want := fmt.Sprintf("message kestrel%d", int(e["seq"].(float64))); data["body"] != want {
				t.Errorf("seq %v holds %v, want %q: the commands decided again in their order", e["seq"], data["body"], want)
			}
		}
		if seq := alice.send(conv, "after-recovery"); seq != sent+1 {
			t.Errorf("the first message after recovery got seq %d, want %d", seq, sent+1)
		}
		searchUntil(t, alice, "/v1/search?q=kestrel"+fmt.Sprint(sent))
		lostSeries(t, sys, schemas.GroupHistory, events)
	})
	t.Run("events and commands", func(t *testing.T) {
		dir, alice, conv := sendAndStop(t, sent)
		events := damage(t, dir, schemas.TopicEvents, overwrite(t))
		commands := damage(t, dir, schemas.TopicCommands, func(seg string, size int64) {
			if err := os.Truncate(seg, size/2); err != nil {
				t.Fatal(err)
			}
		})
		refused(t, dir, events+" ends at offset", commands+" ends at offset", "group parley-decider", "group parley-projection-history")
		// A dry run says what recover would do, and does nothing.
		dry := recoverLog(t, dir, true)
		for _, want := range []string{"lost: " + commands, "recover would do: parley-projection-history takes the log again from its start",
			"recover would do: " + filepath.Join(dir, "history") + " moved aside", "nothing done (-dry-run)"} {
			if !strings.Contains(dry, want) {
				t.Errorf("a dry run printed\n%s\nwithout %q", dry, want)
			}
		}
		if aside, _ := filepath.Glob(filepath.Join(dir, "*.lost-*")); len(aside) != 0 {
			t.Errorf("a dry run moved %v aside", aside)
		}
		refused(t, dir, events+" ends at offset")
		out := recoverLog(t, dir)
		for _, want := range []string{"lost: " + events, "lost: " + commands,
			"parley-projection-history takes the log again from its start", filepath.Join(dir, "history") + " moved aside to " + filepath.Join(dir, "history.lost-"),
			filepath.Join(dir, "search") + " moved aside", filepath.Join(dir, "push", "store") + " moved aside"} {
			if !strings.Contains(out, want) {
				t.Errorf("recover printed\n%s\nwithout %q", out, want)
			}
		}
		for _, store := range []string{"history", "search", filepath.Join("push", "store")} {
			if aside, _ := filepath.Glob(filepath.Join(dir, store+".lost-*")); len(aside) != 1 {
				t.Errorf("%s moved aside to %v, want one directory", store, aside)
			}
		}
		if again := recoverLog(t, dir); !strings.Contains(again, "nothing to do") || strings.Contains(again, "moved aside") {
			t.Errorf("a second recover printed\n%s\nwant nothing to do", again)
		}

		sys := startSystem(t, dir)
		defer stopSystem(t, sys)
		alice.base = sys.HTTPAddr()
		var kept int
		eventuallyT(t, "history made again from what the log kept", func() bool {
			kept = newestInHistory(alice, conv)
			return kept > 0
		}, func() string { return fmt.Sprint(kept) })
		if kept >= sent {
			t.Fatalf("history holds seq %d after the log lost commands, want fewer than %d", kept, sent)
		}
		if got := seqs(alice.history(conv)); !slices.Equal(got, seqRange(0, kept)) {
			t.Errorf("history %v, want 0..%d", got, kept)
		}
		seq := alice.send(conv, "after-recovery")
		if seq != kept+1 {
			t.Errorf("the first message after recovery got seq %d, want %d", seq, kept+1)
		}
		eventuallyT(t, "the new message in history", func() bool { return newestInHistory(alice, conv) == seq }, func() string { return "" })
		searchUntil(t, alice, "/v1/search?q=kestrel1")
		if status, res := alice.do(http.MethodGet, "/v1/search?q=kestrel"+fmt.Sprint(sent), nil); status != http.StatusOK || len(toMaps(res["results"])) != 0 {
			t.Errorf("search for a lost message: %d %v, want no result: the index was made again", status, res)
		}
		lostSeries(t, sys, schemas.GroupHistory, events)
		lostSeries(t, sys, schemas.GroupDecider, commands)
	})
}

// sendAndStop starts a node, has alice send n messages (command ids
// kestrel1…kestrelN) to a conversation with bob, waits until history and
// search hold them, and stops it.
func sendAndStop(t *testing.T, n int) (dir string, alice api, conv string) {
	t.Helper()
	dir = t.TempDir()
	sys := startSystem(t, dir)
	alice = api{t, sys.HTTPAddr(), token(t, "alice", time.Hour)}
	conv = alice.createDirect("bob")
	for i := 1; i <= n; i++ {
		alice.send(conv, fmt.Sprintf("kestrel%d", i))
	}
	eventuallyT(t, "every message in history", func() bool { return newestInHistory(alice, conv) == n }, func() string { return "" })
	searchUntil(t, alice, "/v1/search?q=kestrel"+fmt.Sprint(n))
	stopSystem(t, sys)
	return dir, alice, conv
}

// refused checks that a node over dir does not start, with
// ErrLostRecords saying each of want and what to do.
func refused(t *testing.T, dir string, want ...string) {
	t.Helper()
	sys, err := tryStartSystem(t, dir)
	if err == nil {
		stopSystem(t, sys)
		t.Fatal("a log that lost records its groups had read: started")
	}
	if !errors.Is(err, app.ErrLostRecords) {
		t.Fatalf("the refusal %v is not ErrLostRecords", err)
	}
	for _, w := range append(want, "records lost", "parley recover") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal %q does not say %q", err, w)
		}
	}
}

// recoverLog runs `parley recover` over dir and returns what it printed.
func recoverLog(t *testing.T, dir string, dryRun ...bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t, dir)
	var out bytes.Buffer
	if err := app.Recover(ctx, cfg, len(dryRun) > 0 && dryRun[0], &out, testLogger(cfg)); err != nil {
		t.Fatalf("recover: %v\n%s", err, out.String())
	}
	return out.String()
}

// lostSeries checks that sys reports no record lost for group on the
// damaged partition (topic/partition); the lag monitor's first pass is
// at the start.
func lostSeries(t *testing.T, sys *app.System, group, damaged string) {
	t.Helper()
	topic, part, _ := strings.Cut(damaged, "/")
	series := fmt.Sprintf(`parley_consumer_lost_records{group=%q,partition=%q,topic=%q}`, group, part, topic)
	if n := metric(t, sys.HTTPAddr(), series); n != 0 {
		t.Errorf("%s = %v after recovery, want 0", series, n)
	}
}

// partOf is the partition of topic/partition.
func partOf(damaged string) string {
	_, part, _ := strings.Cut(damaged, "/")
	return part
}

// damage applies harm to the segment of the one partition of topic that
// holds records (the test's conversation is in one partition) and returns
// its name as the refusal spells it, topic/partition.
func damage(t *testing.T, dir, topic string, harm func(seg string, size int64)) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "kafka", "partitions", topic+"-*", "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, seg := range segs {
		if st, err := os.Stat(seg); err == nil && st.Size() > 0 {
			held = append(held, seg)
		}
	}
	if len(held) != 1 {
		t.Fatalf("segments of %s holding records: %v, want one", topic, held)
	}
	st, err := os.Stat(held[0])
	if err != nil {
		t.Fatal(err)
	}
	harm(held[0], st.Size())
	part := strings.TrimPrefix(filepath.Base(filepath.Dir(held[0])), topic+"-")
	return topic + "/" + part
}
