package kafkalog

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// Cluster is one Kafka cluster as a running process reaches it: its
// bootstrap brokers, and the transport that every writer and admin client
// built for it shares — kafka-go's connection pools and the cluster
// metadata they keep fresh. Readers and consumer groups dial connections
// of their own and close them with themselves.
//
// Without a transport of their own, kafka-go's writers and clients share
// its package-level DefaultTransport, which keeps a pool for every broker
// address the process has ever used, each refreshing its metadata every
// few seconds, until the process exits: a process that outlives a cluster
// — a test, or a tool that starts and stops the embedded broker — goes on
// dialing it, and whatever listens on that port later. One transport per
// cluster keeps the sharing (one set of connections for every writer of a
// process: a transport per writer made the send path slower,
// BENCHMARKS.md) and Close ends it.
//
// A Cluster is safe for concurrent use. A nil *Cluster has no brokers:
// what is built from it fails every request (for components a test runs
// without Kafka).
type Cluster struct {
	brokers   []string
	transport *kafka.Transport
	dialer    *kafka.Dialer
}

// Dial opens a connection to a broker's address (host:port), as
// net.Dialer.DialContext does.
type Dial func(ctx context.Context, network, address string) (net.Conn, error)

// A ClusterOption changes how a Cluster reaches its brokers.
type ClusterOption func(*Cluster)

// DialWith makes every connection to the cluster's brokers — writers',
// admin clients', readers' and consumer groups' — through dial. The
// embedded broker's dial reaches it in the same process without TCP
// (embeddedkafka.Broker.Dial).
func DialWith(dial Dial) ClusterOption {
	return func(c *Cluster) {
		c.transport.Dial = dial
		c.dialer.DialFunc = dial
	}
}

// NewCluster returns the cluster whose bootstrap brokers are brokers
// (host:port). Nothing is dialed until a writer or client is used.
func NewCluster(brokers []string, opts ...ClusterOption) *Cluster {
	c := &Cluster{
		brokers: slices.Clone(brokers),
		// DefaultTransport's settings.
		transport: &kafka.Transport{Dial: (&net.Dialer{Timeout: 3 * time.Second}).DialContext},
		// DefaultDialer's.
		dialer: &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Brokers returns the bootstrap brokers.
func (c *Cluster) Brokers() []string {
	if c == nil {
		return nil
	}
	return slices.Clone(c.brokers)
}

// Close closes the transport's idle connections and stops its metadata
// refreshes; connections in use close when their requests are answered.
// Close the writers and clients first: one used after Close dials again.
func (c *Cluster) Close() {
	if c != nil {
		c.transport.CloseIdleConnections()
	}
}

func (c *Cluster) addr() net.Addr {
	if c == nil {
		return kafka.TCP()
	}
	return kafka.TCP(c.brokers...)
}

// readerDialer is the dialer of the cluster's readers and consumer
// groups.
func (c *Cluster) readerDialer() *kafka.Dialer {
	if c == nil {
		return kafka.DefaultDialer
	}
	return c.dialer
}

func (c *Cluster) roundTripper() kafka.RoundTripper {
	if c == nil {
		return noCluster{}
	}
	return c.transport
}

// noCluster is the transport of a nil *Cluster.
type noCluster struct{}

func (noCluster) RoundTrip(context.Context, net.Addr, kafka.Request) (kafka.Response, error) {
	return nil, errors.New("no Kafka cluster is configured")
}
