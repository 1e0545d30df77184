// Package loadgen is Parley's load generator, behind `parley bench`. It
// opens real WebSocket connections to a running gateway as many users,
// creates conversations of a chosen shape over HTTP, sends messages at a
// fixed total rate over the sockets' send frames and measures, at the
// clients, send→ack and send→deliver latency (HDR histograms), delivery
// counts against what the membership implies, error frames by code,
// close codes, and the server's memory and CPU from its /metrics (and
// /proc/PID for a local process).
//
// It only targets loopback addresses unless the operator names a remote
// host explicitly, and every part of a run is bounded: a run ends by
// itself after its phases and their drains, or when its context is
// cancelled, and closes its sockets with 1000.
//
// Concurrency: Run owns every goroutine it starts (one reader per
// socket, a pool of writers, a pacer, a resource sampler) and waits for
// all of them before it returns. Runs share no state; several may run at
// once in one process.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/schemas"
)

// Report is what a run measured. It is written as a table by Run and as
// JSON by Main's -json.
type Report struct {
	Target    string    `json:"target"`
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	Shape     string    `json:"shape"`
	Auth      string    `json:"auth"`
	Protocol  string    `json:"protocol"`
	// Sockets asked for, and how many connected (authenticated and
	// registered for delivery, proven by a ping answered).
	Sockets       int `json:"sockets"`
	Connected     int `json:"connected"`
	Users         int `json:"users"`
	Conversations int `json:"conversations"`
	GroupSize     int `json:"group_size,omitempty"`
	// RecipientsPerMessage is the mean, over sending sockets, of the
	// other open sockets of their conversation.
	RecipientsPerMessage float64 `json:"recipients_per_message"`
	SourceAddrs          int     `json:"source_addrs"`
	// SetupSeconds is creating the conversations; ConnectSeconds is
	// opening the sockets.
	SetupSeconds   float64 `json:"setup_seconds"`
	ConnectSeconds float64 `json:"connect_seconds"`
	// SetupErrors counts failures while connecting, by kind.
	SetupErrors map[string]int64 `json:"setup_errors"`
	Phases      []Phase          `json:"phases"`
	// StepRates are the rates of step mode, and SustainedRate the
	// highest whose phase was OK (0 if none was). Steps after the first
	// that failed are not run.
	StepRates     []float64   `json:"step_rates,omitempty"`
	SustainedRate float64     `json:"sustained_rate,omitempty"`
	Server        []Resources `json:"server"`
}

// Run runs the load described by cfg and writes the report's table to
// out (if not nil). It returns the report so far with an error when
// setup fails or ctx is cancelled.
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, fmt.Errorf("invalid config: %w", err)
	}
	if err := checkFDLimit(cfg.Sockets); err != nil {
		return Report{}, err
	}
	wsPath := "/v1/ws"
	if cfg.Protocol == ProtocolCentrifugo {
		wsPath = centrifugoPath
	}
	tgt, err := resolveTarget(ctx, cfg.Target, cfg.AllowRemote, wsPath, cfg.SourceAddrs)
	if err != nil {
		return Report{}, err
	}
	auth, err := gateway.NewAuthenticator(gateway.AuthConfig{
		Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
	})
	if err != nil {
		return Report{}, fmt.Errorf("token signer: %w", err)
	}
	r := newRunner(cfg, tgt, auth)
	rep, err := r.run(ctx)
	if out != nil {
		if werr := WriteTable(out, rep); werr != nil && err == nil {
			err = fmt.Errorf("writing report: %w", werr)
		}
	}
	return rep, err
}

// runner is the state of one run.
type runner struct {
	cfg   Config
	log   *slog.Logger
	tgt   target
	auth  *gateway.Authenticator
	t0    time.Time
	runID string

	api *http.Client   // conversations and /metrics
	ws  []*http.Client // WebSocket handshakes, one per source address

	users      []string
	tokens     []string
	convUsers  [][]int // users of each conversation
	convIDs    []string
	socks      []*sock // nil where the socket did not connect
	live       []atomic.Int64
	phases     []*phaseStats
	cur        atomic.Int32 // index of the current phase; -1 before
	closing    atomic.Bool
	readCtx    context.Context
	readCancel context.CancelFunc
	readers    sync.WaitGroup

	mu          sync.Mutex
	setupErrors map[string]int64
}

func newRunner(cfg Config, tgt target, auth *gateway.Authenticator) *runner {
	var id [4]byte
	_, _ = rand.Read(id[:])
	r := &runner{
		cfg: cfg, log: cfg.Logger, tgt: tgt, auth: auth, t0: time.Now(), runID: hex.EncodeToString(id[:]),
		setupErrors: make(map[string]int64),
	}
	r.cur.Store(-1)
	r.api = &http.Client{Transport: tgt.transport(netip.Addr{}), Timeout: 60 * time.Second}
	if len(cfg.SourceAddrs) == 0 {
		r.ws = []*http.Client{{Transport: tgt.transport(netip.Addr{})}}
	}
	for _, a := range cfg.SourceAddrs {
		r.ws = append(r.ws, &http.Client{Transport: tgt.transport(a)})
	}
	for _, rate := range cfg.rates() {
		r.phases = append(r.phases, newPhaseStats(rate))
	}
	return r
}

// now is the monotonic time since the run's start.
func (r *runner) now() int64 { return int64(time.Since(r.t0)) }

func (r *runner) setupError(kind string) {
	r.mu.Lock()
	r.setupErrors[kind]++
	r.mu.Unlock()
}

func (r *runner) run(ctx context.Context) (rep Report, err error) {
	cfg := r.cfg
	rep = Report{
		Target: r.tgt.base.String(), RunID: r.runID, StartedAt: r.t0.UTC(), Shape: cfg.Shape, Auth: cfg.Auth, Protocol: cfg.Protocol,
		Sockets: cfg.Sockets, Users: cfg.Users, SourceAddrs: len(cfg.SourceAddrs), StepRates: cfg.StepRates,
	}
	if cfg.Shape == ShapeGroup {
		rep.GroupSize = cfg.GroupSize
	}
	if cfg.Protocol == ProtocolCentrifugo {
		rep.Auth = "connect command"
	}
	metrics := metricsSource(r.api, r.tgt.url("/metrics"))
	sources := []source{metrics}
	if cfg.PID > 0 {
		sources = append(sources, procSource(cfg.PID))
	}
	mon := newMonitor(r.t0, sources)
	monCtx, stopMon := context.WithCancel(ctx)
	var monDone sync.WaitGroup
	monDone.Go(func() { mon.run(monCtx) })

	r.readCtx, r.readCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		r.closeAll()
		stopMon()
		monDone.Wait()
		rep.Connected = r.connected()
		idle := true
		for _, rate := range cfg.rates() {
			idle = idle && rate == 0
		}
		rep.Server = mon.results(rep.Connected, idle)
		r.api.CloseIdleConnections()
		r.mu.Lock()
		rep.SetupErrors = r.setupErrors
		r.mu.Unlock()
		for _, p := range r.phases {
			if p.startNanos.Load() == 0 {
				break // never started
			}
			ph := p.snapshot(cfg.MaxP99)
			rep.Phases = append(rep.Phases, ph)
			if len(cfg.StepRates) > 0 && ph.OK {
				rep.SustainedRate = max(rep.SustainedRate, ph.Rate)
			}
		}
	}()

	if err := r.makeUsers(); err != nil {
		return rep, err
	}
	rep.Conversations = len(r.convUsers)
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancelSetup()
	start := time.Now()
	r.log.Info("creating conversations", "conversations", len(r.convUsers), "shape", cfg.Shape, "run_id", r.runID)
	if err := r.createConversations(setupCtx); err != nil {
		return rep, err
	}
	rep.SetupSeconds = time.Since(start).Seconds()

	mon.sample(ctx, markBefore)
	start = time.Now()
	r.log.Info("connecting", "sockets", cfg.Sockets, "source_addrs", len(cfg.SourceAddrs))
	r.connect(setupCtx)
	rep.ConnectSeconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("connecting: %w", err)
	}
	n := r.connected()
	if n == 0 {
		return rep, fmt.Errorf("no socket connected (%v)", r.setupErrors)
	}
	r.log.Info("connected", "sockets", n, "seconds", rep.ConnectSeconds)
	mon.sample(ctx, markConnected)

	senders := r.senders()
	rep.RecipientsPerMessage = r.meanRecipients(senders)
	for i, p := range r.phases {
		before, okBefore := mon.sample(ctx, markPeak)
		r.log.Info("phase", "phase", i+1, "rate", p.rate, "duration", cfg.Duration)
		r.runPhase(ctx, i, senders, r.lagSince(metrics, before, okBefore))
		after, okAfter := mon.sample(ctx, markPeak)
		if okBefore && okAfter && after.AtSeconds > before.AtSeconds {
			p.mu.Lock()
			p.serverCPU = (after.CPUSeconds - before.CPUSeconds) / (after.AtSeconds - before.AtSeconds)
			if before.ReadCalls > 0 && after.ReadCalls > 0 {
				p.readCalls, p.writeCalls = after.ReadCalls-before.ReadCalls, after.WriteCalls-before.WriteCalls
			}
			p.mu.Unlock()
		}
		snap := p.snapshot(cfg.MaxP99)
		r.log.Info("phase done", "phase", i+1, "rate", p.rate, "ok", snap.OK, "verdict", snap.Verdict,
			"deliver_p99_ms", snap.Deliver.P99Ms)
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("phase %d: %w", i+1, err)
		}
		if len(cfg.StepRates) > 0 && !snap.OK {
			break
		}
	}
	mon.sample(ctx, markEnd)
	return rep, nil
}

// lagSince returns the lagFunc of a phase that started at before.
func (r *runner) lagSince(metrics source, before Sample, ok bool) lagFunc {
	return func(ctx context.Context, acked int64) map[string]int64 {
		if !ok || len(before.ConsumerRecords) == 0 {
			return nil // no figures to judge by
		}
		now, err := metrics.read(ctx)
		if err != nil {
			return nil
		}
		var out map[string]int64
		for group, v0 := range before.ConsumerRecords {
			if strings.HasSuffix(group, schemas.GroupReceipts) {
				// Read and delivered markers, coalesced per user and
				// conversation: far fewer records than messages, so
				// the count of messages says nothing about this group.
				continue
			}
			if applied := now.ConsumerRecords[group] - v0; applied < acked {
				if out == nil {
					out = make(map[string]int64)
				}
				out[group] = acked - applied
			}
		}
		return out
	}
}

// makeUsers names the users, signs their tokens and groups them into
// conversations.
func (r *runner) makeUsers() error {
	cfg := r.cfg
	prefix := cfg.UserPrefix
	if prefix == "" {
		prefix = "lg-" + r.runID + "-"
	}
	ttl := cfg.SetupTimeout + time.Duration(len(r.phases))*(cfg.Duration+cfg.Drain) + 10*time.Minute
	now := time.Now()
	r.users = make([]string, cfg.Users)
	r.tokens = make([]string, cfg.Users)
	for i := range r.users {
		r.users[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	size := 2
	if cfg.Shape == ShapeGroup {
		size = cfg.GroupSize
	}
	for c := 0; c*size < cfg.Users; c++ {
		var us []int
		for u := c * size; u < (c+1)*size && u < cfg.Users; u++ {
			us = append(us, u)
		}
		r.convUsers = append(r.convUsers, us)
	}
	r.convIDs = make([]string, len(r.convUsers))
	r.live = make([]atomic.Int64, len(r.convUsers))
	for i, u := range r.users {
		tok, err := r.auth.Issue(u, ttl, now)
		if err != nil {
			return fmt.Errorf("signing a token for %s: %w", u, err)
		}
		r.tokens[i] = tok
	}
	return nil
}

// convOf is the conversation of user u.
func (r *runner) convOf(u int) int {
	if r.cfg.Shape == ShapeGroup {
		return u / r.cfg.GroupSize
	}
	return u / 2
}

func (r *runner) connected() int {
	n := 0
	for _, s := range r.socks {
		if s != nil {
			n++
		}
	}
	return n
}

// senders lists the connected sockets interleaved by conversation, so
// that round-robin over it spreads the rate evenly over conversations.
func (r *runner) senders() []*sock {
	byConv := make([][]*sock, len(r.convUsers))
	for _, s := range r.socks {
		if s != nil {
			byConv[s.conv] = append(byConv[s.conv], s)
		}
	}
	var out []*sock
	for round := 0; ; round++ {
		added := false
		for _, ss := range byConv {
			if round < len(ss) {
				out = append(out, ss[round])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func (r *runner) meanRecipients(senders []*sock) float64 {
	if len(senders) == 0 {
		return 0
	}
	var sum int64
	for _, s := range senders {
		sum += r.live[s.conv].Load() - 1
	}
	return float64(sum) / float64(len(senders))
}

// closeAll closes every socket with 1000 and waits for the readers. It
// is bounded: sockets still open after 30 s are torn down.
func (r *runner) closeAll() {
	r.closing.Store(true)
	work := make(chan *sock)
	var wg sync.WaitGroup
	for range min(256, max(1, len(r.socks))) {
		wg.Go(func() {
			for s := range work {
				_ = s.c.Close(websocket.StatusNormalClosure, "load test done")
			}
		})
	}
	for _, s := range r.socks {
		if s != nil {
			work <- s
		}
	}
	close(work)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		r.log.Warn("sockets did not close in time; tearing them down")
	}
	r.readCancel()
	<-done // Close returns once the connection is torn down
	r.readers.Wait()
}
