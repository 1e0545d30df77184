// The command and signal writers: commands to chat.commands, pipelined,
// typing to chat.ephemeral, keyed by conversation.

package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// ErrOverloaded is returned by CommandWriter.Enqueue when MaxPending
// commands already wait for the broker: Parley is saturated, and the
// caller should come back later rather than queue without bound.
var ErrOverloaded = errors.New("too many commands waiting for the log")

// CommandWriter appends commands to chat.commands, keyed by conversation
// id with the murmur2 partitioner. It is safe for concurrent use.
//
// Appends are pipelined: Enqueue hands the record to kafka-go's
// asynchronous writer and returns as soon as it is queued in its
// partition's batch, so many commands ride in each produce request and
// no goroutine waits in the writer per command; each command's outcome
// (every in-sync replica has it, or the write failed) comes on a channel
// of its own. At most MaxPending commands wait for the broker at once;
// beyond that Enqueue refuses with ErrOverloaded.
type CommandWriter struct {
	w       *kafka.Writer
	now     func() time.Time
	origin  string
	sealer  Sealer
	pending chan struct{} // a slot per command queued and not yet answered
}

// CommandOption configures a CommandWriter.
type CommandOption func(*CommandWriter)

// Origin names the gateway node appending the commands: every command
// carries it as parley_origin_node, so that its answer is routed back to
// this node (targeted routing).
func Origin(node string) CommandOption { return func(c *CommandWriter) { c.origin = node } }

// Sealer seals the personal content of a record
// (*contentkeys.Keyring): SealEvent returns the sealed envelope and true,
// or the value and false for a type without personal content.
type Sealer interface {
	SealEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, bool, error)
}

// Sealing makes the writer seal the personal content of the commands it
// appends (message bodies, file names, titles) with s, under the key of
// the user who issued them (crypto-shredding): chat.commands, kept for
// days, and a command dead-lettered to chat.dlq then hold no content in
// clear. Default: none.
func Sealing(s Sealer) CommandOption { return func(c *CommandWriter) { c.sealer = s } }

// MaxPending bounds the commands queued and not yet acknowledged by the
// broker. Default: DefaultMaxPending.
func MaxPending(n int) CommandOption {
	return func(c *CommandWriter) { c.pending = make(chan struct{}, max(n, 1)) }
}

// DefaultMaxPending is the default bound of MaxPending: at a few hundred
// bytes a command, a few MiB queued, several seconds of the rate this
// kind of machine sustains (see BENCHMARKS.md); a backlog that large
// means the log is not keeping up, and answering "overloaded" at once is
// more honest than a timeout seconds later.
const DefaultMaxPending = 8192

// NewCommandWriter returns a CommandWriter of cluster;
// names resolves chat.commands.
func NewCommandWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger, opts ...CommandOption) *CommandWriter {
	c := &CommandWriter{now: time.Now, pending: make(chan struct{}, DefaultMaxPending)}
	for _, o := range opts {
		o(c)
	}
	c.w = kafkalog.NewWriter(cluster, names.Topic(schemas.TopicCommands),
		kafkalog.Pipelined(c.completed), kafkalog.BatchSize(kafkalog.LingerBatch),
		kafkalog.ErrorLog(log, "component", "command-writer"))
	return c
}

// Enqueue encodes cmd as JSON and queues it as a record of type typ about
// conversation. traceParent, if set, is carried as ce_traceparent.
//
// It returns once the record has its place in its partition: a record
// enqueued later for the same conversation (same key, same partition) is
// written after it, never before. written then receives the outcome of
// the write exactly once: nil when every in-sync replica has the record.
// If the write fails, a record enqueued after it may still be written;
// the caller reports the failure and the client retries with the same
// command id, which the decider dedupes.
//
// It refuses with ErrOverloaded, without waiting, when MaxPending
// commands are queued already.
func (c *CommandWriter) Enqueue(ctx context.Context, typ, conversation string, cmd any, traceParent string) (written <-chan error, err error) {
	value, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", typ, err)
	}
	attrs := kafkalog.NewAttributes(typ, conversation, c.now())
	attrs.TraceParent = traceParent
	attrs.OriginNode = c.origin
	if c.sealer != nil {
		if value, attrs.Sealed, err = c.sealer.SealEvent(ctx, attrs, value); err != nil {
			return nil, fmt.Errorf("sealing %s: %w", typ, err)
		}
	}
	select {
	case c.pending <- struct{}{}:
	default:
		return nil, fmt.Errorf("appending %s: %w", typ, ErrOverloaded)
	}
	m := kafkalog.Encode(attrs, value)
	done := make(chan error, 1)
	m.WriterData = done
	// Asynchronous: this returns once m is in its partition's current
	// batch (or an error before that: metadata, size, a closed writer).
	if err := c.w.WriteMessages(ctx, m); err != nil {
		<-c.pending
		return nil, fmt.Errorf("appending %s: %w", typ, err)
	}
	return done, nil
}

// Append enqueues cmd like Enqueue and waits for the broker's
// acknowledgement, or for ctx.
func (c *CommandWriter) Append(ctx context.Context, typ, conversation string, cmd any, traceParent string) error {
	written, err := c.Enqueue(ctx, typ, conversation, cmd, traceParent)
	if err != nil {
		return err
	}
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("appending %s: %w", typ, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("appending %s: %w", typ, ctx.Err())
	}
}

// completed answers every command of a batch the writer wrote or gave up
// on, and frees their slots. It runs on the writer's goroutines and never
// blocks: each command's channel has room for its one answer.
func (c *CommandWriter) completed(msgs []kafka.Message, err error) {
	for _, m := range msgs {
		if done, ok := m.WriterData.(chan error); ok {
			done <- err
		}
		<-c.pending
	}
}

// Pending returns how many commands are queued and not yet answered.
func (c *CommandWriter) Pending() int { return len(c.pending) }

// Close writes what is queued, answers it, and closes the writer.
func (c *CommandWriter) Close() error { return c.w.Close() }

// PartitionBalancer sends every message to the partition set in its
// Partition field. The decider uses it to write the events of a command
// to the partition number the command came from; because every
// conversation-keyed topic has the same count and partitioner, that is
// also where murmur2 would put the key.
type PartitionBalancer struct{}

// Balance implements kafka.Balancer.
func (PartitionBalancer) Balance(msg kafka.Message, partitions ...int) int {
	for _, p := range partitions {
		if p == msg.Partition {
			return p
		}
	}
	// Provision guarantees equal partition counts, so this is not reached;
	// if it were, the key's murmur2 partition is the only right answer.
	return kafka.Murmur2Balancer{}.Balance(msg, partitions...)
}

// NewPartitionWriter returns a synchronous writer to topic that honours
// each message's Partition, with acks from all in-sync replicas. Each
// call's messages are sent at once (kafkalog.FlushAtOnce): its caller
// writes whole batches, in requests of up to kafkalog.LingerBatch
// messages. The decider's calls hold one or two events at thousands of
// commands a second (it decides what each fetch brings); room for
// WideBatch was allocated and zeroed per call for nothing. A call of
// hundreds (a backlog) takes a request per LingerBatch (16) in series: at a few
// milliseconds a round trip, still thousands of events a second per
// partition.
func NewPartitionWriter(cluster *kafkalog.Cluster, topic string, log *slog.Logger) *kafka.Writer {
	return kafkalog.NewWriter(cluster, topic, kafkalog.Balancer(PartitionBalancer{}), kafkalog.BatchSize(kafkalog.LingerBatch),
		kafkalog.FlushAtOnce(), kafkalog.ErrorLog(log, "topic", topic))
}

// SignalWriter appends ephemeral signals (typing indicators) to
// chat.ephemeral. Appends are asynchronous and fire-and-forget: a signal
// lost to a broker hiccup is not worth a client's wait, and one that
// arrives late expires anyway. It is safe for concurrent use.
type SignalWriter struct {
	w   *kafka.Writer
	now func() time.Time
}

// NewSignalWriter returns a SignalWriter of cluster;
// names resolves chat.ephemeral.
func NewSignalWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger) *SignalWriter {
	return &SignalWriter{
		w: kafkalog.NewWriter(cluster, names.Topic(schemas.TopicEphemeral), kafkalog.FireAndForget(func(records int, err error) {
			log.Warn("dropping signals", "topic", names.Topic(schemas.TopicEphemeral), "records", records, "err", err)
		})),
		now: time.Now,
	}
}

// Typing appends a typing indicator of user in conversation, valid for
// ttl.
func (s *SignalWriter) Typing(ctx context.Context, conversation, user string, ttl time.Duration) error {
	at := s.now().UTC()
	value, err := json.Marshal(schemas.TypingV1{ConversationID: conversation, UserID: user, At: at, ExpiresAt: at.Add(ttl)})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", schemas.TypeTyping, err)
	}
	if err := s.w.WriteMessages(ctx, kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeTyping, conversation, at), value)); err != nil {
		return fmt.Errorf("appending %s: %w", schemas.TypeTyping, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (s *SignalWriter) Close() error { return s.w.Close() }
