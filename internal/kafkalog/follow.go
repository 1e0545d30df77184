// Following a compacted topic from the start outside any consumer group:
// every node keeps the whole of a small topic (presence, notification
// settings) in memory and needs to know when it has caught up.

package kafkalog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/segmentio/kafka-go"
)

// Follow reads every partition of topic from the start, one goroutine
// each (on wg), and calls apply for every record, concurrently across
// partitions, until ctx is done. It returns once every partition has been
// read up to where it ended when Follow was called — or nil, nil if ctx
// ends first — with the channel that receives a later reading error.
func Follow(ctx context.Context, c *Cluster, topic string, log *slog.Logger, readerErrs Counter, wg *sync.WaitGroup, apply func(kafka.Message)) (<-chan error, error) {
	client := NewClient(c)
	n, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	ends, err := Offsets(ctx, client, topic, n, kafka.LastOffsetOf)
	if err != nil {
		return nil, err
	}
	caughtUp := make(chan struct{}, n)
	errs := make(chan error, n)
	for p, hw := range ends {
		wg.Go(func() {
			if err := followPartition(ctx, c, topic, log, readerErrs, p, hw, caughtUp, apply); err != nil && ctx.Err() == nil {
				errs <- err
			}
		})
	}
	for range n {
		select {
		case <-caughtUp:
		case err := <-errs:
			return nil, err
		case <-ctx.Done():
			return nil, nil
		}
	}
	return errs, nil
}

// followPartition applies partition p from the start; it signals caughtUp
// once it has read up to hw (the end when following started).
func followPartition(ctx context.Context, c *Cluster, topic string, log *slog.Logger, readerErrs Counter, p int, hw int64, caughtUp chan<- struct{}, apply func(kafka.Message)) error {
	if hw == 0 {
		caughtUp <- struct{}{}
		caughtUp = nil
	}
	plog := log.With("topic", topic, "partition", p)
	r := NewPartitionReader(c, topic, p, ReaderErrors(plog, readerErrs))
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return fmt.Errorf("seeking %s/%d: %w", topic, p, err)
	}
	for {
		m, err := FetchMessage(ctx, r, plog)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		apply(m)
		if caughtUp != nil && m.Offset >= hw-1 {
			caughtUp <- struct{}{}
			caughtUp = nil
		}
	}
}
