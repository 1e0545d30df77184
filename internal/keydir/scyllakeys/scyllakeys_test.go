package scyllakeys_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/keydir/keydirtest"
	"github.com/parley-chat/parley/internal/keydir/scyllakeys"
	"github.com/parley-chat/parley/projections/history/scyllastore"
	"github.com/parley-chat/parley/projections/history/scyllastore/cqlfake"
)

var (
	runID = func() string {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
	keyspaces atomic.Int64
)

func newKeyspace() string { return fmt.Sprintf("parley_keys_%s_%d", runID, keyspaces.Add(1)) }

func options(o keydirtest.Options) []scyllakeys.Option {
	var opts []scyllakeys.Option
	if o.Recorder != nil {
		opts = append(opts, scyllakeys.WithRecorder(o.Recorder))
	}
	if o.Now != nil {
		opts = append(opts, scyllakeys.WithClock(o.Now))
	}
	return opts
}

// adapter opens every directory in a keyspace of its own, each through
// its own session; a peer is another session on the same keyspace, as
// another gateway node has.
func adapter(cfg scyllastore.Config, cleanup func(*testing.T, scyllastore.Config)) keydirtest.Adapter {
	keyspaceOf := map[keydirtest.Directory]string{}
	var mu = make(chan struct{}, 1)
	open := func(t *testing.T, cfg scyllastore.Config, o keydirtest.Options) *scyllakeys.Directory {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, err := scyllakeys.Open(ctx, cfg, options(o)...)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	return keydirtest.Adapter{
		Open: func(t *testing.T, o keydirtest.Options) keydirtest.Directory {
			cfg := cfg
			cfg.Keyspace = newKeyspace()
			d := open(t, cfg, o)
			if cleanup != nil {
				t.Cleanup(func() { cleanup(t, cfg) })
			}
			mu <- struct{}{}
			keyspaceOf[d] = cfg.Keyspace
			<-mu
			return d
		},
		Peer: func(t *testing.T, d keydirtest.Directory, o keydirtest.Options) keydirtest.Directory {
			cfg := cfg
			mu <- struct{}{}
			cfg.Keyspace = keyspaceOf[d]
			<-mu
			return open(t, cfg, o)
		},
	}
}

// TestDirectory runs the conformance suite against the adapter talking
// CQL over TCP to the in-process stand-in (cqlfake), its concurrent
// tests through two sessions on one keyspace.
func TestDirectory(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	keydirtest.Run(t, adapter(scyllastore.Config{
		Hosts: []string{srv.Host()}, Port: srv.Port(), Timeout: 5 * time.Second,
	}, nil))
}

// TestDirectoryScylla runs the conformance suite against a real
// ScyllaDB (or Cassandra) cluster when PARLEY_SCYLLA_HOSTS names its
// contact points (comma-separated host or host:port). Every directory
// gets a keyspace of its own, dropped when the test ends.
func TestDirectoryScylla(t *testing.T) {
	hosts := os.Getenv("PARLEY_SCYLLA_HOSTS")
	if hosts == "" {
		t.Skip("PARLEY_SCYLLA_HOSTS is not set")
	}
	t.Parallel()
	keydirtest.Run(t, adapter(scyllastore.Config{
		Hosts: strings.Split(hosts, ","), Consistency: "QUORUM", Timeout: 10 * time.Second,
	}, dropKeyspace))
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

type recorded struct{ got []string }

func (r *recorded) Append(_ context.Context, user, device string, version uint64, added bool) error {
	r.got = append(r.got, fmt.Sprint(user, "/", device, " v", version, " added=", added))
	return nil
}

// TestAbandonedProposalIsAbortedAndItsVersionRetaken: a proposal whose
// node died before deciding it (a row without outcome) holds the next
// change back for AbandonAfter only; then it is aborted, and the change
// takes the same version, so versions have no gap, and the list does not
// have the abandoned device.
func TestAbandonedProposalIsAbortedAndItsVersionRetaken(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	cfg := scyllastore.Config{Hosts: []string{srv.Host()}, Port: srv.Port(), Keyspace: newKeyspace(), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := scyllastore.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Query(`INSERT INTO key_device_versions (user_id, version, attempt, kind, devices, device_id, added)
		VALUES (?, 1, 0, 0, ?, 'ghost', true) IF NOT EXISTS`, "gina", []byte(`{"version":1,"devices":[{"device_id":"ghost"}]}`)).Exec(); err != nil {
		t.Fatal(err)
	}
	rec := &recorded{}
	d := scyllakeys.New(sess, scyllakeys.WithRecorder(rec), scyllakeys.WithAbandonAfter(50*time.Millisecond))
	if l, err := d.Devices(ctx, "gina"); err != nil || l.Version != 0 || len(l.Devices) != 0 {
		t.Fatalf("an undecided proposal is visible: %+v %v", l, err)
	}
	_, ch, err := d.Publish(ctx, "gina", "phone", nil, nil)
	if err != nil || !ch.Added || ch.List.Version != 1 || len(ch.List.Devices) != 1 || ch.List.Devices[0].ID != "phone" {
		t.Fatalf("publish after the abandoned proposal: %+v %v", ch, err)
	}
	if fmt.Sprint(rec.got) != "[gina/phone v1 added=true]" {
		t.Errorf("recorded %v", rec.got)
	}
	if l, err := d.Devices(ctx, "gina"); err != nil || l.Version != 1 || len(l.Devices) != 1 || l.Devices[0].ID != "phone" {
		t.Errorf("devices: %+v %v", l, err)
	}
	var committed bool
	if err := sess.Query(`SELECT committed FROM key_device_versions WHERE user_id = ? AND version = 1 AND attempt = 0 AND kind = 1`, "gina").Scan(&committed); err != nil || committed {
		t.Errorf("the abandoned proposal's outcome: committed %v, %v", committed, err)
	}
}

// blockingRecorder records, and holds the first Append until release
// is closed, telling started when it begins.
type blockingRecorder struct {
	mu      sync.Mutex
	got     []string
	started chan struct{}
	release chan struct{}
	blocked atomic.Bool
}

func (r *blockingRecorder) Append(_ context.Context, user, device string, version uint64, added bool) error {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprint(user, "/", device, " v", version, " added=", added))
	r.mu.Unlock()
	if r.blocked.CompareAndSwap(false, true) {
		close(r.started)
		<-r.release
	}
	return nil
}

// TestAChangeAbortedWhileRecordingIsNotMade: a node whose recording of a
// device change outlasts another node's AbandonAfter loses the change:
// the other node aborts it and takes the version, and the slow node's
// commit finds the change aborted and fails, leaving the list as the
// other node made it.
func TestAChangeAbortedWhileRecordingIsNotMade(t *testing.T) {
	t.Parallel()
	srv := cqlfake.Start(t)
	cfg := scyllastore.Config{Hosts: []string{srv.Host()}, Port: srv.Port(), Keyspace: newKeyspace(), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &blockingRecorder{started: make(chan struct{}), release: make(chan struct{})}
	slow, err := scyllakeys.Open(ctx, cfg, scyllakeys.WithRecorder(rec), scyllakeys.WithAbandonAfter(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := scyllakeys.Open(ctx, cfg, scyllakeys.WithRecorder(rec), scyllakeys.WithAbandonAfter(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	slowErr := make(chan error, 1)
	go func() {
		_, _, err := slow.Publish(ctx, "hana", "phone", nil, nil)
		slowErr <- err
	}()
	<-rec.started // the slow node owns version 1 and is recording it
	_, ch, err := fast.Publish(ctx, "hana", "laptop", nil, nil)
	if err != nil || !ch.Added || ch.List.Version != 1 || len(ch.List.Devices) != 1 || ch.List.Devices[0].ID != "laptop" {
		t.Fatalf("the fast node's change: %+v %v", ch, err)
	}
	close(rec.release)
	if err := <-slowErr; err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("the slow node's change: %v, want it aborted", err)
	}
	for _, d := range []*scyllakeys.Directory{slow, fast} {
		if l, err := d.Devices(ctx, "hana"); err != nil || l.Version != 1 || len(l.Devices) != 1 || l.Devices[0].ID != "laptop" {
			t.Errorf("devices: %+v %v", l, err)
		}
	}
	// Both were recorded as version 1: readers keep the last event of a
	// version (see the package doc).
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if fmt.Sprint(rec.got) != "[hana/phone v1 added=true hana/laptop v1 added=true]" {
		t.Errorf("recorded %v", rec.got)
	}
}
