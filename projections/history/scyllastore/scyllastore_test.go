package scyllastore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/keystoretest"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/historytest"
	"github.com/parley-chat/parley/projections/history/scyllastore"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

// runID makes the keyspaces of one test run unique on a shared cluster.
var (
	runID = func() string {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
	keyspaces atomic.Int64
)

// newKeyspace returns a keyspace name no other store of this run uses.
func newKeyspace() string {
	return fmt.Sprintf("parley_test_%s_%d", runID, keyspaces.Add(1))
}

// fakeConfig is the config of a store on the stand-in, in a keyspace of
// its own.
func fakeConfig(srv *cqlfake.Server) scyllastore.Config {
	return scyllastore.Config{
		Hosts:    []string{srv.Host()},
		Port:     srv.Port(),
		Keyspace: newKeyspace(),
		Timeout:  5 * time.Second,
	}
}

func open(t testing.TB, cfg scyllastore.Config) *scyllastore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := scyllastore.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestStore runs the conformance suite against the gocql adapter talking
// CQL over TCP to the in-process stand-in, one keyspace per store.
func TestStore(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	historytest.Run(t, func(t *testing.T) history.Store {
		return open(t, fakeConfig(srv))
	})
}

// TestKeyStore runs the key store conformance suite of crypto-shredding
// against the same adapter on the stand-in.
func TestKeyStore(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	keystoretest.Run(t, func(t *testing.T) contentkeys.Store {
		return open(t, fakeConfig(srv))
	})
}

// TestStoreScylla runs the conformance suite against a real ScyllaDB (or
// Cassandra) cluster when PARLEY_SCYLLA_HOSTS names its contact points
// (comma-separated host or host:port). Every store gets a keyspace of its
// own, dropped when the test ends.
func TestStoreScylla(t *testing.T) {
	hosts := os.Getenv("PARLEY_SCYLLA_HOSTS")
	if hosts == "" {
		t.Skip("PARLEY_SCYLLA_HOSTS is not set")
	}
	t.Parallel()
	cfg := scyllastore.Config{
		Hosts:       strings.Split(hosts, ","),
		Consistency: "QUORUM",
		Timeout:     10 * time.Second,
	}
	historytest.Run(t, func(t *testing.T) history.Store {
		cfg := cfg
		cfg.Keyspace = newKeyspace()
		s := open(t, cfg)
		t.Cleanup(func() { dropKeyspace(t, cfg) })
		return s
	})
	keystoretest.Run(t, func(t *testing.T) contentkeys.Store {
		cfg := cfg
		cfg.Keyspace = newKeyspace()
		s := open(t, cfg)
		t.Cleanup(func() { dropKeyspace(t, cfg) })
		return s
	})
}

func dropKeyspace(t *testing.T, cfg scyllastore.Config) {
	c := gocql.NewCluster(cfg.Hosts...)
	c.Timeout = time.Minute
	s, err := c.CreateSession()
	if err != nil {
		t.Errorf("dropping keyspace %s: %v", cfg.Keyspace, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec(); err != nil {
		t.Errorf("dropping keyspace %s: %v", cfg.Keyspace, err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  scyllastore.Config
		want []string // substrings of the error, all reported at once
	}{
		{"hosts alone are enough", scyllastore.Config{Hosts: []string{"a"}}, nil},
		{"a production config is valid", scyllastore.Config{
			Hosts: []string{"a:9042", "b"}, Keyspace: "parley_prod",
			Replication: map[string]string{"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": "3"},
			Consistency: "local_quorum", LocalDC: "dc1", Timeout: time.Second, Concurrency: 8,
		}, nil},
		{"no hosts and a bad keyspace are both reported", scyllastore.Config{Keyspace: "Bad-Name"}, []string{"no hosts", "keyspace"}},
		{"an unknown consistency is refused", scyllastore.Config{Hosts: []string{"a"}, Consistency: "MOST"}, []string{"consistency"}},
		{"a serial consistency is refused", scyllastore.Config{Hosts: []string{"a"}, Consistency: "LOCAL_SERIAL"}, []string{"consistency"}},
		{"a replication without class is refused", scyllastore.Config{Hosts: []string{"a"}, Replication: map[string]string{"dc1": "3"}}, []string{"replication"}},
		{"a replication that would escape the literal is refused", scyllastore.Config{Hosts: []string{"a"},
			Replication: map[string]string{"class": "SimpleStrategy", "replication_factor": "1'}"}}, []string{"replication"}},
		{"negative durations and counts are refused", scyllastore.Config{Hosts: []string{" "}, Timeout: -1, Concurrency: -1, Port: 70000},
			[]string{"host 0 is empty", "timeout", "concurrency", "port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseConsistency(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]gocql.Consistency{
		"LOCAL_QUORUM": gocql.LocalQuorum, "quorum": gocql.Quorum, " one ": gocql.One, "local_one": gocql.LocalOne, "ALL": gocql.All,
	} {
		got, err := scyllastore.ParseConsistency(in)
		if err != nil || got != want {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ANY", "SERIAL", "LOCAL_SERIAL", "quorumm"} {
		if _, err := scyllastore.ParseConsistency(bad); err == nil {
			t.Errorf("ParseConsistency(%q) accepted", bad)
		}
	}
}

// TestOpenUnreachable checks that Open against a cluster it cannot reach
// returns an error promptly, so the caller can retry with backoff.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()

	// A port that accepts connections and never answers: the handshake
	// must time out.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mute.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	// The bounds are far below what a wrong Open would take — the
	// minute of ctx, or the 5 s Timeout of the case whose ctx ends first —
	// and far above what a right one takes, on a loaded machine too.
	const short = 500 * time.Millisecond
	for _, tc := range []struct {
		name    string
		port    int
		timeout time.Duration
		ctx     time.Duration
		bound   time.Duration
		is      error
	}{
		{"a refused connection fails at once", refused, short, time.Minute, 10 * time.Second, nil},
		{"a node that never answers fails within a few timeouts", mute.Addr().(*net.TCPAddr).Port, short, time.Minute, 20 * short, nil},
		{"a context that ends first ends Open", mute.Addr().(*net.TCPAddr).Port, 5 * time.Second, 100 * time.Millisecond, 2 * time.Second, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), tc.ctx)
			defer cancel()
			start := time.Now()
			s, err := scyllastore.Open(ctx, scyllastore.Config{
				Hosts: []string{"127.0.0.1"}, Port: tc.port, Keyspace: newKeyspace(), Timeout: tc.timeout,
			})
			took := time.Since(start)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if took > tc.bound {
				t.Errorf("Open took %v, want at most %v", took, tc.bound)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Open error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), "scyllastore:") {
				t.Errorf("Open error %q does not say where it comes from", err)
			}
		})
	}
}

// TestApplyAcrossNodeRestart kills the node in the middle of a stream of
// Apply calls (the node dies while a batch is being written, after some
// of its requests were applied), restarts it on the same port with its
// data, retries the failed batch as the projection would, and checks that
// the history has every event exactly once.
func TestApplyAcrossNodeRestart(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	cfg := fakeConfig(srv)
	cfg.Timeout = 2 * time.Second
	// One request in flight at a time, away from the driver's data race
	// on a failed shared PREPARE (package doc, Concurrency). The node's
	// death in the middle of a batch, which is what this test is about,
	// needs no concurrency: Apply's requests run one after another and
	// the node dies on the third.
	cfg.Concurrency = 1
	st := open(t, cfg)
	t.Cleanup(func() { _ = st.Close() })

	const last, batchSize = 2400, 150
	events := append([]history.Event{historytest.Group("c", historytest.Base, historytest.Owner("alice"), historytest.Member("bob"))},
		historytest.Messages("c", 1, last, "bob")...)

	failures := 0
	for i := 0; i < len(events); i += batchSize {
		batch := events[i:min(i+batchSize, len(events))]
		if i == 6*batchSize {
			// Die after a few more requests: in the middle of this batch.
			srv.StopAfter(3)
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("an Apply of seqs %d..%d to succeed", batch[0].Seq, batch[len(batch)-1].Seq), func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			err := st.Apply(ctx, batch)
			cancel()
			if err == nil {
				return true
			}
			failures++
			t.Logf("Apply of seqs %d..%d failed (retrying): %v", batch[0].Seq, batch[len(batch)-1].Seq, err)
			if !srv.Running() {
				if err := srv.Restart(); err != nil {
					t.Fatalf("restarting the node: %v", err)
				}
			}
			return false
		})
	}
	if failures == 0 {
		t.Fatal("the node never failed an Apply: the test tested nothing")
	}

	p, err := st.Page(t.Context(), "c", history.PageQuery{Forward: true, Limit: 10 * last})
	if err != nil {
		t.Fatal(err)
	}
	if p.HasMore || len(p.Events) != last {
		t.Fatalf("%d events (has more %v), want %d", len(p.Events), p.HasMore, last)
	}
	for i, ev := range p.Events {
		want := events[i+1]
		if ev.Seq != want.Seq || ev.ID != want.ID || string(ev.Data) != string(want.Data) || !ev.Time.Equal(want.Time) {
			t.Fatalf("event %d is seq %d %s, want seq %d %s", i, ev.Seq, ev.ID, want.Seq, want.ID)
		}
	}
	c, err := st.Conversation(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if c.LastSeq != last || !c.LastActivity.Equal(historytest.MessageTime(last)) {
		t.Errorf("summary last seq %d at %v, want %d at %v", c.LastSeq, c.LastActivity, last, historytest.MessageTime(last))
	}
	for _, u := range []string{"alice", "bob"} {
		cs, err := st.Conversations(t.Context(), u, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].LastSeq != last {
			t.Errorf("conversations of %s: %+v", u, cs)
		}
	}
}

// TestMigrationsRunOnce opens two stores on one keyspace, one after the
// other: the second finds the migration recorded and does not run it.
func TestMigrationsRunOnce(t *testing.T) {
	t.Parallel()
	var creates, records atomic.Int64
	srv := cqlfake.Start(t, cqlfake.Options{OnStatement: func(q string) {
		switch {
		case strings.Contains(q, "CREATE TABLE IF NOT EXISTS") && strings.Contains(q, ".messages"):
			creates.Add(1)
		case strings.Contains(q, "INTO") && strings.Contains(q, ".schema_migrations"):
			records.Add(1)
		}
	}})
	cfg := fakeConfig(srv)
	a := open(t, cfg)
	t.Cleanup(func() { _ = a.Close() })
	if creates.Load() == 0 || records.Load() == 0 {
		t.Fatalf("first Open: %d creations of messages, %d records, want some", creates.Load(), records.Load())
	}
	c, r := creates.Load(), records.Load()
	b := open(t, cfg)
	t.Cleanup(func() { _ = b.Close() })
	if creates.Load() != c || records.Load() != r {
		t.Errorf("second Open ran the migration again")
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// Both stores see the same data.
	if err := a.Apply(t.Context(), []history.Event{historytest.Group("g", historytest.Base, historytest.Owner("alice"))}); err != nil {
		t.Fatal(err)
	}
	cs, err := b.Conversations(t.Context(), "alice", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != "g" {
		t.Errorf("alice's conversations seen by the second store: %+v", cs)
	}
}

// TestMigrationRerunAfterACrash opens a store, then forgets that the
// second migration was recorded, as after a process that died between
// running it and recording it: the next Open runs it again — its ALTER
// TABLE ... ADD of columns that exist included — and the data written
// before is intact.
func TestMigrationRerunAfterACrash(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	cfg := fakeConfig(srv)
	a := open(t, cfg)
	events := []history.Event{
		historytest.Group("g", historytest.Base, historytest.Owner("alice"), historytest.Member("bob")),
		historytest.Message("g", 1, "alice", "hi", historytest.MessageTime(1)),
		historytest.Archived("g", 2, "alice", true, historytest.MessageTime(2)),
	}
	if err := a.Apply(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()

	c := gocql.NewCluster(srv.Host())
	c.Port = srv.Port()
	c.ProtoVersion = 4
	s, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	err = s.Query("DELETE FROM "+cfg.Keyspace+".schema_migrations WHERE component = ? AND version = ?", "history", 2).Exec()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	b := open(t, cfg)
	defer b.Close()
	conv, err := b.Conversation(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if !conv.Archived || conv.Messages != 1 || conv.LastSeq != 2 {
		t.Errorf("after the migration ran again: archived %v, messages %d, last seq %d; want true, 1, 2", conv.Archived, conv.Messages, conv.LastSeq)
	}
}

// waitFor polls cond until it holds, failing the test if timeout passes
// first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
