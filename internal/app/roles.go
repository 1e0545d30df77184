// The roles a process runs, and the start of the stores and of the roles
// that consume the log: decider, projections, router, and the lag monitor.

package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/consumers/decider"
	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/push"
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
	// Files keeps the file store in step with messages and sweeps
	// uploads never attached (projections/files).
	Files bool
	// Push notifies the devices that are not connected
	// (projections/push).
	Push bool
}

// All is every role: `parley run`.
var All = Roles{Gateway: true, Decider: true, History: true, Search: true, Router: true, Files: true, Push: true}

// ParseRoles parses PARLEY_ROLES: "all", or role names separated by
// commas (gateway, decider, history, search, router, files, push).
func ParseRoles(list string) (Roles, error) {
	if strings.TrimSpace(list) == "all" {
		return All, nil
	}
	var r Roles
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "gateway":
			r.Gateway = true
		case "decider":
			r.Decider = true
		case "history":
			r.History = true
		case "search":
			r.Search = true
		case "router":
			r.Router = true
		case "files":
			r.Files = true
		case "push":
			r.Push = true
		default:
			return Roles{}, fmt.Errorf("unknown role %q: use all, or some of gateway, decider, history, search, router, files, push", name)
		}
	}
	return r, nil
}

// routes reports whether the router runs: roles asks for it and routing
// is targeted.
func (s *System) routes(roles Roles) bool { return roles.Router && s.cfg.Targeted() }

// openStores opens the history store and the search index if roles need
// them; it waits for Pebble and Bleve to open, while ScyllaDB and
// Elasticsearch connect in the background until runCtx is done.
func (s *System) openStores(runCtx context.Context, roles Roles, ready map[string]gateway.ReadyCheck) error {
	var err error
	if roles.Gateway || roles.History || roles.Router {
		s.store, err = openHistory(runCtx, s.cfg, s.log.With("component", "history-store"), &s.wg)
		if err != nil {
			return err
		}
		ready["history"] = s.store.Ready
	}
	if roles.Gateway || roles.Search {
		s.search, err = openSearch(runCtx, s.cfg, s.log.With("component", "search-index"), &s.wg)
		if err != nil {
			return err
		}
		ready["search"] = s.search.Ready
	}
	return nil
}

// startDecider starts the decider on chat.commands; it waits for nothing.
// With a gateway beside it under broadcast routing (one node: `parley
// run`), it hands what it appends to the gateway's delivery hub; with a
// gateway beside it under any routing, the gateway hands it the commands
// it appends (startGateway).
func (s *System) startDecider(runCtx context.Context, roles Roles) {
	var handoff decider.Handoff
	if roles.Gateway && !s.cfg.Targeted() {
		s.handoff = &localHandoff{}
		handoff = s.handoff
	}
	d := decider.New(decider.Config{
		Handoff: handoff,
		Kafka:   s.kafka, Names: s.names, Logger: s.log, Metrics: s.metrics,
		Limits:   decider.Limits{Limits: s.cfg.limits()},
		StateDir: filepath.Join(s.cfg.DataDir, "decider"),
		// The bound is the decider's, shared by the partitions it may own.
		MaxConversations: (s.cfg.ConversationCache + s.cfg.Partitions - 1) / s.cfg.Partitions,
		Sealer:           s.sealer(),
		Opener:           s.opener(),
	})
	s.decider = d
	s.metrics.CountCachedConversations("decider", d.CachedConversations)
	s.spawn("decider", func() error { return d.Run(runCtx) })
}

// startHistory starts the history projection of chat.events and the
// receipt projection of chat.receipts; each waits for the history store
// before it consumes.
func (s *System) startHistory(runCtx context.Context) {
	events, receipts := historyGroup(s.cfg), receiptsGroup(s.cfg)
	// An embedded store that is new: both groups from the start.
	fromStart := sync.OnceValue(func() error { return s.startNewStore(runCtx, historyDir(s.cfg), events, receipts) })
	s.spawn("history", func() error {
		// Consume only once the store can take writes: nothing is
		// fetched, so nothing waits uncommitted.
		if err := s.store.Wait(runCtx); err != nil {
			return nil
		}
		if err := fromStart(); err != nil {
			return err
		}
		return consumers.RunGroup(runCtx, consumers.GroupConfig{
			Kafka: s.kafka, Names: s.names, GroupID: events.group, Topics: events.topics,
			Logger: s.log.With("component", "history"), Metrics: s.metrics, Opener: s.opener(),
		}, history.Projection{W: s.store, Audit: s.names.Topic(schemas.TopicAudit)})
	})
	s.spawn("receipts", func() error {
		if err := s.store.Wait(runCtx); err != nil {
			return nil
		}
		if err := fromStart(); err != nil {
			return err
		}
		return consumers.RunGroup(runCtx, consumers.GroupConfig{
			Kafka: s.kafka, Names: s.names, GroupID: receipts.group, Topics: receipts.topics,
			Logger: s.log.With("component", "receipts"), Metrics: s.metrics,
		}, history.ReceiptProjection{W: s.store})
	})
}

// The search projection gathers what the log holds for up to
// searchLinger into one batch of up to searchMaxBatch documents: nobody
// waits on the index (it follows the log within about a second), while
// every batch costs the index a segment to write and later merge — at
// 100 messages a second, batches of one or two documents made indexing
// the largest share of the CPU and slowed delivery (BENCHMARKS.md).
const (
	searchLinger   = time.Second
	searchMaxBatch = 5000
)

// gatherFetches is how the broker gathers the records of the consumers
// of chat.events nobody waits on — search, files, thumbnails, push (for
// devices without a socket) — into fetches: up to 64 KiB, or what came
// within 250 ms. Asking for every
// record as soon as it is there made one fetch per record per group at
// thousands of messages a second (BENCHMARKS.md).
var gatherFetches = kafkalog.Gather{Bytes: 64 << 10, Wait: 250 * time.Millisecond}

// startSearch starts the search projection of chat.events; it waits for
// the search index before it consumes.
func (s *System) startSearch(runCtx context.Context) {
	s.spawn("search", func() error {
		if err := s.search.Wait(runCtx); err != nil {
			return nil
		}
		g := searchGroup(s.cfg)
		if err := s.startNewStore(runCtx, searchDir(s.cfg), g); err != nil {
			return err
		}
		return consumers.RunGroup(runCtx, consumers.GroupConfig{
			Kafka: s.kafka, Names: s.names, GroupID: g.group, Topics: g.topics,
			MaxBatch: searchMaxBatch, Linger: searchLinger, Gather: gatherFetches,
			Logger: s.log.With("component", "search"), Metrics: s.metrics, Opener: s.opener(),
		}, search.Projection{Index: s.search, Audit: s.names.Topic(schemas.TopicAudit)})
	})
	s.spawn("search-upgrade", func() error {
		s.upgradeSearch(runCtx)
		return nil
	})
}

// outdated is a search index that can tell it was made with an older
// mapping than this version's (blevestore.Store).
type outdated interface{ Outdated() bool }

// upgradeSearch rebuilds the search index from chat.events, beside the
// live one, when an earlier version made it with an older mapping: it
// serves as it is until the rebuilt one is promoted, which then takes the
// live projection's writes. A rebuild that fails or is stopped leaves the
// live index as it was, to be rebuilt at the next start.
func (s *System) upgradeSearch(runCtx context.Context) {
	rb, err := s.search.rebuildable(runCtx)
	if err != nil {
		return // stopping, or an index that is never rebuilt
	}
	if o, ok := rb.(outdated); !ok || !o.Outdated() {
		return
	}
	log := s.log.With("component", "search-upgrade")
	log.Warn("the search index was made by an earlier version: rebuilding it from the log beside the live one, which serves until then")
	st, err := search.Rebuild(runCtx, search.RebuildConfig{
		Kafka: s.kafka, Topic: s.names.Topic(schemas.TopicEvents), Target: rb, Logger: log, Opener: s.opener(),
	})
	if err != nil {
		if runCtx.Err() == nil {
			log.Error("rebuilding the outdated search index failed; it serves as it is", "err", err)
		}
		return
	}
	log.Info("the search index is up to date", "records", st.Records, "took", st.Took.Round(time.Millisecond))
}

// startRouter starts the router under targeted routing (under broadcast
// it only warns, when no gateway runs beside it). It waits for the
// group's start offsets to be set, so that nothing appended from then on
// goes unrouted, even while the router is still joining; the router then
// waits for the history store before it routes.
func (s *System) startRouter(ctx, runCtx context.Context, roles Roles, ready map[string]gateway.ReadyCheck) error {
	if !s.routes(roles) {
		if !roles.Gateway {
			s.log.Warn("PARLEY_ROUTING is broadcast: every gateway reads every event and the router has nothing to do")
		}
		return nil
	}
	rt := router.New(router.Config{
		Kafka: s.kafka, History: s.store, Topology: s.topology(), MaxConversations: s.cfg.ConversationCache,
		Logger: s.log, Metrics: s.metrics,
	})
	s.metrics.CountCachedConversations("router", rt.CachedConversations)
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

// The consumer groups of the roles and what each reads: the roles run
// them, the lag monitor measures them, a new store's reset and a log
// that lost records (lostrecords.go) act on them.

// deciderGroup decides chat.commands; its state is what chat.events
// holds (decider.Rebuild).
func deciderGroup(cfg Config) groupTopics {
	names := cfg.names()
	return groupTopics{group: names.Group(schemas.GroupDecider), topics: []string{names.Topic(schemas.TopicCommands)}}
}

// historyGroup builds history from chat.events; chat.audit brings the
// erasures, applied live.
func historyGroup(cfg Config) groupTopics {
	names := cfg.names()
	return groupTopics{group: names.Group(schemas.GroupHistory), topics: []string{names.Topic(schemas.TopicEvents), names.Topic(schemas.TopicAudit)},
		store: localHistory(cfg)}
}

// receiptsGroup folds chat.receipts into the history store.
func receiptsGroup(cfg Config) groupTopics {
	names := cfg.names()
	return groupTopics{group: names.Group(schemas.GroupReceipts), topics: []string{names.Topic(schemas.TopicReceipts)}, store: localHistory(cfg)}
}

// localHistory is the history store's directory, "" on ScyllaDB.
func localHistory(cfg Config) string {
	if len(cfg.ScyllaHosts) > 0 {
		return ""
	}
	return historyDir(cfg)
}

// searchGroup indexes chat.events, and applies the erasures of
// chat.audit.
func searchGroup(cfg Config) groupTopics {
	names := cfg.names()
	g := groupTopics{group: names.Group(schemas.GroupSearch), topics: []string{names.Topic(schemas.TopicEvents), names.Topic(schemas.TopicAudit)}}
	if len(cfg.ElasticsearchURL) == 0 {
		g.store = searchDir(cfg)
	}
	return g
}

// pushGroup is the push role's group (push.Topics), on the push store.
func pushGroup(cfg Config) groupTopics {
	return groupTopics{group: cfg.names().Group(schemas.GroupPush), topics: push.Topics(cfg.names()), store: pushDir(cfg)}
}

// consumerGroups are the groups roles run: the files role's only if
// roles.Files (set it only when a file store is configured), the
// router's only under targeted routing.
func consumerGroups(cfg Config, roles Roles) []groupTopics {
	names := cfg.names()
	var out []groupTopics
	if roles.Decider {
		out = append(out, deciderGroup(cfg))
	}
	if roles.History {
		out = append(out, historyGroup(cfg), receiptsGroup(cfg))
	}
	if roles.Search {
		out = append(out, searchGroup(cfg))
	}
	if roles.Router && cfg.Targeted() {
		out = append(out, groupTopics{group: names.Group(schemas.GroupRouter), topics: router.Topics(names), fromEnd: true})
	}
	if roles.Files {
		events := []string{names.Topic(schemas.TopicEvents)}
		out = append(out, groupTopics{group: names.Group(schemas.GroupFiles), topics: events}, groupTopics{group: names.Group(schemas.GroupThumbnails), topics: events})
	}
	if roles.Push {
		out = append(out, pushGroup(cfg))
	}
	return out
}

// runningGroups are the groups this process runs: roles', the files
// role's only with a file store.
func (s *System) runningGroups(roles Roles) []groupTopics {
	roles.Files = roles.Files && s.files != nil
	return consumerGroups(s.cfg, roles)
}

// monitorLag starts the consumer-lag monitor over the groups of roles, if
// any; it waits for nothing.
func (s *System) monitorLag(runCtx context.Context, roles Roles) {
	var sources []consumers.LagSource
	for _, g := range s.runningGroups(roles) {
		sources = append(sources, g.lagSources()...)
	}
	if len(sources) == 0 {
		return
	}
	s.wg.Go(func() {
		consumers.MonitorLag(runCtx, kafkalog.NewClient(s.kafka), sources, s.metrics.ConsumerLag, s.metrics.ConsumerLostRecords, 5*time.Second, s.log)
	})
}

// sealer is what seals events in the decider: the keyring, or none.
func (s *System) sealer() decider.Sealer {
	if s.keys == nil {
		return nil
	}
	return s.keys
}
