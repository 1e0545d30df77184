// The in-process hand-off: a decider in the same process hands the hub
// what it appended, so that it reaches the sockets without waiting to be
// read back from the log.

package delivery

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/lru"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Under broadcast routing the hub reads every record of chat.events and
// chat.replies. When the decider runs in the same process it also hands
// the hub the records it appended, as soon as the broker has
// acknowledged them (AppendedEvents, AppendedReplies): an event then
// reaches the sockets and its sender's request without a fetch. Both
// sources deliver every record; the log stays the source of truth, and
// the hub takes each record from whichever source brings it first:
//
//   - Events of one conversation are taken one at a time (a lock per
//     conversation stripe) and at most once: an event whose seq is not
//     above the newest the hub has taken of its conversation is dropped
//     (the later copy). An event handed off is taken only if it is the
//     next one — its seq one above the newest taken, or the creation —
//     so the membership fold, the sockets' cursors and the newest seqs
//     see exactly what reading the log would show them, in the same
//     order. A hand-off that is not the next (a conversation the hub has
//     not seen since it started, or one whose earlier event another
//     decider appended and the log has not yet brought) only answers
//     the request waiting for it; the sockets get the event from the
//     log. A hand-off of a later copy returns only once the first copy's
//     take is done, so the request an event answers is answered before
//     any reply the decider appends after the event.
//   - A reply (a rejection or a duplicate) answers one waiting request:
//     the hub remembers the ids of recent replies it has seen, and the
//     second copy of one answers nobody.
//
// A hand-off that never comes (another process's decider, a restart, a
// rebalance) costs only time: the log brings the record.

// stripes is how many locks the conversations' events are taken under.
const stripes = 64

// recentCopies is how many reply ids, and how many events answered but
// not taken, the hub remembers: enough for the milliseconds between the
// two copies of a record.
const recentCopies = 16_384

// eventKey names an event.
type eventKey struct {
	conversation string
	seq          uint64
}

// handoff is the broadcast feed's record of what it has taken.
type handoff struct {
	seed  maphash.Seed
	convs [stripes]sync.Mutex

	mu sync.Mutex
	// replies are the ids of replies seen once.
	replies *lru.Map[string, struct{}]
	// answered are the events handed off that answered a request but
	// were not taken.
	answered *lru.Map[eventKey, struct{}]
}

func newHandoff() *handoff {
	return &handoff{seed: maphash.MakeSeed(), replies: lru.New[string, struct{}](recentCopies), answered: lru.New[eventKey, struct{}](recentCopies)}
}

// lock takes the lock of conversation's stripe and returns its unlock.
func (o *handoff) lock(conversation string) func() {
	mu := &o.convs[maphash.String(o.seed, conversation)%stripes]
	mu.Lock()
	return mu.Unlock
}

// firstReply reports whether the reply id is seen for the first time,
// and remembers it if so; its second sight forgets it.
func (o *handoff) firstReply(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.replies.Get(id); ok {
		o.replies.Delete(id)
		return false
	}
	o.replies.Put(id, struct{}{})
	return true
}

// noteAnswered remembers that k answered its request.
func (o *handoff) noteAnswered(k eventKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.answered.Put(k, struct{}{})
}

// wasAnswered reports whether k answered its request before, and
// forgets it.
func (o *handoff) wasAnswered(k eventKey) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.answered.Len() == 0 {
		return false
	}
	_, ok := o.answered.Get(k)
	if ok {
		o.answered.Delete(k)
	}
	return ok
}

// AppendedEvents hands the hub records of chat.events the broker has
// acknowledged, in the order of their partition. Under targeted routing
// it does nothing: the node gets what the router sends it.
func (h *Hub) AppendedEvents(ctx context.Context, records []kafka.Message) {
	b, ok := h.feed.(*broadcast)
	if !ok {
		return
	}
	for _, m := range records {
		attrs, err := kafkalog.Decode(m)
		if err == nil && h.hadEvent(h.cfg.Topology.Names.Topic(schemas.TopicEvents), attrs) {
			// The log brought it first: not opened. Its take may still be
			// under way, the request it answers not yet answered; wait for
			// it, so that a reply the decider appends next (the duplicate
			// of the same command sent again) cannot answer that request
			// first.
			b.taken.lock(attrs.Subject)()
			continue
		}
		var rec consumers.Record
		if err == nil {
			rec, err = consumers.OpenRecord(ctx, m, attrs, h.cfg.Opener)
		}
		if err != nil {
			h.log.Warn("skipping handed-off event", "err", err)
			continue
		}
		b.take(ctx, rec.Attrs, rec.Message.Value, true)
	}
}

// hadEvent reports whether a record of topic is an event of chat.events
// the broadcast feed has taken already — the later copy — so that it is
// dropped before its value is opened. take checks again, under the
// conversation's lock; this only spares the work for the copies that are
// certainly later.
func (h *Hub) hadEvent(topic string, attrs schemas.Attributes) bool {
	if _, ok := h.feed.(*broadcast); !ok || !attrs.HasSeq || attrs.Subject == "" {
		return false
	}
	if h.cfg.Topology.Names.Base(topic) != schemas.TopicEvents {
		return false
	}
	last, known := h.latest.lookup(attrs.Subject)
	return known && attrs.Seq <= last
}

// AppendedReplies hands the hub records of chat.replies the broker has
// acknowledged (see AppendedEvents).
func (h *Hub) AppendedReplies(_ context.Context, records []kafka.Message) {
	b, ok := h.feed.(*broadcast)
	if !ok {
		return
	}
	for _, m := range records {
		attrs, err := kafkalog.Decode(m)
		if err != nil {
			h.log.Warn("skipping handed-off reply", "err", err)
			continue
		}
		b.reply(attrs, m.Value)
	}
}

// reply answers the request waiting for a record of chat.replies, unless
// its other copy did.
func (b *broadcast) reply(attrs schemas.Attributes, value []byte) {
	if attrs.ID != "" && !b.taken.firstReply(attrs.ID) {
		return
	}
	b.h.waiters.answerReply(attrs, value)
}

// take handles one event of chat.events read from the log (local false)
// or handed off by the decider (local true), once (see above).
func (b *broadcast) take(ctx context.Context, attrs schemas.Attributes, value []byte, local bool) {
	if !attrs.HasSeq || attrs.Subject == "" {
		return
	}
	h := b.h
	defer b.taken.lock(attrs.Subject)()
	last, known := h.latest.lookup(attrs.Subject)
	if known && attrs.Seq <= last {
		return // the later copy
	}
	key := eventKey{attrs.Subject, attrs.Seq}
	ev := history.Event{ConversationID: attrs.Subject, Seq: attrs.Seq, ID: attrs.ID, Type: attrs.Type, Time: attrs.Time, Data: value}
	if local && !(known && attrs.Seq == last+1 || !known && attrs.Seq == 0) {
		// Not the next: the log brings it to the sockets.
		if h.waiters.answerEvent(&ev) {
			b.taken.noteAnswered(key)
		}
		return
	}
	from := "log"
	if local {
		from = "decider"
	}
	h.cfg.Metrics.DeliveryEventsTaken.WithLabelValues(from).Inc()
	h.latest.note(attrs.Subject, attrs.Seq)
	h.members.fold(ev)
	if !b.taken.wasAnswered(key) {
		h.waiters.answerEvent(&ev)
	}
	b.deliver(ctx, attrs, value)
}
