// The receipt writer: read and delivered markers to chat.receipts,
// coalesced per conversation and user.

package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/due"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// ConversationBalancer places a record keyed "conversation/…" on the
// partition Kafka's default murmur2 partitioner gives the conversation id
// alone, so records keyed by conversation and user (chat.receipts) share
// the partition number of their conversation's events.
type ConversationBalancer struct{}

// Balance implements kafka.Balancer.
func (ConversationBalancer) Balance(msg kafka.Message, partitions ...int) int {
	conv, _, _ := strings.Cut(string(msg.Key), "/")
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(conv)}, partitions...)
}

// ReceiptWriter appends read and delivered markers to chat.receipts. Read
// markers are appended synchronously, so a client told its marker is
// recorded can count on it; delivered markers are coalesced — the highest
// seq per user and conversation — since every event written to a socket
// raises one. A delivered marker is appended one interval after the first
// of its coalesced notes, by Run, which looks for the markers due
// flushSlices times an interval: the appends are spread over the interval
// as the notes were, rather than all made at once (a burst of a second's
// markers, each read by the history, push and delivery projections, is
// what the messages in flight behind it waited for). It is safe for
// concurrent use.
type ReceiptWriter struct {
	w        *kafka.Writer
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu sync.Mutex
	// pending is the highest seq noted of each delivered marker not yet
	// appended; due schedules each one interval after its first note.
	pending map[receiptKey]uint64
	due     due.Queue[receiptKey]
}

type receiptKey struct{ conversation, user string }

// flushSlices is how many times an interval Run looks for the delivered
// markers due.
const flushSlices = 10

// NewReceiptWriter returns a ReceiptWriter; delivered markers are
// appended an interval (default: 1s) after they are first noted, while
// Run runs; names resolves chat.receipts.
func NewReceiptWriter(cluster *kafkalog.Cluster, names kafkalog.Names, interval time.Duration, log *slog.Logger) *ReceiptWriter {
	if interval <= 0 {
		interval = time.Second
	}
	return &ReceiptWriter{
		w:        kafkalog.NewWriter(cluster, names.Topic(schemas.TopicReceipts), kafkalog.Balancer(ConversationBalancer{}), kafkalog.ErrorLog(log, "component", "receipt-writer")),
		log:      log,
		interval: interval,
		now:      time.Now,
		pending:  make(map[receiptKey]uint64),
	}
}

// Read appends user's read marker at seq in conversation.
func (r *ReceiptWriter) Read(ctx context.Context, conversation, user string, seq uint64) error {
	m, err := r.message(conversation, user, schemas.ReceiptRead, seq)
	if err != nil {
		return err
	}
	if err := r.w.WriteMessages(ctx, m); err != nil {
		return fmt.Errorf("appending %s: %w", schemas.TypeReceipt, err)
	}
	return nil
}

// Delivered notes that events up to seq of conversation reached a socket
// of user; the highest seq noted is appended an interval after the first
// note. It never blocks.
func (r *ReceiptWriter) Delivered(conversation, user string, seq uint64) {
	k := receiptKey{conversation, user}
	r.mu.Lock()
	if !r.due.Scheduled(k) {
		r.due.Schedule(k, r.now().Add(r.interval))
	}
	r.pending[k] = max(r.pending[k], seq)
	r.mu.Unlock()
}

// Run appends the delivered markers as they fall due until ctx is done,
// then every marker noted.
func (r *ReceiptWriter) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval / flushSlices)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-t.C:
			if err := r.flushDue(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("flushing delivered markers", "err", err)
			}
		}
	}
}

// Flush appends every delivered marker noted and not yet appended. On
// failure they are noted again, to be retried.
func (r *ReceiptWriter) Flush(ctx context.Context) error {
	r.mu.Lock()
	markers := r.take(r.due.TakeAll())
	r.mu.Unlock()
	return r.appendDelivered(ctx, markers)
}

// flushDue appends the delivered markers first noted an interval ago or
// earlier. Its work under the lock is the markers it takes.
func (r *ReceiptWriter) flushDue(ctx context.Context) error {
	r.mu.Lock()
	markers := r.take(r.due.Take(r.now()))
	r.mu.Unlock()
	return r.appendDelivered(ctx, markers)
}

// take removes the pending markers of keys and returns them. Call with
// r.mu held.
func (r *ReceiptWriter) take(keys []receiptKey) []dueMarker {
	markers := make([]dueMarker, len(keys))
	for i, k := range keys {
		markers[i] = dueMarker{k, r.pending[k]}
		delete(r.pending, k)
	}
	return markers
}

// dueMarker is a delivered marker taken to be appended.
type dueMarker struct {
	k   receiptKey
	seq uint64
}

// appendDelivered appends the markers due; on failure it notes them
// again, as new notes, merged with what was noted since.
func (r *ReceiptWriter) appendDelivered(ctx context.Context, due []dueMarker) (err error) {
	if len(due) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			for _, d := range due {
				r.Delivered(d.k.conversation, d.k.user, d.seq)
			}
		}
	}()
	msgs := make([]kafka.Message, len(due))
	for i, d := range due {
		if msgs[i], err = r.message(d.k.conversation, d.k.user, schemas.ReceiptDelivered, d.seq); err != nil {
			return err
		}
	}
	if err := r.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("appending %d delivered markers: %w", len(msgs), err)
	}
	return nil
}

func (r *ReceiptWriter) message(conversation, user, kind string, seq uint64) (kafka.Message, error) {
	at := r.now().UTC()
	value, err := json.Marshal(schemas.ReceiptV1{ConversationID: conversation, UserID: user, Kind: kind, Seq: seq, At: at})
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding %s: %w", schemas.TypeReceipt, err)
	}
	m := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeReceipt, conversation, at), value)
	m.Key = []byte(schemas.ReceiptKey(conversation, user, kind))
	return m, nil
}

// Close flushes and closes the writer.
func (r *ReceiptWriter) Close() error { return r.w.Close() }
