// Rebuilding the search index: chat.events from offset 0 into a new
// generation, then swapped in, with progress.

package search

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/parley-chat/parley/consumers"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/internal/progress"
	"github.com/parley-chat/parley/schemas"
)

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Kafka is the cluster to read. Required.
	Kafka *kafkalog.Cluster
	// Topic is read from its first offset. Default: chat.events.
	Topic string
	// Target is the index rebuilt. Required.
	Target Rebuildable
	// BatchSize is the most documents per Index call. Default: 1000.
	BatchSize int
	// Concurrency is the most partitions read at once. Default: 4.
	Concurrency int
	// Progress, if set, is called after every batch with the records read
	// so far and the records to read in all; calls never overlap. The
	// total grows once, by what arrived while the first pass ran. See
	// ProgressPrinter.
	Progress func(done, total int64)
	// Logger receives progress milestones and skipped records. Default:
	// discard.
	Logger *slog.Logger
	// Opener opens sealed events (see consumers.DecodeRecord). Default:
	// none, so sealed content is indexed redacted.
	Opener consumers.Opener
}

// RebuildStats describes a finished rebuild.
type RebuildStats struct {
	// Records is how many records were read; Skipped how many of them
	// could not be decoded (the live projection dead-letters those).
	Records, Skipped int64
	Took             time.Duration
}

// Rebuild rebuilds an index from the log, beside the live one, and swaps
// it in:
//
//  1. It creates a new generation of the target (an Elasticsearch index
//     beside the one behind the alias; a Bleve directory beside the
//     current one) and reads every partition of the topic from its first
//     offset up to the end offset it had when the rebuild started, with
//     plain partition readers (no consumer group: the live projection's
//     offsets are left alone), decoding with Projection.Decode and
//     indexing in batches.
//  2. It promotes the generation: the alias is swapped, or CURRENT
//     rewritten and the running Store switched.
//  3. It reads what was appended while step 1 ran, up to the end offsets
//     after the swap, into the promoted index. Anything appended after
//     that, the live projection writes to the promoted index, since it
//     writes through the alias (or the Store); overlaps are harmless, as
//     every change is versioned.
//
// A failure before the promotion discards the generation and leaves the
// live index as it was. Indexing is retried with backoff while ctx lasts.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildStats, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	if cfg.Kafka == nil || cfg.Target == nil {
		return RebuildStats{}, errors.New("rebuild: a Kafka cluster and a target are required")
	}
	r := &rebuild{cfg: cfg, log: cfg.Logger.With("component", "search-rebuild", "topic", cfg.Topic)}
	client := kafkalog.NewClient(cfg.Kafka)
	n, err := kafkalog.Partitions(ctx, client, cfg.Topic)
	if err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	first, err := offsets(ctx, client, cfg.Topic, n, kafka.FirstOffsetOf)
	if err != nil {
		return r.stats(start), err
	}
	end1, err := offsets(ctx, client, cfg.Topic, n, kafka.LastOffsetOf)
	if err != nil {
		return r.stats(start), err
	}
	r.total = span(first, end1)
	r.log.Info("rebuilding the search index", "partitions", n, "records", r.total)
	gen, err := cfg.Target.NewGeneration(ctx)
	if err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	promoted := false
	defer func() {
		if !promoted {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := gen.Discard(dctx); err != nil {
				r.log.Warn("discarding the unfinished generation", "err", err)
			}
		}
	}()
	if err := r.apply(ctx, gen, first, end1); err != nil {
		return r.stats(start), err
	}
	if err := gen.Refresh(ctx); err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	if err := gen.Promote(ctx); err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	promoted = true
	r.log.Info("promoted the rebuilt search index; catching up", "records", r.done)
	end2, err := offsets(ctx, client, cfg.Topic, n, kafka.LastOffsetOf)
	if err != nil {
		return r.stats(start), err
	}
	r.mu.Lock()
	r.total += span(end1, end2)
	r.mu.Unlock()
	if err := r.apply(ctx, gen, end1, end2); err != nil {
		return r.stats(start), err
	}
	if err := gen.Refresh(ctx); err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	st := r.stats(start)
	r.log.Info("search index rebuilt", "records", st.Records, "skipped", st.Skipped, "took", st.Took)
	return st, nil
}

func (cfg RebuildConfig) withDefaults() RebuildConfig {
	if cfg.Topic == "" {
		cfg.Topic = schemas.TopicEvents
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
	return cfg
}

// CatchUp reads into ix what was appended to the topic after from (the
// end offsets a rebuild read up to), up to the end offsets now: step 3
// of Rebuild, for a generation promoted after it was rebuilt and
// verified elsewhere (parley rebuild search -swap). cfg.Target is not
// used. Anything appended later, the live projection writes through the
// alias (or the Store).
func CatchUp(ctx context.Context, cfg RebuildConfig, ix Indexer, from []int64) (RebuildStats, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	if cfg.Kafka == nil || ix == nil {
		return RebuildStats{}, errors.New("rebuild: a Kafka cluster and an index are required")
	}
	r := &rebuild{cfg: cfg, log: cfg.Logger.With("component", "search-rebuild", "topic", cfg.Topic)}
	to, err := offsets(ctx, kafkalog.NewClient(cfg.Kafka), cfg.Topic, len(from), kafka.LastOffsetOf)
	if err != nil {
		return r.stats(start), err
	}
	r.total = span(from, to)
	if err := r.apply(ctx, ix, from, to); err != nil {
		return r.stats(start), err
	}
	return r.stats(start), nil
}

type rebuild struct {
	cfg RebuildConfig
	log *slog.Logger

	mu                   sync.Mutex // guards the counters and serializes Progress
	done, total, skipped int64
}

func (r *rebuild) stats(start time.Time) RebuildStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RebuildStats{Records: r.done, Skipped: r.skipped, Took: time.Since(start)}
}

func span(from, to []int64) int64 {
	var n int64
	for p := range from {
		if to[p] > from[p] {
			n += to[p] - from[p]
		}
	}
	return n
}

// offsets returns the first or end offset of every partition.
func offsets(ctx context.Context, client *kafka.Client, topic string, n int, which func(int) kafka.OffsetRequest) ([]int64, error) {
	out, err := kafkalog.Offsets(ctx, client, topic, n, which)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	return out, nil
}

// apply reads [from[p], to[p]) of every partition into ix, as the live
// projection would (consumers.ApplyRange: decoded with Projection.Decode,
// indexed in batches with retries), counting into r.
func (r *rebuild) apply(ctx context.Context, ix Indexer, from, to []int64) error {
	r.mu.Lock()
	base := r.done
	r.mu.Unlock()
	st, err := consumers.ApplyRange(ctx, consumers.RangeConfig{
		Kafka: r.cfg.Kafka, Topic: r.cfg.Topic, From: from, To: to, BatchSize: r.cfg.BatchSize, Concurrency: r.cfg.Concurrency,
		Logger: r.log, Opener: r.cfg.Opener,
		Progress: func(read int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.done = base + read
			if r.cfg.Progress != nil {
				r.cfg.Progress(r.done, r.total)
			}
		},
	}, Projection{Index: ix})
	r.mu.Lock()
	r.done, r.skipped = base+st.Records, r.skipped+st.Skipped
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return nil
}

// ProgressPrinter returns a RebuildConfig.Progress that writes a line to
// w at most once per interval, and always when done reaches total
// (see progress.Printer):
//
//	search rebuild: 120000/1000000 records (12.0%), 35012 records/s, ETA 25s
//
// It is safe for concurrent use.
func ProgressPrinter(w io.Writer, interval time.Duration) func(done, total int64) {
	return progress.New(w, "search rebuild", interval, nil).Report
}
