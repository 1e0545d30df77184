// Package router is the routing stage of targeted delivery: the consumer
// group parley-router, over chat.events, chat.replies, chat.ephemeral and
// chat.receipts, that copies each record once to the delivery topic of
// every gateway node that needs it (chat.delivery.<node>), naming the
// node's users it is for. Each node's delivery.Hub reads its own topic.
//
// An event goes to the nodes holding sockets of the conversation's
// members — before and after the event, so that a member who leaves or
// is removed gets the event that says so, and one who is added gets it
// too — and to the node that appended the command (parley_origin_node),
// where the request may wait without any socket. A reply goes to the
// origin node only; a typing signal to the nodes of the members but the
// typing user; a receipt to the nodes of its user (and of the other
// member of a direct conversation). Which nodes hold whose sockets comes
// from the presence registry (chat.presence). Members come from the
// events the router folds, and from the history store for a conversation
// it has not seen since it started.
//
// An event that changes its conversation beyond its messages (creation,
// membership, roles, title, archive, blocks) also goes, once, to
// chat.changes, which every node reads whole, so that the conversations
// a node has cached stay current although it reads only its own topic.
//
// The registry learns of a new socket a moment after the socket opened.
// When it sees a user appear on a node, the router sends that node again
// the newest event of each of the user's conversations that had one in
// the last Resync: a session that has missed events of the moment before
// it was registered sees the gap and fills it from history at once
// (see delivery.Session), rather than at the next event.
//
// Each node has a topic of its own, of one partition, rather than a
// partition of one shared topic: nodes whose ids mapped to the same
// partition would read each other's records, and the work would again
// grow with nodes. Nodes and router both create it before use (brokers
// may not auto-create topics; the embedded one does not). Copies are
// written with acks from the leader only: they are derived data, and a
// lost copy is a gap the socket fills from history on the next event.
//
// The router keeps in memory, per conversation it has seen since it
// started, its summary (members) and, for Resync, its newest event.
//
// Run owns the router; Ready is safe for concurrent use.
package router

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/presence"
	"github.com/parley-chat/parley/schemas"
)

// Config configures a Router.
type Config struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// History serves the members of conversations the router has not
	// seen an event of since it started.
	History history.Reader
	// Topology configures the nodes' delivery topics, which the router
	// creates (if their node has not yet) before writing to them.
	Topology kafkalog.Topology
	// Resync is how recent a conversation's last event must be for the
	// router to send it again to a node where one of its members just
	// appeared (see Router). Default: 10s.
	Resync time.Duration
	// SessionTimeout of the router's group membership: how long a crashed
	// router's partitions (and so deliveries) wait before another router
	// takes over. Default: 6s.
	SessionTimeout time.Duration
	// MaxConversations bounds how many conversations the router keeps
	// (members, and the newest event for Resync): beyond it the least
	// recently routed are forgotten, once their newest event is older
	// than Resync, and loaded from History again when an event of theirs
	// comes. Default: 100,000.
	MaxConversations int
	Logger           *slog.Logger
	Metrics          *telemetry.Metrics
}

func (c Config) withDefaults() Config {
	if c.Resync == 0 {
		c.Resync = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.MaxConversations == 0 {
		c.MaxConversations = 100_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	return c
}

// routedTopics are what the router reads.
var routedTopics = []string{schemas.TopicEvents, schemas.TopicReplies, schemas.TopicEphemeral, schemas.TopicReceipts}

// names resolves topic and group names under the deployment's prefix.
func (r *Router) names() kafkalog.Names { return r.cfg.Topology.Names }

// Topics are the resolved names of the topics the router reads, as the
// group GroupRouter.
func Topics(names kafkalog.Names) []string {
	out := make([]string, len(routedTopics))
	for i, t := range routedTopics {
		out[i] = names.Topic(t)
	}
	return out
}

// routed returns the resolved names of the routed topics.
func (r *Router) routed() []string { return Topics(r.names()) }

// Router routes records to the gateway nodes that need them (see the
// package doc).
type Router struct {
	cfg      Config
	log      *slog.Logger
	client   *kafka.Client
	w        *kafka.Writer
	registry *presence.Registry
	regs     chan registration
	ready    chan struct{}

	// mu guards convs, byUser and the fields of every routeConv: byUser
	// indexes convs, and a resync reads both.
	mu     sync.Mutex
	convs  *lru.Map[string, *routeConv]   // the most recently routed
	byUser map[string]map[string]struct{} // user -> conversations in convs

	topicsMu sync.Mutex
	topics   map[string]error // delivery topic -> provisioning result
}

// routeConv is what the router keeps of a conversation.
type routeConv struct {
	sum history.Conversation
	// changeSeq is the seq of its last change (or, loaded from history,
	// the seq history had reached).
	changeSeq uint64
	// last is its newest event as routed, without recipients, and lastAt
	// when it was routed: what a resync sends again.
	last   *kafka.Message
	lastAt time.Time
}

type registration struct{ user, node string }

// New returns a Router; Run starts it.
func New(cfg Config) *Router {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "router")
	r := &Router{
		cfg:    cfg,
		log:    log,
		client: kafkalog.NewClient(cfg.Kafka),
		// Each copy names its topic; delivery topics are created while
		// the writer runs (see kafkalog.AllowAutoTopicCreation).
		w: kafkalog.NewWriter(cfg.Kafka, "", kafkalog.LeaderAck(), kafkalog.BatchSize(kafkalog.WideBatch),
			kafkalog.FlushAtOnce(), kafkalog.AllowAutoTopicCreation(), kafkalog.ErrorLog(log, "component", "router-writer")),
		regs:   make(chan registration, 4096),
		ready:  make(chan struct{}),
		byUser: make(map[string]map[string]struct{}),
		topics: make(map[string]error),
	}
	r.convs = lru.New(cfg.MaxConversations,
		// A conversation whose newest event a resync may still send is
		// kept; pruneLast releases it.
		lru.Keep(func(_ string, c *routeConv) bool { return c.last != nil }),
		lru.OnEvict(func(id string, c *routeConv) { r.index(id, c.sum.Members, nil) }))
	r.registry = presence.NewRegistry(presence.RegistryConfig{
		Kafka: cfg.Kafka, Names: cfg.Topology.Names, OnRegister: r.register, Logger: cfg.Logger,
		ReaderErrors: cfg.Metrics.KafkaReaderErrors.WithLabelValues("", cfg.Topology.Names.Topic(schemas.TopicPresence)),
	})
	return r
}

// Prepare makes the router's group start at the end of every partition
// it has never consumed (consumers.StartAtEnd): from then on, nothing
// appended goes unrouted, however long the router takes to join. Run
// does it too; call it first when others must not start before.
func (r *Router) Prepare(ctx context.Context) error {
	// Nobody waits for what was appended before the router first ran:
	// nodes deliver from their start, sockets resume from history.
	return consumers.StartAtEnd(ctx, r.client, r.names().Group(schemas.GroupRouter), r.routed()...)
}

// Ready is closed once the router's group starts at the end of every
// partition it had never consumed (see consumers.StartAtEnd) and the
// registry has caught up: from then on no record is left unrouted.
func (r *Router) Ready() <-chan struct{} { return r.ready }

// Run routes until ctx is done.
func (r *Router) Run(ctx context.Context) error {
	defer func() {
		if err := r.w.Close(); err != nil {
			r.log.Warn("closing writer", "err", err)
		}
	}()
	if err := r.Prepare(ctx); err != nil {
		return err
	}
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var regErr error
	regDone := make(chan struct{})
	wg.Go(func() {
		defer close(regDone)
		if regErr = r.registry.Run(gctx); regErr != nil {
			cancel()
		}
	})
	select {
	case <-r.registry.Ready():
	case <-regDone:
		return regErr
	case <-ctx.Done():
		return nil
	}
	wg.Go(func() { r.resyncLoop(gctx) })
	close(r.ready)
	r.log.Info("routing", "topics", r.routed())
	err := consumers.RunGroup(gctx, consumers.GroupConfig{
		Kafka: r.cfg.Kafka, Names: r.names(), GroupID: r.names().Group(schemas.GroupRouter), Topics: r.routed(), StartOffset: kafka.LastOffset,
		SessionTimeout: r.cfg.SessionTimeout, Logger: r.cfg.Logger, Metrics: r.cfg.Metrics,
	}, routing{r})
	cancel()
	<-regDone
	return errors.Join(err, regErr)
}

// routing is the router as a consumers.Projection.
type routing struct{ r *Router }

// routeItem is one consumed record and, once routed, its copies: a batch
// retried after a failed write writes the same copies again.
type routeItem struct {
	rec consumers.Record
	// ev is the event of a chat.events record, decoded.
	ev     history.Event
	routed bool
	out    []kafka.Message
}

// Decode checks a record by the rules of the projections that store its
// kind, so that sockets never receive what history would not keep: an
// event as history.Projection decodes it (a conversation, a seq, a value
// valid against its type's schema; a type of a later version is routed
// if its value is JSON), a receipt or a typing signal valid against its
// schema. Anything else is an error, which dead-letters the record.
// Replies are routed as they are.
func (p routing) Decode(rec consumers.Record) (*routeItem, error) {
	it := &routeItem{rec: rec}
	switch p.r.names().Base(rec.Message.Topic) {
	case schemas.TopicEvents:
		ev, err := history.Projection{}.Decode(rec)
		if err != nil {
			return nil, err
		}
		it.ev = ev
	case schemas.TopicEphemeral, schemas.TopicReceipts:
		if _, err := schemas.Decode(rec.Attrs.Type, rec.Message.Value); err != nil {
			return nil, fmt.Errorf("%s at offset %d: %w", rec.Attrs.Type, rec.Message.Offset, err)
		}
	}
	return it, nil
}

func (p routing) Apply(ctx context.Context, batch []*routeItem) error {
	r := p.r
	var out []kafka.Message
	for _, it := range batch {
		if !it.routed {
			r.cfg.Metrics.RouterRecordsRead.WithLabelValues(it.rec.Message.Topic).Inc()
			it.out, it.routed = r.route(ctx, it), true
		}
		out = append(out, it.out...)
	}
	return r.write(ctx, out, "")
}

func (r *Router) route(ctx context.Context, it *routeItem) []kafka.Message {
	rec := it.rec
	switch r.names().Base(rec.Message.Topic) {
	case schemas.TopicEvents:
		return r.routeEvent(ctx, rec, it.ev)
	case schemas.TopicReplies:
		if o := rec.Attrs.OriginNode; o != "" {
			return []kafka.Message{routedCopy(r.names().Delivery(o), rec.Original(), recipientsHeader(nil))}
		}
	case schemas.TopicEphemeral:
		return r.routeTyping(ctx, rec)
	case schemas.TopicReceipts:
		return r.routeReceipt(ctx, rec)
	}
	return nil
}

// routeEvent routes ev, decoded from rec.
func (r *Router) routeEvent(ctx context.Context, rec consumers.Record, ev history.Event) []kafka.Message {
	a := rec.Attrs
	var c *routeConv
	if schemas.IsCreation(a.Type) {
		c = r.created(a.Subject)
	} else {
		c = r.conversation(ctx, a.Subject)
	}
	if c == nil {
		r.log.Warn("routing to the origin only: members unknown", "conversation_id", a.Subject, "seq", a.Seq)
		if a.OriginNode == "" {
			return nil
		}
		return []kafka.Message{routedCopy(r.names().Delivery(a.OriginNode), rec.Original(), recipientsHeader(nil))}
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	before := c.sum
	if _, err := history.ApplyToSummary(&c.sum, ev); err != nil {
		r.log.Warn("folding event", "conversation_id", a.Subject, "seq", a.Seq, "err", err)
	}
	var extra []kafka.Header
	changed := changedState(before, c.sum)
	if changed {
		if !schemas.IsCreation(a.Type) {
			extra = append(extra, kafka.Header{Key: schemas.HeaderPrevChangeSeq, Value: strconv.AppendUint(nil, c.changeSeq, 10)})
		}
		c.changeSeq = a.Seq
		r.index(a.Subject, before.Members, c.sum.Members)
	}
	users := members(c.sum)
	if changed {
		users = union(before.Members, c.sum.Members)
	}
	byNode := r.nodesOf(users, "")
	if o := a.OriginNode; o != "" {
		if _, ok := byNode[o]; !ok {
			byNode[o] = nil
		}
	}
	out := make([]kafka.Message, 0, len(byNode)+1)
	for node, us := range byNode {
		out = append(out, routedCopy(r.names().Delivery(node), rec.Original(), append(extra, recipientsHeader(us))...))
	}
	if changed {
		out = append(out, routedCopy(r.names().Topic(schemas.TopicChanges), rec.Original(), extra...))
	}
	last := routedCopy("", rec.Original(), extra...)
	c.last, c.lastAt = &last, time.Now()
	return out
}

func (r *Router) routeTyping(ctx context.Context, rec consumers.Record) []kafka.Message {
	v, err := schemas.Decode(rec.Attrs.Type, rec.Message.Value)
	t, ok := v.(*schemas.TypingV1)
	if err != nil || !ok || t.ConversationID != rec.Attrs.Subject || time.Now().After(t.ExpiresAt) {
		return nil
	}
	return r.routeSignal(ctx, rec, t.ConversationID, t.UserID, func(c history.Conversation) (iter.Seq[string], string) {
		return members(c), t.UserID // not to the typist's own devices
	})
}

func (r *Router) routeReceipt(ctx context.Context, rec consumers.Record) []kafka.Message {
	v, err := schemas.Decode(rec.Attrs.Type, rec.Message.Value)
	rc, ok := v.(*schemas.ReceiptV1)
	if err != nil || !ok {
		return nil
	}
	return r.routeSignal(ctx, rec, rc.ConversationID, rc.UserID, func(c history.Conversation) (iter.Seq[string], string) {
		// The user's own devices; in a direct conversation, the other
		// member's too (ticks). Groups show receipts as counts, over HTTP.
		if c.Kind == schemas.KindDirect {
			return members(c), ""
		}
		return slices.Values([]string{rc.UserID}), ""
	})
}

// routeSignal routes a record about what member user did in conv (a
// signal outside the conversation's sequence) to the nodes of the users
// to returns, but the one it says to skip; nothing if user is not a
// member.
func (r *Router) routeSignal(ctx context.Context, rec consumers.Record, conv, user string, to func(history.Conversation) (iter.Seq[string], string)) []kafka.Message {
	c := r.conversation(ctx, conv)
	if c == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !c.sum.IsMember(user) {
		return nil
	}
	users, skip := to(c.sum)
	return copies(r.names(), r.nodesOf(users, skip), rec.Message)
}

// conversation returns what the router keeps of a conversation, loading
// it from history if the router has not seen it (or has forgotten it);
// nil if history does not know it either. Its fields are read and
// changed with r.mu held. The entry is the most recently used when
// returned: forgetting it takes MaxConversations other conversations
// routed before its record is, and then the next event of the
// conversation loads it again.
func (r *Router) conversation(ctx context.Context, id string) *routeConv {
	if c := r.cached(id); c != nil {
		return c
	}
	var loaded history.Conversation
	var err error
	backoff := 20 * time.Millisecond
	for range 4 { // history may be a moment behind a new conversation
		if loaded, err = r.cfg.History.Conversation(ctx, id); err == nil || !errors.Is(err, history.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff *= 3
	}
	if err != nil {
		r.log.Warn("loading conversation", "conversation_id", id, "err", err)
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.convs.Get(id)
	if !ok { // else another partition's record loaded it first
		c = &routeConv{sum: loaded, changeSeq: loaded.LastSeq}
		r.index(id, nil, loaded.Members)
		r.convs.Put(id, c)
	}
	return c
}

// CachedConversations returns how many conversations the router keeps.
func (r *Router) CachedConversations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.convs.Len()
}

// cached returns what the router keeps of a conversation, or nil.
func (r *Router) cached(id string) *routeConv {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, _ := r.convs.Get(id)
	return c
}

// created returns what the router keeps of a conversation its creation
// event is about, adding it if new.
func (r *Router) created(id string) *routeConv {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.convs.Get(id)
	if !ok {
		c = &routeConv{}
		r.convs.Put(id, c)
	}
	return c
}

// index moves conversation id in byUser from the before members to the
// after ones. Call with r.mu held.
func (r *Router) index(id string, before, after []schemas.Member) {
	for _, m := range before {
		if !slices.ContainsFunc(after, func(a schemas.Member) bool { return a.UserID == m.UserID }) {
			delete(r.byUser[m.UserID], id)
			if len(r.byUser[m.UserID]) == 0 {
				delete(r.byUser, m.UserID)
			}
		}
	}
	for _, m := range after {
		if r.byUser[m.UserID] == nil {
			r.byUser[m.UserID] = make(map[string]struct{})
		}
		r.byUser[m.UserID][id] = struct{}{}
	}
}

// nodesOf groups users but skip by the nodes holding their sockets.
func (r *Router) nodesOf(users iter.Seq[string], skip string) map[string][]string {
	out := make(map[string][]string)
	var buf []string
	for u := range users {
		if u == skip {
			continue
		}
		buf = r.registry.AppendNodes(buf[:0], u)
		for _, n := range buf {
			out[n] = append(out[n], u)
		}
	}
	return out
}

// register is the registry's OnRegister: it must not block.
func (r *Router) register(user, node string) {
	select {
	case r.regs <- registration{user, node}:
	default:
		// The session will fill the gap on the next event instead.
		r.log.Warn("resync queue full; dropping", "user_id", user, "node", node)
	}
}

// resyncLoop sends, for each registration, the newest recent event of
// each of the user's conversations to the node; every Resync it forgets
// the newest events that are too old to be sent again.
func (r *Router) resyncLoop(ctx context.Context) {
	prune := time.NewTicker(r.cfg.Resync)
	defer prune.Stop()
	for {
		var regs []registration
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			r.pruneLast(time.Now())
			continue
		case reg := <-r.regs:
			regs = append(regs, reg)
		}
	more:
		for len(regs) < 1000 {
			select {
			case reg := <-r.regs:
				regs = append(regs, reg)
			default:
				break more
			}
		}
		now := time.Now()
		var out []kafka.Message
		r.mu.Lock()
		for _, reg := range regs {
			for id := range r.byUser[reg.user] {
				if c, _ := r.convs.Peek(id); c != nil && c.last != nil && now.Sub(c.lastAt) <= r.cfg.Resync {
					out = append(out, routedCopy(r.names().Delivery(reg.node), *c.last, recipientsHeader([]string{reg.user})))
				}
			}
		}
		r.mu.Unlock()
		if err := r.write(ctx, out, "resync"); err != nil && ctx.Err() == nil {
			// Best effort: the sessions fill the gap on the next event.
			r.log.Warn("resync", "records", len(out), "err", err)
		}
	}
}

// pruneLast drops the newest events routed longer than Resync ago: only
// conversations active of late keep one in memory.
func (r *Router) pruneLast(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.convs.All(func(_ string, c *routeConv) bool {
		if c.last != nil && now.Sub(c.lastAt) > r.cfg.Resync {
			c.last = nil
		}
		return true
	})
	r.convs.Shrink()
}

// write ensures the delivery topics exist and writes msgs, counting them
// by kind ("" counts delivery and changes copies apart).
func (r *Router) write(ctx context.Context, msgs []kafka.Message, kind string) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs = r.ensureTopics(ctx, msgs)
	if err := r.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing %d routed records: %w", len(msgs), err)
	}
	if kind != "" {
		r.cfg.Metrics.RouterRecordsWritten.WithLabelValues(kind).Add(float64(len(msgs)))
		return nil
	}
	changes := 0
	for _, m := range msgs {
		if m.Topic == r.names().Topic(schemas.TopicChanges) {
			changes++
		}
	}
	r.cfg.Metrics.RouterRecordsWritten.WithLabelValues("changes").Add(float64(changes))
	r.cfg.Metrics.RouterRecordsWritten.WithLabelValues("delivery").Add(float64(len(msgs) - changes))
	return nil
}

// ensureTopics creates the delivery topics of msgs not created yet and
// drops the records of nodes whose topic cannot be (a node id that cannot
// name a topic).
func (r *Router) ensureTopics(ctx context.Context, msgs []kafka.Message) []kafka.Message {
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	bad := false
	for _, m := range msgs {
		node, ok := strings.CutPrefix(r.names().Base(m.Topic), schemas.DeliveryTopicPrefix)
		if !ok {
			continue
		}
		err, done := r.topics[m.Topic]
		if !done {
			err = kafkalog.ProvisionNode(ctx, r.client, r.cfg.Topology, node)
			if err != nil && ctx.Err() != nil {
				continue // not cached: try again next time
			}
			if err != nil {
				r.log.Error("cannot create a node's delivery topic; not routing to it", "node", node, "err", err)
			}
			r.topics[m.Topic] = err
		}
		bad = bad || err != nil
	}
	if !bad {
		return msgs
	}
	return slices.DeleteFunc(msgs, func(m kafka.Message) bool { return r.topics[m.Topic] != nil })
}

// changedState reports whether a conversation's state beyond its messages
// differs between two summaries.
func changedState(a, b history.Conversation) bool {
	for _, c := range []*history.Conversation{&a, &b} {
		c.LastSeq, c.LastActivity, c.Messages, c.LastMessage = 0, time.Time{}, 0, nil
		c.ReadSeq, c.ReadMessages = 0, 0
	}
	return !reflect.DeepEqual(a, b)
}

// union yields the users of a and of b, once each.
func union(a, b []schemas.Member) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range a {
			if !yield(m.UserID) {
				return
			}
		}
		for _, m := range b {
			if !slices.ContainsFunc(a, func(x schemas.Member) bool { return x.UserID == m.UserID }) && !yield(m.UserID) {
				return
			}
		}
	}
}

// members yields the user ids of conv's members.
func members(conv history.Conversation) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range conv.Members {
			if !yield(m.UserID) {
				return
			}
		}
	}
}

// copies makes a copy of m for each node's delivery topic.
func copies(names kafkalog.Names, byNode map[string][]string, m kafka.Message) []kafka.Message {
	out := make([]kafka.Message, 0, len(byNode))
	for node, us := range byNode {
		out = append(out, routedCopy(names.Delivery(node), m, recipientsHeader(us)))
	}
	return out
}

// routedCopy returns a new record of topic with m's key, value and
// headers, plus extra headers.
func routedCopy(topic string, m kafka.Message, extra ...kafka.Header) kafka.Message {
	h := make([]kafka.Header, 0, len(m.Headers)+len(extra))
	h = append(append(h, m.Headers...), extra...)
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: h}
}

func recipientsHeader(users []string) kafka.Header {
	return kafka.Header{Key: schemas.HeaderRecipients, Value: []byte(strings.Join(users, ","))}
}
