// Consumer lag per group and partition, for /metrics.

package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// LagSource names a consumer group and the topic it consumes.
type LagSource struct {
	Group string
	Topic string
}

// Position is where a consumer group stands on a partition.
type Position struct {
	// Committed is the group's committed offset: the next record it
	// will read; -1 when it has committed none.
	Committed int64
	// End is the partition's end: the offset the next record appended
	// will get (the high watermark).
	End int64
}

// Lag is how many records of the partition the group has not committed
// yet: the whole partition when it has committed none.
func (p Position) Lag() int64 { return max(0, p.End-max(0, p.Committed)) }

// Lost is how many records the group committed that the log no longer
// holds: more than none only when the partition ends before the group's
// committed offset, a log that lost its tail (a crash of the machine
// before the broker synced it, a damaged segment, an unclean leader
// election). The group then reads nothing more until the log grows past
// its offset, and skips what is appended until then.
func (p Position) Lost() int64 { return max(0, p.Committed-p.End) }

// Positions returns src.Group's position on every partition of
// src.Topic. The committed offsets are read before the ends: an end only
// grows, while a committed offset never passes the end it was read up
// to, so a committed offset past an end read after it is a log that lost
// records, never a commit made in between.
func Positions(ctx context.Context, client *kafka.Client, src LagSource) (map[int]Position, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{src.Topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", src.Topic, err)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: src.Group, Topics: map[string][]int{src.Topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", src.Group, err)
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{src.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", src.Topic, err)
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[src.Topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			done[p.Partition] = p.CommittedOffset
		}
	}
	out := make(map[int]Position, len(parts))
	for _, po := range ends.Topics[src.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", src.Topic, po.Partition, po.Error)
		}
		c, ok := done[po.Partition]
		if !ok {
			c = -1
		}
		out[po.Partition] = Position{Committed: c, End: po.LastOffset}
	}
	return out, nil
}

// MonitorLag sets lag{group, topic, partition} to each source's lag, and
// lost{group, topic, partition} to the records it committed that the
// log no longer holds (Position.Lost), every interval until ctx is done.
// A group that reads several topics has a series per topic: their
// partitions share numbers. Records lost are logged as an error when
// they are first seen; failures are logged and retried next time.
func MonitorLag(ctx context.Context, client *kafka.Client, sources []LagSource, lag, lost *prometheus.GaugeVec, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	type partition struct {
		LagSource
		p int
	}
	reported := map[partition]int64{}
	for {
		for _, src := range sources {
			qctx, cancel := context.WithTimeout(ctx, interval)
			pos, err := Positions(qctx, client, src)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("measuring consumer lag", "group", src.Group, "err", err)
				}
				continue
			}
			for p, at := range pos {
				part := strconv.Itoa(p)
				lag.WithLabelValues(src.Group, src.Topic, part).Set(float64(at.Lag()))
				lost.WithLabelValues(src.Group, src.Topic, part).Set(float64(at.Lost()))
				key := partition{src, p}
				if n := at.Lost(); n > 0 && reported[key] != n {
					log.Error("the log lost records a consumer group had read: it ends before the group's committed offset (README, A log that lost records)",
						"group", src.Group, "topic", src.Topic, "partition", p, "committed", at.Committed, "end", at.End, "lost", n)
				}
				reported[key] = at.Lost()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LostRecords is a partition whose log ends before the offset a group
// committed on it (Position.Lost).
type LostRecords struct {
	LagSource
	Partition int
	Position
}

func (l LostRecords) String() string {
	return fmt.Sprintf("%s/%d ends at offset %d where group %s had read to %d (%d records lost)",
		l.Topic, l.Partition, l.End, l.Group, l.Committed, l.Lost())
}

// FindLostRecords returns every partition of sources whose log ends
// before its group's committed offset, in the order of sources, then of
// partitions.
func FindLostRecords(ctx context.Context, client *kafka.Client, sources []LagSource) ([]LostRecords, error) {
	var out []LostRecords
	for _, src := range sources {
		pos, err := Positions(ctx, client, src)
		if err != nil {
			return nil, err
		}
		parts := slices.Sorted(maps.Keys(pos))
		for _, p := range parts {
			if pos[p].Lost() > 0 {
				out = append(out, LostRecords{LagSource: src, Partition: p, Position: pos[p]})
			}
		}
	}
	return out, nil
}
