// Package embeddedkafka runs the embedded default's Kafka: an in-process
// Kafka-protocol broker (kfake) persisting to a data directory. Parley's
// own code never calls it directly; it talks to the broker with kafka-go
// exactly as it would to a real cluster: other processes over TCP, the
// process that runs it over a local socket (Broker.Dial), the same
// protocol either way.
//
// kfake's defaults would silently lose data in a deployment (7-day log
// retention, 7-day expiry of idle groups' offsets), so Start sets them to
// "never"; topics get explicit configs from package kafkalog. It applies
// those topics' retention and compaction every few minutes rather than
// kfake's hour, since kfake keeps an index entry per record batch in
// memory until its records are gone, and it rewrites the broker's log of
// group state at 1 MiB rather than 10 MiB (see stateLogCompactBytes).
// Its connections read through a buffer (bufferedListener).
//
// One broker at a time may use a directory: Start takes an exclusive lock
// on it (a file beside it, DIR.lock), held until Close or the process
// ends, and refuses a directory another process's broker holds — a
// second `parley run`, or `parley rebuild` beside a running one, would
// otherwise load the same log and write to it too.
package embeddedkafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sys/unix"
)

// Config configures the embedded broker.
type Config struct {
	// Dir is where the broker persists its log and offsets.
	Dir string
	// Addr is the TCP address to listen on. Default: 127.0.0.1:9092.
	// Use 127.0.0.1:0 for a free port.
	Addr string
	// Brokers is the number of brokers in the cluster: the first listens
	// on Addr, the others on free ports of Addr's host. More than one lets
	// a test create topics with a replication factor above 1; the
	// embedded default runs one. Default: 1.
	Brokers int
	// Logger receives the broker's warnings and errors.
	Logger *slog.Logger
	// Cleaner is how often topics' retention and compaction are applied.
	// Default: 5 minutes.
	Cleaner time.Duration
	// SyncWrites syncs every batch the broker appends (its segment and
	// index) to disk before the broker acknowledges it, so that an
	// acknowledged record survives a crash of the machine, not only of
	// the process. Default: off, as Kafka's own default: the operating
	// system writes the log back in its own time, and it is synced when
	// a segment rolls and when the broker closes.
	SyncWrites bool
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
	lock *os.File
	// local maps each broker's TCP address to the address of the
	// in-process socket it also listens on (see Dial).
	local map[string]string
}

// Start starts the broker; it reloads everything persisted under Dir.
func Start(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:9092"
	}
	if cfg.Brokers < 1 {
		cfg.Brokers = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Cleaner <= 0 {
		cfg.Cleaner = 5 * time.Minute
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: %w", cfg.Addr, err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("kafka data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("kafka data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	// kfake starts its brokers one after another: the first gets Addr.
	listened := 0
	local := make(map[string]string)
	opts := []kfake.Opt{
		kfake.Ports(make([]int, cfg.Brokers)...),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			addr := cfg.Addr
			if listened > 0 {
				addr = net.JoinHostPort(host, "0")
			}
			listened++
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			in, err := listenLocal()
			if err != nil {
				// Only dearer: the process's clients dial TCP instead.
				cfg.Logger.Warn("the embedded broker has no local socket; the process's clients reach it over TCP", "err", err)
			}
			if in == nil {
				return bufferedListener{ln}, nil
			}
			local[ln.Addr().String()] = in.Addr().String()
			return bufferedListener{newEitherListener(ln, in)}, nil
		}),
		kfake.DataDir(dir),
		kfake.BrokerConfigs(map[string]string{
			"log.retention.ms": "-1",
			// An int32 of minutes: about 1,000 years.
			"offsets.retention.minutes": "525600000",
			"log.cleaner.backoff.ms":    strconv.FormatInt(cfg.Cleaner.Milliseconds(), 10),
			"state.log.compact.bytes":   strconv.Itoa(stateLogCompactBytes),
		}),
		kfake.WithLogger(logger{cfg.Logger}),
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("starting embedded kafka on %s: %w", cfg.Addr, err)
	}
	addrs := c.ListenAddrs()
	return &Broker{c: c, addr: addrs[0], lock: lock, local: local}, nil
}

// lockDir takes the exclusive lock of the broker's directory dir: a
// lock (flock) on the file dir.lock, which the kernel releases when the
// file is closed or the process ends, however it ends. The file is
// beside dir, not in it, where kfake would take it for its own.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the kafka data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("the kafka data dir %s is in use by another process's embedded broker (is parley already running on this data dir?)", dir)
		}
		return nil, fmt.Errorf("locking the kafka data dir %s: %w", dir, err)
	}
	return f, nil
}

// Addr is the address clients bootstrap from (the first broker's).
func (b *Broker) Addr() string { return b.addr }

// Dial connects to address as net.Dialer.DialContext does, except that
// it reaches a broker of b's by the socket it listens on for its own
// process (see listenLocal). Clients in the process that runs the broker
// dial with it (kafkalog.DialWith); the brokers advertise, and other
// processes reach, their TCP addresses.
func (b *Broker) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if in, ok := b.local[address]; ok && network == "tcp" {
		return d.DialContext(ctx, "unix", in)
	}
	return d.DialContext(ctx, network, address)
}

// Close stops the broker, flushes its state to disk and releases the
// directory.
func (b *Broker) Close() {
	b.c.Close()
	_ = b.lock.Close()
}

// logger adapts kfake's logger to slog, passing on warnings and errors.
type logger struct{ l *slog.Logger }

func (l logger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.l.Error(fmt.Sprintf(msg, args...), "component", "embedded-kafka")
	case kfake.LogLevelWarn:
		l.l.Warn(fmt.Sprintf(msg, args...), "component", "embedded-kafka")
	}
}

// stateLogCompactBytes is the size at which the broker rewrites its log
// of group state (every offset commit appends to it). kfake rewrites it in
// the loop that serves every request, so its default, 10 MiB, stalled
// the whole broker for a fifth of a second every half minute under
// load; a rewrite of 1 MiB takes a few milliseconds.
const stateLogCompactBytes = 1 << 20

// bufferedListener accepts connections whose reads go through a buffer.
// kfake reads each request with two reads of its connection, the 4-byte
// size and then the body; through a buffer the first read takes in what
// the client sent, the whole request as a rule, and the body comes from
// memory: one system call per request fewer, on every produce and fetch
// of every client.
type bufferedListener struct{ net.Listener }

// requestBuffer holds most requests whole: Parley's produce requests and
// fetches are a few hundred bytes to a few KiB. A larger request is read
// past the buffer, as before.
const requestBuffer = 16 << 10

func (l bufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, requestBuffer)}, nil
}

// bufferedConn is a net.Conn that reads through r. kfake reads a
// connection from one goroutine at a time, each handing over to the next
// through a channel, so r needs no lock.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
