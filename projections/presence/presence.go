// Package presence is the presence projection of a gateway node: which
// users are online, away or offline, and since when, built from the
// compacted chat.presence topic, which every node both follows and writes.
//
// Each node owns, in every user's record, one entry listing the user's
// devices connected to that node, with an expiry one Timeout ahead. It
// publishes the user's record — the latest it has seen, its own entry
// replaced — on every connect, disconnect and status change, and
// re-publishes each entry within one Heartbeat of its last publication,
// each user on their own schedule. A node that crashes stops
// re-publishing, so its entries expire and its users go offline within
// Timeout; the other nodes notice on their next sweep and push the change
// to watchers. Two nodes publishing one user's record at the same moment
// may each miss the other's entry; the node that finds its entry missing
// re-publishes at once, so records converge within one round trip.
//
// Watchers get changes batched once per Flush. A Tracker is safe for
// concurrent use.
//
// The same records make the session registry of targeted routing: a
// Registry (the router's) reads them, never writes, and answers which
// nodes hold a user's sockets now.
package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/due"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/schemas"
)

// Config configures a Tracker.
type Config struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// Names resolves chat.presence under the deployment's prefix.
	Names kafkalog.Names
	// NodeID names this node's entries; unique per running node.
	NodeID string
	// Heartbeat is how long a user's entry may go without the node
	// re-publishing it (it does so between nine and ten tenths of it
	// after the last publication). Each user's falls due on their own
	// schedule, so the re-publications are spread over the interval as
	// the connects were, not appended all at once. Default: 10s.
	Heartbeat time.Duration
	// Timeout is how long an entry counts after its publication: a
	// crashed node's users go offline within it. Default: 30s.
	Timeout time.Duration
	// Flush is how often watchers get the changes batched. Default: 1s.
	Flush time.Duration
	// MaxOffline is how many offline users' last records (their
	// last-seen time) the tracker keeps in memory. Beyond it, the least
	// recently seen offline users without a device on this node and
	// without a watcher are forgotten: such a user is shown offline with
	// no last-seen time until they connect again. Default: 100,000.
	MaxOffline int
	Logger     *slog.Logger
	// Metrics counts the errors of the presence readers. Default: a
	// fresh telemetry.Metrics.
	Metrics *telemetry.Metrics
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Flush == 0 {
		c.Flush = time.Second
	}
	if c.MaxOffline == 0 {
		c.MaxOffline = 100_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// State is a user's presence as clients see it.
type State struct {
	UserID string `json:"user_id"`
	Status string `json:"status"`
	// LastSeen is when an offline user was last connected; zero when
	// online or away, or when unknown.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Tracker is one node's presence projection.
type Tracker struct {
	cfg Config
	log *slog.Logger
	w   *kafka.Writer

	mu     sync.Mutex
	local  map[string]map[string]string // user -> device -> status, on this node
	latest map[string]*schemas.PresenceV1
	// offline orders the users whose latest record is offline, least
	// recently seen last, to bound them (Config.MaxOffline).
	offline  *lru.Map[string, struct{}]
	notified map[string]State
	watchers map[string]map[*Watch]struct{}
	// dirty are the watches with changes pending, for the next flush.
	dirty map[*Watch]struct{}
	// beats schedules each local user's next heartbeat (see heartbeat).
	beats due.Queue[string]
	ready chan struct{}
}

// heartbeatSlices is how many times per Heartbeat the tracker looks for
// the entries due.
const heartbeatSlices = 10

// sweepStride is how many records a sweep looks at under one hold of the
// tracker's lock.
const sweepStride = 1024

// New returns a Tracker; Run starts it.
func New(cfg Config) *Tracker {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "presence")
	t := &Tracker{
		cfg:      cfg,
		log:      log,
		w:        kafkalog.NewWriter(cfg.Kafka, cfg.Names.Topic(schemas.TopicPresence), kafkalog.LeaderAck()),
		local:    make(map[string]map[string]string),
		latest:   make(map[string]*schemas.PresenceV1),
		notified: make(map[string]State),
		watchers: make(map[string]map[*Watch]struct{}),
		dirty:    make(map[*Watch]struct{}),
		ready:    make(chan struct{}),
	}
	// Called with t.mu held, as every use of offline is. A user still
	// connected here or watched keeps the record until it next changes.
	t.offline = lru.New(cfg.MaxOffline, lru.OnEvict(func(user string, _ struct{}) {
		if len(t.local[user]) == 0 && len(t.watchers[user]) == 0 {
			delete(t.latest, user)
		}
	}))
	return t
}

// Records returns how many users' latest records the tracker keeps.
func (t *Tracker) Records() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.latest)
}

// setLatest records rec as user's latest. Call with t.mu held.
func (t *Tracker) setLatest(user string, rec *schemas.PresenceV1) {
	t.latest[user] = rec
	if rec.Status == schemas.StatusOffline {
		t.offline.Put(user, struct{}{})
	} else {
		t.offline.Delete(user)
	}
}

// Ready is closed once the tracker has read chat.presence up to where it
// stood when Run started.
func (t *Tracker) Ready() <-chan struct{} { return t.ready }

// Run follows chat.presence, heartbeats, sweeps expired entries and
// flushes watchers until ctx is done.
func (t *Tracker) Run(ctx context.Context) error {
	defer t.w.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	topic := t.cfg.Names.Topic(schemas.TopicPresence)
	errs, err := follow(ctx, t.cfg.Kafka, topic, t.log, t.cfg.Metrics.KafkaReaderErrors.WithLabelValues("", topic), &wg, t.apply)
	if err != nil || ctx.Err() != nil {
		return err
	}
	close(t.ready)

	heartbeat := time.NewTicker(t.cfg.Heartbeat / heartbeatSlices)
	defer heartbeat.Stop()
	sweep := time.NewTicker(t.cfg.Heartbeat)
	defer sweep.Stop()
	flush := time.NewTicker(t.cfg.Flush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case <-heartbeat.C:
			t.heartbeat(ctx)
		case <-sweep.C:
			t.sweep(ctx)
		case <-flush.C:
			t.flush()
		}
	}
}

// follow reads every partition of chat.presence from the start (see
// kafkalog.Follow) and calls apply for every presence record,
// concurrently across partitions.
func follow(ctx context.Context, cluster *kafkalog.Cluster, topic string, log *slog.Logger, readerErrs kafkalog.Counter, wg *sync.WaitGroup, apply func(context.Context, *schemas.PresenceV1)) (<-chan error, error) {
	return kafkalog.Follow(ctx, cluster, topic, log, readerErrs, wg, func(m kafka.Message) {
		if attrs, err := kafkalog.Decode(m); err == nil && attrs.Type == schemas.TypePresence {
			if v, err := schemas.Decode(attrs.Type, m.Value); err == nil {
				apply(ctx, v.(*schemas.PresenceV1))
			} else {
				log.Warn("skipping presence record", "partition", m.Partition, "offset", m.Offset, "err", err)
			}
		}
	})
}

// apply takes a record from the log as the user's latest.
func (t *Tracker) apply(ctx context.Context, rec *schemas.PresenceV1) {
	t.mu.Lock()
	t.setLatest(rec.UserID, rec)
	t.changed(rec.UserID)
	// Another node's concurrent publication may have dropped our entry:
	// put it back at once rather than at the next heartbeat.
	_, mine := t.local[rec.UserID]
	missing := mine && !slices.ContainsFunc(rec.Nodes, func(n schemas.PresenceNodeV1) bool { return n.NodeID == t.cfg.NodeID })
	t.mu.Unlock()
	if missing {
		t.publish(ctx, rec.UserID)
	}
}

// Connect records a device of user as online on this node and returns
// the function to call when it disconnects.
func (t *Tracker) Connect(ctx context.Context, user, device string) (disconnect func()) {
	t.mu.Lock()
	if t.local[user] == nil {
		t.local[user] = make(map[string]string)
	}
	t.local[user][device] = schemas.StatusOnline
	t.mu.Unlock()
	t.publish(ctx, user)
	return func() {
		t.mu.Lock()
		delete(t.local[user], device)
		if len(t.local[user]) == 0 {
			delete(t.local, user)
		}
		t.mu.Unlock()
		// The socket's context is gone by now; the record must still go.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		t.publish(pctx, user)
	}
}

// SetStatus sets a connected device's status (online or away).
func (t *Tracker) SetStatus(ctx context.Context, user, device, status string) error {
	if status != schemas.StatusOnline && status != schemas.StatusAway {
		return fmt.Errorf("status must be online or away, got %q", status)
	}
	t.mu.Lock()
	_, ok := t.local[user][device]
	if ok {
		t.local[user][device] = status
	}
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("device %q of %s is not connected here", device, user)
	}
	t.publish(ctx, user)
	return nil
}

// Get returns the current state of each user.
func (t *Tracker) Get(users []string) []State {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]State, len(users))
	for i, u := range users {
		out[i] = t.effective(u, now)
	}
	return out
}

// effective computes a user's state from the live entries of other nodes
// and this node's own devices. Call with t.mu held.
func (t *Tracker) effective(user string, now time.Time) State {
	st := State{UserID: user, Status: schemas.StatusOffline}
	var devices []schemas.PresenceDeviceV1
	var lastHeartbeat time.Time
	rec := t.latest[user]
	if rec != nil {
		for _, n := range rec.Nodes {
			if n.NodeID == t.cfg.NodeID {
				continue
			}
			if n.ExpiresAt.After(now) {
				devices = append(devices, n.Devices...)
			} else if hb := n.ExpiresAt.Add(-t.cfg.Timeout); hb.After(lastHeartbeat) {
				lastHeartbeat = hb
			}
		}
	}
	for d, s := range t.local[user] {
		devices = append(devices, schemas.PresenceDeviceV1{DeviceID: d, Status: s})
	}
	if len(devices) > 0 {
		st.Status = schemas.StatusAway
		if slices.ContainsFunc(devices, func(d schemas.PresenceDeviceV1) bool { return d.Status == schemas.StatusOnline }) {
			st.Status = schemas.StatusOnline
		}
		return st
	}
	if rec != nil {
		st.LastSeen = rec.LastSeen
		if rec.Status != schemas.StatusOffline {
			// Its nodes went away without saying so: last seen at
			// their last heartbeat.
			st.LastSeen = lastHeartbeat
		}
	}
	return st
}

// record builds the user's record as this node publishes it now. Call
// with t.mu held.
func (t *Tracker) record(user string, now time.Time) *schemas.PresenceV1 {
	rec := &schemas.PresenceV1{UserID: user, Nodes: []schemas.PresenceNodeV1{}, UpdatedAt: now}
	prev := t.latest[user]
	if prev != nil {
		for _, n := range prev.Nodes {
			if n.NodeID != t.cfg.NodeID && n.ExpiresAt.After(now) {
				rec.Nodes = append(rec.Nodes, n)
			}
		}
	}
	if devs := t.local[user]; len(devs) > 0 {
		own := schemas.PresenceNodeV1{NodeID: t.cfg.NodeID, ExpiresAt: now.Add(t.cfg.Timeout), Devices: []schemas.PresenceDeviceV1{}}
		for d, s := range devs {
			own.Devices = append(own.Devices, schemas.PresenceDeviceV1{DeviceID: d, Status: s})
		}
		slices.SortFunc(own.Devices, func(a, b schemas.PresenceDeviceV1) int { return strings.Compare(a.DeviceID, b.DeviceID) })
		rec.Nodes = append(rec.Nodes, own)
	}
	slices.SortFunc(rec.Nodes, func(a, b schemas.PresenceNodeV1) int { return strings.Compare(a.NodeID, b.NodeID) })
	eff := t.effective(user, now)
	rec.Status = eff.Status
	switch {
	case eff.Status != schemas.StatusOffline:
		rec.LastSeen = now
	case prev != nil && prev.Status == schemas.StatusOffline:
		rec.LastSeen = prev.LastSeen
	case !eff.LastSeen.IsZero():
		rec.LastSeen = eff.LastSeen
	default:
		rec.LastSeen = now // just went offline
	}
	return rec
}

// publish writes the current record of each user, applying it locally at
// once.
func (t *Tracker) publish(ctx context.Context, users ...string) {
	if len(users) == 0 {
		return
	}
	now := t.cfg.Now().UTC()
	msgs := make([]kafka.Message, 0, len(users))
	t.mu.Lock()
	for _, u := range users {
		rec := t.record(u, now)
		t.setLatest(u, rec)
		t.changed(u)
		if len(t.local[u]) > 0 {
			t.beats.Schedule(u, now.Add(t.cfg.Heartbeat-t.cfg.Heartbeat/heartbeatSlices))
		} else {
			t.beats.Cancel(u)
		}
		value, err := json.Marshal(rec)
		if err != nil {
			continue
		}
		msgs = append(msgs, kafkalog.Encode(kafkalog.NewAttributes(schemas.TypePresence, u, now), value))
	}
	t.mu.Unlock()
	if err := t.w.WriteMessages(ctx, msgs...); err != nil && ctx.Err() == nil {
		t.log.Warn("publishing presence", "users", len(users), "err", err)
	}
}

// sweep finds users whose other nodes' entries expired (a crashed node):
// their watchers learn the change, and those left with no device are
// recorded offline. A record whose other entries are all live is passed
// over at the cost of a comparison. Every node keeps every user's record,
// so the scan lets go of the lock every sweepStride records: a connect, a
// presence query or a record read from the log waits for a stride, not
// for the whole table. (Go's range over a map may go on after the map
// changed: a record added meanwhile is seen now or on the next sweep.)
func (t *Tracker) sweep(ctx context.Context) {
	now := t.cfg.Now()
	var gone []string
	t.mu.Lock()
	n := 0
	for u, rec := range t.latest {
		if n++; n%sweepStride == 0 {
			t.mu.Unlock()
			t.mu.Lock()
		}
		if rec.Status == schemas.StatusOffline || len(t.local[u]) > 0 || t.live(rec, now) {
			continue
		}
		t.changed(u)
		if t.effective(u, now).Status == schemas.StatusOffline {
			gone = append(gone, u)
		}
	}
	t.mu.Unlock()
	// Every node may write the same offline record; that is harmless.
	t.publish(ctx, gone...)
}

// live tells whether every entry of rec from another node is live at now,
// and there is one: then its user's state is what it was when rec was
// taken, and only an expiry since can change it.
func (t *Tracker) live(rec *schemas.PresenceV1, now time.Time) bool {
	others := false
	for _, n := range rec.Nodes {
		if n.NodeID == t.cfg.NodeID {
			continue
		}
		if !n.ExpiresAt.After(now) {
			return false
		}
		others = true
	}
	return others
}

// heartbeat re-publishes the local users whose record this node last
// published at least Heartbeat less one slice ago (publish schedules
// each): looked for once a slice, each is re-published within one
// Heartbeat of the last time, as the Timeout relies on. A publication
// since (a connect, a status change) schedules the user anew; a
// disconnect cancels the beat.
func (t *Tracker) heartbeat(ctx context.Context) {
	now := t.cfg.Now().UTC()
	t.mu.Lock()
	users := t.beats.Take(now)
	t.mu.Unlock()
	t.publish(ctx, users...)
}

// changed queues user's state for its watchers if it differs from what
// they were last told. Call with t.mu held.
func (t *Tracker) changed(user string) {
	ws := t.watchers[user]
	if len(ws) == 0 {
		return
	}
	st := t.effective(user, t.cfg.Now())
	if t.notified[user] == st {
		return
	}
	t.notified[user] = st
	for w := range ws {
		w.pending[user] = st
		t.dirty[w] = struct{}{}
	}
}

func (t *Tracker) flush() {
	type batch struct {
		w      *Watch
		states []State
	}
	t.mu.Lock()
	out := make([]batch, 0, len(t.dirty))
	for w := range t.dirty {
		b := batch{w: w, states: make([]State, 0, len(w.pending))}
		for _, st := range w.pending {
			b.states = append(b.states, st)
		}
		clear(w.pending)
		slices.SortFunc(b.states, func(a, b State) int { return strings.Compare(a.UserID, b.UserID) })
		out = append(out, b)
	}
	clear(t.dirty)
	t.mu.Unlock()
	for _, b := range out {
		b.w.notify(b.states)
	}
}

// Watch is a subscription to some users' presence changes.
type Watch struct {
	t       *Tracker
	users   []string
	notify  func([]State)
	pending map[string]State
}

// Watch subscribes to users' changes, batched once per Flush into calls
// of notify (which must not block), and returns their current states.
func (t *Tracker) Watch(users []string, notify func([]State)) (*Watch, []State) {
	w := &Watch{t: t, users: slices.Clone(users), notify: notify, pending: make(map[string]State)}
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	states := make([]State, len(users))
	for i, u := range users {
		if t.watchers[u] == nil {
			t.watchers[u] = make(map[*Watch]struct{})
		}
		t.watchers[u][w] = struct{}{}
		states[i] = t.effective(u, now)
		t.notified[u] = states[i]
	}
	return w, states
}

// Close ends the subscription.
func (w *Watch) Close() {
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.dirty, w)
	for _, u := range w.users {
		delete(t.watchers[u], w)
		if len(t.watchers[u]) == 0 {
			delete(t.watchers, u)
			delete(t.notified, u)
			if rec := t.latest[u]; rec != nil && rec.Status == schemas.StatusOffline {
				// Bounded again, in case it was spared while watched.
				t.offline.Put(u, struct{}{})
			}
		}
	}
}
