package producers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return []string{b.Addr()}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProvision(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t)
	ctx := testContext(t)
	client := producers.NewClient(brokers)
	topo := producers.Topology{Partitions: 5, CommandRetention: 48 * time.Hour, ReplyRetention: 2 * time.Hour, EphemeralRetention: 30 * time.Minute, DLQRetention: 10 * 24 * time.Hour}
	if err := producers.Provision(ctx, client, topo); err != nil {
		t.Fatal(err)
	}
	t.Run("running it again changes nothing", func(t *testing.T) {
		if err := producers.Provision(ctx, client, topo); err != nil {
			t.Fatalf("second Provision: %v", err)
		}
	})
	t.Run("every topic has the configured partitions", func(t *testing.T) {
		for _, topic := range []string{schemas.TopicCommands, schemas.TopicEvents, schemas.TopicReplies, schemas.TopicEphemeral, schemas.TopicPresence, schemas.TopicReceipts, schemas.TopicDLQ, schemas.TopicChanges} {
			n, err := producers.Partitions(ctx, client, topic)
			if err != nil || n != 5 {
				t.Errorf("Partitions(%s) = %d, %v; want 5", topic, n, err)
			}
		}
	})
	t.Run("every topic has explicit retention and cleanup configs", func(t *testing.T) {
		want := map[string]string{
			schemas.TopicCommands:  "172800000",
			schemas.TopicEvents:    "-1", // forever
			schemas.TopicReplies:   "7200000",
			schemas.TopicDLQ:       "864000000",
			schemas.TopicEphemeral: "1800000",
			schemas.TopicPresence:  "-1",
			schemas.TopicReceipts:  "-1",
			schemas.TopicChanges:   "3600000",
		}
		var res []kafka.DescribeConfigRequestResource
		for topic := range want {
			res = append(res, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
				ConfigNames: []string{"retention.ms", "retention.bytes", "cleanup.policy"}})
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
			if r.ResourceName == schemas.TopicPresence || r.ResourceName == schemas.TopicReceipts {
				policy = "compact"
			}
			if got["retention.ms"] != want[r.ResourceName] || got["retention.bytes"] != "-1" || got["cleanup.policy"] != policy {
				t.Errorf("%s configs %v, want retention.ms %s, retention.bytes -1, cleanup.policy %s", r.ResourceName, got, want[r.ResourceName], policy)
			}
		}
	})
	t.Run("a node's delivery topic has one partition and the delivery retention", func(t *testing.T) {
		for range 2 { // idempotent
			if err := producers.ProvisionNode(ctx, client, topo, "gw-1.a_b"); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := producers.Partitions(ctx, client, schemas.DeliveryTopic("gw-1.a_b")); err != nil || n != 1 {
			t.Errorf("Partitions(%s) = %d, %v; want 1", schemas.DeliveryTopic("gw-1.a_b"), n, err)
		}
		resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: schemas.DeliveryTopic("gw-1.a_b"), ConfigNames: []string{"retention.ms"}}}})
		if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].ConfigEntries) != 1 || resp.Resources[0].ConfigEntries[0].ConfigValue != "3600000" {
			t.Errorf("delivery topic configs: %+v, %v; want retention.ms 3600000", resp, err)
		}
		if err := producers.ProvisionNode(ctx, client, topo, "no/slashes"); err == nil {
			t.Error("a node id that cannot name a topic was accepted")
		}
	})
	t.Run("another partition count is refused", func(t *testing.T) {
		err := producers.Provision(ctx, client, producers.Topology{Partitions: 6})
		if !errors.Is(err, producers.ErrPartitionMismatch) {
			t.Errorf("Provision with 6 partitions over 5 = %v, want ErrPartitionMismatch", err)
		}
	})
}

func TestTopologyValidate(t *testing.T) {
	t.Parallel()
	if err := (producers.Topology{}).WithDefaults().Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	err := producers.Topology{Partitions: 20000, ReplicationFactor: -1, CommandRetention: time.Second, ReplyRetention: time.Minute, DLQRetention: time.Hour}.Validate()
	for _, want := range []string{"partitions", "replication factor", "command retention"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to report %s", err, want)
		}
	}
	if err := producers.Provision(context.Background(), producers.NewClient([]string{"127.0.0.1:1"}), producers.Topology{Partitions: -3}); err == nil || !strings.Contains(err.Error(), "topology") {
		t.Errorf("Provision of an invalid topology = %v, want a topology error before any request", err)
	}
}

// javaMurmur2 is org.apache.kafka.common.utils.Utils.murmur2, written
// again from Kafka's source to check kafka-go's balancer independently.
func javaMurmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java client's default partition of a keyed record:
// toPositive(murmur2(key)) % partitions.
func javaPartition(key string, partitions int) int {
	return int(uint32(javaMurmur2([]byte(key))&0x7fffffff) % uint32(partitions))
}

func TestJavaMurmur2MatchesKafkasTestVectors(t *testing.T) {
	t.Parallel()
	// From Kafka's UtilsTest.testMurmur2.
	for key, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := javaMurmur2([]byte(key)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", key, got, want)
		}
	}
}

func partitionList(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestCommandWriterPartitionsLikeTheJavaClient(t *testing.T) {
	t.Parallel()
	const partitions = 12
	brokers := startBroker(t)
	ctx := testContext(t)
	if err := producers.Provision(ctx, producers.NewClient(brokers), producers.Topology{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"21", "foobar", "abc", "a-little-bit-long-string",
		schemas.DirectConversationID("alice", "bob"),
		schemas.DirectConversationID("carol", "dave"),
		schemas.GroupConversationID("alice", "cmd-1"),
		schemas.GroupConversationID("erin", "01J9ZK3W4X5Y6Z7A8B9C0D1E2F"),
	}
	cw := producers.NewCommandWriter(brokers, slogDiscard())
	defer cw.Close()
	seen := map[int]bool{}
	for i, key := range keys {
		cmd := schemas.SendMessageV1{CommandID: "c" + strconv.Itoa(i), UserID: "alice", ConversationID: key, Body: "hi", IssuedAt: time.Now()}
		if err := cw.Append(ctx, schemas.TypeSendMessage, key, cmd, "00-trace-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		seen[javaPartition(key, partitions)] = true
	}
	if len(seen) < 4 {
		t.Fatalf("the keys fall in only %d partitions: pick keys that tell partitions apart", len(seen))
	}
	got := readAll(t, brokers, schemas.TopicCommands, partitions)
	if len(got) != len(keys) {
		t.Fatalf("read %d records, want %d", len(got), len(keys))
	}
	for _, m := range got {
		key := string(m.Key)
		want := javaPartition(key, partitions)
		if m.Partition != want {
			t.Errorf("key %q in partition %d, want %d (Java's default partitioner)", key, m.Partition, want)
		}
		if b := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: m.Key}, partitionList(partitions)...); b != want {
			t.Errorf("kafka.Murmur2Balancer puts %q in %d, Java in %d", key, b, want)
		}
		attrs, err := producers.Attributes(m)
		if err != nil {
			t.Fatalf("record of %q: %v", key, err)
		}
		var cmd schemas.SendMessageV1
		if err := json.Unmarshal(m.Value, &cmd); err != nil {
			t.Fatal(err)
		}
		if attrs.Type != schemas.TypeSendMessage || attrs.Subject != key || attrs.Source != schemas.Source ||
			!strings.HasPrefix(attrs.TraceParent, "00-trace-") || attrs.HasSeq || attrs.CommandOffset != -1 || cmd.ConversationID != key {
			t.Errorf("record of %q: attributes %+v, value %s", key, attrs, m.Value)
		}
	}
}

func TestPartitionBalancer(t *testing.T) {
	t.Parallel()
	parts := partitionList(12)
	t.Run("it returns the message's partition", func(t *testing.T) {
		t.Parallel()
		for _, p := range parts {
			if got := (producers.PartitionBalancer{}).Balance(kafka.Message{Key: []byte("foobar"), Partition: p}, parts...); got != p {
				t.Errorf("Balance with Partition %d = %d", p, got)
			}
		}
	})
	t.Run("a partition the topic lacks falls back to murmur2 of the key", func(t *testing.T) {
		t.Parallel()
		if got := (producers.PartitionBalancer{}).Balance(kafka.Message{Key: []byte("foobar"), Partition: 40}, parts...); got != javaPartition("foobar", 12) {
			t.Errorf("Balance = %d, want %d", got, javaPartition("foobar", 12))
		}
	})
	t.Run("a partition writer writes where the message says", func(t *testing.T) {
		t.Parallel()
		const partitions = 4
		brokers := startBroker(t)
		ctx := testContext(t)
		if err := producers.Provision(ctx, producers.NewClient(brokers), producers.Topology{Partitions: partitions}); err != nil {
			t.Fatal(err)
		}
		w := producers.NewPartitionWriter(brokers, schemas.TopicEvents, slogDiscard())
		defer w.Close()
		murmur := javaPartition("foobar", partitions)
		var msgs []kafka.Message
		for i := range partitions {
			m := producers.Message(producers.NewAttributes(schemas.TypeMessageSent, "foobar", time.Now()), []byte(strconv.Itoa(i)))
			m.Partition = (murmur + i) % partitions
			msgs = append(msgs, m)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, brokers, schemas.TopicEvents, partitions)
		if len(got) != partitions {
			t.Fatalf("read %d records, want %d", len(got), partitions)
		}
		for _, m := range got {
			i, _ := strconv.Atoi(string(m.Value))
			if want := (murmur + i) % partitions; m.Partition != want {
				t.Errorf("record %d in partition %d, want %d", i, m.Partition, want)
			}
		}
	})
}

// readAll reads every record of topic up to its current end.
func readAll(t *testing.T, brokers []string, topic string, partitions int) []kafka.Message {
	t.Helper()
	ctx := testContext(t)
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := producers.NewClient(brokers).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range resp.Topics[topic] {
		if po.LastOffset <= 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: po.Partition, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond})
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset >= po.LastOffset-1 {
				break
			}
		}
		go r.Close() // Close waits for the in-flight fetch
	}
	return out
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReceiptWriter: read markers are appended at once, delivered markers
// coalesced to the highest seq per user and conversation; every receipt
// lands on its conversation's partition, keyed conversation/user/kind.
func TestReceiptWriter(t *testing.T) {
	t.Parallel()
	const partitions = 12
	brokers := startBroker(t)
	ctx := testContext(t)
	if err := producers.Provision(ctx, producers.NewClient(brokers), producers.Topology{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	rw := producers.NewReceiptWriter(brokers, time.Hour, slogDiscard())
	defer rw.Close()
	ab, cd := schemas.DirectConversationID("alice", "bob"), schemas.GroupConversationID("carol", "c1")
	if err := rw.Read(ctx, ab, "alice", 7); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{3, 9, 5} {
		rw.Delivered(ab, "bob", seq)
	}
	rw.Delivered(cd, "bob", 2)
	if err := rw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rw.Flush(ctx); err != nil { // nothing new: appends nothing
		t.Fatal(err)
	}
	got := map[string]schemas.ReceiptV1{}
	for _, m := range readAll(t, brokers, schemas.TopicReceipts, partitions) {
		v, err := schemas.Decode(schemas.TypeReceipt, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		r := *v.(*schemas.ReceiptV1)
		if m.Partition != javaPartition(r.ConversationID, partitions) {
			t.Errorf("%s in partition %d, want its conversation's %d", m.Key, m.Partition, javaPartition(r.ConversationID, partitions))
		}
		if string(m.Key) != schemas.ReceiptKey(r.ConversationID, r.UserID, r.Kind) {
			t.Errorf("key %s for %+v", m.Key, r)
		}
		if _, dup := got[string(m.Key)]; dup {
			t.Errorf("two records of %s", m.Key)
		}
		got[string(m.Key)] = r
	}
	want := map[string]uint64{
		schemas.ReceiptKey(ab, "alice", schemas.ReceiptRead):    7,
		schemas.ReceiptKey(ab, "bob", schemas.ReceiptDelivered): 9,
		schemas.ReceiptKey(cd, "bob", schemas.ReceiptDelivered): 2,
	}
	if len(got) != len(want) {
		t.Fatalf("receipts %v, want %v", got, want)
	}
	for k, seq := range want {
		if got[k].Seq != seq {
			t.Errorf("%s: seq %d, want %d", k, got[k].Seq, seq)
		}
	}
}
