// The session registry: which gateway nodes hold each user's sockets,
// read from chat.presence.

package presence

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// Names resolves chat.presence under the deployment's prefix.
	Names kafkalog.Names
	// OnRegister, if set, is called when a user's sockets appear on a
	// node where the registry did not have them (a first socket there,
	// or entries that had expired or gone missing and came back). It is
	// not called while the registry catches up on start, is called from
	// the registry's reading goroutines, and must not block.
	OnRegister func(user, node string)
	Logger     *slog.Logger
	// ReaderErrors, if set, counts the errors of the registry's readers
	// (kafkalog.ReaderErrors).
	ReaderErrors kafkalog.Counter
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Registry is the session registry of targeted routing: which gateway
// nodes hold sockets of which user. It is built from the same compacted
// chat.presence topic the gateways publish (each user's record has one
// entry per node holding the user's sockets, with an expiry), which it
// reads and never writes. A node's entry counts until it expires, so a
// crashed node stops being routed to within the presence timeout.
//
// It is safe for concurrent use.
type Registry struct {
	cfg RegistryConfig
	log *slog.Logger

	mu    sync.RWMutex
	users map[string][]nodeEntry
	ready chan struct{}
}

type nodeEntry struct {
	node    string
	expires time.Time
	devices []string
}

// NewRegistry returns a Registry; Run starts it.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Registry{cfg: cfg, log: cfg.Logger.With("component", "registry"), users: make(map[string][]nodeEntry), ready: make(chan struct{})}
}

// Ready is closed once the registry has read chat.presence up to where it
// stood when Run started.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// Run follows chat.presence until ctx is done.
func (r *Registry) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errs, err := follow(ctx, r.cfg.Kafka, r.cfg.Names.Topic(schemas.TopicPresence), r.log, r.cfg.ReaderErrors, &wg, r.apply)
	if err != nil || ctx.Err() != nil {
		return err
	}
	close(r.ready)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// AppendNodes appends to dst the nodes that hold sockets of user now.
func (r *Registry) AppendNodes(dst []string, user string) []string {
	now := r.cfg.Now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.users[user] {
		if e.expires.After(now) {
			dst = append(dst, e.node)
		}
	}
	return dst
}

// Connected reports whether device of user has a live socket on some
// node now: the push projection notifies only devices that do not.
func (r *Registry) Connected(user, device string) bool {
	now := r.cfg.Now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.users[user] {
		if e.expires.After(now) && slices.Contains(e.devices, device) {
			return true
		}
	}
	return false
}

// apply takes a record from the log as the user's latest.
func (r *Registry) apply(_ context.Context, rec *schemas.PresenceV1) {
	now := r.cfg.Now()
	var entries []nodeEntry
	for _, n := range rec.Nodes {
		if n.ExpiresAt.After(now) && len(n.Devices) > 0 {
			e := nodeEntry{node: n.NodeID, expires: n.ExpiresAt}
			for _, d := range n.Devices {
				e.devices = append(e.devices, d.DeviceID)
			}
			entries = append(entries, e)
		}
	}
	r.mu.Lock()
	old := r.users[rec.UserID]
	if len(entries) == 0 {
		delete(r.users, rec.UserID)
	} else {
		r.users[rec.UserID] = entries
	}
	r.mu.Unlock()
	select {
	case <-r.ready:
	default:
		return // catching up: every node is new, and nobody is waiting
	}
	if r.cfg.OnRegister == nil {
		return
	}
	for _, e := range entries {
		known := false
		for _, o := range old {
			if o.node == e.node && o.expires.After(now) {
				known = true
				break
			}
		}
		if !known {
			r.cfg.OnRegister(rec.UserID, e.node)
		}
	}
}
