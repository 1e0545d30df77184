// Topic administration: the topology (partitions, replication, configs)
// and provisioning it idempotently.

package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/schemas"
)

// Topology is the shape of Parley's topics. Partitions is chosen up front:
// changing it re-maps conversations to partitions and breaks their order.
type Topology struct {
	// Names resolves the topic names under the deployment's prefix.
	// Default: no prefix.
	Names Names
	// Partitions of every conversation-keyed topic. Default: 12.
	Partitions int
	// ReplicationFactor of every topic. Default: 1 (use 3 in production).
	ReplicationFactor int
	// MinInsyncReplicas is every topic's min.insync.replicas: how many
	// replicas must have a record before an acks=all write (every
	// Parley writer of chat.commands and chat.events) succeeds. At most
	// ReplicationFactor. Default: 1 (use 2 with a replication factor of
	// 3, so one broker may be down and no acknowledged record lives on
	// one broker only).
	MinInsyncReplicas int
	// CommandRetention of chat.commands. Default: 7 days.
	CommandRetention time.Duration
	// ReplyRetention of chat.replies. Default: 1 day.
	ReplyRetention time.Duration
	// EphemeralRetention of chat.ephemeral. Default: 1 hour.
	EphemeralRetention time.Duration
	// DLQRetention of chat.dlq. Default: 30 days.
	DLQRetention time.Duration
	// DeliveryRetention of chat.changes and of each node's delivery topic
	// (chat.delivery.<node>): their readers start near the end, so an
	// hour is plenty. Default: 1 hour.
	DeliveryRetention time.Duration
}

// WithDefaults returns t with zero fields set to their defaults.
func (t Topology) WithDefaults() Topology {
	if t.Partitions == 0 {
		t.Partitions = 12
	}
	if t.ReplicationFactor == 0 {
		t.ReplicationFactor = 1
	}
	if t.MinInsyncReplicas == 0 {
		t.MinInsyncReplicas = 1
	}
	if t.CommandRetention == 0 {
		t.CommandRetention = 7 * 24 * time.Hour
	}
	if t.ReplyRetention == 0 {
		t.ReplyRetention = 24 * time.Hour
	}
	if t.EphemeralRetention == 0 {
		t.EphemeralRetention = time.Hour
	}
	if t.DLQRetention == 0 {
		t.DLQRetention = 30 * 24 * time.Hour
	}
	if t.DeliveryRetention == 0 {
		t.DeliveryRetention = time.Hour
	}
	return t
}

// Validate reports every problem of t at once.
func (t Topology) Validate() error {
	var errs []error
	if t.Partitions < 1 || t.Partitions > 10000 {
		errs = append(errs, fmt.Errorf("partitions must be 1..10000, got %d", t.Partitions))
	}
	if t.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("replication factor must be at least 1, got %d", t.ReplicationFactor))
	}
	if t.MinInsyncReplicas < 1 || (t.ReplicationFactor >= 1 && t.MinInsyncReplicas > t.ReplicationFactor) {
		errs = append(errs, fmt.Errorf("min insync replicas must be 1..replication factor (%d), got %d", t.ReplicationFactor, t.MinInsyncReplicas))
	}
	for name, d := range map[string]time.Duration{"command": t.CommandRetention, "reply": t.ReplyRetention, "ephemeral": t.EphemeralRetention, "dlq": t.DLQRetention, "delivery": t.DeliveryRetention} {
		if d < time.Minute {
			errs = append(errs, fmt.Errorf("%s retention must be at least 1m, got %s", name, d))
		}
	}
	return errors.Join(errs...)
}

// Topics returns the topic configs of t. Every config a default could
// change under us is explicit: a broker's log.retention.ms must never
// expire chat.events.
func (t Topology) Topics() []kafka.TopicConfig {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	topic := func(name, retention string) kafka.TopicConfig {
		policy := "delete"
		if name == schemas.TopicPresence || name == schemas.TopicReceipts || name == schemas.TopicPush {
			// One record per key survives: a user's latest presence, a
			// user's latest marker of each kind in a conversation, the
			// latest registration of a device or setting of a user.
			policy = "compact"
		}
		return kafka.TopicConfig{
			Topic:             t.Names.Topic(name),
			NumPartitions:     t.Partitions,
			ReplicationFactor: t.ReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{
				{ConfigName: "cleanup.policy", ConfigValue: policy},
				{ConfigName: "retention.ms", ConfigValue: retention},
				{ConfigName: "retention.bytes", ConfigValue: "-1"},
				{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(t.MinInsyncReplicas)},
			},
		}
	}
	return []kafka.TopicConfig{
		topic(schemas.TopicCommands, ms(t.CommandRetention)),
		topic(schemas.TopicEvents, "-1"),
		topic(schemas.TopicReplies, ms(t.ReplyRetention)),
		topic(schemas.TopicEphemeral, ms(t.EphemeralRetention)),
		topic(schemas.TopicPresence, "-1"),
		topic(schemas.TopicReceipts, "-1"),
		topic(schemas.TopicPush, "-1"),
		topic(schemas.TopicDLQ, ms(t.DLQRetention)),
		topic(schemas.TopicAudit, "-1"),
		topic(schemas.TopicChanges, ms(t.DeliveryRetention)),
		topic(schemas.TopicDevices, "-1"),
	}
}

// NodeTopic returns the config of gateway node node's delivery topic: one
// partition (the node reads all of it, in order), delete policy, the
// delivery retention.
func (t Topology) NodeTopic(node string) kafka.TopicConfig {
	t = t.WithDefaults()
	return kafka.TopicConfig{
		Topic:             t.Names.Delivery(node),
		NumPartitions:     1,
		ReplicationFactor: t.ReplicationFactor,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "delete"},
			{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(t.DeliveryRetention.Milliseconds(), 10)},
			{ConfigName: "retention.bytes", ConfigValue: "-1"},
			{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(t.MinInsyncReplicas)},
		},
	}
}

// ProvisionNode creates node's delivery topic if it does not exist. Both
// the node (before it reads) and the router (before it writes) call it:
// whichever comes first creates it with the same configuration, and a
// broker's auto-creation defaults never apply.
func ProvisionNode(ctx context.Context, client *kafka.Client, t Topology, node string) error {
	if !schemas.ValidNodeID(node) {
		return fmt.Errorf("node id %q cannot name a topic: use 1-200 characters of [A-Za-z0-9._-]", node)
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{t.NodeTopic(node)}})
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", t.Names.Delivery(node), err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", name, err)
		}
	}
	return nil
}

// ErrPartitionMismatch is returned when an existing topic's partition
// count differs from the topology's: conversations would map to other
// partitions than the ones holding their history.
var ErrPartitionMismatch = errors.New("partition count mismatch")

// Provision creates Parley's topics if they do not exist and checks that
// existing ones have the configured partition count. It is idempotent and
// runs on every start. The replication factor and the configs apply when
// a topic is created; an existing topic keeps its own (change them with
// Kafka's tools: kafka-configs.sh, kafka-reassign-partitions.sh).
func Provision(ctx context.Context, client *kafka.Client, t Topology) error {
	t = t.WithDefaults()
	if err := t.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	topics := t.Topics()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", name, err)
		}
	}
	names := make([]string, len(topics))
	for i, tc := range topics {
		names[i] = tc.Topic
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("reading topic metadata: %w", err)
	}
	for _, mt := range meta.Topics {
		if mt.Error != nil {
			return fmt.Errorf("topic %s: %w", mt.Name, mt.Error)
		}
		if len(mt.Partitions) != t.Partitions {
			return fmt.Errorf("%w: topic %s has %d partitions, configured %d", ErrPartitionMismatch, mt.Name, len(mt.Partitions), t.Partitions)
		}
	}
	return nil
}

// NewClient returns a kafka-go admin client of c.
func NewClient(c *Cluster) *kafka.Client {
	return &kafka.Client{Addr: c.addr(), Transport: c.roundTripper(), Timeout: 10 * time.Second}
}

// ExistingPartitions returns the partition count of topic, and whether
// it exists. It lists the cluster's topics rather than asking for topic by
// name, which a broker that creates topics on first use would create.
func ExistingPartitions(ctx context.Context, client *kafka.Client, topic string) (n int, exists bool, err error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return 0, false, fmt.Errorf("listing topics: %w", err)
	}
	for _, t := range meta.Topics {
		if t.Name == topic && t.Error == nil {
			return len(t.Partitions), true, nil
		}
	}
	return 0, false, nil
}

// Partitions returns the partition count of topic.
func Partitions(ctx context.Context, client *kafka.Client, topic string) (int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, fmt.Errorf("reading metadata of %s: %v", topic, meta.Topics)
	}
	return len(meta.Topics[0].Partitions), nil
}
