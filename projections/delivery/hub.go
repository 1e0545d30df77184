// The Hub: a node's sessions by user, and fan-out to them.

package delivery

import (
	"context"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/consumers"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Config configures a Hub.
type Config struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// Opener opens sealed events for the sockets (see
	// consumers.DecodeRecord). Default: none, so sealed content is sent
	// redacted.
	Opener consumers.Opener
	// History serves backfills and membership the hub has not seen.
	History history.Reader
	// QueueSize is each session's send queue, in frames. Default: 512.
	QueueSize int
	// BackfillLimit is the most events one conversation backfills on one
	// socket; older missing events are announced with a gap frame.
	// Default: 1000.
	BackfillLimit int
	// GapWait is how long a session waits for the history store to catch
	// up before it announces a gap; less once half its queue is waiting
	// behind the wait. Default: 5s.
	GapWait time.Duration
	// Delivered, if set, is told the seq of every event written to a
	// socket of user (a delivered receipt, coalesced by the caller). It
	// must not block.
	Delivered func(conversation, user string, seq uint64)
	// Node, when set, selects targeted routing: the hub reads only this
	// node's delivery topic, where the router puts what the node's
	// sockets and waiting requests need, and chat.changes (see
	// targeted.go). Empty selects broadcast: the hub reads every
	// partition of chat.events, chat.replies, chat.ephemeral and
	// chat.receipts.
	Node string
	// Topology configures the node's delivery topic, which the hub
	// creates on start under targeted routing.
	Topology kafkalog.Topology
	// RegistrationSettle is how long after a socket opens the hub counts
	// on the router having registered it (targeted routing; see
	// the targeted feed's Conversation). Default: 2s.
	RegistrationSettle time.Duration
	// MaxConversations bounds each per-conversation cache of the hub
	// (membership, newest seqs, message views): the least recently used
	// are forgotten beyond it and loaded again from History when needed.
	// Default: DefaultMaxConversations.
	MaxConversations int
	Logger           *slog.Logger
	Metrics          *telemetry.Metrics
}

// DefaultMaxConversations is how many conversations a hub keeps state of
// by default: a few kilobytes each for groups of tens of members.
const DefaultMaxConversations = 100_000

func (c Config) withDefaults() Config {
	if c.QueueSize == 0 {
		c.QueueSize = 512
	}
	if c.BackfillLimit == 0 {
		c.BackfillLimit = 1000
	}
	if c.GapWait == 0 {
		c.GapWait = 5 * time.Second
	}
	if c.RegistrationSettle == 0 {
		c.RegistrationSettle = 2 * time.Second
	}
	if c.MaxConversations == 0 {
		c.MaxConversations = DefaultMaxConversations
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	return c
}

// Hub delivers what its Feed brings to this node's sessions and
// waiters. Its state is split by what changes together, each part with
// its own lock: the sessions by user (mu), the newest seq seen live per
// conversation (latest), the membership cache (members), the command
// waiters (waiters), and what the feed keeps.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	client  *kafka.Client
	feed    Feed
	members *membership
	waiters *waiters
	latest  *latestSeqs
	ready   chan struct{}

	mu       sync.RWMutex
	sessions map[string]map[*Session]struct{} // by user id
}

// NewHub returns a Hub; Run starts it.
func NewHub(cfg Config) *Hub {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "delivery")
	h := &Hub{
		cfg:      cfg,
		log:      log,
		client:   kafkalog.NewClient(cfg.Kafka),
		members:  newMembership(cfg.History, cfg.MaxConversations, log),
		waiters:  newWaiters(log),
		latest:   &latestSeqs{m: lru.New[string, uint64](cfg.MaxConversations)},
		ready:    make(chan struct{}),
		sessions: make(map[string]map[*Session]struct{}),
	}
	h.feed = newFeed(h)
	return h
}

// Ready is closed once the hub follows every partition.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run follows the hub's feed — every partition of chat.events,
// chat.replies, chat.ephemeral and chat.receipts (broadcast), or the
// node's delivery topic and chat.changes (targeted) — until ctx is done.
func (h *Hub) Run(ctx context.Context) error { return h.feed.Run(ctx) }

// Await registers interest in the outcome of user's command commandID
// on conversation.
// Call it before appending the command; the channel receives exactly one
// Outcome. cancel must be called when the caller stops waiting. When the
// same command is awaited several times at once, each append is answered
// in turn, in the order of the calls to Await: the first with the event,
// the others as duplicates of it.
func (h *Hub) Await(user, conversation, commandID string) (outcome <-chan Outcome, cancel func()) {
	return h.waiters.await(user, conversation, commandID)
}

// Conversation returns a conversation's summary with its members, as
// this node knows it (see the feeds), or else from the history store.
func (h *Hub) Conversation(ctx context.Context, id string) (history.Conversation, error) {
	return h.feed.Conversation(ctx, id)
}

// Latest returns the newest seq of conversation that the hub has seen
// live, or 0 (also when it has forgotten it: the history store knows).
func (h *Hub) Latest(conversation string) uint64 { return h.latest.get(conversation) }

// CachedConversations returns how many conversations each of the hub's
// caches holds: "membership", "latest" and "views" (targeted routing).
func (h *Hub) CachedConversations() map[string]int {
	out := map[string]int{"membership": h.members.len(), "latest": h.latest.len()}
	if t, ok := h.feed.(*targeted); ok {
		out["views"] = t.len()
	}
	return out
}

// ForgetSummaries drops every conversation summary the hub caches (the
// membership cache and, under targeted routing, the message views), so
// that each is loaded again from the history store when next needed. It
// is called once the history store has blanked an erased user's content
// (a title, a preview), which the cached copies would otherwise keep
// showing until the conversation changes.
func (h *Hub) ForgetSummaries() {
	h.members.forgetAll()
	if t, ok := h.feed.(*targeted); ok {
		t.forgetViews()
	}
}

func (h *Hub) register(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.sessions[s.user]
	if m == nil {
		m = make(map[*Session]struct{})
		h.sessions[s.user] = m
	}
	m[s] = struct{}{}
}

func (h *Hub) unregister(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions[s.user], s)
	if len(h.sessions[s.user]) == 0 {
		delete(h.sessions, s.user)
	}
}

// pushTo queues it on the sessions of users, but skip's, and ends those
// whose queue is full.
func (h *Hub) pushTo(users iter.Seq[string], skip string, it *item) {
	var slow []*Session
	h.mu.RLock()
	for u := range users {
		if u == skip {
			continue
		}
		for s := range h.sessions[u] {
			if !s.push(it) {
				slow = append(slow, s)
			}
		}
	}
	h.mu.RUnlock()
	// Ending a session unregisters it, which takes h.mu: never under it.
	for _, s := range slow {
		s.overflow()
	}
}

// followed reports whether a session of one of members began before
// since.
func (h *Hub) followed(members []schemas.Member, since time.Time) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, m := range members {
		for s := range h.sessions[m.UserID] {
			if s.start.Before(since) {
				return true
			}
		}
	}
	return false
}

// latestSeqs is the newest seq seen live per conversation, for the most
// recently active ones. Its methods are safe for concurrent use.
type latestSeqs struct {
	mu sync.Mutex
	m  *lru.Map[string, uint64]
}

// note raises conversation's newest seq to seq.
func (l *latestSeqs) note(conversation string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.m.Get(conversation); !ok || seq > cur {
		l.m.Put(conversation, seq)
	}
}

// lookup returns conversation's newest seq, and whether the hub knows
// it.
func (l *latestSeqs) lookup(conversation string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Get(conversation)
}

func (l *latestSeqs) get(conversation string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, _ := l.m.Get(conversation)
	return v
}

func (l *latestSeqs) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Len()
}
