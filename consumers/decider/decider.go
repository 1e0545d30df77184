// Package decider turns commands into events. It is a consumer group over
// chat.commands whose members own partitions: for each assigned partition
// it rebuilds the state of that partition's conversations from the same
// partition of chat.events, then validates each command against it,
// assigns the next contiguous per-conversation seq, deduplicates by client
// command id, and appends the event to chat.events (same partition) or a
// reply to chat.replies, committing the command only after the write is
// acknowledged.
//
// kafka-go has no transactions; exactly-once effect comes from
// determinism instead. Every event carries the offset of its command, so
// a new owner that rebuilds a partition resumes after the last command
// that produced an event, even if the previous owner died before
// committing; retried client sends are new records and are caught by the
// command-id dedupe. So only a batch that ends in commands that appended
// nothing is committed before the next is decided; the others are
// committed a few times a second, for the lag (commits.go).
//
// Each partition's commands come from the log, read from the first
// undecided offset on, and — when a gateway runs in the same process —
// from that gateway's command writer, which hands over each command the
// broker has acknowledged, with its offset (AppendedCommands, intake.go).
// The log stays the source of truth: a handed command is taken only if it
// is the next offset of its partition, the log's copy of a command taken
// already is dropped, and whatever was not handed over in turn is taken
// from the log.
//
// The rules are package conversation's (internal/conversation): the
// permission matrix of roles, then what depends on more than roles —
// authorship and the edit window, blocks in direct conversations,
// archived groups, limits, and commands that would change nothing. The
// gateway pre-checks requests with the same calls. State.Decide
// (decide.go) judges each command by them against the partition's
// state; every accepted event is folded into the state by the same code
// that folds events on rebuild (State.fold, over conversation.State.Fold,
// which the history projection folds its summaries with too), so a
// rebuilt state decides exactly as the one that wrote the events.
package decider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/contentkeys"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/schemas"
)

// Config configures the decider.
type Config struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// Names resolves topic and group names under the deployment's prefix.
	Names  kafkalog.Names
	Limits Limits
	// MaxBatch is the most commands decided per write. Default: 500.
	MaxBatch int
	// Linger is how long a batch waits for more commands once it has
	// taken what has arrived. Default: 0, no wait: commands that arrive
	// while a batch is decided and written make the next batch, so
	// batches grow with the load anyway. A shorter wait than a
	// millisecond costs a whole one on an idle process (the runtime's
	// timers sleep in epoll_wait, in milliseconds): the 100µs the
	// decider once waited added about 0.75 ms to every message at low
	// rates (BENCHMARKS.md).
	Linger time.Duration
	// SessionTimeout of the group membership: how long a crashed member's
	// partitions wait before another member takes over. Default: 6s
	// (kfake's and Kafka's default minimum).
	SessionTimeout time.Duration
	// CommitInterval is how often the offsets of batches whose commands
	// all appended events are committed (see offsets). Default:
	// kafkalog.CommitInterval.
	CommitInterval time.Duration
	// WriteTimeout bounds one append to chat.events. Default: 30s.
	WriteTimeout time.Duration
	// StateDir is where the decider keeps the state of its partitions
	// that does not stay in memory (see Store); it must not be shared
	// with another decider. Default: a new directory under the system's
	// temporary directory, removed when Run returns.
	StateDir string
	// MaxConversations is how many conversations each partition keeps
	// in memory; the least recently used beyond it are kept in the
	// store. Default: 10,000.
	MaxConversations int
	Logger           *slog.Logger
	Metrics          *telemetry.Metrics
	// Sealer, if set, seals the personal content of every event before
	// it is appended (crypto-shredding: *contentkeys.Keyring). Default:
	// none, events are appended as decided.
	Sealer Sealer
	// Opener opens the sealed events the state is rebuilt from (titles
	// are state). Default: none, they are read redacted.
	Opener consumers.Opener
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Handoff, if set, is handed the records of every batch once the
	// broker has acknowledged their append: a delivery hub in the same
	// process (delivery.Hub) that takes them without waiting to read them
	// back. Default: none.
	Handoff Handoff
}

// Handoff is told of the records the decider appended to chat.events
// and chat.replies, in the order of their partition, once the broker has
// acknowledged them — never before they are durable. It must not block
// for long: the partition waits for it.
type Handoff interface {
	AppendedEvents(ctx context.Context, records []kafka.Message)
	AppendedReplies(ctx context.Context, records []kafka.Message)
}

func (c Config) withDefaults() Config {
	if c.MaxBatch == 0 {
		c.MaxBatch = 500
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = kafkalog.CommitInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxConversations == 0 {
		c.MaxConversations = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Decider is the decider role.
type Decider struct {
	cfg     Config
	log     *slog.Logger
	client  *kafka.Client
	events  *kafka.Writer
	replies *kafka.Writer
	dlq     *kafka.Writer
	// closing tracks readers being closed in the background.
	closing sync.WaitGroup
	// commitMu serializes offset commits. Every partition's goroutine
	// may commit through the generation's one coordinator connection, and
	// kafka-go's Conn busy-waits (re-arming the read deadline in a loop)
	// for its own response while others are in flight on it: unserialized,
	// 12 partitions' commits spun away a third of the server's CPU at
	// 2,000 msg/s (BENCHMARKS.md, scenario (a)).
	commitMu sync.Mutex
	// store holds the partitions' state beyond what is in memory; set
	// while Run runs.
	store *Store
	// cached counts the conversations the partitions keep in memory.
	cached atomic.Int64
	// handed routes the commands a gateway in the process hands over to
	// the partitions that decide them.
	handed handed
}

// New returns a Decider; Run starts it.
func New(cfg Config) *Decider {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "decider")
	return &Decider{
		cfg:     cfg,
		log:     log,
		client:  kafkalog.NewClient(cfg.Kafka),
		events:  producers.NewPartitionWriter(cfg.Kafka, cfg.Names.Topic(schemas.TopicEvents), log),
		replies: producers.NewPartitionWriter(cfg.Kafka, cfg.Names.Topic(schemas.TopicReplies), log),
		dlq:     kafkalog.NewWriter(cfg.Kafka, cfg.Names.Topic(schemas.TopicDLQ)),
	}
}

// Run joins the decider group and decides the commands of the partitions
// it is assigned until ctx is done. Pending writes are finished and
// committed before it returns.
func (d *Decider) Run(ctx context.Context) error {
	defer d.close()
	closeStore, err := d.openStore()
	if err != nil {
		return err
	}
	// Deferred before the group's Close, so run after it: every
	// partition's goroutine has returned by then.
	defer closeStore()
	cg, err := kafkalog.NewConsumerGroup(d.cfg.Kafka, kafkalog.Membership{
		Group:             d.cfg.Names.Group(schemas.GroupDecider),
		Topics:            []string{d.cfg.Names.Topic(schemas.TopicCommands)},
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    d.cfg.SessionTimeout,
		HeartbeatInterval: d.cfg.SessionTimeout / 6,
		Logger:            d.log,
		Errors:            d.cfg.Metrics.KafkaReaderErrors.WithLabelValues(d.cfg.Names.Group(schemas.GroupDecider), d.cfg.Names.Topic(schemas.TopicCommands)),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := cg.Close(); err != nil {
			d.log.Warn("leaving group", "err", err)
		}
	}()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			d.log.Warn("joining generation", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		commands := d.cfg.Names.Topic(schemas.TopicCommands)
		assigned := gen.Assignments[commands]
		d.log.Info("generation assigned", "generation", gen.ID, "partitions", len(assigned))
		offs := newOffsets(gen, commands, d.cfg.CommitInterval, &d.commitMu, d.log.With("generation", gen.ID))
		for _, a := range assigned {
			p, committed := a.ID, a.Offset
			offs.owners.Add(1)
			gen.Start(func(gctx context.Context) {
				defer offs.owners.Done()
				d.ownPartition(gctx, offs, p, committed)
			})
		}
		gen.Start(offs.run)
	}
}

func (d *Decider) close() {
	d.closing.Wait()
	for _, w := range []*kafka.Writer{d.events, d.replies, d.dlq} {
		if err := w.Close(); err != nil {
			d.log.Warn("closing writer", "topic", w.Topic, "err", err)
		}
	}
}

// readerErrors logs and counts the errors of the decider's partition
// readers of topic.
func (d *Decider) readerErrors(topic string) kafkalog.ReaderOption {
	return kafkalog.ReaderErrors(d.log.With("topic", topic), d.cfg.Metrics.KafkaReaderErrors.WithLabelValues(d.cfg.Names.Group(schemas.GroupDecider), topic))
}

// CachedConversations returns how many conversations the decider's
// partitions keep in memory.
func (d *Decider) CachedConversations() int { return int(d.cached.Load()) }

// openStore opens the store of the partitions' state and returns what
// closes it.
func (d *Decider) openStore() (func(), error) {
	dir, remove := d.cfg.StateDir, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "parley-decider-"); err != nil {
			return nil, fmt.Errorf("making the decider's state directory: %w", err)
		}
		remove = true
	}
	st, err := OpenStore(dir, d.log)
	if err != nil {
		return nil, err
	}
	d.store = st
	return func() {
		if err := st.Close(); err != nil {
			d.log.Warn("closing the state store", "err", err)
		}
		if remove {
			if err := os.RemoveAll(dir); err != nil {
				d.log.Warn("removing the state directory", "dir", dir, "err", err)
			}
		}
	}, nil
}

// ownPartition decides the commands of partition p for as long as the
// generation lasts. When the partition fails — an append that did not
// land, a store error — its state is dropped and rebuilt from
// chat.events, after a pause that doubles up to 30 s while it keeps
// failing.
func (d *Decider) ownPartition(ctx context.Context, offs *offsets, p int, committed int64) {
	pause := time.Second
	for {
		started := time.Now()
		err := d.runPartition(ctx, offs, p, committed)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			pause = time.Second
		}
		d.log.Error("partition failed; rebuilding it", "partition", p, "err", err, "in", pause)
		d.cfg.Metrics.PartitionRebuilds.WithLabelValues(d.cfg.Names.Group(schemas.GroupDecider)).Inc()
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// Rebuild reads partition p of chat.events from the start up to its high
// watermark into a fresh State.
func (d *Decider) Rebuild(ctx context.Context, p int) (*State, error) {
	ps, err := d.store.partition(p)
	if err != nil {
		return nil, err
	}
	st := newState(d.cfg.Limits, ps, d.cfg.MaxConversations, &d.cached)
	events := d.cfg.Names.Topic(schemas.TopicEvents)
	hw, err := d.endOf(ctx, events, p)
	if err != nil {
		return nil, err
	}
	if hw <= 0 {
		return st, nil
	}
	r := kafkalog.NewPartitionReader(d.cfg.Kafka, events, p, d.readerErrors(events))
	defer d.closeAsync(r, d.log)
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return nil, fmt.Errorf("seeking %s/%d: %w", events, p, err)
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading %s/%d: %w", events, p, err)
		}
		rec, err := consumers.DecodeRecord(ctx, m, d.cfg.Opener)
		if err == nil {
			err = st.Apply(rec.Attrs, rec.Message.Value)
		}
		if errors.Is(err, errStore) {
			st.release()
			return nil, fmt.Errorf("rebuilding %s/%d: %w", events, p, err)
		}
		if err != nil {
			// An event the decider itself wrote is never invalid; if one
			// is, it is skipped loudly rather than blocking the partition.
			d.log.Error("skipping event on rebuild", "partition", p, "offset", m.Offset, "err", err)
		}
		if m.Offset >= hw-1 {
			return st, nil
		}
	}
}

// endOf is the end (high watermark) of partition p of topic.
func (d *Decider) endOf(ctx context.Context, topic string, p int) (int64, error) {
	resp, err := d.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}},
	})
	if err != nil {
		return 0, fmt.Errorf("listing offsets of %s/%d: %w", topic, p, err)
	}
	po := resp.Topics[topic]
	if len(po) != 1 || po[0].Error != nil {
		return 0, fmt.Errorf("listing offsets of %s/%d: %v", topic, p, po)
	}
	return po[0].LastOffset, nil
}

// withinCommands is from, or the end of partition p of chat.commands if
// that is before from: a log that lost commands its events answered, or
// the decider had committed. The commands appended since take the lost
// ones' offsets, and would otherwise be skipped.
func (d *Decider) withinCommands(ctx context.Context, p int, from int64) (int64, error) {
	if from <= 0 {
		return from, nil
	}
	end, err := d.endOf(ctx, d.cfg.Names.Topic(schemas.TopicCommands), p)
	if err != nil {
		return 0, err
	}
	if from > end {
		d.log.Error("the log lost commands: chat.commands ends before the offset the partition resumes from; going on from its end (README, A log that lost records)",
			"partition", p, "from_offset", from, "end", end)
		return end, nil
	}
	return from, nil
}

func (d *Decider) runPartition(ctx context.Context, offs *offsets, p int, committed int64) error {
	log := d.log.With("partition", p)
	commands := d.cfg.Names.Topic(schemas.TopicCommands)
	start := time.Now()
	st, err := d.Rebuild(ctx, p)
	if err != nil {
		return err
	}
	defer st.release()
	from := committed
	if st.LastCommandOffset+1 > from {
		from = st.LastCommandOffset + 1
	}
	if from, err = d.withinCommands(ctx, p, from); err != nil {
		return err
	}
	log.Info("partition rebuilt", "took", time.Since(start), "from_offset", from, "committed", committed)
	// The hand-off opens before the reader seeks: whatever is appended
	// from here on is either handed over or read.
	handed := d.handed.open(p)
	defer d.handed.close(p, handed)
	r := kafkalog.NewPartitionReader(d.cfg.Kafka, commands, p, d.readerErrors(commands))
	defer d.closeAsync(r, log)
	in := &intake{
		handed: handed, next: from,
		fromLog:     d.cfg.Metrics.CommandsTaken.WithLabelValues("log"),
		fromHandoff: d.cfg.Metrics.CommandsTaken.WithLabelValues("gateway"),
	}
	if from < 0 {
		from, in.next = kafka.FirstOffset, -1
	}
	if err := r.SetOffset(from); err != nil {
		return fmt.Errorf("seeking %s/%d: %w", commands, p, err)
	}
	logged := make(chan fetched, 64)
	in.log = logged
	rctx, stopReading := context.WithCancel(ctx)
	var reading sync.WaitGroup
	reading.Go(func() { readLog(rctx, r, logged) })
	defer reading.Wait()
	defer stopReading()
	batch := make([]kafka.Message, 0, d.cfg.MaxBatch)
	for {
		batch, err = in.gather(ctx, batch[:0], d.cfg.MaxBatch, d.cfg.Linger)
		if err != nil {
			return fmt.Errorf("fetching %s/%d: %w", commands, p, err)
		}
		if err := d.decideBatch(ctx, offs, st, p, batch); err != nil {
			return err
		}
	}
}

// decideBatch decides every command of batch, writes the events, then the
// replies and dead letters, and commits (see offsets). Writes use their
// own bounded context, never the generation's: a cancelled write may still
// land after a new owner has rebuilt, so the old owner waits for its
// outcome.
func (d *Decider) decideBatch(ctx context.Context, offs *offsets, st *State, p int, batch []kafka.Message) error {
	now := d.cfg.Now()
	var events, replies, dead []kafka.Message
	// lastAppended: the batch's last command appended an event, which
	// carries its offset.
	lastAppended := false
	for _, m := range batch {
		lastAppended = false
		attrs, err := kafkalog.Decode(m)
		value := m.Value
		if err == nil && attrs.Sealed {
			// A command sealed by the gateway: opened, or read blank
			// once its author is erased (and then refused for it).
			var rec consumers.Record
			rec, err = consumers.DecodeRecord(ctx, m, d.cfg.Opener)
			if err != nil && !errors.Is(err, contentkeys.ErrNotSealed) {
				// The key store out of reach: nothing of this batch is
				// written, and it is decided again once it answers.
				return fmt.Errorf("deciding %s/%d at offset %d: %w", d.cfg.Names.Topic(schemas.TopicCommands), p, m.Offset, err)
			}
			value = rec.Message.Value
		}
		var dec Decision
		if err == nil {
			d.cfg.Metrics.CommandWait.Observe(now.Sub(attrs.Time).Seconds())
			dec, err = st.Decide(attrs, value, m.Offset, now)
		}
		if errors.Is(err, errStore) {
			// Nothing of this batch is written: its commands are decided
			// again from the rebuilt state.
			return fmt.Errorf("deciding %s/%d at offset %d: %w", d.cfg.Names.Topic(schemas.TopicCommands), p, m.Offset, err)
		}
		switch {
		case err != nil:
			d.log.Warn("dead-lettering command", "partition", p, "offset", m.Offset, "err", err)
			dead = append(dead, consumers.DeadLetter(m, d.cfg.Names.Group(schemas.GroupDecider), err))
			d.cfg.Metrics.Commands.WithLabelValues("invalid", "dead_letter").Inc()
		case dec.Event != nil:
			evAttrs, value, err := d.seal(ctx, dec.Event.Attrs, dec.Event.Value)
			if err != nil {
				// The state holds the event: give up the partition so
				// that it is rebuilt from what was written.
				return fmt.Errorf("sealing the event of %s/%d at offset %d: %w", d.cfg.Names.Topic(schemas.TopicCommands), p, m.Offset, err)
			}
			msg := kafkalog.Encode(evAttrs, value)
			msg.Partition = p
			events = append(events, msg)
			lastAppended = true
			d.cfg.Metrics.Commands.WithLabelValues(attrs.Type, "accepted").Inc()
		case dec.Reply != nil:
			msg := kafkalog.Encode(dec.Reply.Attrs, dec.Reply.Value)
			msg.Partition = p
			replies = append(replies, msg)
			outcome := "duplicate"
			if dec.Reply.Attrs.Type == schemas.TypeCommandRejected {
				outcome = "rejected"
			}
			d.cfg.Metrics.Commands.WithLabelValues(attrs.Type, outcome).Inc()
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WriteTimeout)
	defer cancel()
	if len(events) > 0 {
		if err := d.events.WriteMessages(wctx, events...); err != nil {
			// The state already holds these events: give up the
			// partition so that it is rebuilt from what was written.
			return fmt.Errorf("appending %d events: %w", len(events), err)
		}
		if d.cfg.Handoff != nil {
			d.cfg.Handoff.AppendedEvents(wctx, events)
		}
	}
	if len(dead) > 0 {
		if err := d.dlq.WriteMessages(wctx, dead...); err != nil {
			return fmt.Errorf("dead-lettering %d commands: %w", len(dead), err)
		}
		d.cfg.Metrics.DeadLetters.WithLabelValues(d.cfg.Names.Group(schemas.GroupDecider)).Add(float64(len(dead)))
	}
	if len(replies) > 0 {
		// A lost reply is not lost work: the sender times out and retries
		// with the same command id, and gets the reply again.
		if err := d.replies.WriteMessages(wctx, replies...); err != nil {
			d.log.Error("writing replies", "records", len(replies), "err", err)
		} else if d.cfg.Handoff != nil {
			d.cfg.Handoff.AppendedReplies(wctx, replies)
		}
	}
	// Decided, as a projection's records are applied: dead letters are not.
	d.cfg.Metrics.ConsumedRecords.WithLabelValues(d.cfg.Names.Group(schemas.GroupDecider)).Add(float64(len(batch) - len(dead)))
	next := batch[len(batch)-1].Offset + 1
	if lastAppended {
		offs.later(p, next)
		return nil
	}
	if err := offs.now(p, next); err != nil {
		// Not fatal: the events carry their command offsets, and at
		// worst the commands after the last of them are decided again.
		d.log.Warn("committing", "partition", p, "offset", next, "err", err)
	}
	return nil
}

// closeAsync closes a reader without waiting: Close waits for the
// in-flight fetch, which can take the reader's MaxWait.
func (d *Decider) closeAsync(r *kafka.Reader, log *slog.Logger) {
	d.closing.Go(func() {
		if err := r.Close(); err != nil {
			log.Debug("closing reader", "err", err)
		}
	})
}

// Sealer seals an event's personal content: it returns the sealed
// envelope and true, or the value and false for an event without
// personal content.
type Sealer interface {
	SealEvent(ctx context.Context, attrs schemas.Attributes, value []byte) ([]byte, bool, error)
}

// seal returns the attributes and value of the record of an event: sealed
// when a Sealer is configured and the event has personal content.
func (d *Decider) seal(ctx context.Context, attrs schemas.Attributes, value []byte) (schemas.Attributes, []byte, error) {
	if d.cfg.Sealer == nil {
		return attrs, value, nil
	}
	sealed, ok, err := d.cfg.Sealer.SealEvent(ctx, attrs, value)
	if err != nil || !ok {
		return attrs, value, err
	}
	attrs.Sealed = true
	return attrs, sealed, nil
}
