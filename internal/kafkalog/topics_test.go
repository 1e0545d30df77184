// Tests of topic provisioning: explicit configs, idempotence, refusals.
package kafkalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/schemas"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProvision(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	ctx := testContext(t)
	client := k.Client()
	topo := k.Topology(kafkalog.Topology{Partitions: 5, CommandRetention: 48 * time.Hour, ReplyRetention: 2 * time.Hour, EphemeralRetention: 30 * time.Minute, DLQRetention: 10 * 24 * time.Hour})
	if err := kafkalog.Provision(ctx, client, topo); err != nil {
		t.Fatal(err)
	}
	t.Run("running it again changes nothing", func(t *testing.T) {
		if err := kafkalog.Provision(ctx, client, topo); err != nil {
			t.Fatalf("second Provision: %v", err)
		}
	})
	t.Run("every topic has the configured partitions", func(t *testing.T) {
		for _, topic := range []string{k.Names.Topic(schemas.TopicCommands), k.Names.Topic(schemas.TopicEvents), k.Names.Topic(schemas.TopicReplies), k.Names.Topic(schemas.TopicEphemeral), k.Names.Topic(schemas.TopicPresence), k.Names.Topic(schemas.TopicReceipts), k.Names.Topic(schemas.TopicPush), k.Names.Topic(schemas.TopicDLQ), k.Names.Topic(schemas.TopicAudit), k.Names.Topic(schemas.TopicChanges), k.Names.Topic(schemas.TopicDevices)} {
			n, err := kafkalog.Partitions(ctx, client, topic)
			if err != nil || n != 5 {
				t.Errorf("Partitions(%s) = %d, %v; want 5", topic, n, err)
			}
		}
	})
	t.Run("every topic has explicit retention and cleanup configs", func(t *testing.T) {
		want := map[string]string{
			k.Names.Topic(schemas.TopicCommands):  "172800000",
			k.Names.Topic(schemas.TopicEvents):    "-1", // forever
			k.Names.Topic(schemas.TopicReplies):   "7200000",
			k.Names.Topic(schemas.TopicDLQ):       "864000000",
			k.Names.Topic(schemas.TopicAudit):     "-1", // forever
			k.Names.Topic(schemas.TopicEphemeral): "1800000",
			k.Names.Topic(schemas.TopicPresence):  "-1",
			k.Names.Topic(schemas.TopicReceipts):  "-1",
			k.Names.Topic(schemas.TopicPush):      "-1",
			k.Names.Topic(schemas.TopicChanges):   "3600000",
			k.Names.Topic(schemas.TopicDevices):   "-1",
		}
		var res []kafka.DescribeConfigRequestResource
		for topic := range want {
			res = append(res, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
				ConfigNames: []string{"retention.ms", "retention.bytes", "cleanup.policy", "min.insync.replicas"}})
		}
		resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: res})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Resources) != len(want) {
			t.Fatalf("described %d topics, want %d", len(resp.Resources), len(want))
		}
		for _, r := range resp.Resources {
			if r.Error != nil {
				t.Fatalf("%s: %v", r.ResourceName, r.Error)
			}
			got := map[string]string{}
			for _, e := range r.ConfigEntries {
				got[e.ConfigName] = e.ConfigValue
			}
			policy := "delete"
			if r.ResourceName == k.Names.Topic(schemas.TopicPresence) || r.ResourceName == k.Names.Topic(schemas.TopicReceipts) || r.ResourceName == k.Names.Topic(schemas.TopicPush) {
				policy = "compact"
			}
			if got["retention.ms"] != want[r.ResourceName] || got["retention.bytes"] != "-1" || got["cleanup.policy"] != policy || got["min.insync.replicas"] != "1" {
				t.Errorf("%s configs %v, want retention.ms %s, retention.bytes -1, cleanup.policy %s, min.insync.replicas 1", r.ResourceName, got, want[r.ResourceName], policy)
			}
		}
	})
	t.Run("a node's delivery topic has one partition and the delivery retention", func(t *testing.T) {
		for range 2 { // idempotent
			if err := kafkalog.ProvisionNode(ctx, client, topo, "gw-1.a_b"); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := kafkalog.Partitions(ctx, client, k.Names.Delivery("gw-1.a_b")); err != nil || n != 1 {
			t.Errorf("Partitions(%s) = %d, %v; want 1", k.Names.Delivery("gw-1.a_b"), n, err)
		}
		resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: k.Names.Delivery("gw-1.a_b"), ConfigNames: []string{"retention.ms"}}}})
		if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].ConfigEntries) != 1 || resp.Resources[0].ConfigEntries[0].ConfigValue != "3600000" {
			t.Errorf("delivery topic configs: %+v, %v; want retention.ms 3600000", resp, err)
		}
		if err := kafkalog.ProvisionNode(ctx, client, topo, "no/slashes"); err == nil {
			t.Error("a node id that cannot name a topic was accepted")
		}
	})
	t.Run("another partition count is refused", func(t *testing.T) {
		err := kafkalog.Provision(ctx, client, k.Topology(kafkalog.Topology{Partitions: 6}))
		if !errors.Is(err, kafkalog.ErrPartitionMismatch) {
			t.Errorf("Provision with 6 partitions over 5 = %v, want ErrPartitionMismatch", err)
		}
	})
}

// TestProvisionReplicated creates the topics as the production overlay
// does (PARLEY_REPLICATION_FACTOR=3, PARLEY_MIN_INSYNC_REPLICAS=2) on a
// cluster of three brokers: the embedded one started with three, or a
// shared cluster that has them.
func TestProvisionReplicated(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Brokers(3))
	ctx := testContext(t)
	if n, err := k.BrokerCount(ctx); err != nil {
		t.Fatal(err)
	} else if n < 3 {
		t.Skipf("the cluster has %d brokers; a replication factor of 3 needs 3", n)
	}
	client := k.Client()
	topo := k.Topology(kafkalog.Topology{Partitions: 3, ReplicationFactor: 3, MinInsyncReplicas: 2})
	k.Provision(t, topo)
	if err := kafkalog.ProvisionNode(ctx, client, topo, "gw-1"); err != nil {
		t.Fatal(err)
	}
	topics := []string{k.Names.Delivery("gw-1")}
	for _, tc := range topo.WithDefaults().Topics() {
		topics = append(topics, tc.Topic)
	}

	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Topics) != len(topics) {
		t.Fatalf("metadata of %d topics, want %d", len(meta.Topics), len(topics))
	}
	for _, mt := range meta.Topics {
		if mt.Error != nil || len(mt.Partitions) == 0 {
			t.Errorf("%s: %v, %d partitions", mt.Name, mt.Error, len(mt.Partitions))
		}
		for _, p := range mt.Partitions {
			if len(p.Replicas) != 3 {
				t.Errorf("%s/%d has %d replicas, want 3", mt.Name, p.ID, len(p.Replicas))
			}
		}
	}

	var res []kafka.DescribeConfigRequestResource
	for _, topic := range topics {
		res = append(res, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"}})
	}
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != len(topics) {
		t.Fatalf("described %d topics, want %d", len(resp.Resources), len(topics))
	}
	for _, r := range resp.Resources {
		if r.Error != nil || len(r.ConfigEntries) != 1 || r.ConfigEntries[0].ConfigValue != "2" {
			t.Errorf("%s: min.insync.replicas %+v, %v; want 2", r.ResourceName, r.ConfigEntries, r.Error)
		}
	}

	if k.Embedded {
		t.Run("a replication factor above the broker count is refused", func(t *testing.T) {
			err := kafkalog.Provision(ctx, client, kafkalog.Topology{Names: kafkalog.Names{Prefix: "rf4."}, Partitions: 1, ReplicationFactor: 4})
			if err == nil || !errors.Is(err, kafka.InvalidReplicationFactor) {
				t.Errorf("Provision with replication factor 4 on 3 brokers = %v, want InvalidReplicationFactor", err)
			}
		})
	}
}

func TestTopologyValidate(t *testing.T) {
	t.Parallel()
	if err := (kafkalog.Topology{}).WithDefaults().Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	err := kafkalog.Topology{Partitions: 20000, ReplicationFactor: -1, MinInsyncReplicas: 1, CommandRetention: time.Second, ReplyRetention: time.Minute, DLQRetention: time.Hour}.Validate()
	for _, want := range []string{"partitions", "replication factor", "command retention"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to report %s", err, want)
		}
	}
	if err := (kafkalog.Topology{ReplicationFactor: 3, MinInsyncReplicas: 4}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "min insync replicas") {
		t.Errorf("Validate of min insync replicas 4 over 3 replicas = %v, want it refused", err)
	}
	if err := (kafkalog.Topology{ReplicationFactor: 3, MinInsyncReplicas: 2}).WithDefaults().Validate(); err != nil {
		t.Errorf("Validate of the production topology: %v", err)
	}
	unreachable := kafkalog.NewCluster([]string{"127.0.0.1:1"})
	defer unreachable.Close()
	if err := kafkalog.Provision(context.Background(), kafkalog.NewClient(unreachable), kafkalog.Topology{Partitions: -3}); err == nil || !strings.Contains(err.Error(), "topology") {
		t.Errorf("Provision of an invalid topology = %v, want a topology error before any request", err)
	}
}

func TestProvisionUnderAPrefix(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t, kafkatest.Prefixed())
	ctx := testContext(t)
	client := k.Client()
	names := k.Names
	topo := kafkalog.Topology{Names: names, Partitions: 3}
	if err := kafkalog.Provision(ctx, client, topo); err != nil {
		t.Fatal(err)
	}
	if err := kafkalog.ProvisionNode(ctx, client, topo, "gw-1"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{names.Topic(schemas.TopicCommands), names.Topic(schemas.TopicEvents), names.Topic(schemas.TopicDLQ), names.Delivery("gw-1")} {
		if _, err := kafkalog.Partitions(ctx, client, topic); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range meta.Topics {
		if k.Embedded && !strings.HasPrefix(mt.Name, names.Prefix) { // a shared cluster has others' topics
			t.Errorf("topic %s created without the prefix", mt.Name)
		}
	}
	t.Run("a second prefix on the same cluster gets its own topics", func(t *testing.T) {
		other := kafkalog.Topology{Names: kafkalog.Names{Prefix: names.Prefix + "b."}, Partitions: 5}
		if err := kafkalog.Provision(ctx, client, other); err != nil {
			t.Fatalf("Provision under another prefix with another partition count: %v", err)
		}
	})
}
