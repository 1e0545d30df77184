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
// seq per user and conversation — and flushed once per interval by Run,
// since every event written to a socket raises one. It is safe for
// concurrent use.
type ReceiptWriter struct {
	w        *kafka.Writer
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	pending map[receiptKey]uint64
}

type receiptKey struct{ conversation, user string }

// NewReceiptWriter returns a ReceiptWriter; delivered markers are flushed
// every interval (default: 1s) while Run runs; names resolves
// chat.receipts.
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
// of user; the next flush appends the highest seq noted. It never blocks.
func (r *ReceiptWriter) Delivered(conversation, user string, seq uint64) {
	k := receiptKey{conversation, user}
	r.mu.Lock()
	if seq > r.pending[k] {
		r.pending[k] = seq
	}
	r.mu.Unlock()
}

// Run flushes delivered markers every interval until ctx is done, then
// once more.
func (r *ReceiptWriter) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("flushing delivered markers", "err", err)
			}
		}
	}
}

// Flush appends the delivered markers noted since the last flush. On
// failure they are noted again, to be retried.
func (r *ReceiptWriter) Flush(ctx context.Context) error {
	r.mu.Lock()
	pending := r.pending
	r.pending = make(map[receiptKey]uint64)
	r.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, 0, len(pending))
	for k, seq := range pending {
		m, err := r.message(k.conversation, k.user, schemas.ReceiptDelivered, seq)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := r.w.WriteMessages(ctx, msgs...); err != nil {
		for k, seq := range pending {
			r.Delivered(k.conversation, k.user, seq)
		}
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
