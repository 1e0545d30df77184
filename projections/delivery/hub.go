// Package delivery is the delivery projection: it follows chat.events and
// chat.replies on a gateway node and pushes every event to the connected
// sockets of the conversation's members, in seq order, with no gap and no
// duplicate per socket, and answers the commands this node appended.
//
// It also follows chat.receipts, pushing read and delivered markers as
// "receipt" frames (see Hub.receipt), and reports what it delivered
// through Config.Delivered so that delivered receipts can be recorded.
//
// Events reach a node's Hub in one of two ways (PARLEY_ROUTING):
//
//   - Broadcast: each node's Hub reads every partition of those topics
//     itself (no consumer group: every node needs every event), starting
//     at the high watermarks of its start. The work grows with nodes ×
//     events.
//   - Targeted (Config.Node set): the router (package router), a consumer group
//     over the same topics, copies each record to the delivery topic of
//     each node that needs it — chat.delivery.<node>, one partition per
//     node, so a node reads exactly its own records — naming the node's
//     users it is for; the session registry it routes by is chat.presence
//     (presence.Registry). The Hub reads its topic, and chat.changes to
//     keep the conversations it caches current (targeted.go). The work
//     grows with deliveries.
//
// A Session is one socket's delivery state; it fills any gap it sees —
// on resume after a reconnect or when an event arrives ahead of the
// socket's cursor — from the history store, and says so with a "gap"
// frame when history cannot fill it in time. Each session has a bounded
// queue; publishing never blocks, and a session that falls behind is
// ended with ErrSlowConsumer so that it reconnects and resumes.
//
// Hub and Session methods are safe for concurrent use unless noted.
package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Config configures a Hub.
type Config struct {
	Brokers []string
	// History serves backfills and membership the hub has not seen.
	History history.Reader
	// QueueSize is each session's send queue, in frames. Default: 512.
	QueueSize int
	// BackfillLimit is the most events one conversation backfills on one
	// socket; older missing events are announced with a gap frame.
	// Default: 1000.
	BackfillLimit int
	// GapWait is how long a session waits for the history store to catch
	// up before it announces a gap. Default: 5s.
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
	Topology producers.Topology
	// RegistrationSettle is how long after a socket opens the hub counts
	// on the router having registered it (targeted routing; see
	// conversationTargeted). Default: 2s.
	RegistrationSettle time.Duration
	Logger             *slog.Logger
	Metrics            *telemetry.Metrics
}

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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	return c
}

// Outcome is the answer to a command this node appended.
type Outcome struct {
	ConversationID string
	// Seq of the event the command produced (now, or before for a
	// duplicate).
	Seq       uint64
	Duplicate bool
	// Code and Reason are set when the command was rejected.
	Code, Reason string
	// Event is the event the command produced; nil for replies.
	Event *history.Event
}

type waiterKey struct{ user, command string }

// Hub routes events to this node's sessions.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	client *kafka.Client

	mu       sync.RWMutex
	sessions map[string]map[*Session]struct{} // by user id
	convs    map[string]*history.Conversation // membership seen or loaded
	latest   map[string]uint64                // newest seq seen live
	views    map[string]*messageView          // targeted: see conversationTargeted
	waiters  map[waiterKey]chan Outcome
	ready    chan struct{}
}

// NewHub returns a Hub; Run starts it.
func NewHub(cfg Config) *Hub {
	cfg = cfg.withDefaults()
	return &Hub{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "delivery"),
		client:   producers.NewClient(cfg.Brokers),
		sessions: make(map[string]map[*Session]struct{}),
		convs:    make(map[string]*history.Conversation),
		latest:   make(map[string]uint64),
		views:    make(map[string]*messageView),
		waiters:  make(map[waiterKey]chan Outcome),
		ready:    make(chan struct{}),
	}
}

// Ready is closed once the hub follows every partition.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run follows chat.events, chat.replies, chat.ephemeral and chat.receipts
// (broadcast), or the node's delivery topic and chat.changes (targeted),
// until ctx is done.
func (h *Hub) Run(ctx context.Context) error {
	if h.targeted() {
		return h.runTargeted(ctx)
	}
	n, err := producers.Partitions(ctx, h.client, schemas.TopicEvents)
	if err != nil {
		return err
	}
	var reqs []kafka.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := h.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		schemas.TopicEvents: reqs, schemas.TopicReplies: reqs, schemas.TopicEphemeral: reqs, schemas.TopicReceipts: reqs,
	}})
	if err != nil {
		return fmt.Errorf("listing offsets: %w", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for topic, parts := range resp.Topics {
		for _, po := range parts {
			if po.Error != nil {
				return fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			wg.Go(func() {
				if err := h.follow(ctx, topic, po.Partition, po.LastOffset); err != nil && ctx.Err() == nil {
					errs <- err
				}
			})
		}
	}
	close(h.ready)
	h.log.Info("following", "partitions", n)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	wg.Wait()
	return runErr
}

func (h *Hub) follow(ctx context.Context, topic string, p int, from int64) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: h.cfg.Brokers, Topic: topic, Partition: p,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("seeking %s/%d: %w", topic, p, err)
	}
	read := h.cfg.Metrics.DeliveryRecordsRead.WithLabelValues(topic)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		read.Inc()
		attrs, err := producers.Attributes(m)
		if err != nil {
			h.log.Warn("skipping record", "topic", topic, "partition", p, "offset", m.Offset, "err", err)
			continue
		}
		switch topic {
		case schemas.TopicEvents:
			h.event(ctx, attrs, m.Value)
		case schemas.TopicReplies:
			h.reply(attrs, m.Value)
		case schemas.TopicEphemeral:
			h.signal(ctx, attrs, m.Value)
		case schemas.TopicReceipts:
			h.receipt(ctx, attrs, m.Value)
		case schemas.TopicChanges:
			h.change(attrs, m)
		default: // this node's delivery topic
			h.routed(attrs, m)
		}
	}
}

// event handles one record of chat.events.
func (h *Hub) event(ctx context.Context, attrs schemas.Attributes, value []byte) {
	if !attrs.HasSeq || attrs.Subject == "" {
		return
	}
	ev := history.Event{ConversationID: attrs.Subject, Seq: attrs.Seq, ID: attrs.ID, Type: attrs.Type, Time: attrs.Time, Data: value}
	// Who issued the command that made this event: the sender, the
	// creator, or (for membership events) the user.
	var who struct {
		SenderID  string `json:"sender_id"`
		CreatedBy string `json:"created_by"`
		UserID    string `json:"user_id"`
		CommandID string `json:"command_id"`
	}
	_ = json.Unmarshal(value, &who) // best effort: only for answering waiters

	h.mu.Lock()
	if attrs.Seq > h.latest[attrs.Subject] {
		h.latest[attrs.Subject] = attrs.Seq
	}
	if c, ok := h.convs[attrs.Subject]; ok {
		if _, err := history.ApplyToSummary(c, ev); err != nil {
			h.log.Warn("membership", "conversation_id", attrs.Subject, "err", err)
		}
	} else if attrs.Type == schemas.TypeConversationCreated {
		c := &history.Conversation{}
		if _, err := history.ApplyToSummary(c, ev); err == nil {
			h.convs[attrs.Subject] = c
		}
	}
	user := cmp.Or(who.SenderID, who.CreatedBy, who.UserID)
	if w, ok := h.waiters[waiterKey{user, who.CommandID}]; ok {
		w <- Outcome{ConversationID: attrs.Subject, Seq: attrs.Seq, Event: &ev}
		delete(h.waiters, waiterKey{user, who.CommandID})
	}
	h.mu.Unlock()

	conv, err := h.Conversation(ctx, attrs.Subject)
	if err != nil {
		h.log.Warn("no recipients", "conversation_id", attrs.Subject, "seq", attrs.Seq, "err", err)
		return
	}
	// One item for every recipient: it is never changed after this.
	it := &item{conv: attrs.Subject, seq: attrs.Seq, at: attrs.Time,
		frame: EncodeEvent(attrs.Subject, attrs.Seq, attrs.Type, attrs.ID, attrs.Time, value)}
	h.pushTo(func(yield func(string) bool) {
		for u := range memberIDs(conv) {
			if !yield(u) {
				return
			}
		}
		// A member who leaves or is removed gets that event, and
		// nothing after it.
		if gone := departed(attrs.Type, value); gone != "" && !conv.IsMember(gone) {
			yield(gone)
		}
	}, "", it)
}

// departed returns the user a membership event takes out of the
// conversation, or "".
func departed(typ string, value []byte) string {
	switch typ {
	case schemas.TypeMemberLeft, schemas.TypeMemberRemoved:
	default:
		return ""
	}
	var e struct {
		UserID   string `json:"user_id"`
		MemberID string `json:"member_id"`
	}
	if json.Unmarshal(value, &e) != nil {
		return ""
	}
	if typ == schemas.TypeMemberRemoved {
		return e.MemberID
	}
	return e.UserID
}

// signal handles one record of chat.ephemeral: a typing indicator goes
// to the conversation's connected members except the typing user. It
// touches no cursor: signals are not part of the conversation's sequence.
func (h *Hub) signal(ctx context.Context, attrs schemas.Attributes, value []byte) {
	if attrs.Type != schemas.TypeTyping {
		return
	}
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		h.log.Warn("skipping signal", "type", attrs.Type, "err", err)
		return
	}
	t := v.(*schemas.TypingV1)
	if t.ConversationID != attrs.Subject || time.Now().After(t.ExpiresAt) {
		return // misfiled, or stale after a lag: showing it would lie
	}
	conv, err := h.Conversation(ctx, t.ConversationID)
	if err != nil || !conv.IsMember(t.UserID) {
		return
	}
	it := &item{conv: t.ConversationID, signal: true, frame: encodeUserTyping(t)}
	h.pushTo(memberIDs(conv), t.UserID, it)
}

// memberIDs yields the user ids of conv's members.
func memberIDs(conv history.Conversation) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range conv.Members {
			if !yield(m.UserID) {
				return
			}
		}
	}
}

// receipt handles one record of chat.receipts: a marker goes to the
// user's own sockets (a read on one device moves the unread count on the
// others) and, in a direct conversation, to the other member's (read and
// delivered ticks). Groups show receipts as counts, over HTTP: pushing
// every member's marker to every member would grow with members².
func (h *Hub) receipt(ctx context.Context, attrs schemas.Attributes, value []byte) {
	if attrs.Type != schemas.TypeReceipt {
		return
	}
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		h.log.Warn("skipping receipt", "err", err)
		return
	}
	r := v.(*schemas.ReceiptV1)
	conv, err := h.Conversation(ctx, r.ConversationID)
	if err != nil || !conv.IsMember(r.UserID) {
		return
	}
	it := &item{conv: r.ConversationID, signal: true, frame: encodeReceipt(r)}
	if conv.Kind == schemas.KindDirect {
		h.pushTo(memberIDs(conv), "", it)
	} else {
		h.pushTo(slices.Values([]string{r.UserID}), "", it)
	}
}

// reply handles one record of chat.replies.
func (h *Hub) reply(attrs schemas.Attributes, value []byte) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		h.log.Warn("skipping reply", "type", attrs.Type, "err", err)
		return
	}
	var key waiterKey
	var out Outcome
	switch r := v.(type) {
	case *schemas.CommandRejectedV1:
		key = waiterKey{r.UserID, r.CommandID}
		out = Outcome{ConversationID: r.ConversationID, Code: r.Code, Reason: r.Reason}
	case *schemas.CommandDuplicateV1:
		key = waiterKey{r.UserID, r.CommandID}
		out = Outcome{ConversationID: r.ConversationID, Seq: r.Seq, Duplicate: true}
	default:
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, ok := h.waiters[key]; ok {
		w <- out
		delete(h.waiters, key)
	}
}

// ErrBusy is returned by Await when the same user already awaits the same
// command id on this node.
var ErrBusy = errors.New("command already in flight")

// Await registers interest in the outcome of user's command commandID.
// Call it before appending the command; the channel receives exactly one
// Outcome. cancel must be called when the caller stops waiting.
func (h *Hub) Await(user, commandID string) (outcome <-chan Outcome, cancel func(), err error) {
	key := waiterKey{user, commandID}
	ch := make(chan Outcome, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, busy := h.waiters[key]; busy {
		return nil, nil, ErrBusy
	}
	h.waiters[key] = ch
	return ch, func() {
		h.mu.Lock()
		if h.waiters[key] == ch {
			delete(h.waiters, key)
		}
		h.mu.Unlock()
	}, nil
}

// Conversation returns a conversation's summary with its members, from
// what the hub has seen or else from the history store.
func (h *Hub) Conversation(ctx context.Context, id string) (history.Conversation, error) {
	if h.targeted() {
		return h.conversationTargeted(ctx, id)
	}
	h.mu.RLock()
	c, ok := h.convs[id]
	var out history.Conversation
	if ok {
		out = *c
	}
	h.mu.RUnlock()
	if ok {
		return out, nil
	}
	loaded, err := h.cfg.History.Conversation(ctx, id)
	if err != nil {
		return history.Conversation{}, err
	}
	h.mu.Lock()
	if c, ok := h.convs[id]; ok {
		loaded = *c // the live stream got there first and is newer
	} else {
		h.convs[id] = &loaded
	}
	h.mu.Unlock()
	return loaded, nil
}

// Latest returns the newest seq of conversation that the hub has seen
// live, or 0.
func (h *Hub) Latest(conversation string) uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.latest[conversation]
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
