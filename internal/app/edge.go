// The edge of a process: the gateway with its writers, delivery hub and
// presence tracker, and the HTTP listeners.

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/web"
)

// startGateway starts the gateway's receipt writer, delivery hub and
// presence tracker and builds the gateway; it waits for the hub to follow
// every partition.
func (s *System) startGateway(ctx, runCtx context.Context, ready map[string]gateway.ReadyCheck) error {
	rw := producers.NewReceiptWriter(s.kafka, s.names, time.Second, s.log)
	s.onClose(func() error { return rw.Close() })
	s.spawn("receipt-writer", func() error { return rw.Run(runCtx) })
	hub, err := s.startDelivery(ctx, runCtx, rw)
	if err != nil {
		return err
	}
	auth, err := s.verifier(runCtx, ready)
	if err != nil {
		return err
	}
	opts := []producers.CommandOption{producers.Linger(s.cfg.CommandLinger)}
	if s.cfg.Targeted() {
		opts = append(opts, producers.Origin(s.cfg.NodeID))
	}
	if s.keys != nil {
		// Commands are sealed as events are (see openKeys: with
		// sealing on, a gateway that cannot open the key store does
		// not start).
		opts = append(opts, producers.Sealing(s.keys))
	}
	if s.decider != nil {
		// The decider here owns some or all of chat.commands'
		// partitions: it takes their commands without reading them
		// back, and the log brings the rest.
		opts = append(opts, producers.Handoff(s.decider))
	}
	cw := producers.NewCommandWriter(s.kafka, s.names, s.log, opts...)
	s.onClose(func() error { return cw.Close() })
	sw := producers.NewSignalWriter(s.kafka, s.names, s.log)
	s.onClose(func() error { return sw.Close() })
	tracker := s.startPresence(runCtx, ready)
	dw := producers.NewDeviceWriter(s.kafka, s.names, s.log)
	s.onClose(dw.Close)
	keys, err := openKeys(runCtx, s.cfg, s.log.With("component", "key-directory"), &s.wg, dw)
	if err != nil {
		return err
	}
	s.onClose(keys.Close)
	ready["keys"] = keys.Ready
	gcfg := gateway.Config{
		Auth: auth, Commands: cw, Signals: sw, Presence: tracker, Hub: hub, History: s.store, Search: s.search, Metrics: s.metrics, Logger: s.log,
		Receipts: rw, Keys: keys, Ready: ready, Limits: s.cfg.limits(), CommandTimeout: s.cfg.CommandTimeout,
		Admins: s.cfg.AdminUsers,
	}
	if e := s.erasure(); e != nil {
		gcfg.Erasure = e
	}
	if s.disk != nil {
		gcfg.Disk = s.disk
	}
	s.cfg.gatewayLimits(&gcfg)
	s.fileLimits(&gcfg)
	if err := s.pushGateway(&gcfg); err != nil {
		return err
	}
	gcfg.SignIn, err = s.signIn()
	if err != nil {
		return err
	}
	client, err := web.NewHandler(web.Config{ConnectSources: s.cfg.issuerOrigins(), FileSources: s.fileSources()})
	if err != nil {
		return err
	}
	gcfg.Client = client
	s.gw, err = gateway.New(gcfg)
	return err
}

// fileSources are the origins the web client uploads files to and
// loads images from: the file store's, if there is one.
func (s *System) fileSources() []string {
	if s.filesOrigin == "" {
		return nil
	}
	return []string{s.filesOrigin}
}

// signIn is how browsers sign in: at the first OIDC issuer, with
// PARLEY_OIDC_AUDIENCE as the client id (the aud of its ID tokens); with
// development tokens on the embedded default's public dev secret (anyone
// can sign with it anyway, and Parley then listens on loopback only); or,
// with a secret of the operator's, with a pasted token.
func (s *System) signIn() (gateway.SignIn, error) {
	switch {
	case s.cfg.OIDC():
		return gateway.SignIn{OIDC: &gateway.OIDCClient{Issuer: s.cfg.OIDCIssuers[0], ClientID: s.cfg.OIDCAudience}}, nil
	case s.cfg.DevSecretInUse():
		leeway := s.cfg.JWTLeeway
		if leeway == 0 {
			leeway = gateway.NoLeeway
		}
		a, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: s.cfg.Secret(), Issuer: s.cfg.JWTIssuer, Audience: s.cfg.JWTAudience, Leeway: leeway})
		if err != nil {
			return gateway.SignIn{}, fmt.Errorf("development tokens: %w", err)
		}
		return gateway.SignIn{DevTokens: a}, nil
	}
	return gateway.SignIn{}, nil
}

// verifier returns what verifies the gateway's bearer tokens: with
// PARLEY_OIDC_ISSUER an OIDC verifier, which discovers the providers'
// keys in the background (the identity provider may start after Parley;
// /readyz reports "oidc" until every issuer's keys are loaded, and its
// tokens are refused until then), else the HS256 Authenticator.
func (s *System) verifier(runCtx context.Context, ready map[string]gateway.ReadyCheck) (gateway.Verifier, error) {
	if s.cfg.OIDC() {
		cfg := s.cfg.OIDCConfig()
		cfg.Logger = s.log.With("component", "oidc")
		v, err := gateway.NewOIDCVerifier(cfg)
		if err != nil {
			return nil, err
		}
		s.spawn("oidc", func() error { return v.Run(runCtx) })
		ready["oidc"] = v.ReadyCheck
		return v, nil
	}
	leeway := s.cfg.JWTLeeway
	if leeway == 0 {
		leeway = gateway.NoLeeway
	}
	return gateway.NewAuthenticator(gateway.AuthConfig{Secret: s.cfg.Secret(), Issuer: s.cfg.JWTIssuer, Audience: s.cfg.JWTAudience, Leeway: leeway})
}

// startDelivery starts the delivery hub, which hands events to this
// node's sessions (under targeted routing, only those routed to the node);
// it waits for the hub to follow every partition, for a role to fail, or
// for ctx.
func (s *System) startDelivery(ctx, runCtx context.Context, rw *producers.ReceiptWriter) (gatewayHub, error) {
	var node string
	if s.cfg.Targeted() {
		node = s.cfg.NodeID
	}
	hub := gatewayHub{delivery.NewHub(delivery.Config{
		Kafka: s.kafka, History: s.store, QueueSize: s.cfg.SendQueue, BackfillLimit: s.cfg.BackfillLimit,
		Delivered: rw.Delivered, Node: node, Topology: s.topology(), MaxConversations: s.cfg.ConversationCache,
		Logger: s.log, Metrics: s.metrics, Opener: s.opener(),
	})}
	// A history role in this process tells the hub when it has blanked
	// an erased user's content, which the hub's cached summaries hold.
	s.store.onErased(hub.ForgetSummaries)
	for _, cache := range []string{"membership", "latest", "views"} {
		if _, ok := hub.CachedConversations()[cache]; ok {
			s.metrics.CountCachedConversations("gateway_"+cache, func() int { return hub.CachedConversations()[cache] })
		}
	}
	s.spawn("delivery", func() error { return hub.Run(runCtx) })
	select {
	case <-hub.Ready():
		if s.handoff != nil {
			s.handoff.hub.Store(hub.Hub)
		}
		return hub, nil
	case err := <-s.errc:
		return gatewayHub{}, err
	case <-ctx.Done():
		return gatewayHub{}, ctx.Err()
	}
}

// startPresence starts the presence tracker on chat.presence; it waits
// for nothing, and /readyz reports it until it has read the topic.
func (s *System) startPresence(runCtx context.Context, ready map[string]gateway.ReadyCheck) *presence.Tracker {
	tracker := presence.New(presence.Config{
		Kafka: s.kafka, Names: s.names, NodeID: s.cfg.NodeID, Timeout: s.cfg.PresenceTimeout, Heartbeat: s.cfg.PresenceHeartbeat, Logger: s.log, Metrics: s.metrics,
		MaxOffline: s.cfg.PresenceCache,
	})
	s.metrics.CountPresenceRecords(tracker.Records)
	s.spawn("presence", func() error { return tracker.Run(runCtx) })
	ready["presence"] = func(context.Context) error {
		select {
		case <-tracker.Ready():
			return nil
		default:
			return errors.New("still reading chat.presence")
		}
	}
	return tracker
}

// serveHTTP serves the gateway on the HTTP address, or only the
// operational routes (/metrics, /healthz, /readyz) when this process runs
// no gateway; it returns once the address is listening.
func (s *System) serveHTTP(ready map[string]gateway.ReadyCheck) error {
	var handler http.Handler
	if s.gw != nil {
		handler = s.gw
	} else {
		r := chi.NewRouter()
		gateway.OpsRoutes(r, s.metrics, ready)
		handler = r
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	s.httpSrv = newHTTPServer(handler, s.cfg, s.log)
	s.spawn("http", func() error {
		if err := s.httpSrv.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// newHTTPServer returns the public HTTP server of handler. Slow clients
// are bounded by time: a request's headers must arrive within
// HTTPReadHeaderTimeout, and an idle keep-alive connection is closed
// after HTTPIdleTimeout. There is no ReadTimeout or WriteTimeout: they
// would also cut WebSockets, whose connections the server hands over
// (hijacks) with its deadlines set; sockets have their own limits (the
// auth deadline, per-write timeouts, the read limit). Request bodies are
// bounded by size in the gateway.
//
// Besides HTTP/1.1 it speaks HTTP/2 without TLS to clients that start
// with HTTP/2's preface (h2c with prior knowledge, as proxies and load
// balancers in front of it do), so that many Server-Sent Events streams
// share one connection. TLS is the load balancer's.
func newHTTPServer(handler http.Handler, cfg Config, log *slog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// servePprof serves net/http/pprof on its own listener at addr (never on
// the public HTTP address), closed with the system's resources; it
// returns once addr is listening.
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
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	s.onClose(func() error {
		err := srv.Close()
		<-served
		return err
	})
	s.log.Warn("pprof listening", "addr", ln.Addr().String())
	return nil
}
