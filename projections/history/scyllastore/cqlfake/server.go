// The stand-in's server: the CQL native protocol v4 over TCP, its
// connections, and what tests control (stop, stop after n requests) and
// read (stats).

package cqlfake

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Options configure a Server.
type Options struct {
	// Logger receives one debug record per statement the server is sent
	// (QUERY, PREPARE, BATCH children), which is how to find out what a
	// driver asks. Default: discard.
	Logger *slog.Logger
	// OnStatement, if set, is called with the text of every statement the
	// server is sent as QUERY, PREPARE or BATCH child, from the
	// connection's goroutine. Tests use it to see what a client sends.
	OnStatement func(cql string)
}

// Stats counts the requests a server has answered, by kind.
type Stats struct {
	Queries         int64 // QUERY
	Prepares        int64 // PREPARE
	Executes        int64 // EXECUTE
	Batches         int64 // BATCH
	BatchStatements int64 // statements inside BATCHes
}

// Server is a fake CQL node. Its methods are safe for concurrent use.
type Server struct {
	// lifecycle serializes Stop and Restart.
	lifecycle sync.Mutex

	log         *slog.Logger
	onStatement func(string)
	db          *db

	// killAfter, when positive, counts down the data requests (EXECUTE,
	// BATCH) before the node dies; dead is set when it does.
	killAfter atomic.Int64
	dead      atomic.Bool

	mu       sync.Mutex
	addr     string // fixed at the first Listen, reused by Restart
	ln       net.Listener
	conns    map[net.Conn]struct{}
	prepared map[string]*prepared
	parsed   map[string]*statement
	wg       sync.WaitGroup

	queries, prepares, executes, batches, batchStatements atomic.Int64
}

// New returns a server that is not listening yet; see Listen and Start.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, onStatement: opts.OnStatement, conns: map[net.Conn]struct{}{}, prepared: map[string]*prepared{}, parsed: map[string]*statement{}}
}

// Start starts a server on 127.0.0.1 on a free port and closes it when
// the test ends.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := New(o)
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("cqlfake: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Listen starts accepting connections on addr (host:port; port 0 picks a
// free one). It must be called once; use Restart after Stop.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	ip := ln.Addr().(*net.TCPAddr).IP
	d, err := newDB(ip)
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.mu.Lock()
	s.db, s.addr = d, ln.Addr().String()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host is the IP address the server listens on.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port is the TCP port the server listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// Stats returns the request counts so far.
func (s *Server) Stats() Stats {
	return Stats{
		Queries: s.queries.Load(), Prepares: s.prepares.Load(), Executes: s.executes.Load(),
		Batches: s.batches.Load(), BatchStatements: s.batchStatements.Load(),
	}
}

// Stop simulates the node going down: it stops listening and closes every
// connection at once (clients see resets, in-flight requests get no
// answer), keeping the data. Restart brings it back on the same port.
func (s *Server) Stop() {
	// A Restart waits for a Stop in progress to finish (its WaitGroup
	// must not be reused while Stop waits on it).
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// StopAfter makes the node die on the n-th data request (EXECUTE or
// BATCH) from now: that request and every later one get no answer and
// have no effect, and the server stops as Stop does. With n requests in
// flight from one Apply, this kills the node in the middle of it.
func (s *Server) StopAfter(n int64) {
	s.killAfter.Store(n)
}

// Running reports whether the server is listening (not stopped).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil
}

// Restart listens again on the address of the stopped server, with its
// data but, like a restarted ScyllaDB node, without its prepared
// statements: clients get UNPREPARED and must prepare again.
func (s *Server) Restart() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("cqlfake: restart of a running server")
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening again on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.prepared = map[string]*prepared{}
	s.dead.Store(false)
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() error {
	s.Stop()
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// conn is the state of one client connection.
type conn struct {
	s     *Server
	c     net.Conn
	codec frame.Codec
	wmu   sync.Mutex
	kmu   sync.Mutex
	ks    string // keyspace set by USE
	reqs  sync.WaitGroup
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	cn := &conn{s: s, c: c, codec: frame.NewCodec()}
	defer func() {
		cn.reqs.Wait()
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	// The codec reads a frame field by field: buffer, or every field is
	// a system call.
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		f, err := cn.codec.DecodeFrame(r)
		if err != nil {
			var pv *frame.ProtocolVersionErr
			if errors.As(err, &pv) {
				// Version negotiation: tell the driver which version we
				// speak, in a frame of that version, as Cassandra does.
				cn.write(frame.NewFrame(primitive.ProtocolVersion4, 0, &message.ProtocolError{
					ErrorMessage: fmt.Sprintf("Invalid or unsupported protocol version (%d); supported versions are (4/v4)", pv.Version),
				}))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("cqlfake: closing connection", "err", err)
			}
			return
		}
		if f.Header.Version != primitive.ProtocolVersion4 {
			cn.write(frame.NewFrame(primitive.ProtocolVersion4, f.Header.StreamId, &message.ProtocolError{
				ErrorMessage: fmt.Sprintf("Invalid or unsupported protocol version (%d); supported versions are (4/v4)", f.Header.Version),
			}))
			continue
		}
		// Requests run concurrently and may be answered out of order, as
		// on a real node; the stream id matches answers to requests.
		cn.reqs.Add(1)
		go func() {
			defer cn.reqs.Done()
			defer func() {
				// A bug of the fake answers as a server error instead of
				// killing the test binary.
				if p := recover(); p != nil {
					cn.write(frame.NewFrame(f.Header.Version, f.Header.StreamId,
						&message.ServerError{ErrorMessage: fmt.Sprintf("cqlfake: panic: %v", p)}))
				}
			}()
			if msg := cn.handle(f.Body.Message); msg != nil {
				cn.write(frame.NewFrame(f.Header.Version, f.Header.StreamId, msg))
			}
		}()
	}
}

func (cn *conn) write(f *frame.Frame) {
	var buf bytes.Buffer
	if err := cn.codec.EncodeFrame(f, &buf); err != nil {
		cn.s.log.Debug("cqlfake: encoding a response", "err", err)
		_ = cn.c.Close()
		return
	}
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	if _, err := cn.c.Write(buf.Bytes()); err != nil {
		_ = cn.c.Close()
	}
}

func (cn *conn) keyspace() string {
	cn.kmu.Lock()
	defer cn.kmu.Unlock()
	return cn.ks
}

// crash reports whether the node is dead or dies on this data request;
// the request must then go unanswered.
func (s *Server) crash() bool {
	if s.dead.Load() {
		return true
	}
	if s.killAfter.Load() > 0 && s.killAfter.Add(-1) == 0 {
		s.dead.Store(true)
		s.log.Debug("cqlfake: node dies as told")
		go s.Stop()
		return true
	}
	return false
}

// handle answers a request; nil means no answer (the node is dead).
func (cn *conn) handle(m message.Message) message.Message {
	s := cn.s
	if s.dead.Load() {
		return nil
	}
	switch m.(type) {
	case *message.Execute, *message.Batch:
		if s.crash() {
			return nil
		}
	}
	switch m := m.(type) {
	case *message.Options:
		// The node says it is a one-shard ScyllaDB node, so gocql takes its
		// ScyllaDB paths (shard-aware connection picker, system.peers
		// rather than peers_v2, USING TIMEOUT on metadata queries). It
		// advertises no shard-aware port, as a node behind NAT would.
		return &message.Supported{Options: map[string][]string{
			"CQL_VERSION":                {"3.3.1"},
			"COMPRESSION":                {},
			"PROTOCOL_VERSIONS":          {"4/v4"},
			"SCYLLA_SHARD":               {"0"},
			"SCYLLA_NR_SHARDS":           {"1"},
			"SCYLLA_PARTITIONER":         {"org.apache.cassandra.dht.Murmur3Partitioner"},
			"SCYLLA_SHARDING_ALGORITHM":  {"biased-token-round-robin"},
			"SCYLLA_SHARDING_IGNORE_MSB": {"12"},
		}}
	case *message.Startup:
		if c := m.Options[message.StartupOptionCompression]; c != "" {
			return &message.ProtocolError{ErrorMessage: "compression is not modelled: " + c}
		}
		return &message.Ready{}
	case *message.Register:
		// Events (schema, topology, status changes) are never pushed: the
		// topology never changes and gocql does not need schema events.
		return &message.Ready{}
	case *message.Query:
		s.queries.Add(1)
		s.log.Debug("cqlfake: query", "cql", m.Query)
		s.statement(m.Query)
		st, err := s.parse(m.Query)
		if err != nil {
			return asCQLError(err)
		}
		return cn.run(st, m.Options, cn.keyspace())
	case *message.Prepare:
		s.prepares.Add(1)
		s.log.Debug("cqlfake: prepare", "cql", m.Query)
		s.statement(m.Query)
		st, err := s.parse(m.Query)
		if err != nil {
			return asCQLError(err)
		}
		ks := cn.keyspace()
		pr, err := locked(s.db, func() (*prepared, error) { return s.db.prepare(st, ks) })
		if err != nil {
			return asCQLError(err)
		}
		sum := md5.Sum([]byte(ks + "\x00" + m.Query))
		id := sum[:]
		s.mu.Lock()
		s.prepared[string(id)] = pr
		s.mu.Unlock()
		return &message.PreparedResult{PreparedQueryId: id, VariablesMetadata: pr.vars, ResultMetadata: pr.result}
	case *message.Execute:
		s.executes.Add(1)
		s.mu.Lock()
		pr := s.prepared[string(m.QueryId)]
		s.mu.Unlock()
		if pr == nil {
			return &message.Unprepared{ErrorMessage: "Prepared query with ID " + fmt.Sprintf("%x", m.QueryId) + " not found", Id: m.QueryId}
		}
		return cn.run(pr.st, m.Options, pr.keyspace)
	case *message.Batch:
		s.batches.Add(1)
		return cn.batch(m)
	}
	return &message.ProtocolError{ErrorMessage: fmt.Sprintf("unsupported request %T", m)}
}

func (s *Server) statement(q string) {
	if s.onStatement != nil {
		s.onStatement(q)
	}
}

// parse parses a statement, caching by text.
func (s *Server) parse(q string) (*statement, error) {
	s.mu.Lock()
	st := s.parsed[q]
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := parse(q)
	if err != nil {
		return nil, syntaxError(fmt.Errorf("line 1: %w in %q", err, q))
	}
	s.mu.Lock()
	s.parsed[q] = st
	s.mu.Unlock()
	return st, nil
}

func (cn *conn) run(st *statement, qo *message.QueryOptions, ks string) message.Message {
	o := execOptions{keyspace: ks}
	if qo != nil {
		if qo.NamedValues != nil && qo.PositionalValues == nil {
			return &message.Invalid{ErrorMessage: "named values are not modelled"}
		}
		o.values = qo.PositionalValues
		o.defaultTS = qo.DefaultTimestamp
		o.pageSize = qo.PageSize
		o.pagingState = qo.PagingState
		o.skipMetadata = qo.SkipMetadata
	}
	if len(o.values) != st.nBinds {
		return &message.Invalid{ErrorMessage: fmt.Sprintf("there were %d markers(?) in CQL but %d bound variables", st.nBinds, len(o.values))}
	}
	d := cn.s.db
	res, err := locked(d, func() (message.Message, error) { return d.execute(st, o) })
	if err != nil {
		return asCQLError(err)
	}
	if sk, ok := res.(*message.SetKeyspaceResult); ok {
		cn.kmu.Lock()
		cn.ks = sk.Keyspace
		cn.kmu.Unlock()
	}
	return res
}

// batch runs a BATCH: every child is resolved first, then all writes are
// applied under one lock, so a batch is all-or-nothing here. (Cassandra
// guarantees that only for logged batches; an unlogged batch that fails
// part-way may be partly applied, which the adapter must tolerate anyway
// because it retries whole batches.)
func (cn *conn) batch(b *message.Batch) message.Message {
	s := cn.s
	if b.Type == primitive.BatchTypeCounter {
		return &message.Invalid{ErrorMessage: "counter batches are not modelled"}
	}
	type child struct {
		st *statement
		ks string
		o  execOptions
	}
	children := make([]child, 0, len(b.Children))
	for _, c := range b.Children {
		s.batchStatements.Add(1)
		ch := child{ks: cn.keyspace()}
		if c.Id != nil {
			s.mu.Lock()
			pr := s.prepared[string(c.Id)]
			s.mu.Unlock()
			if pr == nil {
				return &message.Unprepared{ErrorMessage: fmt.Sprintf("Prepared query with ID %x not found", c.Id), Id: c.Id}
			}
			ch.st, ch.ks = pr.st, pr.keyspace
		} else {
			s.log.Debug("cqlfake: batch query", "cql", c.Query)
			s.statement(c.Query)
			st, err := s.parse(c.Query)
			if err != nil {
				return asCQLError(err)
			}
			ch.st = st
		}
		switch ch.st.kind {
		case stmtInsert, stmtUpdate, stmtDelete:
		default:
			return &message.Invalid{ErrorMessage: "Only INSERT, UPDATE and DELETE statements are allowed in BATCH"}
		}
		if ch.st.ifNotExists {
			return &message.Invalid{ErrorMessage: "conditional statements in a BATCH are not modelled"}
		}
		if len(c.Values) != ch.st.nBinds {
			return &message.Invalid{ErrorMessage: fmt.Sprintf("there were %d markers(?) in CQL but %d bound variables", ch.st.nBinds, len(c.Values))}
		}
		ch.o = execOptions{keyspace: ch.ks, values: c.Values, defaultTS: b.DefaultTimestamp}
		children = append(children, ch)
	}
	d := s.db
	d.mu.Lock()
	defer d.mu.Unlock()
	muts := make([]*mutation, 0, len(children))
	for _, ch := range children {
		m, err := d.mutation(ch.st, ch.o)
		if err != nil {
			return asCQLError(err)
		}
		muts = append(muts, m)
	}
	for _, m := range muts {
		m.apply()
	}
	return &message.VoidResult{}
}
