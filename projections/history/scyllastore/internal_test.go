package scyllastore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

var internalKeyspaces atomic.Int64

func openFake(tb testing.TB, srv *cqlfake.Server) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, Config{
		Hosts:    []string{srv.Host()},
		Port:     srv.Port(),
		Keyspace: fmt.Sprintf("parley_internal_%d_%d", time.Now().UnixNano()%1e6, internalKeyspaces.Add(1)),
	})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// TestStoreVariants runs the conformance suite with the alternative ways
// the store can work: message rows written as concurrent single-row
// INSERTs instead of batches, and inbox reads paged two rows at a time,
// so the stand-in's paging state is exercised across pages.
func TestStoreVariants(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	historytest.Run(t, func(t *testing.T) history.Store {
		s := openFake(t, srv)
		s.writeMode = writeConcurrent
		s.inboxPageSize = 2
		return s
	})
}

// BenchmarkApply_Batch500 measures Apply of 500-event batches (10
// conversations of 3 members, 50 events each, 200-byte bodies) against
// the in-process stand-in over loopback TCP. It measures the protocol
// and driver overhead of the adapter's request pattern only — requests
// per batch, round trips, encoding — not ScyllaDB: the stand-in applies
// every statement under one lock in memory.
func BenchmarkApply_Batch500(b *testing.B) {
	benchmarkApply(b, writeBatches)
}

// BenchmarkApply_Batch500_ConcurrentInserts is BenchmarkApply_Batch500
// with one INSERT per message row, for comparison (see doc.go).
func BenchmarkApply_Batch500_ConcurrentInserts(b *testing.B) {
	benchmarkApply(b, writeConcurrent)
}

func benchmarkApply(b *testing.B, mode writeMode) {
	srv := cqlfake.Start(b)
	s := openFake(b, srv)
	defer s.Close()
	s.writeMode = mode
	const convs, perConv = 10, 50
	var created []history.Event
	for c := range convs {
		id := fmt.Sprintf("bench-%d", c)
		created = append(created, historytest.Group(id, historytest.Base,
			historytest.Owner("u0"), historytest.Member(fmt.Sprintf("u%d", c+1)), historytest.Member("all")))
	}
	if err := s.Apply(context.Background(), created); err != nil {
		b.Fatal(err)
	}
	batch := make([]history.Event, 0, convs*perConv)
	next := uint64(1)
	before := srv.Stats()
	b.ResetTimer()
	for b.Loop() {
		batch = batch[:0]
		for i := range perConv {
			for c := range convs {
				seq := next + uint64(i)
				batch = append(batch, historytest.Message(fmt.Sprintf("bench-%d", c), seq, "all",
					fmt.Sprintf("%-200d", seq), historytest.MessageTime(seq)))
			}
		}
		next += perConv
		if err := s.Apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := srv.Stats()
	n := float64(b.N)
	b.ReportMetric(float64(convs*perConv)*n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(after.Executes+after.Batches-before.Executes-before.Batches)/n, "requests/op")
}

func TestGroupByConversation(t *testing.T) {
	t.Parallel()
	a0 := historytest.Group("a", historytest.Base, historytest.Owner("x"))
	b0 := historytest.Group("b", historytest.Base, historytest.Owner("x"))
	a := historytest.Messages("a", 1, 3, "x")
	got := groupByConversation([]history.Event{a0, b0, a[0], a0, a[1], a[1], b0, a[2]})
	if len(got) != 2 || got[0].id != "a" || got[1].id != "b" {
		t.Fatalf("groups %+v", got)
	}
	var seqs []uint64
	for _, ev := range got[0].events {
		seqs = append(seqs, ev.Seq)
	}
	if fmt.Sprint(seqs) != "[0 1 2 3]" || len(got[1].events) != 1 {
		t.Errorf("a: %v, b: %d events", seqs, len(got[1].events))
	}
}

// TestAddColumn runs a migration's ADD of a column that exists already
// (not run again), of one that another process adds while this one
// fails (a success), and of one that fails for good (an error).
func TestAddColumn(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	s := openFake(t, srv)
	defer s.Close()
	ctx := t.Context()
	ran := false
	if err := addColumn(ctx, s.session(), s.keyspace, s.q, "conversations", "archived", func() error {
		ran = true
		return nil
	}); err != nil || ran {
		t.Errorf("an existing column: error %v, ran the ALTER %v", err, ran)
	}
	lost := errors.New("conflicts with an existing column")
	err := addColumn(ctx, s.session(), s.keyspace, s.q, "conversations", "raced", func() error {
		if err := s.session().Query("ALTER TABLE " + s.keyspace + ".conversations ADD raced int").WithContext(ctx).Exec(); err != nil {
			t.Fatal(err)
		}
		return lost
	})
	if err != nil {
		t.Errorf("a column added by someone else meanwhile: %v", err)
	}
	broken := errors.New("schema change refused")
	if err := addColumn(ctx, s.session(), s.keyspace, s.q, "conversations", "missing", func() error { return broken }); !errors.Is(err, broken) {
		t.Errorf("a failing ALTER: %v, want %v", err, broken)
	}
}
