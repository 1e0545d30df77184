// Package app wires Parley's roles into a process.
//
// Start starts a process in this order, each step only for the roles that
// need it: the embedded broker (when no Kafka cluster is configured), the
// topics, the history store and the search index, the decider, the history
// and receipt projections, the search projection, the router (under
// targeted routing), the consumer-lag monitor, the gateway (its writers,
// delivery hub and presence tracker), and the HTTP listener. It returns
// once the delivery hub follows every partition, the router's start
// offsets are set and the HTTP address is listening; the projections and
// the router wait for their store on their own before they consume.
//
// Stop shuts a process down in order: the edge first (HTTP requests
// finished and sockets closed with going-away), then the consumers (which
// finish and commit their batch), then the writers and the stores, then
// the broker (which flushes its files).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/contentkeys/pebblekeys"
	"github.com/parley-chat/parley/internal/diskspace"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/files/s3store"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/scyllastore"
	"github.com/parley-chat/parley/projections/search"
)

// System is a running set of roles.
type System struct {
	cfg     Config
	log     *slog.Logger
	metrics *telemetry.Metrics

	broker *embeddedkafka.Broker
	// kafka is the cluster every role's writers, readers and clients use;
	// its connections close with the system.
	kafka *kafkalog.Cluster
	// names resolves topic and group names under PARLEY_TOPIC_PREFIX.
	names  kafkalog.Names
	store  *historyStore
	search *searchIndex
	files  *s3store.Store
	// filesOrigin is the origin presigned URLs name (PARLEY_S3_PUBLIC_URL,
	// else the endpoint), which web pages upload to and load images from.
	filesOrigin string
	// keys seals and opens personal content (PARLEY_CONTENT_KEK); nil
	// when content is not sealed.
	keys    *contentkeys.Keyring
	gw      *gateway.Server
	httpSrv *http.Server
	httpLn  net.Listener

	// handoff takes the decider's appended records to the delivery hub
	// when both run here under broadcast routing; nil otherwise.
	handoff *localHandoff
	// disk watches the free space of the data directory, which holds the
	// embedded broker's log; nil with an external Kafka cluster.
	disk *diskspace.Guard
	// decider is the decider role, when it runs here: the gateway's
	// command writer hands it what it appends.
	decider *decider.Decider
	closers []func() error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errc    chan error
}

// Start starts roles. It returns once every role is running and the HTTP
// address is listening; Stop shuts them down.
func Start(ctx context.Context, cfg Config, roles Roles, log *slog.Logger) (_ *System, err error) {
	cfg = cfg.ForRoles(roles)
	// Absolute before anything opens it: the embedded file store changes
	// the process's working directory (package versitys3).
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &System{cfg: cfg, log: log, metrics: telemetry.New(), names: cfg.names(), errc: make(chan error, 8)}
	defer func() {
		if err != nil {
			s.abort()
		}
	}()
	if cfg.Embedded() {
		if err := storesOfAnotherLog(cfg); err != nil {
			return nil, err
		}
		if err := s.startBroker(); err != nil {
			return nil, err
		}
		s.kafka = kafkalog.NewCluster([]string{s.broker.Addr()}, kafkalog.DialWith(s.broker.Dial))
	} else {
		s.kafka = kafkalog.NewCluster(cfg.KafkaBrokers)
	}
	if err := s.provision(ctx); err != nil {
		return nil, err
	}
	if err := s.refuseLostRecords(ctx, consumerGroups(cfg, roles)); err != nil {
		return nil, err
	}
	// The roles run until Stop, whatever becomes of ctx.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if cfg.Embedded() {
		if err := s.watchDisk(runCtx); err != nil {
			return nil, err
		}
	}
	ready := map[string]gateway.ReadyCheck{"kafka": s.kafkaReady}
	if err := s.openKeys(ctx, roles); err != nil {
		return nil, err
	}
	if err := s.openStores(runCtx, roles, ready); err != nil {
		return nil, err
	}
	if err := s.openFiles(ctx, roles); err != nil {
		return nil, err
	}
	if roles.Decider {
		s.startDecider(runCtx, roles)
	}
	if roles.History {
		s.startHistory(runCtx)
	}
	if roles.Search {
		s.startSearch(runCtx)
	}
	if roles.Router {
		if err := s.startRouter(ctx, runCtx, roles, ready); err != nil {
			return nil, err
		}
	}
	if roles.Files {
		s.startFiles(runCtx)
	}
	if roles.Push {
		if err := s.startPush(ctx, runCtx, ready); err != nil {
			return nil, err
		}
	}
	s.monitorLag(runCtx, roles)
	if roles.Gateway {
		if err := s.startGateway(ctx, runCtx, ready); err != nil {
			return nil, err
		}
	}
	if err := s.serveHTTP(ready); err != nil {
		return nil, err
	}
	if cfg.PprofAddr != "" {
		if err := s.servePprof(cfg.PprofAddr); err != nil {
			return nil, err
		}
	}
	openFiles := checkOpenFiles(log)
	log.Info("parley started", "http", s.httpLn.Addr().String(), "kafka", s.kafka.Brokers(), "routing", cfg.Routing,
		"gateway", roles.Gateway, "decider", roles.Decider, "history", roles.History, "search", roles.Search, "router", s.routes(roles), "files", roles.Files && s.files != nil, "push", roles.Push, "gomaxprocs", runtime.GOMAXPROCS(0),
		"open_files_limit", openFiles)
	return s, nil
}

// abort undoes a Start that failed: it closes the HTTP server if it is
// serving, stops the roles started so far, waits for them, and closes
// what was opened.
func (s *System) abort() {
	if s.httpSrv != nil {
		// Serve returns only once the server is closed.
		_ = s.httpSrv.Close()
	}
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	_ = s.closeResources()
}

// HTTPAddr is the address the HTTP server listens on.
func (s *System) HTTPAddr() string { return s.httpLn.Addr().String() }

// Kafka is the cluster the system uses, until it stops.
func (s *System) Kafka() *kafkalog.Cluster { return s.kafka }

// TopicNames resolves the topic and group names the system uses.
func (s *System) TopicNames() kafkalog.Names { return s.names }

// Store is the history store, if this process opened one.
func (s *System) Store() history.Store {
	if s.store == nil {
		return nil
	}
	return s.store
}

// SearchIndex is the search index, if this process opened one.
func (s *System) SearchIndex() interface {
	Search(context.Context, search.Query) (search.Result, error)
} {
	if s.search == nil {
		return nil
	}
	return s.search
}

// Err receives the first error of a role that stopped on its own.
func (s *System) Err() <-chan error { return s.errc }

// Stop shuts everything down in order within ctx.
func (s *System) Stop(ctx context.Context) error {
	var errs []error
	var edge sync.WaitGroup
	var httpErr error
	// Stop accepting and finish HTTP requests while sockets close.
	edge.Go(func() { httpErr = s.httpSrv.Shutdown(ctx) })
	if s.gw != nil {
		errs = append(errs, s.gw.Shutdown(ctx))
	}
	edge.Wait()
	if httpErr != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", httpErr))
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("waiting for roles: %w", ctx.Err()))
	}
	errs = append(errs, s.closeResources())
	s.log.Info("parley stopped")
	return errors.Join(errs...)
}

// spawn runs fn as the role name until it returns; an error is logged and
// reported on Err. Stop waits for it.
func (s *System) spawn(name string, fn func() error) {
	s.wg.Go(func() {
		if err := fn(); err != nil {
			s.log.Error("role stopped", "role", name, "err", err)
			select {
			case s.errc <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	})
}

// onClose registers fn to run after the roles have stopped, in reverse
// order of registration, before the stores close.
func (s *System) onClose(fn func() error) { s.closers = append(s.closers, fn) }

func (s *System) closeResources() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	if s.search != nil {
		errs = append(errs, s.search.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	if s.broker != nil {
		s.broker.Close()
	}
	return errors.Join(errs...)
}

// openKeys opens the key store and the keyring of content sealing when
// PARLEY_CONTENT_KEK is set. The embedded key store (Pebble) has one
// opener, so without ScyllaDB every role that seals or opens content
// must run in this process; on ScyllaDB every process opens the shared
// table.
func (s *System) openKeys(ctx context.Context, roles Roles) error {
	kek, err := s.cfg.KEK()
	if err != nil || kek == nil {
		return err
	}
	if roles != All && len(s.cfg.ScyllaHosts) == 0 {
		return errors.New("PARLEY_CONTENT_KEK without PARLEY_SCYLLA_HOSTS needs every role in one process (parley run with PARLEY_ROLES=all): the embedded key store has one opener")
	}
	keys, closeKeys, err := OpenKeyring(ctx, s.cfg, s.log)
	if err != nil {
		return err
	}
	s.onClose(closeKeys)
	s.keys = keys
	return nil
}

// OpenKeyring opens the key store and the keyring of PARLEY_CONTENT_KEK
// over it; nil, and a closer that does nothing, when content is not
// sealed. The key store is the content_keys table of the ScyllaDB
// keyspace when PARLEY_SCYLLA_HOSTS is set, else embedded under the data
// dir (contentkeys), which has one opener: a command other than `parley
// run` opens that one only while `parley run` is stopped.
func OpenKeyring(ctx context.Context, cfg Config, log *slog.Logger) (*contentkeys.Keyring, func() error, error) {
	kek, err := cfg.KEK()
	if err != nil || kek == nil {
		return nil, func() error { return nil }, err
	}
	var store interface {
		contentkeys.Store
		Close() error
	}
	if len(cfg.ScyllaHosts) > 0 {
		sc, err := scyllaConfig(cfg, cfg.ScyllaKeyspace, log.With("component", "contentkeys"))
		if err != nil {
			return nil, nil, err
		}
		if store, err = scyllastore.Open(ctx, sc); err != nil {
			return nil, nil, fmt.Errorf("opening the key store: %w", err)
		}
	} else if store, err = pebblekeys.Open(filepath.Join(cfg.DataDir, "contentkeys"), log.With("component", "contentkeys")); err != nil {
		return nil, nil, fmt.Errorf("opening the key store (is parley run stopped?): %w", err)
	}
	keys, err := contentkeys.New(store, kek)
	if err != nil {
		_ = store.Close()
		return nil, nil, err
	}
	return keys, store.Close, nil
}

// opener is what opens sealed records for the roles: the keyring, or
// none (sealed records are then read redacted).
func (s *System) opener() consumers.Opener { return opener(s.keys) }

// Keys is the keyring of content sealing, or nil when content is not
// sealed.
func (s *System) Keys() *contentkeys.Keyring { return s.keys }
