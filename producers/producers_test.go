package producers_test

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/kafkalog/kafkatest"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
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
	k := kafkatest.Start(t)
	cluster := k.Cluster
	ctx := testContext(t)
	if err := kafkalog.Provision(ctx, k.Client(), k.Topology(kafkalog.Topology{Partitions: partitions})); err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"21", "foobar", "abc", "a-little-bit-long-string",
		schemas.DirectConversationID("alice", "bob"),
		schemas.DirectConversationID("carol", "dave"),
		schemas.GroupConversationID("alice", "cmd-1"),
		schemas.GroupConversationID("erin", "01J9ZK3W4X5Y6Z7A8B9C0D1E2F"),
	}
	cw := producers.NewCommandWriter(cluster, k.Names, slogDiscard())
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
	got := readAll(t, cluster, k.Names.Topic(schemas.TopicCommands), partitions)
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
		attrs, err := kafkalog.Decode(m)
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
		k := kafkatest.Start(t)
		cluster := k.Cluster
		ctx := testContext(t)
		if err := kafkalog.Provision(ctx, k.Client(), k.Topology(kafkalog.Topology{Partitions: partitions})); err != nil {
			t.Fatal(err)
		}
		w := producers.NewPartitionWriter(cluster, k.Names.Topic(schemas.TopicEvents), slogDiscard())
		defer w.Close()
		murmur := javaPartition("foobar", partitions)
		var msgs []kafka.Message
		for i := range partitions {
			m := kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeMessageSent, "foobar", time.Now()), []byte(strconv.Itoa(i)))
			m.Partition = (murmur + i) % partitions
			msgs = append(msgs, m)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, cluster, k.Names.Topic(schemas.TopicEvents), partitions)
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
func readAll(t *testing.T, cluster *kafkalog.Cluster, topic string, partitions int) []kafka.Message {
	t.Helper()
	ctx := testContext(t)
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := kafkalog.NewClient(cluster).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range resp.Topics[topic] {
		if po.LastOffset <= 0 {
			continue
		}
		r := kafkalog.NewPartitionReader(cluster, topic, po.Partition)
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

// TestReceiptWriterSpreadsDeliveredMarkers: a delivered marker is
// appended one interval after its first coalesced note, not with every
// other marker at the next tick of a shared clock: markers noted at
// different times are appended at different times, each with the
// highest seq noted for it by then.
func TestReceiptWriterSpreadsDeliveredMarkers(t *testing.T) {
	t.Parallel()
	const partitions = 4
	k := kafkatest.Start(t, kafkatest.Topics(kafkalog.Topology{Partitions: partitions}))
	ctx := testContext(t)
	rw := producers.NewReceiptWriter(k.Cluster, k.Names, time.Second, slogDiscard())
	defer rw.Close()
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := t0
	rw.SetClock(func() time.Time { return now })
	at := func(d time.Duration) { now = t0.Add(d) }
	flushDue := func() {
		t.Helper()
		if err := rw.FlushDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ab, cd := schemas.DirectConversationID("alice", "bob"), schemas.GroupConversationID("carol", "c1")

	rw.Delivered(ab, "bob", 1)
	at(400 * time.Millisecond)
	rw.Delivered(cd, "bob", 4)
	rw.Delivered(ab, "bob", 2) // coalesced with the first note
	at(900 * time.Millisecond)
	flushDue() // nothing due yet
	at(time.Second)
	flushDue() // ab/bob at 2
	at(1300 * time.Millisecond)
	rw.Delivered(ab, "bob", 3) // a new note: due a second from now
	flushDue()                 // nothing due
	at(1400 * time.Millisecond)
	flushDue() // cd/bob at 4
	at(2200 * time.Millisecond)
	flushDue() // nothing due
	at(2300 * time.Millisecond)
	flushDue() // ab/bob at 3

	type appended struct {
		conv string
		seq  uint64
		at   time.Duration
	}
	var got []appended
	for _, m := range readAll(t, k.Cluster, k.Names.Topic(schemas.TopicReceipts), partitions) {
		v, err := schemas.Decode(schemas.TypeReceipt, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		r := v.(*schemas.ReceiptV1)
		if r.UserID != "bob" || r.Kind != schemas.ReceiptDelivered {
			t.Errorf("unexpected receipt %+v", r)
		}
		got = append(got, appended{r.ConversationID, r.Seq, r.At.Sub(t0)})
	}
	slices.SortFunc(got, func(a, b appended) int { return cmp.Compare(a.at, b.at) })
	want := []appended{{ab, 2, time.Second}, {cd, 4, 1400 * time.Millisecond}, {ab, 3, 2300 * time.Millisecond}}
	if !slices.Equal(got, want) {
		t.Errorf("appended %+v, want %+v", got, want)
	}
}

// TestReceiptWriter: read markers are appended at once, delivered markers
// coalesced to the highest seq per user and conversation; every receipt
// lands on its conversation's partition, keyed conversation/user/kind.
func TestReceiptWriter(t *testing.T) {
	t.Parallel()
	const partitions = 12
	k := kafkatest.Start(t)
	cluster := k.Cluster
	ctx := testContext(t)
	if err := kafkalog.Provision(ctx, k.Client(), k.Topology(kafkalog.Topology{Partitions: partitions})); err != nil {
		t.Fatal(err)
	}
	rw := producers.NewReceiptWriter(cluster, k.Names, time.Hour, slogDiscard())
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
	for _, m := range readAll(t, cluster, k.Names.Topic(schemas.TopicReceipts), partitions) {
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
