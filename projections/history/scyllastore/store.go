// The ScyllaDB store: connecting (shard-aware), migrations, and Ping.

package scyllastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/projections/history/internal/convlock"
	"github.com/parley-chat/parley/schemas/cql"
)

// component is this store's partition of schema_migrations.
const component = "history"

var _ history.Store = (*Store)(nil)
var _ history.Pinger = (*Store)(nil)

// Store is the ScyllaDB history store. It is safe for concurrent use.
type Store struct {
	log *slog.Logger
	cfg Config
	// sess is the session every request goes through; heal replaces it.
	sess     atomic.Pointer[gocql.Session]
	healing  sync.Mutex // held while a new session is made
	healedAt time.Time  // guarded by healing
	keyspace string
	q        statements
	// concurrency is the most requests one call has in flight.
	concurrency int
	// writeMode chooses how Apply writes message rows; see doc.go.
	writeMode writeMode
	// inboxPageSize is the page size of inbox reads.
	inboxPageSize int
	// locks are held by Apply for the conversations it folds.
	locks *convlock.Locks
}

// Open connects to the cluster, creates the keyspace if needed, applies
// the schema migrations not applied yet, and returns a store on it.
//
// Open fails with a wrapped error, without retrying, when the cluster is
// unreachable (within a few cfg.Timeout) or ctx is done: the caller
// retries with backoff. It uses two sessions: a short-lived one without
// keyspace for the schema, then the store's own, bound to the keyspace so
// that the token-aware policy knows the keyspace's replicas.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scyllastore: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	q, err := renderStatements(cfg.Keyspace)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: %w", err)
	}
	session, err := connectMigrated(ctx, cfg, q)
	if err != nil {
		return nil, err
	}
	s := &Store{
		log:           cfg.Logger,
		cfg:           cfg,
		keyspace:      cfg.Keyspace,
		q:             q,
		concurrency:   cfg.Concurrency,
		writeMode:     writeBatches,
		inboxPageSize: 1000,
		locks:         convlock.New(),
	}
	s.sess.Store(session)
	return s, nil
}

// Connect connects to the cluster as Open does, creating the keyspace
// and applying the schema migrations (schemas/cql: the tables of every
// ScyllaDB store of Parley) if needed, and returns a session bound to the
// keyspace, for the other stores on it (the key directory,
// internal/keydir/scyllakeys). The caller closes the session.
func Connect(ctx context.Context, cfg Config) (*gocql.Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scyllastore: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	q, err := renderStatements(cfg.Keyspace)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: %w", err)
	}
	return connectMigrated(ctx, cfg, q)
}

// connectMigrated migrates the keyspace through a short-lived session
// without keyspace, then returns a session bound to it. cfg has its
// defaults.
func connectMigrated(ctx context.Context, cfg Config, q statements) (*gocql.Session, error) {
	boot, err := connect(ctx, cfg, "")
	if err != nil {
		return nil, fmt.Errorf("scyllastore: connecting to %v: %w", cfg.Hosts, err)
	}
	err = migrate(ctx, boot, cfg, q)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("scyllastore: migrating keyspace %s: %w", cfg.Keyspace, err)
	}
	session, err := connect(ctx, cfg, cfg.Keyspace)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: connecting to keyspace %s on %v: %w", cfg.Keyspace, cfg.Hosts, err)
	}
	return session, nil
}

func (s *Store) session() *gocql.Session { return s.sess.Load() }

// healOn replaces the session when *err says the driver holds no
// connection to a host it believes up — after a node restart the driver
// is not told about (no STATUS_CHANGE event), gocql can keep such a host
// without a pool and never reconnect it. A new session connects afresh;
// the failed call is retried by its caller as usual. At most one heal
// runs at a time, and at most one per cfg.Timeout.
func (s *Store) healOn(err *error) {
	if *err == nil || !(errors.Is(*err, gocql.ErrNoPool) || errors.Is(*err, gocql.ErrNoConnections)) {
		return
	}
	if !s.healing.TryLock() {
		return
	}
	defer s.healing.Unlock()
	if time.Since(s.healedAt) < s.cfg.Timeout {
		return
	}
	s.healedAt = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.cfg.Timeout)
	defer cancel()
	fresh, cerr := connect(ctx, s.cfg, s.keyspace)
	if cerr != nil {
		s.log.Warn("scylla session has no connections; reconnecting failed", "err", cerr)
		return
	}
	s.log.Warn("scylla session had no connections; replaced it", "err", *err)
	s.sess.Swap(fresh).Close()
}

// Close closes the store's connections. Calls after Close fail.
func (s *Store) Close() error {
	s.healing.Lock()
	defer s.healing.Unlock()
	s.session().Close()
	return nil
}

// Ping reads one row of the keyspace at the configured consistency: it
// succeeds when enough replicas answer for reads and writes to succeed,
// which is what readiness means for the history projection.
func (s *Store) Ping(ctx context.Context) (err error) {
	defer s.healOn(&err)
	var v int
	err = s.session().Query(s.q.ping, component).WithContext(ctx).Idempotent(true).Scan(&v)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("scyllastore: ping: %w", err)
	}
	return nil
}

func cluster(cfg Config, keyspace string) (*gocql.ClusterConfig, error) {
	cons, err := ParseConsistency(cfg.Consistency)
	if err != nil {
		return nil, err
	}
	c := gocql.NewCluster(cfg.Hosts...)
	c.Port = cfg.Port
	c.Keyspace = keyspace
	// Protocol v4 is the newest ScyllaDB speaks; fixing it saves the
	// version negotiation round trip.
	c.ProtoVersion = 4
	c.Consistency = cons
	c.SerialConsistency = gocql.LocalSerial
	c.Timeout = cfg.Timeout
	c.ConnectTimeout = cfg.Timeout
	c.WriteTimeout = cfg.Timeout
	// A node that went down is tried again this often (gocql's default
	// is a minute, long for a one-node development cluster restarting).
	c.ReconnectInterval = 5 * time.Second
	// Token awareness sends each request to a replica of its partition
	// (and, with ScyllaDB's shard-aware driver, to the shard that owns
	// it), saving the coordinator hop.
	fallback := gocql.RoundRobinHostPolicy()
	if cfg.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(cfg.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	c.Logger = driverLogger{cfg.Logger}
	if cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	return c, nil
}

// connect creates a session, giving up when ctx is done. gocql's
// CreateSession takes no context; each of its dials is bounded by
// cfg.Timeout, and a session it creates after ctx is done is closed.
func connect(ctx context.Context, cfg Config, keyspace string) (*gocql.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := cluster(cfg, keyspace)
	if err != nil {
		return nil, err
	}
	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.CreateSession()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// migrate creates the keyspace and the migration ledger, then applies the
// migrations not recorded yet, in order, recording each.
func migrate(ctx context.Context, session *gocql.Session, cfg Config, q statements) error {
	repl, err := cql.Replication(cfg.Replication)
	if err != nil {
		return err
	}
	boot, err := cql.Keyspace()
	if err != nil {
		return err
	}
	exec := func(stmt string) error {
		stmt, err := cql.Render(stmt, cfg.Keyspace, repl)
		if err != nil {
			return err
		}
		if err := session.Query(stmt).WithContext(ctx).Exec(); err != nil {
			return fmt.Errorf("executing %q: %w", stmt, err)
		}
		return nil
	}
	for _, stmt := range boot {
		if err := exec(stmt); err != nil {
			return err
		}
	}
	migrations, err := cql.Migrations()
	if err != nil {
		return err
	}
	applied := map[int]string{}
	iter := session.Query(q.selectMigrations, component).WithContext(ctx).Iter()
	var (
		version int
		sum     string
	)
	for iter.Scan(&version, &sum) {
		applied[version] = sum
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return fmt.Errorf("migration %s was edited after it was applied (checksum %s, applied %s): add a new migration instead", m.Name, m.Checksum, sum)
			}
			continue
		}
		for _, stmt := range m.Statements {
			run := func() error { return exec(stmt) }
			if table, column, ok := cql.AddedColumn(stmt); ok {
				err = addColumn(ctx, session, cfg.Keyspace, q, table, column, run)
			} else {
				err = run()
			}
			if err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		prev := map[string]any{}
		ok, err := session.Query(q.recordMigration, component, m.Version, m.Name, m.Checksum, time.Now()).
			WithContext(ctx).MapScanCAS(prev)
		if err != nil {
			return fmt.Errorf("recording migration %s: %w", m.Name, err)
		}
		if !ok && prev["checksum"] != m.Checksum {
			return fmt.Errorf("migration %s was recorded concurrently with checksum %v, want %s", m.Name, prev["checksum"], m.Checksum)
		}
		cfg.Logger.Info("applied schema migration", "keyspace", cfg.Keyspace, "migration", m.Name, "recorded", ok)
	}
	return nil
}

// addColumn runs alter, an ALTER TABLE ... ADD of column, unless
// system_schema.columns lists the column already; a failed ADD is a
// success when the column exists afterwards (another process starting
// at the same time added it). ScyllaDB has no ADD IF NOT EXISTS.
func addColumn(ctx context.Context, session *gocql.Session, keyspace string, q statements, table, column string, alter func() error) error {
	exists := func() (bool, error) {
		var name string
		err := session.Query(q.selectColumn, keyspace, table, column).WithContext(ctx).Scan(&name)
		if errors.Is(err, gocql.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("looking up column %s.%s: %w", table, column, err)
		}
		return true, nil
	}
	if ok, err := exists(); err != nil || ok {
		return err
	}
	err := alter()
	if err == nil {
		return nil
	}
	if ok, e := exists(); e == nil && ok {
		return nil
	}
	return err
}

// driverLogger passes gocql's log lines to slog.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Warn("gocql", "detail", fmt.Sprint(v...)) }
func (l driverLogger) Printf(format string, v ...any) {
	l.log.Warn("gocql", "detail", fmt.Sprintf(format, v...))
}
func (l driverLogger) Println(v ...any) { l.log.Warn("gocql", "detail", fmt.Sprint(v...)) }
