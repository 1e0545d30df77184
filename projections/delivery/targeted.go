// The targeted feed: a node reads its own delivery topic and chat.changes.

package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// changesLookback is how many records per partition of chat.changes a
// node reads back on start: changes the history store may not have had
// yet when the node loads a conversation from it.
const changesLookback = 1000

// targeted is the Feed of a node under targeted routing. It keeps, per
// conversation routed here, a message view (see Conversation).
type targeted struct {
	h *Hub

	mu    sync.Mutex
	views *lru.Map[string, *messageView] // the most recently used
}

func newTargeted(h *Hub) *targeted {
	return &targeted{h: h, views: lru.New[string, *messageView](h.cfg.MaxConversations)}
}

func (t *targeted) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.views.Len()
}

// Run creates the node's delivery topic and follows it from its end, and
// chat.changes from a little before its end, until ctx is done.
func (t *targeted) Run(ctx context.Context) error {
	h := t.h
	if err := kafkalog.ProvisionNode(ctx, h.client, h.cfg.Topology, h.cfg.Node); err != nil {
		return err
	}
	names := h.cfg.Topology.Names
	own, changes := names.Delivery(h.cfg.Node), names.Topic(schemas.TopicChanges)
	n, err := kafkalog.Partitions(ctx, h.client, changes)
	if err != nil {
		return err
	}
	var reqs []kafka.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := h.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		own: {kafka.LastOffsetOf(0)}, changes: reqs,
	}})
	if err != nil {
		return fmt.Errorf("listing offsets: %w", err)
	}
	h.log.Info("following", "topic", own, "changes_partitions", n)
	from := func(topic string, po kafka.PartitionOffsets) int64 {
		if topic == changes {
			return max(po.FirstOffset, po.LastOffset-changesLookback)
		}
		return po.LastOffset
	}
	return h.followAll(ctx, resp.Topics, from, func(_ context.Context, topic string, attrs schemas.Attributes, m kafka.Message) {
		if topic == changes {
			t.change(attrs, m)
		} else {
			t.routed(attrs, m)
		}
	})
}

// routed handles one record of the node's delivery topic: a copy the
// router made of an event, a reply, a typing signal or a receipt, naming
// in its headers the users of this node it is for.
func (t *targeted) routed(attrs schemas.Attributes, m kafka.Message) {
	h := t.h
	switch {
	case attrs.Type == schemas.TypeTyping:
		if typing, ok := t.liveTyping(attrs, m.Value); ok {
			h.pushTo(recipients(m), typing.UserID, &item{conv: typing.ConversationID, signal: true, frame: encodeUserTyping(typing)})
		}
	case attrs.Type == schemas.TypeReceipt:
		v, err := schemas.Decode(attrs.Type, m.Value)
		if err != nil {
			h.log.Warn("skipping receipt", "err", err)
			return
		}
		r := v.(*schemas.ReceiptV1)
		h.pushTo(recipients(m), "", &item{conv: r.ConversationID, signal: true, frame: encodeReceipt(r)})
	case attrs.HasSeq && attrs.Subject != "":
		ev := history.Event{ConversationID: attrs.Subject, Seq: attrs.Seq, ID: attrs.ID, Type: attrs.Type, Time: attrs.Time, Data: m.Value}
		h.latest.note(attrs.Subject, attrs.Seq)
		t.foldView(ev)
		// A change is applied before the answer, so that the request
		// that made it finds it here (a new conversation, members).
		if prev, ok := prevChange(m); ok || schemas.IsCreation(attrs.Type) {
			h.members.applyChange(ev, prev, ok, false)
		}
		// The command was appended by its origin node, whose request is
		// waiting; another node's request for the same command id waits
		// for the decider's answer to its own append (a duplicate).
		if attrs.OriginNode == "" || attrs.OriginNode == h.cfg.Node {
			h.waiters.answerEvent(&ev)
		}
		h.pushTo(recipients(m), "", &item{conv: attrs.Subject, seq: attrs.Seq, at: attrs.Time,
			frame: EncodeEvent(attrs.Subject, attrs.Seq, attrs.Type, attrs.ID, attrs.Time, m.Value)})
	default:
		h.waiters.answerReply(attrs, m.Value)
	}
}

// liveTyping decodes a routed typing indicator that is still worth
// showing; the router checked that its user is a member.
func (t *targeted) liveTyping(attrs schemas.Attributes, value []byte) (*schemas.TypingV1, bool) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		t.h.log.Warn("skipping signal", "type", attrs.Type, "err", err)
		return nil, false
	}
	typing := v.(*schemas.TypingV1)
	// Stale after a lag, showing it would lie.
	return typing, typing.ConversationID == attrs.Subject && time.Now().Before(typing.ExpiresAt)
}

// change handles one record of chat.changes.
func (t *targeted) change(attrs schemas.Attributes, m kafka.Message) {
	if !attrs.HasSeq || attrs.Subject == "" {
		return
	}
	prev, ok := prevChange(m)
	t.h.members.applyChange(history.Event{ConversationID: attrs.Subject, Seq: attrs.Seq, ID: attrs.ID, Type: attrs.Type, Time: attrs.Time, Data: m.Value}, prev, ok, true)
}

// messageView is a conversation's summary as history gave it at loadedAt,
// folded forward with every event routed here since: its message-level
// fields are current as long as every event is routed here.
type messageView struct {
	sum      history.Conversation
	loadedAt time.Time
}

// Conversation returns a conversation's summary under targeted routing.
// The membership cache holds what changes a conversation beyond its
// messages — kind, members, roles, title, archive, blocks — kept current
// by the routed events and chat.changes, whatever sockets the node holds.
// Its message-level fields (last seq and activity, message count, last
// message) come from the conversation's message view when that is
// current: the node has held a member's socket since RegistrationSettle
// before the view was loaded (so every event since is routed here) and
// the view has folded every event routed here. Otherwise they come from
// history — a node not routed a conversation may have missed many
// messages — raised to the newest seq the node has seen (an answer to its
// own command may be ahead of history), and the view is loaded afresh.
func (t *targeted) Conversation(ctx context.Context, id string) (history.Conversation, error) {
	h := t.h
	// latest before the view: a routed event notes its seq before it is
	// folded into the view, so a view at or past latest has it.
	latest := h.latest.get(id)
	v, hasView := t.view(id)
	c, cached := h.members.get(id)
	if cached && hasView && v.sum.LastSeq >= latest && h.followed(c.Members, v.loadedAt.Add(-h.cfg.RegistrationSettle)) {
		return withMessages(c, v.sum, latest), nil
	}

	loadedAt := time.Now()
	stored, err := h.cfg.History.Conversation(ctx, id)
	if err == nil {
		c = h.members.putIfAbsent(id, stored)
		t.setView(id, messageView{sum: stored, loadedAt: loadedAt})
		return withMessages(c, stored, h.latest.get(id)), nil
	}
	c, cached = h.members.get(id)
	if !cached {
		return history.Conversation{}, err
	}
	if !errors.Is(err, history.ErrNotFound) {
		h.log.Warn("reading conversation; answering from the cached summary", "conversation_id", id, "err", err)
	}
	c.LastSeq = max(c.LastSeq, h.latest.get(id))
	return c, nil
}

// forgetViews drops every message view.
func (t *targeted) forgetViews() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	t.views.All(func(id string, _ *messageView) bool { ids = append(ids, id); return true })
	for _, id := range ids {
		t.views.Delete(id)
	}
}

// view returns a copy of conversation id's message view.
func (t *targeted) view(id string) (messageView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.views.Get(id)
	if !ok {
		return messageView{}, false
	}
	return *v, true
}

func (t *targeted) setView(id string, v messageView) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.views.Put(id, &v)
}

// foldView folds an event routed here into its conversation's message
// view; a gap (an event not routed here) drops the view.
func (t *targeted) foldView(ev history.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, _ := t.views.Get(ev.ConversationID)
	switch {
	case v == nil || ev.Seq <= v.sum.LastSeq:
	case ev.Seq == v.sum.LastSeq+1:
		if _, err := history.ApplyToSummary(&v.sum, ev); err != nil {
			t.h.log.Warn("folding event", "conversation_id", ev.ConversationID, "seq", ev.Seq, "err", err)
		}
	default:
		t.views.Delete(ev.ConversationID)
	}
}

// withMessages returns c with the message-level fields of view, its last
// seq at least latest.
func withMessages(c, view history.Conversation, latest uint64) history.Conversation {
	c.Messages, c.LastMessage = view.Messages, view.LastMessage
	c.LastSeq = max(c.LastSeq, view.LastSeq, latest)
	if view.LastActivity.After(c.LastActivity) {
		c.LastActivity = view.LastActivity
	}
	return c
}

// recipients yields the users named in a routed record's
// parley_recipients header.
func recipients(m kafka.Message) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, h := range m.Headers {
			if h.Key != schemas.HeaderRecipients {
				continue
			}
			for u := range bytes.SplitSeq(h.Value, []byte{','}) {
				if len(u) > 0 && !yield(string(u)) {
					return
				}
			}
		}
	}
}

// prevChange returns a routed event's parley_prev_change_seq, if it has
// one (it is a change of its conversation, other than the creation).
func prevChange(m kafka.Message) (uint64, bool) {
	for _, h := range m.Headers {
		if h.Key == schemas.HeaderPrevChangeSeq {
			n, err := strconv.ParseUint(string(h.Value), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// firstEvent handles the first event of a conversation the socket did
// not resume, and reports whether it is not to be written. Such a socket
// is owed the events appended since it began; the router routes to its
// node only once the registry has seen the socket, so events of the moment in between may not have come
// (they come again when the router sees the registration, or the next
// event shows the gap). So the first event decides: one appended before
// the session began is not the socket's (a router's resync of an older
// event, or one in flight as the socket opened) and leaves the
// conversation as it was — no cursor, so that a resume coming next still
// starts where the client says; a later one is preceded by the
// conversation's events appended since the session began, from history.
func (t *targeted) firstEvent(ctx context.Context, s *Session, sink Sink, it *item) (skip bool, err error) {
	if it.at.Before(s.start) {
		return true, nil
	}
	for _, ev := range s.appendedSince(ctx, it.conv, it.seq) {
		if err := sink.Write(ctx, EncodeEvent(ev.ConversationID, ev.Seq, ev.Type, ev.ID, ev.Time, ev.Data)); err != nil {
			return false, err
		}
		s.delivered(ev.ConversationID, ev.Seq)
		s.wroteLive(ev.ConversationID, ev.Seq)
		s.hub.cfg.Metrics.Deliveries.Inc()
	}
	return false, nil
}

// appendedSince returns, in seq order, the events of conv before seq that
// were appended after the session began, from history: it looks back at
// most BackfillLimit events and waits at most GapWait for history to
// have them. Usually the event before seq is older: one read says so.
func (s *Session) appendedSince(ctx context.Context, conv string, seq uint64) []history.Event {
	var found []history.Event // descending
	limit := 1
	deadline := time.Now().Add(s.hub.cfg.GapWait)
	wait := 5 * time.Millisecond
look:
	for next := seq; next > 0 && len(found) < s.hub.cfg.BackfillLimit; {
		page, err := s.hub.cfg.History.Page(ctx, conv, history.PageQuery{Before: next, Limit: limit})
		progressed := false
		if err == nil {
			for _, ev := range page.Events {
				if ev.Seq != next-1 {
					break
				}
				if ev.Time.Before(s.start) {
					break look
				}
				found = append(found, ev)
				next--
				progressed = true
			}
		}
		if progressed {
			limit = 100
			continue
		}
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			s.hub.log.Warn("looking back", "conversation_id", conv, "err", err)
		}
		// As in backfill: frames queued behind the wait must not end the
		// session as a slow consumer.
		if time.Now().After(deadline) || s.backedUp() {
			// History cannot say (yet): go on live with what it gave.
			s.hub.log.Warn("looking back: history is behind", "conversation_id", conv, "seq", next-1)
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
	slices.Reverse(found)
	return found
}
