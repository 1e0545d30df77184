package delivery

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// changesLookback is how many records per partition of chat.changes a
// node reads back on start: changes the history store may not have had
// yet when the node loads a conversation from it.
const changesLookback = 1000

func (h *Hub) targeted() bool { return h.cfg.Node != "" }

// runTargeted creates the node's delivery topic and follows it from its
// end, and chat.changes from a little before its end, until ctx is done.
func (h *Hub) runTargeted(ctx context.Context) error {
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
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	for topic, parts := range resp.Topics {
		for _, po := range parts {
			if po.Error != nil {
				return fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			from := po.LastOffset
			if topic == changes {
				from = max(po.FirstOffset, po.LastOffset-changesLookback)
			}
			wg.Go(func() {
				if err := h.follow(ctx, topic, po.Partition, from); err != nil && ctx.Err() == nil {
					errs <- err
				}
			})
		}
	}
	close(h.ready)
	h.log.Info("following", "topic", own, "changes_partitions", n)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	wg.Wait()
	return runErr
}

// routed handles one record of the node's delivery topic: a copy the
// router made of an event, a reply, a typing signal or a receipt, naming
// in its headers the users of this node it is for.
func (h *Hub) routed(attrs schemas.Attributes, m kafka.Message) {
	switch {
	case attrs.Type == schemas.TypeTyping:
		if t, ok := h.liveTyping(attrs, m.Value); ok {
			h.pushTo(recipients(m), t.UserID, &item{conv: t.ConversationID, signal: true, frame: encodeUserTyping(t)})
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
		h.mu.Lock()
		if attrs.Seq > h.latest[attrs.Subject] {
			h.latest[attrs.Subject] = attrs.Seq
		}
		h.foldViewLocked(ev)
		h.mu.Unlock()
		// A change is applied before the answer, so that the request
		// that made it finds it here (a new conversation, members).
		if prev, ok := prevChange(m); ok || attrs.Type == schemas.TypeConversationCreated {
			h.applyChange(ev, prev, ok, false)
		}
		h.answerEvent(attrs, &ev)
		h.pushTo(recipients(m), "", &item{conv: attrs.Subject, seq: attrs.Seq, at: attrs.Time,
			frame: EncodeEvent(attrs.Subject, attrs.Seq, attrs.Type, attrs.ID, attrs.Time, m.Value)})
	default:
		h.reply(attrs, m.Value)
	}
}

// liveTyping decodes a routed typing indicator that is still worth
// showing; the router checked that its user is a member.
func (h *Hub) liveTyping(attrs schemas.Attributes, value []byte) (*schemas.TypingV1, bool) {
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		h.log.Warn("skipping signal", "type", attrs.Type, "err", err)
		return nil, false
	}
	t := v.(*schemas.TypingV1)
	// Stale after a lag, showing it would lie.
	return t, t.ConversationID == attrs.Subject && time.Now().Before(t.ExpiresAt)
}

// answerEvent hands an event to the request of this node waiting for it,
// if any: the one that appended the command it answers. The event names
// who issued that command: the sender, the creator or the acting user.
func (h *Hub) answerEvent(attrs schemas.Attributes, ev *history.Event) {
	var issuer struct {
		SenderID  string `json:"sender_id"`
		CreatedBy string `json:"created_by"`
		UserID    string `json:"user_id"`
		CommandID string `json:"command_id"`
	}
	if json.Unmarshal(ev.Data, &issuer) != nil || issuer.CommandID == "" {
		return
	}
	key := waiterKey{cmp.Or(issuer.SenderID, issuer.CreatedBy, issuer.UserID), issuer.CommandID}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, ok := h.waiters[key]; ok {
		w <- Outcome{ConversationID: attrs.Subject, Seq: attrs.Seq, Event: ev}
		delete(h.waiters, key)
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

// change handles one record of chat.changes.
func (h *Hub) change(attrs schemas.Attributes, m kafka.Message) {
	if !attrs.HasSeq || attrs.Subject == "" {
		return
	}
	prev, ok := prevChange(m)
	h.applyChange(history.Event{ConversationID: attrs.Subject, Seq: attrs.Seq, ID: attrs.ID, Type: attrs.Type, Time: attrs.Time, Data: m.Value}, prev, ok, true)
}

// applyChange folds a conversation change into the conversation the hub
// has cached, if it has it (a creation adds it). Under targeted routing a
// cached summary is folded only changes, in order, so its LastSeq is the
// seq of the last change it has: a change whose predecessor (prev) is at
// or below it follows on; one whose predecessor is above it means a
// change was missed. Changes come by two paths, this node's delivery
// topic and chat.changes, in any relative order: a gap seen on the
// delivery topic waits for chat.changes to bring the change in between,
// while a gap seen on chat.changes itself (authoritative: it has every
// change) drops the summary, to be loaded again from history when needed.
func (h *Hub) applyChange(ev history.Event, prev uint64, hasPrev, authoritative bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, cached := h.convs[ev.ConversationID]
	switch {
	case ev.Type == schemas.TypeConversationCreated:
		if !cached {
			c = &history.Conversation{}
			if _, err := history.ApplyToSummary(c, ev); err == nil {
				h.convs[ev.ConversationID] = c
			}
		}
	case !cached || !hasPrev || ev.Seq <= c.LastSeq:
	case prev <= c.LastSeq:
		if _, err := history.ApplyToSummary(c, ev); err != nil {
			h.log.Warn("conversation change", "conversation_id", ev.ConversationID, "seq", ev.Seq, "err", err)
		}
	case authoritative:
		delete(h.convs, ev.ConversationID)
	}
}

// messageView is a conversation's summary as history gave it at loadedAt,
// folded forward with every event routed here since: its message-level
// fields are current as long as every event is routed here.
type messageView struct {
	sum      history.Conversation
	loadedAt time.Time
}

// conversationTargeted is Conversation under targeted routing. The
// summary the hub caches holds what changes a conversation beyond its
// messages — kind, members, roles, title, archive, blocks — kept current
// by the routed events and chat.changes, whatever sockets the node holds.
// Its message-level fields (last seq and activity, message count, last
// message) come from the conversation's message view when that is
// current: the node has held a member's socket since RegistrationSettle
// before the view was loaded (so every event since is routed here) and the view has folded
// every event routed here. Otherwise they come from history — a node not
// routed a conversation may have missed many messages — raised to the
// newest seq the node has seen (an answer to its own command may be
// ahead of history), and the view is loaded afresh.
func (h *Hub) conversationTargeted(ctx context.Context, id string) (history.Conversation, error) {
	h.mu.RLock()
	c, cached := h.convs[id]
	v, latest := h.views[id], h.latest[id]
	if cached && v != nil && v.sum.LastSeq >= latest && h.followedLocked(c, v.loadedAt.Add(-h.cfg.RegistrationSettle)) {
		out := withMessages(*c, v.sum, latest)
		h.mu.RUnlock()
		return out, nil
	}
	h.mu.RUnlock()

	loadedAt := time.Now()
	stored, err := h.cfg.History.Conversation(ctx, id)
	h.mu.Lock()
	c, cached = h.convs[id]
	if !cached {
		if err != nil {
			h.mu.Unlock()
			return history.Conversation{}, err
		}
		c = &history.Conversation{}
		*c = stored
		h.convs[id] = c
	}
	out, latest := *c, h.latest[id]
	if err == nil {
		h.views[id] = &messageView{sum: stored, loadedAt: loadedAt}
	}
	h.mu.Unlock()
	if err == nil {
		return withMessages(out, stored, latest), nil
	}
	if !errors.Is(err, history.ErrNotFound) {
		h.log.Warn("reading conversation; answering from the cached summary", "conversation_id", id, "err", err)
	}
	out.LastSeq = max(out.LastSeq, latest)
	return out, nil
}

// followedLocked reports whether a session of one of c's members began
// before since. Call with h.mu held.
func (h *Hub) followedLocked(c *history.Conversation, since time.Time) bool {
	for _, m := range c.Members {
		for s := range h.sessions[m.UserID] {
			if s.start.Before(since) {
				return true
			}
		}
	}
	return false
}

// foldViewLocked folds an event routed here into its conversation's
// message view; a gap (an event not routed here) drops the view. Call
// with h.mu held.
func (h *Hub) foldViewLocked(ev history.Event) {
	v := h.views[ev.ConversationID]
	switch {
	case v == nil || ev.Seq <= v.sum.LastSeq:
	case ev.Seq == v.sum.LastSeq+1:
		if _, err := history.ApplyToSummary(&v.sum, ev); err != nil {
			h.log.Warn("folding event", "conversation_id", ev.ConversationID, "seq", ev.Seq, "err", err)
		}
	default:
		delete(h.views, ev.ConversationID)
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

// firstEvent handles, under targeted routing, the first event of a
// conversation the socket did not resume, and reports whether it is
// not to be written. Such a socket is owed the events appended since it
// began; the router routes to its node only once the registry has seen
// the socket, so events of the moment in between may not have come
// (they come again when the router sees the registration, or the next
// event shows the gap). So the first event decides: one appended before
// the session began is not the socket's (a router's resync of an older
// event, or one in flight as the socket opened) and leaves the
// conversation as it was — no cursor, so that a resume coming next still
// starts where the client says; a later one is preceded by the
// conversation's events appended since the session began, from history.
func (s *Session) firstEvent(ctx context.Context, sink Sink, it *item) (skip bool, err error) {
	if it.at.Before(s.start) {
		return true, nil
	}
	for _, ev := range s.appendedSince(ctx, it.conv, it.seq) {
		if err := sink.Write(ctx, EncodeEvent(ev.ConversationID, ev.Seq, ev.Type, ev.ID, ev.Time, ev.Data)); err != nil {
			return false, err
		}
		s.delivered(ev.ConversationID, ev.Seq)
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
		if time.Now().After(deadline) {
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
