// The command and signal writers: commands to chat.commands, typing to
// chat.ephemeral, keyed by conversation.

package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// CommandWriter appends commands to chat.commands, keyed by conversation
// id with the murmur2 partitioner. It is safe for concurrent use; each
// Append waits until every in-sync replica has the record.
type CommandWriter struct {
	w      *kafka.Writer
	now    func() time.Time
	origin string
}

// CommandOption configures a CommandWriter.
type CommandOption func(*CommandWriter)

// Origin names the gateway node appending the commands: every command
// carries it as parley_origin_node, so that its answer is routed back to
// this node (targeted routing).
func Origin(node string) CommandOption { return func(c *CommandWriter) { c.origin = node } }

// NewCommandWriter returns a CommandWriter for the bootstrap brokers;
// names resolves chat.commands.
func NewCommandWriter(brokers []string, names kafkalog.Names, log *slog.Logger, opts ...CommandOption) *CommandWriter {
	c := &CommandWriter{
		w:   kafkalog.NewWriter(brokers, names.Topic(schemas.TopicCommands), kafkalog.ErrorLog(log, "component", "command-writer")),
		now: time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Append encodes cmd as JSON and appends it as a record of type typ about
// conversation. traceParent, if set, is carried as ce_traceparent.
func (c *CommandWriter) Append(ctx context.Context, typ, conversation string, cmd any, traceParent string) error {
	value, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", typ, err)
	}
	attrs := kafkalog.NewAttributes(typ, conversation, c.now())
	attrs.TraceParent = traceParent
	attrs.OriginNode = c.origin
	if err := c.w.WriteMessages(ctx, kafkalog.Encode(attrs, value)); err != nil {
		return fmt.Errorf("appending %s: %w", typ, err)
	}
	return nil
}

// Close flushes and closes the writer.
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
// each message's Partition, with acks from all in-sync replicas.
func NewPartitionWriter(brokers []string, topic string, log *slog.Logger) *kafka.Writer {
	return kafkalog.NewWriter(brokers, topic, kafkalog.Balancer(PartitionBalancer{}), kafkalog.BatchSize(1000), kafkalog.ErrorLog(log, "topic", topic))
}

// SignalWriter appends ephemeral signals (typing indicators) to
// chat.ephemeral. Appends are asynchronous and fire-and-forget: a signal
// lost to a broker hiccup is not worth a client's wait, and one that
// arrives late expires anyway. It is safe for concurrent use.
type SignalWriter struct {
	w   *kafka.Writer
	now func() time.Time
}

// NewSignalWriter returns a SignalWriter for the bootstrap brokers;
// names resolves chat.ephemeral.
func NewSignalWriter(brokers []string, names kafkalog.Names, log *slog.Logger) *SignalWriter {
	return &SignalWriter{
		w: kafkalog.NewWriter(brokers, names.Topic(schemas.TopicEphemeral), kafkalog.FireAndForget(func(records int, err error) {
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
