// The broadcast feed: every node reads every record and picks its users' out.

package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// broadcast is the Feed of a node under broadcast routing. It reads with
// no consumer group (every node needs every record), starting at the
// high watermarks of its start, and keeps the membership of every
// conversation it sees an event of.
type broadcast struct {
	h *Hub
	// taken is what the feed has taken from the log and from the
	// decider's hand-off (handoff.go).
	taken *handoff
}

// Run follows chat.events, chat.replies, chat.ephemeral and chat.receipts
// until ctx is done.
func (b *broadcast) Run(ctx context.Context) error {
	h := b.h
	names := h.cfg.Topology.Names
	n, err := kafkalog.Partitions(ctx, h.client, names.Topic(schemas.TopicEvents))
	if err != nil {
		return err
	}
	var reqs []kafka.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := h.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		names.Topic(schemas.TopicEvents): reqs, names.Topic(schemas.TopicReplies): reqs,
		names.Topic(schemas.TopicEphemeral): reqs, names.Topic(schemas.TopicReceipts): reqs,
	}})
	if err != nil {
		return fmt.Errorf("listing offsets: %w", err)
	}
	h.log.Info("following", "partitions", n)
	return h.followAll(ctx, resp.Topics, func(_ string, po kafka.PartitionOffsets) int64 { return po.LastOffset }, b.handle)
}

func (b *broadcast) handle(ctx context.Context, topic string, attrs schemas.Attributes, m kafka.Message) {
	switch b.h.cfg.Topology.Names.Base(topic) {
	case schemas.TopicEvents:
		b.take(ctx, attrs, m.Value, false)
	case schemas.TopicReplies:
		b.reply(attrs, m.Value)
	case schemas.TopicEphemeral:
		b.signal(ctx, attrs, m.Value)
	case schemas.TopicReceipts:
		b.receipt(ctx, attrs, m.Value)
	}
}

// Conversation returns a conversation's summary from what the hub has
// seen or else from the history store.
func (b *broadcast) Conversation(ctx context.Context, id string) (history.Conversation, error) {
	return b.h.members.load(ctx, id)
}

// firstEvent writes the first event of a conversation the socket did not
// resume as it is: every event reaches the node, so none was missed.
func (*broadcast) firstEvent(context.Context, *Session, Sink, *item) (bool, error) { return false, nil }

// event handles one record of chat.events read from the log.
func (b *broadcast) event(ctx context.Context, attrs schemas.Attributes, value []byte) {
	b.take(ctx, attrs, value, false)
}

// deliver pushes an event taken (see take) to the sessions of its
// conversation's members, and of those it takes out.
func (b *broadcast) deliver(ctx context.Context, attrs schemas.Attributes, value []byte) {
	h := b.h
	conv, err := b.Conversation(ctx, attrs.Subject)
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
		for _, gone := range departed(attrs.Type, value) {
			if !conv.IsMember(gone) && !yield(gone) {
				return
			}
		}
	}, "", it)
}

// departed returns the users a membership event takes out of the
// conversation: who left, who was removed, or whose every device an MLS
// commit removed.
func departed(typ string, value []byte) []string {
	switch typ {
	case schemas.TypeMemberLeft, schemas.TypeMemberRemoved, schemas.TypeMLSCommitted:
	default:
		return nil
	}
	var e struct {
		UserID         string   `json:"user_id"`
		MemberID       string   `json:"member_id"`
		MembersRemoved []string `json:"members_removed"`
	}
	if json.Unmarshal(value, &e) != nil {
		return nil
	}
	switch typ {
	case schemas.TypeMemberRemoved:
		return []string{e.MemberID}
	case schemas.TypeMLSCommitted:
		return e.MembersRemoved
	}
	return []string{e.UserID}
}

// signal handles one record of chat.ephemeral: a typing indicator goes
// to the conversation's connected members except the typing user. It
// touches no cursor: signals are not part of the conversation's sequence.
func (b *broadcast) signal(ctx context.Context, attrs schemas.Attributes, value []byte) {
	if attrs.Type != schemas.TypeTyping {
		return
	}
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		b.h.log.Warn("skipping signal", "type", attrs.Type, "err", err)
		return
	}
	t := v.(*schemas.TypingV1)
	if t.ConversationID != attrs.Subject || time.Now().After(t.ExpiresAt) {
		return // misfiled, or stale after a lag: showing it would lie
	}
	conv, err := b.Conversation(ctx, t.ConversationID)
	if err != nil || !conv.IsMember(t.UserID) {
		return
	}
	it := &item{conv: t.ConversationID, signal: true, frame: encodeUserTyping(t)}
	b.h.pushTo(memberIDs(conv), t.UserID, it)
}

// receipt handles one record of chat.receipts: a marker goes to the
// user's own sockets (a read on one device moves the unread count on the
// others) and, in a direct conversation, to the other member's (read and
// delivered ticks). Groups show receipts as counts, over HTTP: pushing
// every member's marker to every member would grow with members².
func (b *broadcast) receipt(ctx context.Context, attrs schemas.Attributes, value []byte) {
	if attrs.Type != schemas.TypeReceipt {
		return
	}
	v, err := schemas.Decode(attrs.Type, value)
	if err != nil {
		b.h.log.Warn("skipping receipt", "err", err)
		return
	}
	r := v.(*schemas.ReceiptV1)
	conv, err := b.Conversation(ctx, r.ConversationID)
	if err != nil || !conv.IsMember(r.UserID) {
		return
	}
	it := &item{conv: r.ConversationID, signal: true, frame: encodeReceipt(r)}
	if conv.Kind == schemas.KindDirect {
		b.h.pushTo(memberIDs(conv), "", it)
	} else {
		b.h.pushTo(slices.Values([]string{r.UserID}), "", it)
	}
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
