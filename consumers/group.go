// The consumer-group runtime: batches, commits after the write, retries
// and dead letters, for every projection.

package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/schemas"
)

// Record is a consumed Kafka message with its decoded CloudEvents
// attributes.
type Record struct {
	Message kafka.Message
	Attrs   schemas.Attributes
	// sealed is the value as the log holds it when DecodeRecord opened
	// or redacted a sealed record.
	sealed []byte
}

// Original returns the message as the log holds it: for a sealed record,
// with its sealed envelope rather than the event it was decoded to. A
// record copied to another topic is copied with Original, so that
// sealed content stays sealed.
func (r Record) Original() kafka.Message {
	if r.sealed == nil {
		return r.Message
	}
	m := r.Message
	m.Value = r.sealed
	return m
}

// Projection is what a consumer group feeds. Decode must be pure: an
// error dead-letters that record and the group goes on. Apply gets the
// decoded records of one fetch in log order per partition, or, while a
// failing batch is being isolated, one record at a time; Apply must be
// idempotent, since a failed call is retried with what it may have
// written in part. What happens when Apply keeps failing is the package
// doc's rule: only a projection that is also a Prober ever has a record
// dead-lettered for it.
type Projection[T any] interface {
	Decode(Record) (T, error)
	Apply(ctx context.Context, batch []T) error
}

// Prober is implemented by a projection that can tell whether its store
// is healthy, to let the runtime dead-letter a record that the store
// keeps refusing while it takes others (see the package doc). Probe
// returns nil when the store takes writes now; it should write (and may
// then delete) something of its own, since a store that answers reads
// may still refuse writes. It is called only after Apply failed, from
// the group's goroutine.
type Prober interface {
	Probe(ctx context.Context) error
}

// Syncer is implemented by a projection whose Apply may return before
// what it wrote is durable: a store on the local disk that syncs its
// write-ahead log only when asked, as the embedded history and push
// stores do. Sync returns once everything the Apply calls that returned
// before it wrote is durable. The group commits a Syncer's offsets only
// after such a Sync, at most every kafkalog.CommitInterval (see the
// package doc, Durability). Sync is called from the group's goroutine,
// never during an Apply of the group.
type Syncer interface {
	Sync(ctx context.Context) error
}

// GroupConfig configures a consumer group runtime.
type GroupConfig struct {
	// Kafka is the cluster of the log.
	Kafka *kafkalog.Cluster
	// Names resolves chat.dlq under the deployment's prefix. GroupID and
	// Topic(s) are given resolved (Names.Group, Names.Topic).
	Names kafkalog.Names
	// GroupID is the consumer group; a persistent name (see schemas).
	GroupID string
	// Opener opens sealed records (see DecodeRecord). Default: none, so a
	// sealed record is read redacted.
	Opener Opener
	// Topic is the topic consumed.
	Topic string
	// Topics, when set, are consumed instead of Topic, by the same group;
	// Apply then gets records of all of them (Record.Message.Topic says
	// which).
	Topics []string
	// StartOffset is where a partition the group has never committed
	// starts: kafka.FirstOffset or kafka.LastOffset. Default:
	// kafka.FirstOffset.
	StartOffset int64
	// MaxBatch is the most records applied at once. Default: 500.
	MaxBatch int
	// Linger is how long a batch waits for more records that are already
	// on their way. Default: 2ms.
	Linger time.Duration
	// SessionTimeout of the group membership. Default: 10s.
	SessionTimeout time.Duration
	// Gather lets the broker gather records into each fetch, for a
	// group nobody waits on (see kafkalog.Gather). Default: none, a fetch
	// returns as soon as a record is there.
	Gather kafkalog.Gather
	// MaxBackoff caps the retry delay of a failing Apply. Default: 5s.
	MaxBackoff time.Duration
	// ApplyAttempts is how many times Apply is called with a batch before
	// its records are applied one at a time, and with one record before
	// the store is probed (see the package doc). Default: 5.
	ApplyAttempts int
	// InitialBackoff is the first retry delay of a failing Apply; it
	// doubles up to MaxBackoff. Default: 50ms.
	InitialBackoff time.Duration
	// ShutdownTimeout bounds finishing the in-flight batch on shutdown.
	// Default: 10s.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	Metrics         *telemetry.Metrics
}

func (c GroupConfig) withDefaults() GroupConfig {
	if c.MaxBatch == 0 {
		c.MaxBatch = 500
	}
	if c.Linger == 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.ApplyAttempts <= 0 {
		c.ApplyAttempts = 5
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = 50 * time.Millisecond
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	return c
}

// RunGroup consumes cfg.Topic as a member of cfg.GroupID and feeds p until
// ctx is done. The in-flight batch is finished and committed before it
// returns. It returns nil after ctx is done, or the error that stopped it.
func RunGroup[T any](ctx context.Context, cfg GroupConfig, p Projection[T]) error {
	cfg = cfg.withDefaults()
	topic := cfg.Topic
	if len(cfg.Topics) > 0 {
		topic = strings.Join(cfg.Topics, ",")
	}
	log := cfg.Logger.With("group", cfg.GroupID, "topic", topic)
	topics := cfg.Topics
	if len(topics) == 0 {
		topics = []string{cfg.Topic}
	}
	// Offsets are committed for applied batches only, every
	// kafkalog.CommitInterval and on leaving a generation.
	r := kafkalog.NewGroupReader(cfg.Kafka, kafkalog.Membership{
		Group: cfg.GroupID, Topics: topics, StartOffset: cfg.StartOffset,
		SessionTimeout: cfg.SessionTimeout, Logger: log,
		Errors: cfg.Metrics.KafkaReaderErrors.WithLabelValues(cfg.GroupID, topic),
		Gather: cfg.Gather,
	})
	dlq := kafkalog.NewWriter(cfg.Kafka, cfg.Names.Topic(schemas.TopicDLQ))
	defer func() {
		if err := dlq.Close(); err != nil {
			log.Warn("closing dead-letter writer", "err", err)
		}
		if err := r.Close(); err != nil {
			log.Warn("closing reader", "err", err)
		}
	}()
	g := &group[T]{cfg: cfg, log: log, r: r, dlq: dlq, p: p, topic: topic}
	if s, ok := any(p).(Syncer); ok {
		g.syncer, g.unsynced = s, make(map[topicPartition]kafka.Message)
	}
	return g.run(ctx)
}

type group[T any] struct {
	cfg   GroupConfig
	topic string // for messages: Topic, or Topics joined
	log   *slog.Logger
	r     *kafka.Reader
	dlq   *kafka.Writer
	p     Projection[T]

	// syncer is p, if p is a Syncer; then unsynced holds, per topic and
	// partition, the last record applied and not yet synced (its offset
	// only), to be committed after the Sync due at syncBy.
	syncer      Syncer
	unsynced    map[topicPartition]kafka.Message
	syncBy      time.Time
	syncFailing bool
}

type topicPartition struct {
	topic     string
	partition int
}

func (g *group[T]) run(ctx context.Context) error {
	defer g.syncBeforeReturn(ctx)
	msgs := make([]kafka.Message, 0, g.cfg.MaxBatch)
	for {
		msgs = msgs[:0]
		m, err := g.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetching from %s: %w", g.topic, err)
		}
		msgs = append(msgs, m)
		msgs = g.drain(ctx, msgs)
		// The batch is finished even when ctx ends now: a context
		// detached from it, ended ShutdownTimeout after it, lets shutdown
		// commit what was applied. Until ctx ends the batch has no
		// deadline: a store out of reach for longer is retried, not given
		// up on (which would end the process).
		bctx, cancel := graceContext(ctx, g.cfg.ShutdownTimeout)
		err = g.process(ctx, bctx, msgs)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// graceContext returns a context that outlives ctx by grace: it is not
// cancelled with ctx, but grace after ctx is done (or when cancel is
// called).
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var (
		mu    sync.Mutex
		timer *time.Timer
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(grace, cancel)
	})
	return gctx, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// drain adds what is already fetched, waiting at most Linger.
func (g *group[T]) drain(ctx context.Context, msgs []kafka.Message) []kafka.Message {
	lctx, cancel := context.WithTimeout(ctx, g.cfg.Linger)
	defer cancel()
	for len(msgs) < g.cfg.MaxBatch {
		m, err := g.r.FetchMessage(lctx)
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// process decodes, dead-letters, applies and commits a batch.
func (g *group[T]) process(runCtx, ctx context.Context, msgs []kafka.Message) error {
	batch := make([]T, 0, len(msgs))
	src := make([]kafka.Message, 0, len(msgs))
	var dead []kafka.Message
	for _, m := range msgs {
		rec, err := DecodeRecord(ctx, m, g.cfg.Opener)
		if err == nil {
			var v T
			if v, err = g.p.Decode(rec); err == nil {
				batch = append(batch, v)
				src = append(src, m)
				continue
			}
		}
		g.log.Warn("dead-lettering record", "partition", m.Partition, "offset", m.Offset, "err", err)
		dead = append(dead, DeadLetter(m, g.cfg.GroupID, err))
	}
	if err := g.deadLetter(runCtx, ctx, dead); err != nil {
		return err
	}
	if len(batch) > 0 {
		refused, err := g.apply(runCtx, ctx, batch, src)
		if err != nil {
			return err
		}
		if err := g.deadLetter(runCtx, ctx, refused); err != nil {
			return err
		}
		g.cfg.Metrics.ConsumedRecords.WithLabelValues(g.cfg.GroupID).Add(float64(len(batch) - len(refused)))
	}
	g.commit(ctx, msgs)
	return nil
}

// commit commits the offsets of msgs, processed: at once, or, for a
// Syncer, after the next Sync, which is due CommitInterval after the
// first of the records it covers (see flush).
func (g *group[T]) commit(ctx context.Context, msgs []kafka.Message) {
	if g.syncer == nil {
		g.commitOffsets(ctx, msgs)
		return
	}
	if len(g.unsynced) == 0 {
		g.syncBy = time.Now().Add(kafkalog.CommitInterval)
	}
	for _, m := range msgs { // in log order within a partition
		g.unsynced[topicPartition{m.Topic, m.Partition}] = kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	if !time.Now().Before(g.syncBy) {
		g.flush(ctx)
	}
}

// commitOffsets hands the offsets of msgs to the reader, which commits
// them every CommitInterval and when it leaves its generation.
func (g *group[T]) commitOffsets(ctx context.Context, msgs []kafka.Message) {
	if err := g.r.CommitMessages(ctx, msgs...); err != nil {
		// Not fatal: the records will be redelivered and applied
		// again, which changes nothing.
		g.log.Warn("committing offsets", "err", err)
	}
}

// flush syncs the projection and commits the offsets of what was applied
// before the sync. A failed sync commits nothing: the offsets wait for
// the next one, CommitInterval later.
func (g *group[T]) flush(ctx context.Context) {
	if len(g.unsynced) == 0 {
		return
	}
	if err := g.syncer.Sync(ctx); err != nil {
		if !g.syncFailing && ctx.Err() == nil {
			g.log.Warn("syncing the projection's store; committing nothing until it succeeds", "err", err)
		}
		g.syncFailing = true
		g.syncBy = time.Now().Add(kafkalog.CommitInterval)
		return
	}
	if g.syncFailing {
		g.log.Info("the projection's store syncs again")
		g.syncFailing = false
	}
	g.commitOffsets(ctx, slices.Collect(maps.Values(g.unsynced)))
	clear(g.unsynced)
}

// fetch returns the next record. While offsets wait for a sync, it
// waits for a record only until the sync is due, then syncs and commits
// them: a group that falls idle commits all it applied, too.
func (g *group[T]) fetch(ctx context.Context) (kafka.Message, error) {
	for len(g.unsynced) > 0 {
		fctx, cancel := context.WithDeadline(ctx, g.syncBy)
		m, err := kafkalog.FetchMessage(fctx, g.r, g.log)
		cancel()
		if err == nil || ctx.Err() != nil || fctx.Err() == nil {
			return m, err
		}
		g.flush(ctx)
	}
	return kafkalog.FetchMessage(ctx, g.r, g.log)
}

// syncBeforeReturn syncs and commits what was applied and not yet
// synced when the group returns, within ShutdownTimeout of ctx's end,
// before the reader is closed (which sends its last commit).
func (g *group[T]) syncBeforeReturn(ctx context.Context) {
	if len(g.unsynced) == 0 {
		return
	}
	gctx, cancel := graceContext(ctx, g.cfg.ShutdownTimeout)
	defer cancel()
	g.flush(gctx)
}

// deadLetter writes dead letters to chat.dlq, retrying until it succeeds
// or the process stops, and counts them.
func (g *group[T]) deadLetter(runCtx, ctx context.Context, dead []kafka.Message) error {
	if len(dead) == 0 {
		return nil
	}
	if err := g.retry(runCtx, ctx, "dead-lettering", 0, func(ctx context.Context) error {
		return g.dlq.WriteMessages(ctx, dead...)
	}); err != nil {
		return err
	}
	g.cfg.Metrics.DeadLetters.WithLabelValues(g.cfg.GroupID).Add(float64(len(dead)))
	return nil
}

// apply applies batch, whose records were decoded from src, by the rule
// of the package doc, and returns the dead letters of the records the
// store refused while it was healthy. It returns an error only when the
// process is stopping.
func (g *group[T]) apply(runCtx, ctx context.Context, batch []T, src []kafka.Message) ([]kafka.Message, error) {
	var dead []kafka.Message
	for len(batch) > 0 {
		err := g.retry(runCtx, ctx, "applying batch", g.cfg.ApplyAttempts, func(ctx context.Context) error {
			return g.p.Apply(ctx, batch)
		})
		if err == nil {
			return dead, nil
		}
		if g.stopping(runCtx, ctx) {
			return nil, err
		}
		g.log.Warn("batch keeps failing; applying its records one at a time", "records", len(batch), "err", err)
		n := 0
		for ; n < len(batch); n++ {
			cause, recovered, err := g.applyOne(runCtx, ctx, batch[n], src[n])
			if err != nil {
				return nil, err
			}
			if cause != nil {
				m := src[n]
				g.log.Error("dead-lettering a record the store refuses while healthy", "partition", m.Partition, "offset", m.Offset, "err", cause)
				dead = append(dead, DeadLetter(m, g.cfg.GroupID, cause))
			}
			if recovered {
				// The store was down and is back: the rest goes
				// as a batch again.
				n++
				break
			}
		}
		batch, src = batch[n:], src[n:]
	}
	return dead, nil
}

// applyOne applies one record until it is applied, or until it has
// failed ApplyAttempts times and a probe finds the store healthy: then it
// returns the cause to dead-letter the record for. While the probe fails
// (or the projection cannot probe), the store is taken to be down and the
// record is retried with backoff, for as long as it takes; recovered
// reports that it was applied after such an outage. err is set only when
// the process is stopping.
func (g *group[T]) applyOne(runCtx, ctx context.Context, v T, m kafka.Message) (cause error, recovered bool, err error) {
	prober, canProbe := any(g.p).(Prober)
	one := []T{v}
	down := false
	for {
		err := g.retry(runCtx, ctx, "applying record", g.cfg.ApplyAttempts, func(ctx context.Context) error {
			return g.p.Apply(ctx, one)
		})
		if err == nil {
			return nil, down, nil
		}
		if g.stopping(runCtx, ctx) {
			return nil, false, err
		}
		var perr error
		if canProbe {
			perr = prober.Probe(ctx)
		} else {
			perr = errors.New("the projection cannot probe its store")
		}
		if perr == nil {
			return fmt.Errorf("refused %d times while the store took writes: %w", g.cfg.ApplyAttempts, err), false, nil
		}
		if !down {
			g.log.Error("store unavailable; retrying until it is back", "partition", m.Partition, "offset", m.Offset, "err", err, "probe", perr)
		}
		down = true
		if err := g.sleep(runCtx, g.cfg.MaxBackoff); err != nil {
			return nil, false, err
		}
	}
}

// stopping reports whether the process is stopping: retrying stops.
func (g *group[T]) stopping(runCtx, ctx context.Context) bool {
	return runCtx.Err() != nil || ctx.Err() != nil
}

// sleep waits d, or returns an error once runCtx is done.
func (g *group[T]) sleep(runCtx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-runCtx.Done():
		return runCtx.Err()
	case <-t.C:
		return nil
	}
}

// retry calls fn until it succeeds or has been called attempts times (0:
// no limit), backing off exponentially, and returns fn's last error. It
// gives up early when runCtx is done (the process is stopping) and fn
// still fails.
func (g *group[T]) retry(runCtx, ctx context.Context, what string, attempts int, fn func(context.Context) error) error {
	b := retry.Backoff{Initial: g.cfg.InitialBackoff, Max: g.cfg.MaxBackoff, Attempts: attempts, OnRetry: func(err error, wait time.Duration) {
		g.log.Warn(what+" failed; retrying", "err", err, "backoff", wait)
	}}
	// Retrying stops when the process stops (runCtx); a call whose own
	// context is done cannot succeed either.
	err := b.Do(runCtx, func(context.Context) error {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		g.cfg.Metrics.ApplyRetries.WithLabelValues(g.cfg.GroupID).Inc()
		if ctx.Err() != nil {
			return retry.Permanent(errors.Join(err, ctx.Err()))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// DeadLetter returns the copy of m for chat.dlq: same key, value and
// headers, plus headers naming the error and where the record came from.
func DeadLetter(m kafka.Message, group string, cause error) kafka.Message {
	headers := append([]kafka.Header(nil), m.Headers...)
	headers = append(headers,
		kafka.Header{Key: schemas.HeaderDLQError, Value: []byte(cause.Error())},
		kafka.Header{Key: schemas.HeaderDLQTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: schemas.HeaderDLQPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: schemas.HeaderDLQOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: schemas.HeaderDLQGroup, Value: []byte(group)},
	)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: headers}
}

// ErrNotDeadLetter is returned by ParseDeadLetter for a record without
// the headers DeadLetter adds.
var ErrNotDeadLetter = errors.New("not a dead letter")

// Letter is a record of chat.dlq read back: where it came from and why.
type Letter struct {
	// Message is the record of chat.dlq.
	Message kafka.Message
	// Group is the consumer group that dead-lettered it.
	Group string
	// Topic, Partition and Offset say where the original record is.
	Topic     string
	Partition int
	Offset    int64
	// Error is why it was dead-lettered.
	Error string
	// Type is the original ce_type, if it had one.
	Type string
}

// ParseDeadLetter reads the dead-letter headers of m, a record of
// chat.dlq; an error wrapping ErrNotDeadLetter if m lacks one.
func ParseDeadLetter(m kafka.Message) (Letter, error) {
	l := Letter{Message: m}
	seen := map[string]string{}
	for _, h := range m.Headers {
		switch h.Key {
		case schemas.HeaderDLQError, schemas.HeaderDLQTopic, schemas.HeaderDLQPartition, schemas.HeaderDLQOffset, schemas.HeaderDLQGroup, schemas.HeaderType:
			seen[h.Key] = string(h.Value)
		}
	}
	var errs []error
	for _, k := range []string{schemas.HeaderDLQTopic, schemas.HeaderDLQPartition, schemas.HeaderDLQOffset, schemas.HeaderDLQGroup, schemas.HeaderDLQError} {
		if _, ok := seen[k]; !ok {
			errs = append(errs, fmt.Errorf("%w: no %s header", ErrNotDeadLetter, k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Letter{}, err
	}
	p, err := strconv.Atoi(seen[schemas.HeaderDLQPartition])
	if err != nil || p < 0 {
		return Letter{}, fmt.Errorf("%w: %s %q", ErrNotDeadLetter, schemas.HeaderDLQPartition, seen[schemas.HeaderDLQPartition])
	}
	off, err := strconv.ParseInt(seen[schemas.HeaderDLQOffset], 10, 64)
	if err != nil || off < 0 {
		return Letter{}, fmt.Errorf("%w: %s %q", ErrNotDeadLetter, schemas.HeaderDLQOffset, seen[schemas.HeaderDLQOffset])
	}
	l.Group, l.Topic, l.Partition, l.Offset = seen[schemas.HeaderDLQGroup], seen[schemas.HeaderDLQTopic], p, off
	l.Error, l.Type = seen[schemas.HeaderDLQError], seen[schemas.HeaderType]
	return l, nil
}

// Original returns the record to append to the original topic again:
// its topic, partition, key, value and headers, without the dead-letter
// headers.
func (l Letter) Original() kafka.Message {
	var headers []kafka.Header
	for _, h := range l.Message.Headers {
		if !strings.HasPrefix(h.Key, schemas.HeaderDLQPrefix) {
			headers = append(headers, h)
		}
	}
	return kafka.Message{Topic: l.Topic, Partition: l.Partition, Key: l.Message.Key, Value: l.Message.Value, Headers: headers}
}
