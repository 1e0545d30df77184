// Package kafkatest gives a test a Kafka cluster of its own: the embedded
// broker on a free port with its data under t.TempDir(), or, when
// PARLEY_KAFKA_BROKERS is set, that cluster with a prefix unique to the
// test, so that tests and whole test runs can share one cluster without
// seeing each other's records or groups.
//
// Code under test must name every topic and group through Cluster.Names.
// Start is safe to call from parallel tests; everything it starts is
// stopped (and every topic it created on a shared cluster deleted) when
// the test ends.
package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
)

// BrokersEnv names the variable that points the tests at a real cluster:
// comma-separated bootstrap brokers.
const BrokersEnv = "PARLEY_KAFKA_BROKERS"

// Cluster is the Kafka cluster of one test.
type Cluster struct {
	// Cluster is how the test reaches it (Brokers gives the bootstrap
	// brokers); it is closed when the test ends.
	*kafkalog.Cluster
	// Names resolves topic and group names under the test's prefix
	// (none on a fresh embedded broker unless Prefixed is given).
	Names kafkalog.Names
	// Embedded says whether the cluster is the test's own embedded
	// broker.
	Embedded bool
}

// Client returns an admin client of the cluster.
func (c Cluster) Client() *kafka.Client { return kafkalog.NewClient(c.Cluster) }

// Topology returns t with the cluster's names, for Provision and for the
// components that take a topology.
func (c Cluster) Topology(t kafkalog.Topology) kafkalog.Topology {
	t.Names = c.Names
	return t
}

type options struct {
	topics   *kafkalog.Topology
	prefixed bool
	brokers  int
}

// Option changes what Start prepares.
type Option func(*options)

// Topics provisions Parley's topics with topology t (its Names are the
// cluster's) before Start returns.
func Topics(t kafkalog.Topology) Option {
	return func(o *options) { o.topics = &t }
}

// Prefixed gives the test a unique prefix on the embedded broker too, so
// that the code under test is seen to resolve every name.
func Prefixed() Option {
	return func(o *options) { o.prefixed = true }
}

// Brokers gives the embedded cluster n brokers instead of one, so that
// topics can be created with a replication factor up to n. A shared
// cluster (PARLEY_KAFKA_BROKERS) has the brokers it has: a test that
// needs n of them checks BrokerCount.
func Brokers(n int) Option {
	return func(o *options) { o.brokers = n }
}

// BrokerCount returns the number of brokers the cluster's metadata lists.
func (c Cluster) BrokerCount(ctx context.Context) (int, error) {
	meta, err := c.Client().Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return 0, fmt.Errorf("reading cluster metadata: %w", err)
	}
	return len(meta.Brokers), nil
}

// Start returns the test's cluster; see the package doc.
func Start(t testing.TB, opts ...Option) Cluster {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var c Cluster
	// Cleanups run last first: the cluster's connections close after the
	// test's topics are deleted and before its broker stops.
	if env := os.Getenv(BrokersEnv); env != "" {
		var brokers []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		c.Cluster = kafkalog.NewCluster(brokers)
		t.Cleanup(c.Close)
		c.Names = kafkalog.Names{Prefix: uniquePrefix()}
		t.Logf("kafka %s, prefix %s", env, c.Names.Prefix)
		t.Cleanup(func() { deleteTopics(t, c) })
	} else {
		b, err := embeddedkafka.Start(embeddedkafka.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0", Brokers: o.brokers})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		c.Cluster, c.Embedded = kafkalog.NewCluster([]string{b.Addr()}, kafkalog.DialWith(b.Dial)), true
		t.Cleanup(c.Close)
		if o.prefixed {
			c.Names = kafkalog.Names{Prefix: uniquePrefix()}
		}
	}
	if o.topics != nil {
		c.Provision(t, *o.topics)
	}
	return c
}

// Of returns the cluster of brokers the test started itself — kfake with
// hooks of its own, an embedded broker on a chosen address — as an
// embedded cluster without a prefix. Its connections close when the test
// ends, before a broker stopped by an earlier Cleanup.
func Of(t testing.TB, brokers []string) Cluster {
	c := Cluster{Cluster: kafkalog.NewCluster(brokers), Embedded: true}
	t.Cleanup(c.Close)
	return c
}

// Provision provisions Parley's topics with topology t under the
// cluster's names. A real cluster may not know the leaders of topics it
// has just created: Provision retries for up to a minute.
func (c Cluster) Provision(t testing.TB, topo kafkalog.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := kafkalog.Provision(ctx, c.Client(), c.Topology(topo))
		if err == nil {
			return
		}
		if errors.Is(err, kafkalog.ErrPartitionMismatch) {
			t.Fatalf("provisioning topics: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("provisioning topics: %v", err)
		case <-tick.C:
		}
	}
}

// uniquePrefix returns "t" and 10 random hex digits and a dot.
func uniquePrefix() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "t" + hex.EncodeToString(b[:]) + "."
}

// deleteTopics deletes the topics of c's prefix, so that runs against a
// shared cluster do not pile up. Failures are logged, not fatal: the
// test's outcome does not depend on them.
func deleteTopics(t testing.TB, c Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := c.Client()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Logf("listing topics to delete: %v", err)
		return
	}
	var topics []string
	for _, mt := range meta.Topics {
		if strings.HasPrefix(mt.Name, c.Names.Prefix) {
			topics = append(topics, mt.Name)
		}
	}
	if len(topics) == 0 {
		return
	}
	if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
		t.Logf("deleting topics %v: %v", topics, err)
	}
}

// ReadAll returns every record of topic at the moment of the call,
// partition by partition, each in offset order.
func ReadAll(t testing.TB, c *kafkalog.Cluster, topic string) []kafka.Message {
	t.Helper()
	ctx := context.Background()
	client := kafkalog.NewClient(c)
	n, err := kafkalog.Partitions(ctx, client, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for p := range n {
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatal(err)
		}
		hw := resp.Topics[topic][0].LastOffset
		if hw == 0 {
			continue
		}
		// A short long-poll: Close waits for the fetch in flight.
		r := kafkalog.NewPartitionReader(c, topic, p, func(rc *kafka.ReaderConfig) { rc.MaxWait = 500 * time.Millisecond })
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset == hw-1 {
				break
			}
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
	return out
}

// MetadataRefreshers counts the process's goroutines that keep a kafka-go
// connection pool's cluster metadata fresh: one per broker address per
// transport, from its first request until the transport closes it (see
// kafkalog.Cluster). Only a test that runs alone (not parallel) can
// attribute a change of the count.
func MetadataRefreshers() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return bytes.Count(buf.Bytes(), []byte("kafka-go.(*connPool).discover("))
}

// WaitMetadataRefreshersAtMost fails the test unless, within 10s, at most
// n metadata refreshers run (they end asynchronously once closed).
func WaitMetadataRefreshersAtMost(t testing.TB, n int, whose string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for MetadataRefreshers() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%s metadata refreshes still run: %d refreshers, want at most %d", whose, MetadataRefreshers(), n)
		}
		<-tick.C
	}
}
