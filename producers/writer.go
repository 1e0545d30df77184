// The command and signal writers: commands to chat.commands, pipelined,
// typing to chat.ephemeral, keyed by conversation.

package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// ErrOverloaded is returned by CommandWriter.Enqueue when MaxPending
// commands already wait for the broker: Parley is saturated, and the
// caller should come back later rather than queue without bound.
var ErrOverloaded = errors.New("too many commands waiting for the log")

// CommandWriter appends commands to chat.commands, keyed by conversation
// id with the murmur2 partitioner. It is safe for concurrent use.
//
// Appends are pipelined: Enqueue returns as soon as the command has its
// place in its partition's line, and no goroutine waits per command; each
// command's outcome (every in-sync replica has it, or the write failed)
// comes on a channel of its own. At most MaxPending commands wait for the
// broker at once; beyond that Enqueue refuses with ErrOverloaded.
//
// Each partition has one produce request in flight at a time, as kafka-go
// writes them, and its commands wait in the partition's lane: a command
// that finds the lane idle waits the linger (Linger) for others to join
// it, when the lane's commands come close enough together for others to
// be likely to (see pace); the commands enqueued while a request is in
// flight leave together as soon as it is answered — up to
// kafkalog.SmallBatch in one request — for they have waited a round trip
// already. So batches grow with the load. kafka-go's own batching closes
// a batch after its linger whether or not the request before it is in
// flight, and writes the batches one after another: with a short linger,
// at high rates, batches of one or two would queue behind each other's
// round trips.
type CommandWriter struct {
	w       *kafka.Writer
	cluster *kafkalog.Cluster
	topic   string
	now     func() time.Time
	origin  string
	sealer  Sealer
	handoff CommandHandoff
	linger  time.Duration
	pending chan struct{} // a slot per command queued and not yet answered

	// lines has a lane per partition, once the first Enqueue has
	// learnt how many there are (linesMu serializes that look-up).
	lines   atomic.Pointer[lines]
	linesMu sync.Mutex

	closeMu sync.RWMutex
	closed  bool
	open    sync.WaitGroup // one count per command accepted and not yet answered
}

// lines are the lanes of chat.commands, one per partition, and the
// partitions' ids that Murmur2Balancer chooses among (0, 1, … n-1, as
// kafka-go lists a topic's).
type lines struct {
	lanes []lane
	ids   []int
}

// lane is one partition's line of commands: whether it is busy (a
// linger runs, or a request is in flight), how many commands are handed
// to kafka-go and not yet answered, and the ones gathered meanwhile.
type lane struct {
	mu       sync.Mutex
	busy     bool
	inflight int
	queued   []kafka.Message
	linger   *time.Timer // made at the lane's first linger, reset for each
	pace     pace
}

// pace follows how far apart a lane's commands come, to tell whether one
// that finds the lane idle is worth a linger: only when others are likely
// to join it. On a quiet lane nothing joins, and the linger would be
// latency paid for nothing; on a busy one it saves a request, a decision
// and a fetch at every hop after them for every command that joins.
type pace struct {
	last   time.Time
	gap    time.Duration // moving average of the gaps between commands
	seeded bool          // gap holds at least one gap
}

const (
	// lingerGaps: a command lingers while the lane's commands come less
	// than lingerGaps lingers apart on average — while at least one in
	// lingerGaps lingers gathers another command, were they to come
	// evenly. With the default linger of 1 ms: above 250 commands a
	// second on the partition.
	lingerGaps = 4
	// gapWeight: each gap counts for 1/gapWeight of the average.
	gapWeight = 8
	// maxGapLingers caps each gap, in lingers, so that a lane busy again
	// after a quiet spell lingers after a dozen commands or so.
	maxGapLingers = 4 * lingerGaps
)

// note records a command enqueued at now on the lane and tells whether it
// should linger, if it finds the lane idle. The first command of a lane
// does not.
func (p *pace) note(now time.Time, linger time.Duration) bool {
	if p.last.IsZero() {
		p.last = now
		return false
	}
	gap := min(max(now.Sub(p.last), 0), maxGapLingers*linger)
	p.last = now
	if !p.seeded {
		p.gap, p.seeded = gap, true
	} else {
		p.gap += (gap - p.gap) / gapWeight
	}
	return p.gap < lingerGaps*linger
}

// queuedCommand is what a command's record carries through kafka-go
// (its WriterData): where its answer goes, and its lane — not the
// partition kafka-go reports, which is the lane's unless the topic's
// partitions were to differ from what the writer read.
type queuedCommand struct {
	done chan error
	lane *lane
}

// errWriterClosed is returned by Enqueue after Close.
var errWriterClosed = errors.New("the command writer is closed")

// CommandOption configures a CommandWriter.
type CommandOption func(*CommandWriter)

// Origin names the gateway node appending the commands: every command
// carries it as parley_origin_node, so that its answer is routed back to
// this node (targeted routing).
func Origin(node string) CommandOption { return func(c *CommandWriter) { c.origin = node } }

// Sealer seals the personal content of a record
// (*contentkeys.Keyring): SealEvent returns the sealed envelope and true,
// or the value and false for a type without personal content.
type Sealer interface {
	SealEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, bool, error)
}

// Sealing makes the writer seal the personal content of the commands it
// appends (message bodies, file names, titles) with s, under the key of
// the user who issued them (crypto-shredding): chat.commands, kept for
// days, and a command dead-lettered to chat.dlq then hold no content in
// clear. Default: none.
func Sealing(s Sealer) CommandOption { return func(c *CommandWriter) { c.sealer = s } }

// CommandHandoff is told of the commands a CommandWriter appended, in
// the order of their partition, once every in-sync replica has them:
// records with their partition and offset set, as the log holds them. It
// must not block and must not change them; the gateway's own answers wait
// for it.
type CommandHandoff interface {
	AppendedCommands(records []kafka.Message)
}

// Handoff makes the writer hand what it appended to h: a decider in the
// same process (*decider.Decider), which decides a command from it
// without waiting to read it back from the log. Default: none.
func Handoff(h CommandHandoff) CommandOption { return func(c *CommandWriter) { c.handoff = h } }

// Linger is how long a command that finds its partition idle waits for
// others to join it in one request, when the partition's commands come
// less than four lingers apart on average (see pace); on a quieter
// partition it leaves at once. Default: DefaultLinger. At 0 each such
// command leaves at once whatever the rate: the least latency, for a
// request (and a decision, and a fetch at every hop after it) per command
// at moderate rates — more CPU per message (BENCHMARKS.md, "Commands
// gathered while their partition's request is in flight").
func Linger(d time.Duration) CommandOption {
	return func(c *CommandWriter) { c.linger = max(d, 0) }
}

// DefaultLinger is the default of Linger.
const DefaultLinger = time.Millisecond

// MaxPending bounds the commands queued and not yet acknowledged by the
// broker. Default: DefaultMaxPending.
func MaxPending(n int) CommandOption {
	return func(c *CommandWriter) { c.pending = make(chan struct{}, max(n, 1)) }
}

// DefaultMaxPending is the default bound of MaxPending: at a few hundred
// bytes a command, a few MiB queued, several seconds of the rate this
// kind of machine sustains (see BENCHMARKS.md); a backlog that large
// means the log is not keeping up, and answering "overloaded" at once is
// more honest than a timeout seconds later.
const DefaultMaxPending = 8192

// NewCommandWriter returns a CommandWriter of cluster;
// names resolves chat.commands.
func NewCommandWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger, opts ...CommandOption) *CommandWriter {
	c := &CommandWriter{cluster: cluster, topic: names.Topic(schemas.TopicCommands), now: time.Now, linger: DefaultLinger, pending: make(chan struct{}, DefaultMaxPending)}
	for _, o := range opts {
		o(c)
	}
	// Each call is one lane's batch, placed by the lane's partition: sent
	// at once, acknowledged by every in-sync replica, answered through
	// completed.
	c.w = kafkalog.NewWriter(cluster, c.topic,
		kafkalog.Pipelined(c.completed), kafkalog.Balancer(PartitionBalancer{}),
		kafkalog.BatchSize(kafkalog.SmallBatch), kafkalog.FlushAtOnce(),
		kafkalog.ErrorLog(log, "component", "command-writer"))
	return c
}

// Enqueue encodes cmd as JSON and queues it as a record of type typ about
// conversation. traceParent, if set, is carried as ce_traceparent.
//
// It returns once the record has its place in its partition: a record
// enqueued later for the same conversation (same key, same partition) is
// written after it, never before. written then receives the outcome of
// the write exactly once: nil when every in-sync replica has the record.
// If the write fails, a record enqueued after it may still be written;
// the caller reports the failure and the client retries with the same
// command id, which the decider dedupes.
//
// It refuses with ErrOverloaded, without waiting, when MaxPending
// commands are queued already. The first call reads the topic's
// partition count from the cluster.
func (c *CommandWriter) Enqueue(ctx context.Context, typ, conversation string, cmd any, traceParent string) (written <-chan error, err error) {
	value, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", typ, err)
	}
	now := c.now()
	attrs := kafkalog.NewAttributes(typ, conversation, now)
	attrs.TraceParent = traceParent
	attrs.OriginNode = c.origin
	if c.sealer != nil {
		if value, attrs.Sealed, err = c.sealer.SealEvent(ctx, attrs, value); err != nil {
			return nil, fmt.Errorf("sealing %s: %w", typ, err)
		}
	}
	ls, err := c.lanes(ctx)
	if err != nil {
		return nil, fmt.Errorf("appending %s: %w", typ, err)
	}
	if err := c.admit(); err != nil {
		return nil, fmt.Errorf("appending %s: %w", typ, err)
	}
	m := kafkalog.Encode(attrs, value)
	m.Partition = kafka.Murmur2Balancer{}.Balance(m, ls.ids...)
	l := &ls.lanes[m.Partition]
	done := make(chan error, 1)
	m.WriterData = &queuedCommand{done: done, lane: l}
	l.mu.Lock()
	linger := c.linger > 0 && l.pace.note(now, c.linger)
	switch {
	case l.busy:
		l.queued = append(l.queued, m)
		l.mu.Unlock()
		return done, nil
	case linger:
		l.busy = true
		l.queued = append(l.queued, m)
		// The lane's timer has fired if it exists: the lane was busy
		// until its release.
		if l.linger == nil {
			l.linger = time.AfterFunc(c.linger, func() { c.release(l, 0) })
		} else {
			l.linger.Reset(c.linger)
		}
		l.mu.Unlock()
		return done, nil
	}
	l.busy, l.inflight = true, 1
	l.mu.Unlock()
	// Asynchronous: this returns once m is in its partition's batch (or
	// with an error before that: metadata, size, a closed writer).
	if err := c.w.WriteMessages(ctx, m); err != nil {
		c.forget(1)
		c.release(l, 1)
		return nil, fmt.Errorf("appending %s: %w", typ, err)
	}
	return done, nil
}

// admit takes a pending slot for a command, or refuses it: the writer is
// closed, or MaxPending commands wait already.
func (c *CommandWriter) admit() error {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return errWriterClosed
	}
	select {
	case c.pending <- struct{}{}:
		c.open.Add(1)
		return nil
	default:
		return ErrOverloaded
	}
}

// forget gives back the slots of n commands that were answered.
func (c *CommandWriter) forget(n int) {
	for range n {
		<-c.pending
	}
	c.settled(n)
}

// lanes returns the lanes, one per partition of chat.commands, reading
// the partition count the first time. Parley fixes the count when it
// creates the topics; should it ever differ from the topic's, each
// conversation's commands would still go through one lane, in order, to
// one partition (the lane's, or murmur2's if the topic had fewer: see
// PartitionBalancer), each command answered through its own lane.
func (c *CommandWriter) lanes(ctx context.Context) (*lines, error) {
	if ls := c.lines.Load(); ls != nil {
		return ls, nil
	}
	c.linesMu.Lock()
	defer c.linesMu.Unlock()
	if ls := c.lines.Load(); ls != nil {
		return ls, nil
	}
	n, err := kafkalog.Partitions(ctx, kafkalog.NewClient(c.cluster), c.topic)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", c.topic)
	}
	ls := &lines{lanes: make([]lane, n), ids: make([]int, n)}
	for i := range ls.ids {
		ls.ids[i] = i
	}
	c.lines.Store(ls)
	return ls, nil
}

// release counts n of l's commands answered (0 when its linger ends);
// when none is left in flight, it hands kafka-go the next of what has
// gathered, up to kafkalog.SmallBatch in one call (one request), or
// leaves the lane idle.
func (c *CommandWriter) release(l *lane, n int) {
	l.mu.Lock()
	l.inflight -= n
	if l.inflight > 0 {
		l.mu.Unlock()
		return
	}
	if len(l.queued) == 0 {
		l.busy = false
		l.mu.Unlock()
		return
	}
	k := min(len(l.queued), kafkalog.SmallBatch)
	batch := slices.Clone(l.queued[:k])
	rest := copy(l.queued, l.queued[k:])
	clear(l.queued[rest:])
	l.queued = l.queued[:rest]
	l.inflight = k
	l.mu.Unlock()
	// The commands' own contexts were for their place in the lane, which
	// they have; the write now belongs to the writer (Close waits for it).
	for len(batch) > 0 {
		err := c.w.WriteMessages(context.Background(), batch...)
		// kafka-go refuses the whole call for one record too large for a
		// request, and hands back the others to write again.
		var tooLarge kafka.MessageTooLargeError
		if errors.As(err, &tooLarge) {
			c.completed([]kafka.Message{tooLarge.Message}, err)
			batch = tooLarge.Remaining
			continue
		}
		if err != nil {
			c.completed(batch, err)
		}
		return
	}
}

// Append enqueues cmd like Enqueue and waits for the broker's
// acknowledgement, or for ctx.
func (c *CommandWriter) Append(ctx context.Context, typ, conversation string, cmd any, traceParent string) error {
	written, err := c.Enqueue(ctx, typ, conversation, cmd, traceParent)
	if err != nil {
		return err
	}
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("appending %s: %w", typ, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("appending %s: %w", typ, ctx.Err())
	}
}

// completed hands a batch the writer wrote to the hand-off, if any, then
// answers every command of a batch the writer wrote or gave up on, frees
// their slots, and lets their lane send what has gathered. It
// runs on the writer's goroutines and never blocks: each command's
// channel has room for its one answer, and kafka-go's asynchronous
// WriteMessages only queues.
func (c *CommandWriter) completed(msgs []kafka.Message, err error) {
	if err == nil && c.handoff != nil {
		c.handoff.AppendedCommands(msgs)
	}
	// The slots first, so that a command whose answer is out is no
	// longer counted by Pending.
	for range msgs {
		<-c.pending
	}
	var l *lane // the lane of the run of msgs being counted
	n := 0
	for _, m := range msgs {
		q := m.WriterData.(*queuedCommand)
		q.done <- err
		if q.lane != l && n > 0 {
			c.settled(n)
			c.release(l, n)
			n = 0
		}
		l = q.lane
		n++
	}
	if n > 0 {
		c.settled(n)
		c.release(l, n)
	}
}

// settled tells Close that n answered commands, whose slots are given
// back, are done with.
func (c *CommandWriter) settled(n int) {
	for range n {
		c.open.Done()
	}
}

// Pending returns how many commands are queued and not yet answered.
func (c *CommandWriter) Pending() int { return len(c.pending) }

// Close refuses new commands, writes every one queued or in flight and
// answers it, then closes the writer.
func (c *CommandWriter) Close() error {
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.open.Wait()
	return c.w.Close()
}

// PartitionBalancer sends every message to the partition set in its
// Partition field. The decider uses it to write the events of a command
// to the partition number the command came from; because every
// conversation-keyed topic has the same count and partitioner, that is
// also where murmur2 would put the key.
type PartitionBalancer struct{}

// Balance implements kafka.Balancer.
func (PartitionBalancer) Balance(msg kafka.Message, partitions ...int) int {
	for _, p := range partitions {
		if p == msg.Partition {
			return p
		}
	}
	// Provision guarantees equal partition counts, so this is not reached;
	// if it were, the key's murmur2 partition is the only right answer.
	return kafka.Murmur2Balancer{}.Balance(msg, partitions...)
}

// NewPartitionWriter returns a synchronous writer to topic that honours
// each message's Partition, with acks from all in-sync replicas. Each
// call's messages are sent at once (kafkalog.FlushAtOnce): its caller
// writes whole batches, in requests of up to kafkalog.SmallBatch
// messages. The decider's calls hold one or two events at thousands of
// commands a second (it decides what each fetch brings); room for
// WideBatch was allocated and zeroed per call for nothing. A call of
// hundreds (a backlog) takes a request per SmallBatch (16) in series: at a few
// milliseconds a round trip, still thousands of events a second per
// partition.
func NewPartitionWriter(cluster *kafkalog.Cluster, topic string, log *slog.Logger) *kafka.Writer {
	return kafkalog.NewWriter(cluster, topic, kafkalog.Balancer(PartitionBalancer{}), kafkalog.BatchSize(kafkalog.SmallBatch),
		kafkalog.FlushAtOnce(), kafkalog.ErrorLog(log, "topic", topic))
}

// SignalWriter appends ephemeral signals (typing indicators) to
// chat.ephemeral. Appends are asynchronous and fire-and-forget: a signal
// lost to a broker hiccup is not worth a client's wait, and one that
// arrives late expires anyway. It is safe for concurrent use.
type SignalWriter struct {
	w   *kafka.Writer
	now func() time.Time
}

// NewSignalWriter returns a SignalWriter of cluster;
// names resolves chat.ephemeral.
func NewSignalWriter(cluster *kafkalog.Cluster, names kafkalog.Names, log *slog.Logger) *SignalWriter {
	return &SignalWriter{
		w: kafkalog.NewWriter(cluster, names.Topic(schemas.TopicEphemeral), kafkalog.FireAndForget(func(records int, err error) {
			log.Warn("dropping signals", "topic", names.Topic(schemas.TopicEphemeral), "records", records, "err", err)
		})),
		now: time.Now,
	}
}

// Typing appends a typing indicator of user in conversation, valid for
// ttl.
func (s *SignalWriter) Typing(ctx context.Context, conversation, user string, ttl time.Duration) error {
	at := s.now().UTC()
	value, err := json.Marshal(schemas.TypingV1{ConversationID: conversation, UserID: user, At: at, ExpiresAt: at.Add(ttl)})
	if err != nil {
		return fmt.Errorf("encoding %s: %w", schemas.TypeTyping, err)
	}
	if err := s.w.WriteMessages(ctx, kafkalog.Encode(kafkalog.NewAttributes(schemas.TypeTyping, conversation, at), value)); err != nil {
		return fmt.Errorf("appending %s: %w", schemas.TypeTyping, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (s *SignalWriter) Close() error { return s.w.Close() }
