// The ScyllaDB store's configuration: hosts, keyspace, replication,
// consistency, and its validation.

package scyllastore

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/schemas/cql"
)

// Config configures a Store. The zero value of every field but Hosts is
// a usable default.
type Config struct {
	// Hosts are the contact points, each "host" or "host:port"; the
	// driver discovers the rest of the cluster from them. Required.
	Hosts []string
	// Port is the CQL port of hosts given without one. Default: 9042.
	Port int
	// Keyspace is the keyspace of the history tables: lower-case
	// letters, digits and underscores, starting with a letter, at most
	// 48 characters. Open creates it if it does not exist. Default:
	// "parley".
	Keyspace string
	// Replication is the replication map Open creates the keyspace with
	// (it never changes an existing keyspace's). Default:
	// {"class": "SimpleStrategy", "replication_factor": "1"}, for a
	// one-node development cluster. In production use
	// {"class": "NetworkTopologyStrategy", "<datacenter>": "3", ...}:
	// it places replicas on distinct racks and lets LOCAL_QUORUM stay
	// within one data centre.
	Replication map[string]string
	// Consistency is the consistency level of every read and write, by
	// name: ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM,
	// LOCAL_ONE (case-insensitive). Reads and writes at LOCAL_QUORUM
	// overlap in at least one replica, so a read sees every write that
	// returned. Default: LOCAL_QUORUM.
	Consistency string
	// LocalDC, when set, makes the driver send requests to the replicas
	// of this data centre first (token-aware over DC-aware round robin).
	// Default: "" (token-aware over round robin across all nodes).
	LocalDC string
	// Timeout bounds each request and each connection attempt, so Open
	// against an unreachable cluster fails within a few timeouts rather
	// than hanging. Default: 5s.
	Timeout time.Duration
	// Concurrency is the most requests one call (Apply, Conversations)
	// has in flight at once. Default: 32.
	Concurrency int
	// Username and Password, when Username is set, authenticate with
	// ScyllaDB's PasswordAuthenticator. Default: no authentication.
	Username string
	Password string
	// Logger receives the store's and the driver's logs. Default:
	// discard.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultPort        = 9042
	DefaultKeyspace    = "parley"
	DefaultConsistency = "LOCAL_QUORUM"
	DefaultTimeout     = 5 * time.Second
	DefaultConcurrency = 32
)

// DefaultReplication returns the default replication map.
func DefaultReplication() map[string]string {
	return map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}
}

// ParseConsistency parses a consistency level name for reads and writes.
// The serial levels (SERIAL, LOCAL_SERIAL) and ANY, which cannot serve
// reads, are refused.
func ParseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if c.IsSerial() || c == gocql.Any {
		return 0, fmt.Errorf("consistency %s cannot serve both reads and writes", c)
	}
	return c, nil
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("no hosts"))
	}
	for i, h := range c.Hosts {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, fmt.Errorf("host %d is empty", i))
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	if c.Keyspace != "" && !cql.ValidKeyspace(c.Keyspace) {
		errs = append(errs, fmt.Errorf("keyspace %q: want lower-case letters, digits and underscores, starting with a letter, at most 48 characters", c.Keyspace))
	}
	if c.Replication != nil {
		if _, err := cql.Replication(c.Replication); err != nil {
			errs = append(errs, fmt.Errorf("replication: %w", err))
		}
		switch c.Replication["class"] {
		case "SimpleStrategy", "NetworkTopologyStrategy",
			"org.apache.cassandra.locator.SimpleStrategy", "org.apache.cassandra.locator.NetworkTopologyStrategy":
		default:
			errs = append(errs, fmt.Errorf("replication class %q: want SimpleStrategy or NetworkTopologyStrategy", c.Replication["class"]))
		}
	}
	if c.Consistency != "" {
		if _, err := ParseConsistency(c.Consistency); err != nil {
			errs = append(errs, fmt.Errorf("consistency: %w", err))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("negative timeout %v", c.Timeout))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("negative concurrency %d", c.Concurrency))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("password without username"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with its zero fields set to their defaults. c
// must be valid.
func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Keyspace == "" {
		c.Keyspace = DefaultKeyspace
	}
	if c.Replication == nil {
		c.Replication = DefaultReplication()
	} else {
		c.Replication = maps.Clone(c.Replication)
	}
	if c.Consistency == "" {
		c.Consistency = DefaultConsistency
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
