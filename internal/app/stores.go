// The history store of a process: Pebble or ScyllaDB behind one type.

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/pebblestore"
	"github.com/parley-chat/parley/projections/history/scyllastore"
)

// errStoreUnavailable is returned by a store that is still connecting.
var errStoreUnavailable = errors.New("history store not connected yet")

// historyStore is the history store of the process: Pebble under the data
// dir, or ScyllaDB when PARLEY_SCYLLA_HOSTS is set. A ScyllaDB that is
// unreachable at start does not stop the process: see lazy.
type historyStore struct {
	*lazy[history.Store]

	mu sync.Mutex
	// erased are called after the store applied an erasure: the caches
	// of the hub of a gateway in this process drop their copies.
	erased []func()
}

// onErased registers f, called after each erasure the store applies.
func (h *historyStore) onErased(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.erased = append(h.erased, f)
}

var _ history.Store = (*historyStore)(nil)

// historyDir is the embedded history store's directory.
func historyDir(cfg Config) string { return filepath.Join(cfg.DataDir, "history") }

// openHistory opens the configured store. For ScyllaDB it returns at once
// and connects in the background until ctx is done.
func openHistory(ctx context.Context, cfg Config, log *slog.Logger, wg *sync.WaitGroup) (*historyStore, error) {
	h := &historyStore{lazy: newLazy[history.Store](errStoreUnavailable)}
	if len(cfg.ScyllaHosts) == 0 {
		if err := markIfNew(historyDir(cfg)); err != nil {
			return nil, fmt.Errorf("opening history store: %w", err)
		}
		s, err := pebblestore.Open(historyDir(cfg), pebblestore.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("opening history store: %w", err)
		}
		h.set(s)
		return h, nil
	}
	sc, err := scyllaConfig(cfg, cfg.ScyllaKeyspace, log)
	if err != nil {
		return nil, err
	}
	h.connect(ctx, wg, log.With("hosts", cfg.ScyllaHosts, "keyspace", cfg.ScyllaKeyspace), func(ctx context.Context) (history.Store, error) {
		return scyllastore.Open(ctx, sc)
	})
	return h, nil
}

// scyllaConfig is the ScyllaDB configuration of the PARLEY_SCYLLA_*
// settings, in keyspace: shared by the history store, the key directory
// and the content key store (and a rebuild's fresh keyspace).
func scyllaConfig(cfg Config, keyspace string, log *slog.Logger) (scyllastore.Config, error) {
	sc := scyllastore.Config{
		Hosts: cfg.ScyllaHosts, Keyspace: keyspace, Consistency: cfg.ScyllaConsistency,
		LocalDC: cfg.ScyllaLocalDC, Logger: log,
	}
	if cfg.ScyllaReplication != "" {
		r, err := parseReplication(cfg.ScyllaReplication)
		if err != nil {
			return sc, err
		}
		sc.Replication = r
	}
	if err := sc.Validate(); err != nil {
		return sc, fmt.Errorf("scylla config: %w", err)
	}
	return sc, nil
}

// Ready is the /readyz check: connected, and answering when it can say.
func (h *historyStore) Ready(ctx context.Context) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	if p, ok := s.(history.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Ping is the store's Ping (history.Pinger), for the projections' Probe:
// an error while the store is not connected, or cannot be probed.
func (h *historyStore) Ping(ctx context.Context) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	p, ok := s.(history.Pinger)
	if !ok {
		return fmt.Errorf("history store %T cannot be probed", s)
	}
	return p.Ping(ctx)
}

// Sync is the store's Sync, for a store that writes without waiting for
// the disk (Pebble's); the history projections call it before their
// groups commit (consumers.Syncer).
func (h *historyStore) Sync(ctx context.Context) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	if syncer, ok := s.(consumers.Syncer); ok {
		return syncer.Sync(ctx)
	}
	return nil
}

func (h *historyStore) Apply(ctx context.Context, events []history.Event) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	return s.Apply(ctx, events)
}

func (h *historyStore) Page(ctx context.Context, id string, q history.PageQuery) (history.Page, error) {
	s, err := h.get()
	if err != nil {
		return history.Page{}, err
	}
	return s.Page(ctx, id, q)
}

func (h *historyStore) Conversation(ctx context.Context, id string) (history.Conversation, error) {
	s, err := h.get()
	if err != nil {
		return history.Conversation{}, err
	}
	return s.Conversation(ctx, id)
}

func (h *historyStore) Conversations(ctx context.Context, user string, limit int) ([]history.Conversation, error) {
	s, err := h.get()
	if err != nil {
		return nil, err
	}
	return s.Conversations(ctx, user, limit)
}

func (h *historyStore) ApplyReceipts(ctx context.Context, receipts []history.Receipt) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	return s.ApplyReceipts(ctx, receipts)
}

func (h *historyStore) Erase(ctx context.Context, e history.Erasure) error {
	s, err := h.get()
	if err != nil {
		return err
	}
	if err := s.Erase(ctx, e); err != nil {
		return err
	}
	h.mu.Lock()
	fs := slices.Clone(h.erased)
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return nil
}

func (h *historyStore) Receipts(ctx context.Context, id string) ([]history.Receipt, error) {
	s, err := h.get()
	if err != nil {
		return nil, err
	}
	return s.Receipts(ctx, id)
}

// parseReplication parses "class=NetworkTopologyStrategy,dc1=3" into a
// CQL replication map.
func parseReplication(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("PARLEY_SCYLLA_REPLICATION: %q is not key=value", kv)
		}
		out[k] = v
	}
	if out["class"] == "" {
		return nil, errors.New("PARLEY_SCYLLA_REPLICATION needs class=NAME")
	}
	return out, nil
}
