// The consumer-group runtime: batches, commits after the write, retries
// and dead letters, for every projection.

package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
}

// Projection is what a consumer group feeds. Decode must be pure: an
// error dead-letters that record and the group goes on. Apply gets the
// decoded records of one fetch in log order per partition; an error
// retries the same batch (after a backoff) until it succeeds, so Apply
// must be idempotent and nothing is ever skipped.
type Projection[T any] interface {
	Decode(Record) (T, error)
	Apply(ctx context.Context, batch []T) error
}

// GroupConfig configures a consumer group runtime.
type GroupConfig struct {
	Brokers []string
	// Names resolves chat.dlq under the deployment's prefix. GroupID and
	// Topic(s) are given resolved (Names.Group, Names.Topic).
	Names kafkalog.Names
	// GroupID is the consumer group; a persistent name (see schemas).
	GroupID string
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
	// MaxBackoff caps the retry delay of a failing Apply. Default: 5s.
	MaxBackoff time.Duration
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
	// Offsets are committed synchronously, after Apply only.
	r := kafkalog.NewGroupReader(cfg.Brokers, kafkalog.Membership{
		Group: cfg.GroupID, Topics: topics, StartOffset: cfg.StartOffset,
		SessionTimeout: cfg.SessionTimeout, Logger: log,
		Errors: cfg.Metrics.KafkaReaderErrors.WithLabelValues(cfg.GroupID, topic),
	})
	dlq := kafkalog.NewWriter(cfg.Brokers, cfg.Names.Topic(schemas.TopicDLQ))
	defer func() {
		if err := dlq.Close(); err != nil {
			log.Warn("closing dead-letter writer", "err", err)
		}
		if err := r.Close(); err != nil {
			log.Warn("closing reader", "err", err)
		}
	}()
	g := &group[T]{cfg: cfg, log: log, r: r, dlq: dlq, p: p, topic: topic}
	return g.run(ctx)
}

type group[T any] struct {
	cfg   GroupConfig
	topic string // for messages: Topic, or Topics joined
	log   *slog.Logger
	r     *kafka.Reader
	dlq   *kafka.Writer
	p     Projection[T]
}

func (g *group[T]) run(ctx context.Context) error {
	msgs := make([]kafka.Message, 0, g.cfg.MaxBatch)
	for {
		msgs = msgs[:0]
		m, err := kafkalog.FetchMessage(ctx, g.r, g.log)
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

// process decodes, dead-letters, applies (retrying) and commits a batch.
func (g *group[T]) process(runCtx, ctx context.Context, msgs []kafka.Message) error {
	batch := make([]T, 0, len(msgs))
	var dead []kafka.Message
	for _, m := range msgs {
		attrs, err := kafkalog.Decode(m)
		if err == nil {
			var v T
			if v, err = g.p.Decode(Record{Message: m, Attrs: attrs}); err == nil {
				batch = append(batch, v)
				continue
			}
		}
		g.log.Warn("dead-lettering record", "partition", m.Partition, "offset", m.Offset, "err", err)
		dead = append(dead, DeadLetter(m, g.cfg.GroupID, err))
	}
	if len(dead) > 0 {
		if err := g.retry(runCtx, ctx, "dead-lettering", func(ctx context.Context) error {
			return g.dlq.WriteMessages(ctx, dead...)
		}); err != nil {
			return err
		}
		g.cfg.Metrics.DeadLetters.WithLabelValues(g.cfg.GroupID).Add(float64(len(dead)))
	}
	if len(batch) > 0 {
		if err := g.retry(runCtx, ctx, "applying batch", func(ctx context.Context) error {
			return g.p.Apply(ctx, batch)
		}); err != nil {
			return err
		}
		g.cfg.Metrics.ConsumedRecords.WithLabelValues(g.cfg.GroupID).Add(float64(len(batch)))
	}
	if err := g.r.CommitMessages(ctx, msgs...); err != nil {
		// Not fatal: the batch will be redelivered and re-applied, which
		// changes nothing.
		g.log.Warn("committing offsets", "err", err)
	}
	return nil
}

// retry calls fn until it succeeds, backing off exponentially. It gives up
// when runCtx is done (the process is stopping) and fn still fails.
func (g *group[T]) retry(runCtx, ctx context.Context, what string, fn func(context.Context) error) error {
	b := retry.Backoff{Initial: 50 * time.Millisecond, Max: g.cfg.MaxBackoff, OnRetry: func(err error, wait time.Duration) {
		g.log.Error(what+" failed; retrying", "err", err, "backoff", wait)
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
