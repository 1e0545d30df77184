// The one place that builds Parley's kafka-go writers, readers and groups.
package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Settings every writer shares unless an option says otherwise.
const (
	// writerBatchTimeout replaces kafka-go's default of 1s, which would
	// hold every append that long: a writer that gathers the messages of
	// many callers sends what one millisecond brought.
	writerBatchTimeout = time.Millisecond
	// readerMaxWait is both the long-poll of a fetch and its deadline.
	// kafka-go's reader sets the connection's read deadline to
	// MaxWait after it sends the fetch, and asks the broker to answer an
	// empty fetch RTT earlier, with RTT = min(1s, MaxWait/4)
	// (Conn.ReadBatchWith, adjustDeadlineForRTT, defaultRTT). An empty
	// answer that comes back later than that — a busy machine, a GC
	// pause, a broker loop that is behind — fails the read with an i/o
	// timeout, and the reader then closes the connection, backs off and
	// dials again. At 500ms the margin was 125ms and readers reconnected
	// hundreds of times a minute under load; from 4s on the margin is
	// kafka-go's full second. With MinBytes 1 a fetch still returns as
	// soon as one record is there, so this adds no latency; what it
	// costs is that closing a reader, or leaving a group generation,
	// waits for the in-flight long-poll: up to 3s.
	readerMaxWait  = 4 * time.Second
	readerMaxBytes = 16 << 20
)

// CommitInterval is how often consumer groups commit the offsets of what
// they have processed. Committing every batch, as Parley once did, cost a
// broker round trip per batch and group — more commits than messages at
// 2,000 msg/s — while a crash can only cost what a later commit would have
// covered: records processed again, which changes nothing for an
// idempotent projection. The lag reported from committed offsets trails by
// at most this much (twice as much for a projection that syncs its store
// before it commits: consumers.Syncer). A member that leaves a generation
// (a rebalance, a shutdown) commits what it has processed first.
const CommitInterval = 250 * time.Millisecond

// WideBatch is the batch size of a writer that lingers to gather the
// messages of many callers (the router's copies). kafka-go writes one
// request per partition at a time, so a partition's ceiling is this many
// messages per broker round trip — over 12 partitions, hundreds of
// thousands a second at a few milliseconds each. Batches of 1,000 cost
// 152 KB allocated and zeroed per append (see BatchSize): at 2,000 msg/s,
// 7% of the server's CPU, plus the collections it caused (BENCHMARKS.md).
const WideBatch = 128

// SmallBatch is the batch size of the writers that are handed a few
// messages per call and send them at once (FlushAtOnce): the command
// writer, one partition's gathered commands per call
// (producers.CommandWriter), and the decider's writers, what one fetch
// decided (producers.NewPartitionWriter). kafka-go gives every batch room
// for BatchSize messages up front (152 B a slot: 2,432 B at 16, 4,864 B
// at 32), paid per call however few it holds — one or two messages at
// thousands a second over a few partitions.
//
// What it caps: kafka-go writes one batch per request and one request
// per partition at a time (partitionWriter.writeBatches takes the next
// batch of the partition's queue only when the one before is answered),
// so a call of more than SmallBatch messages — commands gathered while
// their partition's request was in flight, a decider's backlog — leaves
// in requests of SmallBatch one after another: at most 16,000 messages a
// second per partition at a 1 ms round trip, 3,200 at 5 ms (this
// machine's round trip under load at 2,000 msg/s), against twice that at
// 32 — still the rate the whole server sustains here, sent to one
// conversation; at 8 it would not be. 16 halves the cost of 32
// (BENCHMARKS.md, "Allocation per message on Parley's own path").
const SmallBatch = 16

// Counter counts events; a Prometheus counter is one.
type Counter interface{ Inc() }

// WriterOption changes one setting of a writer built by NewWriter.
type WriterOption func(*kafka.Writer)

// NewWriter returns a writer to topic: keys placed by murmur2 (Kafka's
// Java default partitioner), acknowledged by every in-sync replica,
// batches sent after 1ms. An empty topic means each message names its
// own.
func NewWriter(c *Cluster, topic string, opts ...WriterOption) *kafka.Writer {
	w := &kafka.Writer{
		Addr:         c.addr(),
		Transport:    c.roundTripper(),
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: writerBatchTimeout,
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// FlushAtOnce sends each call's messages as soon as they are added, for a
// writer whose caller hands over a whole batch per call and waits for it
// (the decider's events and replies, the router's copies): nothing else
// would join the batch, so the usual 1ms linger is only latency, paid on
// every hop of every message. (kafka-go takes a zero BatchTimeout for its
// 1s default, hence a microsecond; WriteMessages adds a call's messages
// under the partition's lock, so they still leave as one request.)
func FlushAtOnce() WriterOption {
	return func(w *kafka.Writer) { w.BatchTimeout = time.Microsecond }
}

// Balancer places messages with b instead of murmur2 of the key.
func Balancer(b kafka.Balancer) WriterOption {
	return func(w *kafka.Writer) { w.Balancer = b }
}

// BatchSize sends up to n messages per request. Default: kafka-go's 100.
// kafka-go gives every batch it opens room for n messages up front
// (152 bytes each, zeroed), however few it ends up holding: at a few
// thousand appends a second, spread over a dozen partitions with a 1ms
// linger, most batches hold one message, so n is paid per append. Keep
// it near WideBatch.
func BatchSize(n int) WriterOption {
	return func(w *kafka.Writer) { w.BatchSize = n }
}

// LeaderAck waits for the partition leader only: for records that are
// cheap to lose or are written again (presence, routed copies).
func LeaderAck() WriterOption {
	return func(w *kafka.Writer) { w.RequiredAcks = kafka.RequireOne }
}

// FireAndForget makes writes asynchronous, acknowledged by the leader
// only; onError, if set, hears of each batch that failed.
func FireAndForget(onError func(records int, err error)) WriterOption {
	return func(w *kafka.Writer) {
		w.Async = true
		w.RequiredAcks = kafka.RequireOne
		w.Completion = func(msgs []kafka.Message, err error) {
			if err != nil && onError != nil {
				onError(len(msgs), err)
			}
		}
	}
}

// Pipelined makes writes asynchronous — WriteMessages returns once the
// messages are queued in their partitions' batches — and still
// acknowledged by every in-sync replica; completed hears of every batch,
// written or failed, from the writer's goroutines, and must not block.
// kafka-go keeps one queue of batches per partition and writes them one
// after the other (partitionWriter.writeBatches), so the order in which
// WriteMessages calls return is the order of the partition.
func Pipelined(completed func(msgs []kafka.Message, err error)) WriterOption {
	return func(w *kafka.Writer) {
		w.Async = true
		w.RequiredAcks = kafka.RequireAll
		w.Completion = completed
	}
}

// AllowAutoTopicCreation forces a metadata request for a topic the writer
// has not cached yet, for writers to topics created while they run (the
// delivery topics). Parley creates every topic before use; the broker's
// auto-creation stays off.
func AllowAutoTopicCreation() WriterOption {
	return func(w *kafka.Writer) { w.AllowAutoTopicCreation = true }
}

// ErrorLog logs the writer's errors to log at error level, with args.
func ErrorLog(log *slog.Logger, args ...any) WriterOption {
	return func(w *kafka.Writer) {
		w.ErrorLogger = kafka.LoggerFunc(func(msg string, a ...any) { log.Error(fmt.Sprintf(msg, a...), args...) })
	}
}

// ReaderOption changes one setting of a reader built by
// NewPartitionReader.
type ReaderOption func(*kafka.ReaderConfig)

// ReaderErrors logs the reader's errors to log as warnings and counts each
// in errs. kafka-go reports through this hook every failed fetch after
// which it drops the connection and dials again (an i/o timeout among
// them), failed dials and offset look-ups; in normal operation there are
// none.
func ReaderErrors(log *slog.Logger, errs Counter) ReaderOption {
	return func(rc *kafka.ReaderConfig) { rc.ErrorLogger = countingLogger(log, "kafka reader", errs) }
}

// NewPartitionReader returns a reader of one partition of topic, outside
// any group; the caller seeks with SetOffset. Close waits for the
// in-flight fetch (up to the long-poll, see readerMaxWait): close it in
// the background when that matters.
func NewPartitionReader(c *Cluster, topic string, partition int, opts ...ReaderOption) *kafka.Reader {
	rc := kafka.ReaderConfig{
		Brokers: c.Brokers(), Dialer: c.readerDialer(), Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: readerMaxBytes, MaxWait: readerMaxWait,
		// No lag polling: it dials a connection of its own every
		// minute, and Parley measures lag from committed offsets.
		ReadLagInterval: -1,
	}
	for _, o := range opts {
		o(&rc)
	}
	return kafka.NewReader(rc)
}

// countingLogger is a kafka-go logger that logs each message to log as a
// warning with msg, and counts it in errs (if not nil).
func countingLogger(log *slog.Logger, msg string, errs Counter) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if errs != nil {
			errs.Inc()
		}
		log.Warn(msg, "err", fmt.Sprintf(format, args...))
	})
}

// Membership is how a member joins a consumer group.
type Membership struct {
	// Group is the resolved group id (see Names.Group).
	Group string
	// Topics are the resolved topic names consumed.
	Topics []string
	// StartOffset is where a partition the group has never committed
	// starts: kafka.FirstOffset or kafka.LastOffset. Default:
	// kafka.FirstOffset.
	StartOffset int64
	// SessionTimeout is how long a crashed member's partitions wait
	// before another member takes over. Default: 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval. Default: SessionTimeout/10.
	HeartbeatInterval time.Duration
	// Logger receives the client's errors as warnings. Default: discard.
	Logger *slog.Logger
	// Errors, if set, counts the client's errors (see ReaderErrors).
	Errors Counter
	// Gather, if set, lets the broker gather records into each fetch
	// (see Gather). Default: a fetch returns as soon as one record is
	// there.
	Gather Gather
}

// Gather is how long, and for how many bytes of records, the broker may
// hold a fetch of a consumer that nobody waits on (Kafka's
// fetch.min.bytes and fetch.max.wait.ms): at thousands of records a
// second, a reader that asks for one record at a time makes a fetch per
// record — a request, a broker look-up and a response on both sides —
// where one per Wait would do.
type Gather struct {
	// Bytes is how many bytes of records a fetch waits for.
	Bytes int
	// Wait is the longest the broker holds a fetch that has fewer.
	Wait time.Duration
}

// apply sets rc to gather. kafka-go sets a fetch's read deadline MaxWait
// after sending it and asks the broker to answer kafka-go's RTT (1s)
// earlier (see readerMaxWait): MaxWait = Wait + 1s keeps that full
// second of margin against i/o timeouts.
func (g Gather) apply(rc *kafka.ReaderConfig) {
	if g.Bytes <= 0 {
		return
	}
	rc.MinBytes = g.Bytes
	rc.MaxWait = g.Wait + time.Second
}

func (m Membership) withDefaults() Membership {
	if m.StartOffset == 0 {
		m.StartOffset = kafka.FirstOffset
	}
	if m.SessionTimeout == 0 {
		m.SessionTimeout = 10 * time.Second
	}
	if m.HeartbeatInterval == 0 {
		m.HeartbeatInterval = m.SessionTimeout / 10
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	return m
}

func (m Membership) errorLogger(what string) kafka.Logger {
	return countingLogger(m.Logger, what, m.Errors)
}

// NewGroupReader returns a reader that consumes m.Topics as a member of
// m.Group. Offsets are committed only for what CommitMessages was given,
// every CommitInterval and when the member leaves its generation.
func NewGroupReader(c *Cluster, m Membership) *kafka.Reader {
	m = m.withDefaults()
	rc := kafka.ReaderConfig{
		Brokers:           c.Brokers(),
		Dialer:            c.readerDialer(),
		GroupID:           m.Group,
		MinBytes:          1,
		MaxBytes:          readerMaxBytes,
		MaxWait:           readerMaxWait,
		StartOffset:       m.StartOffset,
		CommitInterval:    CommitInterval,
		SessionTimeout:    m.SessionTimeout,
		HeartbeatInterval: m.HeartbeatInterval,
		RebalanceTimeout:  m.SessionTimeout,
		ErrorLogger:       m.errorLogger("kafka reader"),
	}
	m.Gather.apply(&rc)
	if len(m.Topics) == 1 {
		rc.Topic = m.Topics[0]
	} else {
		rc.GroupTopics = m.Topics
	}
	return kafka.NewReader(rc)
}

// NewConsumerGroup returns a consumer group whose generations expose the
// partitions assigned to this member, for consumers that own partitions
// (a group Reader does not say which it has).
func NewConsumerGroup(c *Cluster, m Membership) (*kafka.ConsumerGroup, error) {
	m = m.withDefaults()
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                m.Group,
		Brokers:           c.Brokers(),
		Dialer:            c.readerDialer(),
		Topics:            m.Topics,
		SessionTimeout:    m.SessionTimeout,
		HeartbeatInterval: m.HeartbeatInterval,
		RebalanceTimeout:  m.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       m.StartOffset,
		ErrorLogger:       m.errorLogger("consumer group"),
	})
	if err != nil {
		return nil, fmt.Errorf("joining %s: %w", m.Group, err)
	}
	return cg, nil
}

// FetchMessage returns the next message of r, riding out a broker that
// cannot be reached for a while: it returns an error only once ctx is
// done or r is closed. kafka-go's reader reconnects on its own for ever,
// but after its first few failed attempts (MaxAttempts) it also hands
// each failure to FetchMessage; a caller that stopped at the first one
// would leave a partition unread for good, or end its process, over a
// network blip or a broker restart. Each failure handed back is logged to
// log as a warning, at most one per reconnection attempt of the reader
// (its backoff, up to a second, paces them).
func FetchMessage(ctx context.Context, r *kafka.Reader, log *slog.Logger) (kafka.Message, error) {
	for {
		m, err := r.FetchMessage(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, io.EOF) {
			return m, err
		}
		log.Warn("kafka reader unavailable; retrying", "topic", r.Config().Topic, "partition", r.Config().Partition, "err", err)
		select {
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
