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
	"github.com/parley-chat/parley/internal/retry"
	"github.com/parley-chat/parley/schemas"
)

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
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
	if len(cfg.Brokers) == 0 || cfg.Target == nil {
		return RebuildStats{}, errors.New("rebuild: brokers and a target are required")
	}
	r := &rebuild{cfg: cfg, log: cfg.Logger.With("component", "search-rebuild", "topic", cfg.Topic)}
	client := kafkalog.NewClient(cfg.Brokers)
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
	if err := r.readAll(ctx, gen, first, end1); err != nil {
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
	if err := r.readAll(ctx, gen, end1, end2); err != nil {
		return r.stats(start), err
	}
	if err := gen.Refresh(ctx); err != nil {
		return r.stats(start), fmt.Errorf("rebuild: %w", err)
	}
	st := r.stats(start)
	r.log.Info("search index rebuilt", "records", st.Records, "skipped", st.Skipped, "took", st.Took)
	return st, nil
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
	reqs := make([]kafka.OffsetRequest, n)
	for p := range n {
		reqs[p] = which(p)
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("rebuild: listing offsets of %s: %w", topic, err)
	}
	out := make([]int64, n)
	seen := 0
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("rebuild: listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if po.Partition < 0 || po.Partition >= n {
			continue
		}
		out[po.Partition] = max(po.FirstOffset, po.LastOffset)
		seen++
	}
	if seen != n {
		return nil, fmt.Errorf("rebuild: listing offsets of %s: %d of %d partitions answered", topic, seen, n)
	}
	return out, nil
}

// readAll reads [from[p], to[p]) of every partition into ix.
func (r *rebuild) readAll(ctx context.Context, ix Indexer, from, to []int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for p := range from {
		if to[p] <= from[p] {
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := r.readPartition(ctx, ix, p, from[p], to[p]); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return nil
}

// idleCheck is how long a partition reader waits for a record before it
// checks whether it already is at the end (a range may end in offsets
// with no record, such as transaction markers).
const idleCheck = 5 * time.Second

func (r *rebuild) readPartition(ctx context.Context, ix Indexer, p int, from, to int64) error {
	rd := kafkalog.NewPartitionReader(r.cfg.Brokers, r.cfg.Topic, p)
	defer func() {
		if err := rd.Close(); err != nil {
			r.log.Warn("closing partition reader", "partition", p, "err", err)
		}
	}()
	if err := rd.SetOffset(from); err != nil {
		return fmt.Errorf("rebuild: seeking %s/%d: %w", r.cfg.Topic, p, err)
	}
	batch := make([]Doc, 0, r.cfg.BatchSize)
	var read int64
	flush := func() error {
		if err := r.index(ctx, ix, batch); err != nil {
			return fmt.Errorf("rebuild: indexing %s/%d: %w", r.cfg.Topic, p, err)
		}
		batch = batch[:0]
		r.mu.Lock()
		r.done += read
		done, total := r.done, r.total
		if r.cfg.Progress != nil {
			r.cfg.Progress(done, total)
		}
		r.mu.Unlock()
		read = 0
		return nil
	}
	for next := from; next < to; {
		fctx, cancel := context.WithTimeout(ctx, idleCheck)
		m, err := rd.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("rebuild: reading %s/%d: %w", r.cfg.Topic, p, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if rd.Offset() >= to {
					break
				}
				continue
			}
			return fmt.Errorf("rebuild: reading %s/%d: %w", r.cfg.Topic, p, err)
		}
		if m.Offset >= to {
			break
		}
		next = m.Offset + 1
		read++
		doc, err := r.decode(ctx, m)
		if err != nil {
			r.mu.Lock()
			r.skipped++
			r.mu.Unlock()
			r.log.Warn("skipping a record the projection dead-letters", "partition", p, "offset", m.Offset, "err", err)
		} else if doc.Kind != KindNone {
			batch = append(batch, doc)
		}
		if len(batch) >= r.cfg.BatchSize || (read >= int64(r.cfg.BatchSize)) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (r *rebuild) decode(ctx context.Context, m kafka.Message) (Doc, error) {
	rec, err := consumers.DecodeRecord(ctx, m, r.cfg.Opener)
	if err != nil {
		return Doc{}, err
	}
	return Projection{}.Decode(rec)
}

// index calls ix.Index, retrying with backoff while ctx lasts: an index
// under a rebuild's load may refuse for a while (Elasticsearch's 429).
func (r *rebuild) index(ctx context.Context, ix Indexer, docs []Doc) error {
	if len(docs) == 0 {
		return nil
	}
	b := retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Attempts: 8, OnRetry: func(err error, wait time.Duration) {
		r.log.Warn("indexing failed; retrying", "err", err, "backoff", wait)
	}}
	return b.Do(ctx, func(ctx context.Context) error { return ix.Index(ctx, docs) })
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
