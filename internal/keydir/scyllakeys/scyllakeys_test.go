package scyllakeys_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
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
