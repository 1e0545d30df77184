package pebblestore_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/cputime"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/schemas"
)

// BenchmarkApply_Batch500 applies batches of 500 new messages to one
// conversation, each batch one synced commit.
func BenchmarkApply_Batch500(b *testing.B) {
	const batch = 500
	s := open(b, b.TempDir())
	defer s.Close()
	conv := "bench"
	if err := s.Apply(b.Context(), []history.Event{
		historytest.Group(conv, historytest.Base, historytest.Owner("alice"), historytest.Member("bob")),
	}); err != nil {
		b.Fatal(err)
	}
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		events := historytest.Messages(conv, next, next+batch-1, "alice")
		next += batch
		b.StartTimer()
		if err := s.Apply(b.Context(), events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPage_50of100000 reads a backward page of 50 events from the
// middle of a conversation of 100,000 events.
func BenchmarkPage_50of100000(b *testing.B) {
	const total, limit = 100000, 50
	s := open(b, b.TempDir())
	defer s.Close()
	conv := "big"
	events := slices.Concat(
		[]history.Event{historytest.Group(conv, historytest.Base, historytest.Owner("alice"))},
		historytest.Messages(conv, 1, total, "alice"),
	)
	for i := 0; i < len(events); i += 5000 {
		if err := s.Apply(b.Context(), events[i:min(i+5000, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
	// Pages at spread-out positions, so that the figure is not one hot
	// spot of the cache; p50 and p99 of single page reads are reported.
	var lat []time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		before := uint64(limit + 1 + (i*7919)%(total-limit))
		i++
		start := time.Now()
		p, err := s.Page(b.Context(), conv, history.PageQuery{Before: before, Limit: limit})
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Events) != limit || p.Events[0].Seq != before-1 {
			b.Fatalf("page of %d events, want %d from seq %d", len(p.Events), limit, before-1)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkApply_OneMessageDirect applies one new message per Apply to
// a direct conversation, as the projection's batches at thousands of
// messages a second over many conversations hold one or two each: every
// call writes the message, its author, the summary and both members'
// inbox entries, and commits.
func BenchmarkApply_OneMessageDirect(b *testing.B) {
	s := open(b, b.TempDir())
	defer s.Close()
	created := historytest.Direct("alice", "bob", historytest.Base)
	if err := s.Apply(b.Context(), []history.Event{created}); err != nil {
		b.Fatal(err)
	}
	conv := created.ConversationID
	seq := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		seq++
		ev := historytest.MessageV3(conv, seq, "alice", "hello there, a message of a typical length", historytest.Base.Add(time.Duration(seq)*time.Second))
		b.StartTimer()
		if err := s.Apply(b.Context(), []history.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply_ManyDirect applies what the history projection applies
// under a load of direct pairs: 500 direct conversations, each Apply a
// batch of 50 messages spread over them, one synced commit each.
func BenchmarkApply_ManyDirect(b *testing.B) {
	const convs = 500
	created := make([]history.Event, convs)
	for i := range created {
		created[i] = historytest.Direct(fmt.Sprintf("u%d", 2*i), fmt.Sprintf("u%d", 2*i+1), historytest.Base)
	}
	benchApplyMany(b, created, "a message of a direct pair, about as long as one", func(c, n int) string {
		return fmt.Sprintf("u%d", 2*c+n%2)
	})
}

// BenchmarkApply_ManyGroups10 is BenchmarkApply_ManyDirect for groups:
// 100 groups of 10, each Apply a batch of 50 messages spread over them.
// Each message moves every member's inbox entry, so this is where the
// inbox's cost shows.
func BenchmarkApply_ManyGroups10(b *testing.B) {
	const convs, size = 100, 10
	created := make([]history.Event, convs)
	for i := range created {
		members := []schemas.Member{historytest.Owner(fmt.Sprintf("u%d-0", i))}
		for j := 1; j < size; j++ {
			members = append(members, historytest.Member(fmt.Sprintf("u%d-%d", i, j)))
		}
		created[i] = historytest.Group(fmt.Sprintf("g%d", i), historytest.Base, members...)
	}
	benchApplyMany(b, created, "a message to a group, about as long as one", func(c, n int) string {
		return fmt.Sprintf("u%d-%d", c, n%size)
	})
}

// benchApplyMany applies the conversations created, then batches of 50
// messages with body spread over them in turn, the nth message of the
// cth conversation sent by sender(c, n), one synced commit each. Beside
// events/s it reports the process's CPU per event (getrusage), which
// counts what Pebble does in the background — flushes and compactions —
// and not only the calls' own time.
func benchApplyMany(b *testing.B, created []history.Event, body string, sender func(c, n int) string) {
	const batch = 50
	s := open(b, b.TempDir())
	defer s.Close()
	if err := s.Apply(b.Context(), created); err != nil {
		b.Fatal(err)
	}
	convs := len(created)
	seqs := make([]uint64, convs)
	next := 0
	cpu0, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		events := make([]history.Event, batch)
		for j := range events {
			c := next % convs
			next++
			seqs[c]++
			events[j] = historytest.Message(created[c].ConversationID, seqs[c], sender(c, next), body, historytest.MessageTime(seqs[c]))
		}
		b.StartTimer()
		if err := s.Apply(b.Context(), events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	cpu, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/event")
}
