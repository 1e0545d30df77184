// Package app wires Parley's roles into a process: it starts the embedded
// broker when no cluster is configured, provisions the topics, opens the
// stores, runs the decider, the projections and the gateway, and shuts
// them down in order — edge first (sockets closed with going-away), then
// consumers (which finish and commit their batch), then stores, then the
// broker (which flushes its files).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/projections/router"
	"github.com/parley-chat/parley/projections/search"
	"github.com/parley-chat/parley/schemas"
)

// Roles selects what a process runs.
type Roles struct {
	Gateway bool
	Decider bool
	History bool
	Search  bool
	// Router routes events to the gateway nodes that need them; it runs
	// only under targeted routing (Config.Routing).
	Router bool
}

// All is every role: `parley run`.
var All = Roles{Gateway: true, Decider: true, History: true, Search: true, Router: true}

// System is a running set of roles.
type System struct {
	cfg     Config
	log     *slog.Logger
	metrics *telemetry.Metrics

	broker  *embeddedkafka.Broker
	brokers []string
	// names resolves topic and group names under PARLEY_TOPIC_PREFIX.
	names   kafkalog.Names
	store   *historyStore
	search  *searchIndex
	gw      *gateway.Server
	httpSrv *http.Server
	httpLn  net.Listener

	closers []func() error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errc    chan error
}

// Start starts roles. It returns once every role is running and the HTTP
// address is listening; Stop shuts them down.
func Start(ctx context.Context, cfg Config, roles Roles, log *slog.Logger) (_ *System, err error) {
	s := &System{cfg: cfg, log: log, metrics: telemetry.New(), brokers: cfg.KafkaBrokers, names: kafkalog.Names{Prefix: cfg.TopicPrefix}, errc: make(chan error, 8)}
	defer func() {
		if err != nil {
			if s.cancel != nil {
				s.cancel()
				s.wg.Wait()
			}
			_ = s.closeResources()
		}
	}()
	if cfg.Embedded() {
		s.broker, err = embeddedkafka.Start(embeddedkafka.Config{Dir: filepath.Join(cfg.DataDir, "kafka"), Addr: cfg.KafkaListen, Logger: log})
		if err != nil {
			return nil, err
		}
		s.brokers = []string{s.broker.Addr()}
		log.Info("embedded kafka listening", "addr", s.broker.Addr())
	}
	if err := s.provision(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	ready := map[string]gateway.ReadyCheck{"kafka": s.kafkaReady}
	if roles.Gateway || roles.History || roles.Router {
		s.store, err = openHistory(runCtx, cfg, log.With("component", "history-store"), &s.wg)
		if err != nil {
			return nil, err
		}
		ready["history"] = s.store.Ready
	}
	if roles.Gateway || roles.Search {
		s.search, err = openSearch(runCtx, cfg, log.With("component", "search-index"), &s.wg)
		if err != nil {
			return nil, err
		}
		ready["search"] = s.search.Ready
	}
	if roles.Decider {
		d := decider.New(decider.Config{
			Brokers: s.brokers, Names: s.names, Logger: log, Metrics: s.metrics,
			Limits: decider.Limits{Limits: cfg.limits()},
		})
		s.spawn("decider", func() error { return d.Run(runCtx) })
	}
	if roles.History {
		s.spawn("history", func() error {
			// Consume only once the store can take writes: nothing is
			// fetched, so nothing waits uncommitted.
			if err := s.store.Wait(runCtx); err != nil {
				return nil
			}
			return consumers.RunGroup(runCtx, consumers.GroupConfig{
				Brokers: s.brokers, Names: s.names, GroupID: s.names.Group(schemas.GroupHistory), Topic: s.names.Topic(schemas.TopicEvents),
				Logger: log.With("component", "history"), Metrics: s.metrics,
			}, history.Projection{W: s.store})
		})
		s.spawn("receipts", func() error {
			if err := s.store.Wait(runCtx); err != nil {
				return nil
			}
			return consumers.RunGroup(runCtx, consumers.GroupConfig{
				Brokers: s.brokers, Names: s.names, GroupID: s.names.Group(schemas.GroupReceipts), Topic: s.names.Topic(schemas.TopicReceipts),
				Logger: log.With("component", "receipts"), Metrics: s.metrics,
			}, history.ReceiptProjection{W: s.store})
		})
	}
	if roles.Search {
		s.spawn("search", func() error {
			if err := s.search.Wait(runCtx); err != nil {
				return nil
			}
			return consumers.RunGroup(runCtx, consumers.GroupConfig{
				Brokers: s.brokers, Names: s.names, GroupID: s.names.Group(schemas.GroupSearch), Topic: s.names.Topic(schemas.TopicEvents),
				Logger: log.With("component", "search"), Metrics: s.metrics,
			}, search.Projection{Index: s.search})
		})
	}
	if roles.Router && cfg.Targeted() {
		if err := s.startRouter(ctx, runCtx, ready); err != nil {
			return nil, err
		}
	}
	if roles.Router && !cfg.Targeted() && !roles.Gateway {
		log.Warn("PARLEY_ROUTING is broadcast: every gateway reads every event and the router has nothing to do")
	}
	var lagSources []consumers.LagSource
	if roles.Decider {
		lagSources = append(lagSources, consumers.LagSource{Group: s.names.Group(schemas.GroupDecider), Topic: s.names.Topic(schemas.TopicCommands)})
	}
	if roles.History {
		lagSources = append(lagSources, consumers.LagSource{Group: s.names.Group(schemas.GroupHistory), Topic: s.names.Topic(schemas.TopicEvents)},
			consumers.LagSource{Group: s.names.Group(schemas.GroupReceipts), Topic: s.names.Topic(schemas.TopicReceipts)})
	}
	if roles.Search {
		lagSources = append(lagSources, consumers.LagSource{Group: s.names.Group(schemas.GroupSearch), Topic: s.names.Topic(schemas.TopicEvents)})
	}
	if roles.Router && cfg.Targeted() {
		lagSources = append(lagSources, consumers.LagSource{Group: s.names.Group(schemas.GroupRouter), Topic: s.names.Topic(schemas.TopicEvents)})
	}
	if len(lagSources) > 0 {
		s.wg.Go(func() {
			consumers.MonitorLag(runCtx, kafkalog.NewClient(s.brokers), lagSources, s.metrics.ConsumerLag, 5*time.Second, log)
		})
	}
	r := chi.NewRouter()
	var handler http.Handler = r
	if roles.Gateway {
		rw := producers.NewReceiptWriter(s.brokers, s.names, time.Second, log)
		s.onClose(func() error { return rw.Close() })
		s.spawn("receipt-writer", func() error { return rw.Run(runCtx) })
		var node string
		var origin []producers.CommandOption
		if cfg.Targeted() {
			node, origin = cfg.NodeID, []producers.CommandOption{producers.Origin(cfg.NodeID)}
		}
		hub := gatewayHub{delivery.NewHub(delivery.Config{
			Brokers: s.brokers, History: s.store, QueueSize: cfg.SendQueue, BackfillLimit: cfg.BackfillLimit,
			Delivered: rw.Delivered, Node: node, Topology: s.topology(), Logger: log, Metrics: s.metrics,
		})}
		s.spawn("delivery", func() error { return hub.Run(runCtx) })
		select {
		case <-hub.Ready():
		case err := <-s.errc:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: cfg.Secret(), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
		if err != nil {
			return nil, err
		}
		cw := producers.NewCommandWriter(s.brokers, s.names, log, origin...)
		s.onClose(func() error { return cw.Close() })
		sw := producers.NewSignalWriter(s.brokers, s.names, log)
		s.onClose(func() error { return sw.Close() })
		tracker := presence.New(presence.Config{
			Brokers: s.brokers, Names: s.names, NodeID: cfg.NodeID, Timeout: cfg.PresenceTimeout, Heartbeat: cfg.PresenceHeartbeat, Logger: log,
		})
		s.spawn("presence", func() error { return tracker.Run(runCtx) })
		ready["presence"] = func(context.Context) error {
			select {
			case <-tracker.Ready():
				return nil
			default:
				return errors.New("still reading chat.presence")
			}
		}
		s.gw, err = gateway.New(gateway.Config{
			Auth: auth, Commands: cw, Signals: sw, Presence: tracker, Hub: hub, History: s.store, Search: s.search, Metrics: s.metrics, Logger: log,
			Receipts: rw, Ready: ready, Limits: cfg.limits(), CommandTimeout: cfg.CommandTimeout,
		})
		if err != nil {
			return nil, err
		}
		handler = s.gw
	} else {
		gateway.OpsRoutes(r, s.metrics, ready)
	}
	s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
	}
	s.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	s.spawn("http", func() error {
		if err := s.httpSrv.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if cfg.PprofAddr != "" {
		if err := s.servePprof(cfg.PprofAddr); err != nil {
			return nil, err
		}
	}
	log.Info("parley started", "http", s.httpLn.Addr().String(), "kafka", s.brokers, "routing", cfg.Routing,
		"gateway", roles.Gateway, "decider", roles.Decider, "history", roles.History, "search", roles.Search, "router", roles.Router && cfg.Targeted())
	return s, nil
}

// servePprof serves net/http/pprof on its own listener at addr (never on
// the public HTTP address), closed with the system's resources.
func (s *System) servePprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (pprof): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.onClose(srv.Close)
	s.log.Warn("pprof listening", "addr", ln.Addr().String())
	return nil
}

// HTTPAddr is the address the HTTP server listens on.
func (s *System) HTTPAddr() string { return s.httpLn.Addr().String() }

// KafkaBrokers are the brokers the system uses.
func (s *System) KafkaBrokers() []string { return s.brokers }

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
	if s.broker != nil {
		s.broker.Close()
	}
	return errors.Join(errs...)
}

// startRouter starts the router role: the group's start offsets are set
// before Start returns, so that nothing appended from then on goes
// unrouted, even while the router is still joining.
func (s *System) startRouter(ctx, runCtx context.Context, ready map[string]gateway.ReadyCheck) error {
	rt := router.New(router.Config{
		Brokers: s.brokers, History: s.store, Topology: s.topology(),
		Logger: s.log, Metrics: s.metrics,
	})
	if err := rt.Prepare(ctx); err != nil {
		return err
	}
	s.spawn("router", func() error {
		// Members of conversations it has not seen come from history.
		if err := s.store.Wait(runCtx); err != nil {
			return nil
		}
		return rt.Run(runCtx)
	})
	ready["router"] = func(context.Context) error {
		select {
		case <-rt.Ready():
			return nil
		default:
			return errors.New("router starting")
		}
	}
	return nil
}

func (s *System) topology() kafkalog.Topology {
	return kafkalog.Topology{Names: s.names, Partitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor}
}

// provision creates the topics, retrying for a minute while the cluster
// is not ready; a partition count that differs from the configured one
// is final.
func (s *System) provision(ctx context.Context) error {
	client := kafkalog.NewClient(s.brokers)
	topo := s.topology()
	b := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, For: time.Minute, OnRetry: func(err error, wait time.Duration) {
		s.log.Warn("kafka not ready; retrying", "err", err, "backoff", wait)
	}}
	return b.Do(ctx, func(ctx context.Context) error {
		err := kafkalog.Provision(ctx, client, topo)
		if errors.Is(err, kafkalog.ErrPartitionMismatch) {
			return retry.Permanent(err)
		}
		return err
	})
}

func (s *System) kafkaReady(ctx context.Context) error {
	_, err := kafkalog.Partitions(ctx, kafkalog.NewClient(s.brokers), s.names.Topic(schemas.TopicEvents))
	return err
}
