// Reading a fixed range of a topic outside any consumer group: the offsets
// of every partition, and every record of one partition between two of
// them. Replays, rebuilds and the dead-letter tools read the log this way.

package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Offsets asks the cluster, for each of the n partitions of topic, the
// offset which(p) names (kafka.FirstOffsetOf, kafka.LastOffsetOf or
// kafka.TimeOffsetOf) and returns them indexed by partition. For a time,
// a partition with no record at or after it gives -1.
func Offsets(ctx context.Context, client *kafka.Client, topic string, n int, which func(int) kafka.OffsetRequest) ([]int64, error) {
	reqs := make([]kafka.OffsetRequest, n)
	for p := range n {
		reqs[p] = which(p)
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	out := make([]int64, n)
	seen := 0
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if po.Partition < 0 || po.Partition >= n {
			continue
		}
		// kafka-go files the answer to a time under Offsets, except the
		// "no such record" answer (-1), which it takes for LastOffset.
		out[po.Partition] = max(po.FirstOffset, po.LastOffset)
		for off := range po.Offsets {
			out[po.Partition] = off
		}
		seen++
	}
	if seen != n {
		return nil, fmt.Errorf("listing offsets of %s: %d of %d partitions answered", topic, seen, n)
	}
	return out, nil
}

// rangeIdleCheck is how long ReadRange waits for a record before it
// checks whether its reader already is at the end (a range may end in
// offsets with no record, such as transaction markers or compacted
// records).
const rangeIdleCheck = 5 * time.Second

// ReadRange calls fn with every record of partition p of topic from
// offset from up to, not including, to, in order, and returns fn's first
// error. It reads with a partition reader of its own, outside any group,
// and leaves no goroutine behind.
func ReadRange(ctx context.Context, c *Cluster, topic string, p int, from, to int64, fn func(kafka.Message) error, opts ...ReaderOption) error {
	if to <= from {
		return nil
	}
	rd := NewPartitionReader(c, topic, p, opts...)
	// Close waits for the in-flight fetch; nothing is left to read.
	defer func() { go rd.Close() }()
	if err := rd.SetOffset(from); err != nil {
		return fmt.Errorf("seeking %s/%d: %w", topic, p, err)
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, rangeIdleCheck)
		m, err := rd.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("reading %s/%d: %w", topic, p, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if rd.Offset() >= to {
					return nil
				}
				continue
			}
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		if m.Offset >= to {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset >= to-1 {
			return nil
		}
	}
}

// EachRange calls read for every partition p whose range [from[p], to[p])
// is not empty, concurrency of them at a time, and returns the first
// error read returns (the others' context is then cancelled), or ctx's
// error if it ended first.
func EachRange(ctx context.Context, from, to []int64, concurrency int, read func(ctx context.Context, p int, from, to int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(concurrency, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
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
			if err := read(ctx, p, from[p], to[p]); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
