// Applying a fixed range of a topic to a projection outside any consumer
// group: what a rebuild does.

package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/retry"
)

// RangeConfig configures ApplyRange.
type RangeConfig struct {
	// Kafka is the cluster to read. Required.
	Kafka *kafkalog.Cluster
	// Topic is read, resolved (Names.Topic). Required.
	Topic string
	// From and To are, per partition, the first offset read and the
	// offset reading stops before. Required, of one length.
	From, To []int64
	// BatchSize is the most records per Apply. Default: 1000.
	BatchSize int
	// Concurrency is the most partitions read at once. Default: 4.
	Concurrency int
	// Progress, if set, is called after every batch with how many
	// records have been read in all; calls never overlap.
	Progress func(read int64)
	// Logger receives the records skipped. Default: discard.
	Logger *slog.Logger
	// Opener opens sealed records (see DecodeRecord). Default: none.
	Opener Opener
}

// RangeStats says what ApplyRange read.
type RangeStats struct {
	// Records is how many records were read; Skipped how many of them
	// did not decode (the live group dead-letters those).
	Records, Skipped int64
}

// ApplyRange reads [From[p], To[p]) of every partition of cfg.Topic with
// plain partition readers (no group, no commits: a live group's offsets
// are left alone), decodes each record with p.Decode, skipping those that
// fail, and applies them to p in batches, in log order per partition;
// partitions go in parallel, so p.Apply must be safe for concurrent use
// (every projection's store is). Apply is retried with backoff while ctx
// lasts, up to 8 times.
func ApplyRange[T any](ctx context.Context, cfg RangeConfig, p Projection[T]) (RangeStats, error) {
	if cfg.Kafka == nil || cfg.Topic == "" || len(cfg.From) != len(cfg.To) {
		return RangeStats{}, fmt.Errorf("applying a range: a cluster, a topic and offsets are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var (
		mu sync.Mutex
		st RangeStats
	)
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Attempts: 8, OnRetry: func(err error, wait time.Duration) {
		cfg.Logger.Warn("applying failed; retrying", "topic", cfg.Topic, "err", err, "backoff", wait)
	}}
	err := kafkalog.EachRange(ctx, cfg.From, cfg.To, cfg.Concurrency, func(ctx context.Context, part int, from, to int64) error {
		batch := make([]T, 0, cfg.BatchSize)
		var read, skipped int64
		flush := func() error {
			if len(batch) > 0 {
				if err := backoff.Do(ctx, func(ctx context.Context) error { return p.Apply(ctx, batch) }); err != nil {
					return fmt.Errorf("applying %s/%d: %w", cfg.Topic, part, err)
				}
			}
			mu.Lock()
			st.Records += read
			st.Skipped += skipped
			if cfg.Progress != nil {
				cfg.Progress(st.Records)
			}
			mu.Unlock()
			batch, read, skipped = batch[:0], 0, 0
			return nil
		}
		err := kafkalog.ReadRange(ctx, cfg.Kafka, cfg.Topic, part, from, to, func(m kafka.Message) error {
			read++
			v, err := decodeRecord(ctx, m, cfg.Opener, p)
			if err != nil {
				skipped++
				cfg.Logger.Warn("skipping a record the live group dead-letters", "topic", cfg.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			} else {
				batch = append(batch, v)
			}
			if read >= int64(cfg.BatchSize) {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		return flush()
	})
	mu.Lock()
	defer mu.Unlock()
	return st, err
}

// decodeRecord decodes m (DecodeRecord) and then its record with p.
func decodeRecord[T any](ctx context.Context, m kafka.Message, o Opener, p Projection[T]) (T, error) {
	rec, err := DecodeRecord(ctx, m, o)
	if err != nil {
		var zero T
		return zero, err
	}
	return p.Decode(rec)
}
